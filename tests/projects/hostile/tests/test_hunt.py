"""The project's test: what an attacker with code in the test suite would run."""

import importlib.util
from pathlib import Path


def test_hunt() -> None:
    path = Path(__file__).resolve().parent.parent / "hostile_pkg" / "spy.py"
    spec = importlib.util.spec_from_file_location("hostile_spy", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.run("tests")
