"""`upm-ci trust`: one test per row of RELEASE.md's Artifact Trust Policy table, with real
bundles from the Sigstore stand-in; approval records; bad input."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.release_kit import (
    SDIST,
    WHEEL,
    ReleaseKit,
    ReleaseSigner,
    release_kit,
    sha256,
)
from upm_ci.artifact_policy import (
    ACCEPTED,
    BLOCKED,
    NEEDS_REVIEW,
    ROW_COMMUNITY,
    ROW_OFFICIAL,
    ROW_UNSIGNED,
    Approval,
    evaluate,
)
from upm_ci.cli import main
from upm_ci.errors import InputError
from upm_ci.identity import UPM_RELEASE_IDENTITY, official_signers
from upm_ci.standins.oidc import UPM_RELEASE_WORKFLOW

__all__ = ["release_kit"]

COMMUNITY_REPO = "carol/upm-plugin-colors"
PLUGIN = "colors_plugin-0.3.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def community_signer(release_kit: ReleaseKit) -> Iterator[ReleaseSigner]:
    signer = ReleaseSigner(release_kit.standin, repository=COMMUNITY_REPO, ref="refs/tags/v0.3.0")
    yield signer
    signer.close()


@pytest.fixture
def files(release_kit: ReleaseKit, community_signer: ReleaseSigner, tmp_path: Path) -> Path:
    """An official wheel, a community-signed plugin, an unsigned file, a bad signature."""
    out = tmp_path / "in"
    out.mkdir()
    for name in (WHEEL, WHEEL + ".sigstore.json"):
        shutil.copy(release_kit.golden / name, out / name)
    (out / PLUGIN).write_bytes(b"community plugin wheel")
    community_signer.sign_file(out / PLUGIN)
    (out / "random-tool.tar.gz").write_bytes(b"unsigned third-party")
    shutil.copy(release_kit.golden / SDIST, out / "forged.tar.gz")
    shutil.copy(
        release_kit.golden / (WHEEL + ".sigstore.json"), out / "forged.tar.gz.sigstore.json"
    )
    return out


def decide(kit: ReleaseKit, path: Path, approvals: list[Approval] | None = None) -> tuple[str, str]:
    bundle = path.with_name(path.name + ".sigstore.json")
    decision = evaluate(
        path,
        bundle if bundle.exists() else None,
        official=official_signers("unexpected/upm-sample", ".github/workflows/release.yml", []),
        approvals=approvals or [],
        trust_config=kit.trust_config,
    )
    return decision.row, decision.decision


def test_official_signed_is_accepted(release_kit: ReleaseKit, files: Path) -> None:
    assert decide(release_kit, files / WHEEL) == (ROW_OFFICIAL, ACCEPTED)


def test_community_signed_needs_review(release_kit: ReleaseKit, files: Path) -> None:
    assert decide(release_kit, files / PLUGIN) == (ROW_COMMUNITY, NEEDS_REVIEW)


def test_community_signed_with_approval_is_accepted(release_kit: ReleaseKit, files: Path) -> None:
    approval = Approval(sha256((files / PLUGIN).read_bytes()), "bob", _date(), "audited v0.3.0")
    assert decide(release_kit, files / PLUGIN, [approval]) == (ROW_COMMUNITY, ACCEPTED)


def test_approval_for_another_digest_does_not_count(release_kit: ReleaseKit, files: Path) -> None:
    approval = Approval("a" * 64, "bob", _date(), "audited another build")
    assert decide(release_kit, files / PLUGIN, [approval]) == (ROW_COMMUNITY, NEEDS_REVIEW)


def test_unsigned_third_party_is_blocked(release_kit: ReleaseKit, files: Path) -> None:
    assert decide(release_kit, files / "random-tool.tar.gz") == (ROW_UNSIGNED, BLOCKED)


def test_bad_signature_is_blocked(release_kit: ReleaseKit, files: Path) -> None:
    assert decide(release_kit, files / "forged.tar.gz") == (ROW_UNSIGNED, BLOCKED)


def test_configured_official_identity_is_accepted(release_kit: ReleaseKit, files: Path) -> None:
    identity = f"https://github.com/{COMMUNITY_REPO}/.github/workflows/release.yml@refs/tags/*"
    decision = evaluate(
        files / PLUGIN,
        files / (PLUGIN + ".sigstore.json"),
        official=official_signers("", "", [f"{identity} from {COMMUNITY_REPO}"]),
        approvals=[],
        trust_config=release_kit.trust_config,
    )
    assert (decision.row, decision.decision) == (ROW_OFFICIAL, ACCEPTED)
    assert COMMUNITY_REPO in decision.signer


def test_official_identity_without_a_repository_is_refused() -> None:
    with pytest.raises(InputError, match="names no repository") as err:
        official_signers("", "", [UPM_RELEASE_IDENTITY])
    assert f"{UPM_RELEASE_IDENTITY} from OWNER/REPO" in (err.value.hint or "")
    (pinned,) = official_signers("", "", [f"{UPM_RELEASE_IDENTITY} from owner/project"])
    assert pinned.repository == "owner/project"
    # the old plain form is pinned to the project's repository
    policies = official_signers("owner/project", ".github/workflows/release.yml", ["X"])
    assert [p.repository for p in policies] == ["owner/project"] * 3
    # another issuer's identity (an e-mail) has no repository to pin
    (mail,) = official_signers("", "", ["a@example.org|https://accounts.example.org"])
    assert (mail.repository, mail.issuer) == ("", "https://accounts.example.org")


@pytest.mark.parametrize(
    ("caller", "official"), [("unexpected/upm-sample", True), ("mallory/upm-sample", False)]
)
def test_the_reusable_workflow_is_official_only_for_this_repository(
    release_kit: ReleaseKit, tmp_path: Path, caller: str, official: bool
) -> None:
    """Signed in upm-release's reusable workflow: same SAN for every caller; only the
    project's own runs are official, as default and as a plain configured identity."""
    signer = ReleaseSigner(
        release_kit.standin,
        repository=caller,
        ref="refs/tags/v1.2.0",
        reusable_workflow=f"{UPM_RELEASE_WORKFLOW}@refs/tags/v1",
    )
    artifact = tmp_path / PLUGIN
    artifact.write_bytes(b"released by the reusable workflow")
    try:
        bundle = signer.sign_file(artifact)
    finally:
        signer.close()
    for configured in ([], [UPM_RELEASE_IDENTITY]):
        decision = evaluate(
            artifact,
            bundle,
            official=official_signers(
                "unexpected/upm-sample", ".github/workflows/release.yml", configured
            ),
            approvals=[],
            trust_config=release_kit.trust_config,
        )
        assert f"https://github.com/{UPM_RELEASE_WORKFLOW}@refs/tags/v1" in decision.signer
        assert decision.row == (ROW_OFFICIAL if official else ROW_COMMUNITY), configured


def _date() -> dt.date:
    return dt.date(2026, 11, 1)


# ------------------------------------------------------------------------------ the CLI


def trust_cli(kit: ReleaseKit, project: Path, *args: str) -> int:
    return main(
        ["trust", "--project", str(project), "--trust-config", str(kit.trust_config), *args]
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "upm-sample"\nversion = "1.2.0"\n\n'
        '[tool.upm-release]\nrepository = "unexpected/upm-sample"\n'
    )
    return root


def test_cli_accepts_official_and_approved(
    release_kit: ReleaseKit, files: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trust_cli(release_kit, project, str(files / WHEEL), str(files / PLUGIN)) == 1
    out = capsys.readouterr().out
    assert NEEDS_REVIEW in out and ROW_COMMUNITY in out and COMMUNITY_REPO in out

    record = {
        "sha256": sha256((files / PLUGIN).read_bytes()),
        "reviewer": "bob",
        "date": "2026-11-01",
        "reason": "audited the sandbox entrypoint",
    }
    (project / "trust-approvals.json").write_text(json.dumps([record]))  # config default
    assert trust_cli(release_kit, project, str(files / WHEEL), str(files / PLUGIN)) == 0
    out = capsys.readouterr().out
    assert "approved by bob on 2026-11-01" in out and ROW_OFFICIAL in out


def test_cli_blocks_unsigned_and_bad_signatures(
    release_kit: ReleaseKit, files: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = trust_cli(
        release_kit, project, str(files / "random-tool.tar.gz"), str(files / "forged.tar.gz")
    )
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.count(BLOCKED) == 2
    assert "bad signature" in captured.out and "no Sigstore bundle" in captured.out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "expected a JSON list"),
        ('[{"sha256": "' + "a" * 64 + '", "reviewer": "bob", "date": "2026-11-01"}]', "reason"),
        ('[{"sha256": "abc", "reviewer": "b", "date": "2026-11-01", "reason": "r"}]', "sha256"),
        (
            '[{"sha256": "' + "a" * 64 + '", "reviewer": "b", "date": "soon", "reason": "r"}]',
            "date",
        ),
    ],
    ids=["json", "not-a-list", "missing-reason", "bad-digest", "bad-date"],
)
def test_malformed_approvals_exit_2(
    release_kit: ReleaseKit,
    files: Path,
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    path = tmp_path / "approvals.json"
    path.write_text(content)
    code = trust_cli(release_kit, project, str(files / PLUGIN), "--approvals", str(path))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and str(path) in err and "Traceback" not in err


def test_missing_file_or_approvals_exit_2(
    release_kit: ReleaseKit, files: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert trust_cli(release_kit, project, str(files / "nope.whl")) == 2
    assert "artifact not found" in capsys.readouterr().err
    missing = str(files / "missing.json")
    assert trust_cli(release_kit, project, str(files / WHEEL), "--approvals", missing) == 2
    assert "approvals file not found" in capsys.readouterr().err
