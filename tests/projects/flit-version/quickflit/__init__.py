"""Parse and format human-friendly durations like 1h30m."""

from quickflit.formatting import format
from quickflit.parsing import UNITS, parse

__version__ = "0.9.0"

__all__ = ["UNITS", "format", "parse"]
