import pytest
from docutils import nodes
from docutils.core import publish_doctree
from rstproj import bullet_list, field_list, grid_table


def parse(text):
    """The docutils document of ``text``; any warning from docutils fails the test."""
    doc = publish_doctree(text, settings_overrides={"report_level": 2, "halt_level": 2})
    assert not list(doc.findall(nodes.system_message))
    return doc


def test_grid_table_with_header_is_valid_rst():
    doc = parse(grid_table([["a", "1"], ["bb", "22"]], header=["name", "n"]))
    (table,) = doc.findall(nodes.table)
    assert len(list(table.findall(nodes.thead))) == 1
    assert len(list(table.findall(nodes.row))) == 3


def test_wide_characters_keep_the_grid_aligned():
    doc = parse(grid_table([["日本", "x"], ["ab", "yy"]]))
    texts = [e.astext() for e in doc.findall(nodes.entry)]
    assert texts == ["日本", "x", "ab", "yy"]


def test_ragged_rows_are_refused():
    with pytest.raises(ValueError, match="same"):
        grid_table([["a"], ["b", "c"]])


def test_nested_bullet_list():
    doc = parse(bullet_list(["one", ["one.a", "one.b"], "two"]))
    outer = next(doc.findall(nodes.bullet_list))
    assert len(outer.children) == 2
    assert len(list(doc.findall(nodes.bullet_list))) == 2


def test_field_list_keeps_order():
    doc = parse("Intro.\n\n" + field_list({"colour": "blue", "size": "3"}))
    names = [f.children[0].astext() for f in doc.findall(nodes.field)]
    assert names == ["colour", "size"]
