"""Grid tables."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def width(text: str) -> int:
    """Display width: East Asian wide and full-width characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, size: int) -> str:
    return text + " " * (size - width(text))


def grid_table(rows: Sequence[Sequence[object]], header: Sequence[object] | None = None) -> str:
    """A reStructuredText grid table of ``rows`` (and an optional ``header`` row)."""
    cells = [[str(c) for c in row] for row in ([header] if header else []) + list(rows)]
    if not cells or len({len(row) for row in cells}) != 1:
        raise ValueError("every row needs the same, non-zero number of cells")
    sizes = [max(width(row[i]) for row in cells) for i in range(len(cells[0]))]

    def rule(char: str) -> str:
        return "+" + "+".join(char * (size + 2) for size in sizes) + "+"

    def line(row: list[str]) -> str:
        return "|" + "|".join(f" {_pad(c, size)} " for c, size in zip(row, sizes)) + "|"

    out = [rule("-")]
    for number, row in enumerate(cells):
        out.append(line(row))
        out.append(rule("=" if header and number == 0 else "-"))
    return "\n".join(out)
