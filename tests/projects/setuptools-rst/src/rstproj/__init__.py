"""Render Python data as reStructuredText."""

from rstproj.lists import bullet_list, field_list
from rstproj.tables import grid_table

__version__ = "1.1.0"

__all__ = ["bullet_list", "field_list", "grid_table"]
