"""Put the hash-pinned uv of ``uv.txt`` at ``DEST`` without installing anything anywhere.

Usage: ``python -I bootstrap_uv.py UV_LOCK DEST`` (DEST is the path of the uv binary to write,
``uv`` or ``uv.exe``). The Python running this downloads the one uv wheel for its platform with
its own pip (``pip download --only-binary :all: --no-deps --require-hashes``: pip's index,
certificate and proxy settings apply, and a download installs nothing, so PEP 668 does not
refuse it), then copies the ``uv`` binary out of the wheel (a zip) to DEST. Stdlib only.

Exit codes: 0 DEST is the verified uv; 1 uv could not be had here (no pip, no wheel for this
platform, no index): setup.sh installs with pip instead; 2 a download did not match uv.txt's
hashes: refused, nothing written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: What pip prints when a download does not match the lock's hashes (or a hash is missing).
REFUSED = ("DO NOT MATCH THE HASHES", "Hashes are required in --require-hashes mode")


def main(lock: Path, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="upm-release-uv-", dir=dest.parent) as tmp:
        wheels = Path(tmp) / "wheels"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--only-binary", ":all:", "--no-deps", "--require-hashes", "-r", str(lock),
                 "-d", str(wheels)],
                env={**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"},  # a download installs nothing
                capture_output=True,
                text=True,
                timeout=300,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"pip download of uv did not finish: {exc}", file=sys.stderr)
            return 1
        if any(text in proc.stdout + proc.stderr for text in REFUSED):
            reason = f"the uv download does not match the hashes in {lock}; refused"
            print(f"::error::upm-release: {reason} (use upm-release's own uv.txt)", file=sys.stderr)
            return 2
        found = sorted(wheels.glob("uv-*.whl")) if proc.returncode == 0 else []
        if len(found) != 1:
            last = (proc.stderr.strip().splitlines() or ["no uv wheel downloaded"])[-1]
            print(f"pip download of uv failed: {last}", file=sys.stderr)
            return 1
        with zipfile.ZipFile(found[0]) as wheel:
            members = [
                m for m in wheel.namelist()
                if m.split("/")[-2:-1] == ["scripts"] and m.rsplit("/", 1)[-1] in ("uv", "uv.exe")
            ]  # fmt: skip
            if len(members) != 1:
                print(f"{found[0].name} holds no uv binary", file=sys.stderr)
                return 1
            partial = Path(tmp) / dest.name
            partial.write_bytes(wheel.read(members[0]))
        partial.chmod(0o755)
        os.replace(partial, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
