import pytest
from slugkit import slugify, to_ascii
from slugkit.cli import main


def test_words_are_lowercased_and_joined():
    assert slugify("Hello, World!") == "hello-world"


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Crème brûlée à Paris", "creme-brulee-a-paris"),
        ("Straße", "strasse"),
        ("Salt & Pepper", "salt-and-pepper"),
    ],
)
def test_any_script_becomes_ascii(text, slug):
    assert slugify(text) == slug


def test_max_length_never_cuts_a_word():
    assert slugify("the quick brown fox", max_length=12) == "the-quick"


def test_separator_and_case_are_options():
    assert slugify("Read Me First", separator="_", lowercase=False) == "Read_Me_First"


def test_to_ascii_is_called_for_every_slug(mocker):
    spy = mocker.spy(__import__("slugkit.core").core, "unidecode")
    slugify("Ünïcödé")
    spy.assert_called_once_with("Ünïcödé")
    assert to_ascii("Ünïcödé") == "Unicode"


def test_cli_prints_one_slug_per_argument(capsys):
    assert main(["A title", "Another one"]) == 0
    assert capsys.readouterr().out == "a-title\nanother-one\n"
