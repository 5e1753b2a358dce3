import quickflit
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, database=None)
@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(list(quickflit.UNITS)))
def test_format_then_parse_is_identity(seconds, largest):
    assert quickflit.parse(quickflit.format(seconds, largest=largest)) == seconds


@settings(max_examples=100, database=None)
@given(st.lists(st.tuples(st.integers(0, 999), st.sampled_from("wdhms")), min_size=1))
def test_parse_adds_up_the_parts(parts):
    text = " ".join(f"{n}{unit}" for n, unit in parts)
    assert quickflit.parse(text) == sum(n * quickflit.UNITS[unit] for n, unit in parts)
