"""Readable, URL-safe slugs from any text."""

from importlib.metadata import PackageNotFoundError, version

from slugkit.core import slugify, to_ascii
from slugkit.unique import UniqueSlugger

try:
    __version__ = version("slugkit")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0"

__all__ = ["UniqueSlugger", "__version__", "slugify", "to_ascii"]
