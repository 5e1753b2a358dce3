from __future__ import annotations

from pathlib import Path

import upm_sample


def test_version_matches_pyproject() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert f'version = "{upm_sample.__version__}"' in pyproject.read_text(encoding="utf-8")
