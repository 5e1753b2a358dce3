"""The build hook: the project's code that every build of it runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class SpyHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        path = Path(self.root) / "hostile_pkg" / "spy.py"
        spec = importlib.util.spec_from_file_location("hostile_spy", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.run(f"build-hook-{self.target_name}")
