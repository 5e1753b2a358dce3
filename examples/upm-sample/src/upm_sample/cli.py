"""``upm-sample PLUGIN JSON``: run one installed plugin in the sandbox and print its answer."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from upm_sample import __version__
from upm_sample.sandbox import SandboxError, run_plugin


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        print(f"upm-sample {__version__}")
        return 0
    if len(args) != 2:
        print("usage: upm-sample PLUGIN JSON", file=sys.stderr)
        return 2
    try:
        run = run_plugin(args[0], json.loads(args[1]))
    except (SandboxError, ValueError) as e:
        print(f"upm-sample: {e}", file=sys.stderr)
        return 1
    print(json.dumps(run.result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
