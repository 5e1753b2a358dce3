"""Stand-in for the host's ``upm.sandbox``: the protocol, not the isolation.

The real host starts the plugin in a locked-down child process; this stand-in only checks it
was started that way (``UPM_SANDBOX=1``), reads the JSON payload from stdin and writes the
result, with what the plugin could see of its process, to stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

EXIT_UNSANDBOXED = 3


def run_sandboxed(main: Callable[[dict[str, Any]], Any]) -> None:
    if os.environ.get("UPM_SANDBOX") != "1":
        print("upm.sandbox: refusing to run outside the sandbox", file=sys.stderr)
        sys.exit(EXIT_UNSANDBOXED)
    payload = json.load(sys.stdin)
    seen = {"pid": os.getpid(), "cwd": os.getcwd(), "env": sorted(os.environ)}
    json.dump({"result": main(payload), "process": seen}, sys.stdout)
