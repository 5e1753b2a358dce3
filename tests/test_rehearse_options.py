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


def _secrets_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> tuple[int, dict[str, str]]:
    """The secrets ``rehearse --workflow`` hands to act (the rehearse_workflow seam)."""
    import upm_ci.rehearse_workflow as rw

    seen: dict[str, str] = {}

    def fake(*args: object, secrets: dict[str, str], **kwargs: object) -> object:
        seen.update(secrets)
        raise SystemExit(0)

    monkeypatch.setattr(rw, "rehearse_workflow", fake)
    wf = tmp_path / "release.yml"
    wf.write_text("on: push\n")
    try:
        code = main(["rehearse", "--workflow", str(wf), "--out", str(tmp_path / "o"), *argv])
    except SystemExit as e:
        code = int(e.code or 0)
    return code, seen


GPG_KEY = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
    f"xcLY {CANARY}\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----\n"
)


def test_a_secret_with_whitespace_comes_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UPM_REHEARSAL_SECRETS is split at whitespace (click's rule for a repeatable option), so
    it names the secrets; each value is the environment variable of that name, a multi-line
    GPG key whole."""
    monkeypatch.setenv("RELEASE_GPG_KEY", GPG_KEY)
    monkeypatch.setenv("PYPI_TOKEN", "pypi-abc")
    monkeypatch.setenv("UPM_REHEARSAL_SECRETS", "RELEASE_GPG_KEY PYPI_TOKEN")
    code, seen = _secrets_given(monkeypatch, tmp_path, [])
    assert code == 0 and seen == {"RELEASE_GPG_KEY": GPG_KEY, "PYPI_TOKEN": "pypi-abc"}
    monkeypatch.delenv("UPM_REHEARSAL_SECRETS")
    code, seen = _secrets_given(
        monkeypatch, tmp_path, ["--secret", "RELEASE_GPG_KEY", "--secret=A=b c"]
    )
    assert code == 0 and seen == {"RELEASE_GPG_KEY": GPG_KEY, "A": "b c"}


def test_a_name_alone_with_no_such_variable_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("UNSET_SECRET", raising=False)
    code, seen = _secrets_given(monkeypatch, tmp_path, ["--secret", "UNSET_SECRET"])
    err = capsys.readouterr().err
    assert code == 2 and not seen
    assert "--secret: not NAME=VALUE with a value (the value is not shown)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
