"""Turning text into slugs."""

import re

from text_unidecode import unidecode

_REPLACEMENTS = {"&": " and ", "@": " at ", "+": " plus "}
_NOT_WORD = re.compile(r"[^A-Za-z0-9]+")


def to_ascii(text: str) -> str:
    """Transliterate ``text`` to ASCII (``"Crème"`` -> ``"Creme"``)."""
    for symbol, word in _REPLACEMENTS.items():
        text = text.replace(symbol, word)
    return unidecode(text)


def slugify(text: str, separator: str = "-", max_length: int = 0, lowercase: bool = True) -> str:
    """A slug of ``text``: ASCII words joined by ``separator``.

    With ``max_length`` the slug is cut at a separator so that no word is broken.
    """
    words = [w for w in _NOT_WORD.split(to_ascii(text)) if w]
    if lowercase:
        words = [w.lower() for w in words]
    slug = separator.join(words)
    if max_length and len(slug) > max_length:
        cut = slug[: max_length + 1]
        slug = cut.rsplit(separator, 1)[0] if separator in cut else slug[:max_length]
    return slug
