"""Bullet lists and field lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def bullet_list(items: Sequence[object], indent: int = 0) -> str:
    """A bullet list; an item that is a list or tuple becomes a nested list."""
    lines: list[str] = []
    pad = " " * indent
    for item in items:
        if isinstance(item, (list, tuple)):
            lines.append("")
            lines.append(bullet_list(item, indent + 2))
            lines.append("")
        else:
            lines.append(f"{pad}- {item}")
    return "\n".join(lines).replace("\n\n\n", "\n\n").strip("\n")


def field_list(fields: Mapping[str, object]) -> str:
    """A field list (``:name: value``), in the mapping's order."""
    for name in fields:
        if not name or ":" in name:
            raise ValueError(f"invalid field name {name!r}")
    return "\n".join(f":{name}: {value}" for name, value in fields.items())
