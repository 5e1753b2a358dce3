"""Run several counter plugins over one text, in-process."""

from __future__ import annotations

import importlib
from typing import Any

PLUGINS = ("wordcount", "linecount", "hashtags")


def tally(text: str, plugins: list[str] | tuple[str, ...] = PLUGINS) -> dict[str, Any]:
    """Each plugin's result for ``text``, by plugin name."""
    results: dict[str, Any] = {}
    for name in plugins:
        if name not in PLUGINS:
            raise ValueError(f"unknown plugin {name!r}; known: {', '.join(PLUGINS)}")
        module = importlib.import_module(f"tallyho.plugins.{name}")
        results[name] = module.main({"text": text})
    return results
