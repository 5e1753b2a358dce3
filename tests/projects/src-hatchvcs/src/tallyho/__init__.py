"""Count words, lines and hashtags in text."""

from importlib.metadata import PackageNotFoundError, version

from tallyho.counter import PLUGINS, tally

try:
    __version__ = version("tallyho")
except PackageNotFoundError:  # a checkout that is not installed
    __version__ = "0.0.0"

__all__ = ["PLUGINS", "__version__", "tally"]
