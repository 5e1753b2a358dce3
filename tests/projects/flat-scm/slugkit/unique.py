"""Slugs that do not collide with existing ones."""

from collections.abc import Callable

from slugkit.core import slugify


class UniqueSlugger:
    """Adds ``-2``, ``-3``, … to a slug until ``exists(slug)`` says it is free."""

    def __init__(self, exists: Callable[[str], bool], separator: str = "-", limit: int = 1000):
        self.exists = exists
        self.separator = separator
        self.limit = limit

    def slug(self, text: str) -> str:
        base = slugify(text, separator=self.separator)
        candidate = base
        for number in range(2, self.limit + 2):
            if not self.exists(candidate):
                return candidate
            candidate = f"{base}{self.separator}{number}"
        raise RuntimeError(f"no free slug for {text!r} after {self.limit} tries")
