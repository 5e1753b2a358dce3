"""Plugin ``linecount``: lines, and how many of them are blank."""

from __future__ import annotations

from typing import Any


def main(payload: dict[str, Any]) -> dict[str, int]:
    lines = str(payload["text"]).splitlines()
    return {"lines": len(lines), "blank": sum(1 for line in lines if not line.strip())}


if __name__ == "__main__":
    from upm.sandbox import run_sandboxed

    run_sandboxed(main)
