"""Signing 50 release files: upm-ci's ReleaseSigner (one certificate, concurrent submissions)
beside `sigstore sign` 4.x on the same files in one invocation, against the local stand-in
with Rekor answering after 1 s and every other request after 50 ms."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import BenchResult, stopwatch
from upm_ci.identity import ExpectedSigner
from upm_ci.release_signer import ReleaseSigner
from upm_ci.standins.oidc import mint_github_token
from upm_ci.standins.sigstore_server import SigstoreStandIn

FILES = 50
IDENTITY = "https://github.com/unexpected/upm-sample/.github/workflows/release.yml@refs/tags/v1.2.0"


def _files(root: Path) -> list[Path]:
    root.mkdir()
    paths = []
    for i in range(FILES):
        path = root / f"artifact-{i:02d}.bin"
        path.write_bytes(i.to_bytes(2, "big") * 50_000)
        paths.append(path)
    return paths


def run() -> list[BenchResult]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        SigstoreStandIn(delay_ms=50, rekor_delay_ms=1000) as standin,
    ):
        ours_files = _files(Path(tmp) / "ours")
        theirs_files = _files(Path(tmp) / "theirs")
        trust = standin.trust_config_path

        with stopwatch() as ours:
            with ReleaseSigner(
                mint_github_token(), expected=ExpectedSigner(IDENTITY), trust_config=trust
            ) as signer:
                signer.sign_files(ours_files)

        sigstore = str(Path(sys.executable).with_name("sigstore"))
        cmd = [sigstore, "--trust-config", str(trust), "sign"]
        cmd += ["--identity-token", mint_github_token(), *map(str, theirs_files)]
        with stopwatch() as theirs:
            subprocess.run(cmd, check=True, capture_output=True)
        assert all(p.with_name(p.name + ".sigstore.json").is_file() for p in ours_files)
        assert all(p.with_name(p.name + ".sigstore.json").is_file() for p in theirs_files)
    return [
        BenchResult(
            name=f"sign {FILES} files (Rekor 1 s, others 50 ms)",
            ours=ours[0],
            theirs=theirs[0],
            baseline="sigstore sign 4.5.1, one invocation",
            target=0.25,
            note="ours also verifies every bundle against the expected identity (certificate "
            "checks by sigstore's stock Verifier), timestamps each signature, then logs it",
        )
    ]


if __name__ == "__main__":
    for result in run():
        print(
            f"{result.name}: ours {result.ours:.2f} s, {result.baseline} {result.theirs:.2f} s, "
            f"ratio {result.ratio:.3f} (target <= {result.target}: "
            f"{'met' if result.meets_target else 'NOT met'})"
        )
