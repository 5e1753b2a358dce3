"""Plugin ``version_info``: a PEP 440 version, normalised and classified."""

from __future__ import annotations

from typing import Any

from packaging.version import Version


def main(payload: dict[str, Any]) -> dict[str, Any]:
    version = Version(str(payload["version"]))
    return {"normalized": str(version), "prerelease": version.is_prerelease}


if __name__ == "__main__":
    from upm_sample.sandbox import run_sandboxed

    run_sandboxed(main)
