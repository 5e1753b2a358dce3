"""Plugin ``wordcount``: the number of words in a text."""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"\w+(?:['’-]\w+)*")


def main(payload: dict[str, Any]) -> dict[str, int]:
    return {"words": len(_WORD.findall(str(payload["text"])))}


if __name__ == "__main__":
    from upm.sandbox import run_sandboxed

    run_sandboxed(main)
