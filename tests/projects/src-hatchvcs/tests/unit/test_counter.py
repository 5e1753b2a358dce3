import pytest
import tallyho
from tallyho import tally


def test_tally_runs_every_plugin_by_default():
    assert tally("one two\n\n#three") == {
        "wordcount": {"words": 3},
        "linecount": {"lines": 3, "blank": 1},
        "hashtags": {"tags": ["three"]},
    }


def test_tally_runs_only_the_named_plugins():
    assert tally("a b", ["wordcount"]) == {"wordcount": {"words": 2}}


def test_unknown_plugins_are_refused():
    with pytest.raises(ValueError, match="unknown plugin 'os'"):
        tally("x", ["os"])


def test_installed_version_is_the_tag():
    assert tallyho.__version__ != "0.0.0"
