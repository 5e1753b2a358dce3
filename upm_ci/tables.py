"""Tables of text: plain for the terminal, Markdown for the job summary.

Shared by the CLI and by reports that render themselves (the gate's checklist), so a report
never has to import the CLI layer.

The terminal table is a hand wrap, not rich's ``Table``: rich is not among the light
install's dependencies (``verify`` and ``trust`` print tables), it pads every cell to its
column (trailing spaces unless told otherwise per column), and it folds a long cell inside
its column, so one row becomes many lines and ``grep '^gate  *pass'`` no longer finds it.
Here a row stays one line: a cell too long for the width left to it moves below its row,
as ``    header: text`` wrapped to the width. No line ends in a space.
"""

from __future__ import annotations

import shutil
import textwrap

__all__ = ["fit_lines", "markdown_table", "table", "terminal_width"]

_GAP = "  "
_INDENT = "    "


def terminal_width() -> int:
    """The terminal's columns (``$COLUMNS`` first, then the terminal, else 100), at least 40."""
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def fit_lines(text: str, width: int | None = None) -> list[str]:
    """``text``'s lines, each wrapped to ``width`` [default: the terminal's] with its
    continuation indented, and none ending in a space."""
    width = terminal_width() if width is None else width
    out: list[str] = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line.rstrip())
            continue
        lead = " " * (len(line) - len(line.lstrip())) + _INDENT
        room = max(10, width - len(lead))
        if any(len(word) > room for word in line.split()):
            # a digest or URL longer than a line: cut it where the line ends, not before it
            rest = line[width:].strip()
            out.append(line[:width].rstrip())
            out += [(lead + rest[i : i + room]).rstrip() for i in range(0, len(rest), room)]
            continue
        out += textwrap.wrap(line, width, subsequent_indent=lead, break_on_hyphens=False)
    return out


def table(headers: list[str], rows: list[list[str]], *, width: int | None = None) -> str:
    """A plain-text table at most ``width`` columns wide [default: the terminal's].

    Columns shrink widest first; a cell that no longer fits (or holds a newline) is shown on
    its own lines below its row, labelled with its header.
    """
    width = terminal_width() if width is None else width
    count = len(headers)
    rows = [[str(c) for c in row] + [""] * (count - len(row)) for row in rows]

    def natural(col: int, limit: int | None = None) -> int:
        sizes = [len(headers[col])] + [
            len(r[col])
            for r in rows
            if "\n" not in r[col] and (limit is None or len(r[col]) <= limit)
        ]
        return max(sizes)

    widths = [natural(i) for i in range(count)]
    limits: list[int | None] = [None] * count
    while sum(widths) + len(_GAP) * (count - 1) > width:
        shrinkable = [i for i in range(count) if widths[i] > len(headers[i])]
        if not shrinkable:
            break
        col = max(shrinkable, key=lambda i: (widths[i], i))
        budget = width - (sum(widths) - widths[col]) - len(_GAP) * (count - 1)
        limit = max(len(headers[col]), budget)
        limits[col] = limit
        widths[col] = natural(col, limit)

    def fits(col: int, cell: str) -> bool:
        limit = limits[col]
        return "\n" not in cell and (limit is None or len(cell) <= limit)

    def line(cells: list[str]) -> str:
        return _GAP.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(headers), _GAP.join("-" * w for w in widths)]
    wrap = max(20, width - len(_INDENT))
    for row in rows:
        out.append(line([c if fits(i, c) else "" for i, c in enumerate(row)]))
        for i, cell in enumerate(row):
            if fits(i, cell):
                continue
            text = f"{headers[i]}: {cell}"
            for part in text.splitlines() or [""]:
                out += [
                    (_INDENT + piece).rstrip()
                    for piece in textwrap.wrap(
                        part,
                        wrap,
                        subsequent_indent="  ",
                        break_long_words=True,
                        break_on_hyphens=False,
                    )
                    or [""]
                ]
    return "\n".join(out)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table for the job summary; pipes in cells are escaped."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
