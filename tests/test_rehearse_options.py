"""``upm-ci rehearse`` options that only a ``--workflow`` rehearsal reads: without
``--workflow`` they are bad input (exit 2, one line naming the option, never a secret's
value, nothing written), not silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from upm_ci.cli import main

CANARY = "ghs_canaryValueNeverShown0123456789"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--secret", f"RELEASE_GPG_KEY={CANARY}"], "--secret"),
        (["--input", "dry-run=true"], "--input"),
        (["--event", "workflow_dispatch"], "--event"),
        (["--skip-step", "actions/cache"], "--skip-step"),
        (["--network"], "--network"),
        (["--network", "--secret", f"A={CANARY}"], "--secret, --network"),
    ],
)
def test_workflow_options_without_workflow_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    out = tmp_path / "out"
    code = main(["rehearse", "--out", str(out), *extra, str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"{named}: only with --workflow FILE" in lines[0], captured.err
    assert CANARY not in captured.out + captured.err
    assert not out.exists()


def test_the_environment_variable_counts_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_REHEARSAL_SECRETS", f"RELEASE_GPG_KEY={CANARY}")
    code = main(["rehearse", "--out", str(tmp_path / "out"), str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--secret: only with --workflow FILE" in err
    assert CANARY not in err
