"""SHA256SUMS of 1 GiB of artifacts: ``upm_ci.build.sha256sums_text`` beside ``sha256sum``.

Eight 128 MiB files of pseudo-random bytes in a temp directory (deleted afterwards). Both
sides run on the same files in the same run, page cache warm for both (one untimed pass of
each first), best of three; each writes the same ``SHA256SUMS`` file. The figure is
throughput, so the ratio ours/theirs is better when higher.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from benchmarks._harness import BenchResult, timed
from upm_ci.build import sha256sums_text

FILES = 8
FILE_MIB = 128
BLOCK = 8 << 20


def _write_artifacts(directory: Path) -> list[Path]:
    """Distinct pseudo-random files, cheaply: one random block, varied per chunk by a hash."""
    block = os.urandom(BLOCK)
    paths = []
    for i in range(FILES):
        path = directory / f"artifact-{i}.bin"
        with open(path, "wb") as f:
            for j in range(FILE_MIB * (1 << 20) // BLOCK):
                f.write(hashlib.sha256(f"{i}/{j}".encode()).digest())
                f.write(block[32:])
        paths.append(path)
    return paths


def run() -> list[BenchResult]:
    with tempfile.TemporaryDirectory(prefix="upm-bench-sums-") as tmp:
        directory = Path(tmp)
        paths = _write_artifacts(directory)
        names = [p.name for p in sorted(paths)]
        ours_file, theirs_file = directory / "ours.SHA256SUMS", directory / "theirs.SHA256SUMS"

        def ours() -> None:
            ours_file.write_text(sha256sums_text(paths))

        def theirs() -> None:
            with open(theirs_file, "wb") as out:
                subprocess.run(["sha256sum", *names], cwd=directory, stdout=out, check=True)

        ours()
        theirs()  # warm the page cache for both, and check they agree
        if ours_file.read_text() != theirs_file.read_text():
            raise AssertionError("SHA256SUMS differs from sha256sum's output")
        t_ours = timed(ours, repeat=3)
        t_theirs = timed(theirs, repeat=3)
    mib = FILES * FILE_MIB
    return [
        BenchResult(
            name=f"SHA256SUMS of {FILES} x {FILE_MIB} MiB",
            ours=mib / t_ours,
            theirs=mib / t_theirs,
            baseline="sha256sum (coreutils)",
            target=0.9,
            unit="MiB/s",
            higher_is_better=True,
            note=f"{os.cpu_count()} cores; files hashed in parallel threads",
        )
    ]


if __name__ == "__main__":
    for result in run():
        print(result, f"ratio {result.ratio:.2f}")
