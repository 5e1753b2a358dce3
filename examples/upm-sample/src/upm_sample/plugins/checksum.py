"""Plugin ``checksum``: the SHA-256 of a text."""

from __future__ import annotations

import hashlib
from typing import Any


def main(payload: dict[str, Any]) -> dict[str, str]:
    text = str(payload["text"])
    return {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


if __name__ == "__main__":
    from upm_sample.sandbox import run_sandboxed

    run_sandboxed(main)
