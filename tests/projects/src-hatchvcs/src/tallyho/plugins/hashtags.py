"""Plugin ``hashtags``: the distinct #hashtags of a text, in order of appearance."""

from __future__ import annotations

import re
from typing import Any

_TAG = re.compile(r"(?<![\w#])#(\w+)")


def main(payload: dict[str, Any]) -> dict[str, list[str]]:
    seen: dict[str, None] = {}
    for tag in _TAG.findall(str(payload["text"])):
        seen.setdefault(tag.lower())
    return {"tags": list(seen)}


if __name__ == "__main__":
    from upm.sandbox import run_sandboxed

    run_sandboxed(main)
