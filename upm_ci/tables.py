"""Tables of text: plain for the terminal, Markdown for the job summary.

Shared by the CLI and by reports that render themselves (the gate's checklist), so a report
never has to import the CLI layer.
"""

from __future__ import annotations

__all__ = ["markdown_table", "table"]


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table for the terminal (Markdown tables go to the job summary)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table for the job summary; pipes in cells are escaped."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
