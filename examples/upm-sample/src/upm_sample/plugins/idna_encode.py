"""Plugin ``idna_encode``: an internationalised domain name in its ASCII (IDNA 2008) form."""

from __future__ import annotations

from typing import Any

import idna


def main(payload: dict[str, Any]) -> dict[str, str]:
    return {"ascii": idna.encode(str(payload["domain"])).decode("ascii")}


if __name__ == "__main__":
    from upm_sample.sandbox import run_sandboxed

    run_sandboxed(main)
