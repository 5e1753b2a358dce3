import pytest
from slugkit import UniqueSlugger


def test_a_free_slug_is_used_as_is(mocker):
    exists = mocker.Mock(return_value=False)
    assert UniqueSlugger(exists).slug("Release notes") == "release-notes"
    exists.assert_called_once_with("release-notes")


def test_taken_slugs_get_a_number(mocker):
    exists = mocker.Mock(side_effect=[True, True, False])
    assert UniqueSlugger(exists).slug("Release notes") == "release-notes-3"
    assert [c.args[0] for c in exists.call_args_list] == [
        "release-notes",
        "release-notes-2",
        "release-notes-3",
    ]


def test_gives_up_after_the_limit(mocker):
    exists = mocker.Mock(return_value=True)
    with pytest.raises(RuntimeError, match="no free slug"):
        UniqueSlugger(exists, limit=5).slug("x")
    assert exists.call_count == 5
