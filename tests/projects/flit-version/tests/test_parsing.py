import pytest
import quickflit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h30m", 5400), ("1h 30m", 5400), ("2w", 1209600), ("1m 30s 15s", 105), ("0s", 0)],
)
def test_parse(text, seconds):
    assert quickflit.parse(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "h", "1h and 2m"])
def test_parse_names_what_it_cannot_read(text):
    with pytest.raises(ValueError):
        quickflit.parse(text)


def test_format_uses_the_largest_unit_allowed():
    assert quickflit.format(93784) == "1d2h3m4s"
    assert quickflit.format(93784, largest="h") == "26h3m4s"
    assert quickflit.format(0) == "0s"
