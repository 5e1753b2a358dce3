"""``verify --manifest`` holds the manifest to the release (issue 20): a manifest that omits a
file, names another repository or tag than the one pinned, records one file's signature for
another, or carries absurd sizes or log indexes fails, naming the manifest field.

Each case starts from a complete manifest of a really signed release (the release kit:
real sigstore-python against the local Sigstore stand-in, real gpg) and changes one field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.release_kit import (
    PROVENANCE,
    PUBKEY,
    REPOSITORY,
    SDIST,
    WHEEL,
    ReleaseKit,
    complete_manifest,
    release_kit,
)
from upm_ci.cli import main
from upm_ci.layout import GPG_SIG_SUFFIX

__all__ = ["release_kit"]


@pytest.fixture
def signed(release_kit: ReleaseKit, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """(release directory, its complete manifest, the verify command line)."""
    dist = release_kit.copy(tmp_path / "dist")
    manifest = complete_manifest(dist, tmp_path / "release-manifest.json")
    args = ["verify", str(dist), "--manifest", str(manifest), "--project", str(tmp_path)]
    args += ["--trust-config", str(release_kit.trust_config), "--offline"]
    args += ["--gpg-fingerprint", release_kit.gpg.fingerprint]
    return dist, manifest, args


def _edit(manifest: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))


def _index(data: dict[str, Any], key: str, **match: str) -> int:
    for i, item in enumerate(data[key]):
        if all(item.get(k) == v for k, v in match.items()):
            return i
    raise AssertionError(f"no {key} entry {match}")


def _failures(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return out + err


def test_the_complete_manifest_of_the_release_passes(
    signed: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, args = signed
    assert main(args) == 0, _failures(capsys)


def test_a_manifest_that_omits_a_release_file_fails(
    signed: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, manifest, args = signed

    def drop(data: dict[str, Any]) -> None:
        del data["artifacts"][_index(data, "artifacts", name=PROVENANCE)]

    _edit(manifest, drop)
    assert main(args) == 1
    shown = _failures(capsys)
    assert PROVENANCE in shown and "manifest artifacts: the release carries this file" in shown


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d, i: d["artifacts"][i].__setitem__("size", 10**9), "artifacts[{i}].size"),
        (lambda d, i: d["artifacts"][i].__setitem__("size", 1), "artifacts[{i}].size"),
    ],
    ids=["larger-than-the-file", "smaller"],
)
def test_a_size_that_is_not_the_file_s_fails_naming_the_field(
    signed: tuple[Path, Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    change: Callable[[dict[str, Any], int], None],
    field: str,
) -> None:
    _, manifest, args = signed
    data = json.loads(manifest.read_text())
    i = _index(data, "artifacts", name=WHEEL)
    change(data, i)
    manifest.write_text(json.dumps(data))
    assert main(args) == 1
    assert f"manifest {field.format(i=i)}: the manifest records" in _failures(capsys)


@pytest.mark.parametrize(
    ("key", "value", "field", "message"),
    [
        ("size", -1, "artifacts[{a}].size", "is negative"),
        ("size", 1 << 60, "artifacts[{a}].size", "is larger than"),
        ("size", 3.5, "artifacts[{a}].size", "expected an integer"),
        ("log_index", -7, "signatures[{s}].log_index", "is negative"),
        ("log_index", 1 << 64, "signatures[{s}].log_index", "is larger than"),
        ("log_index", "12", "signatures[{s}].log_index", "expected an integer"),
        ("log_index", 1.0, "signatures[{s}].log_index", "expected an integer"),
    ],
)
def test_absurd_sizes_and_log_indexes_are_bad_input_naming_the_field(
    signed: tuple[Path, Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    key: str,
    value: Any,
    field: str,
    message: str,
) -> None:
    _, manifest, args = signed
    data = json.loads(manifest.read_text())
    a = _index(data, "artifacts", name=WHEEL)
    s = _index(data, "signatures", subject=WHEEL, method="sigstore")
    (data["artifacts"][a] if key == "size" else data["signatures"][s])[key] = value
    manifest.write_text(json.dumps(data))
    before = manifest.read_bytes()
    assert main(args) == 2
    shown = _failures(capsys)
    assert field.format(a=a, s=s) in shown and message in shown, shown
    assert manifest.read_bytes() == before  # nothing recorded on bad input


def test_a_log_index_that_is_not_the_bundle_s_fails(
    signed: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, manifest, args = signed
    data = json.loads(manifest.read_text())
    s = _index(data, "signatures", subject=WHEEL, method="sigstore")
    data["signatures"][s]["log_index"] += 1000
    manifest.write_text(json.dumps(data))
    assert main(args) == 1
    assert f"manifest signatures[{s}].log_index: the manifest records" in _failures(capsys)


def test_swapped_signature_subjects_fail(
    signed: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The wheel's signature record points at the sdist's bundle (and the other way round)."""
    _, manifest, args = signed
    data = json.loads(manifest.read_text())
    w = _index(data, "signatures", subject=WHEEL, method="sigstore")
    s = _index(data, "signatures", subject=SDIST, method="sigstore")
    sigs = data["signatures"]
    sigs[w]["file"], sigs[s]["file"] = sigs[s]["file"], sigs[w]["file"]
    manifest.write_text(json.dumps(data))
    assert main(args) == 1
    shown = _failures(capsys)
    assert f"manifest signatures[{w}].file" in shown and f"manifest signatures[{s}].file" in shown
    assert "is recorded as the sigstore signature of" in shown


def test_a_gpg_record_swapped_and_a_subject_digest_that_is_not_the_file_s_fail(
    signed: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, manifest, args = signed
    data = json.loads(manifest.read_text())
    g = _index(data, "signatures", subject=WHEEL, method="gpg")
    data["signatures"][g]["file"] = SDIST + GPG_SIG_SUFFIX
    s = _index(data, "signatures", subject=SDIST, method="sigstore")
    data["signatures"][s]["subject_sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    assert main(args) == 1
    shown = _failures(capsys)
    assert f"manifest signatures[{g}].file" in shown
    assert f"manifest signatures[{s}].subject_sha256" in shown


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--repository", "mallory/upm-sample"], "project.repository"),
        (["--ref", "v9.9.9"], "tag v9.9.9"),
    ],
)
def test_a_manifest_of_another_repository_or_tag_than_the_pinned_one_fails(
    signed: tuple[Path, Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    field: str,
) -> None:
    _, manifest, args = signed
    before = manifest.read_bytes()
    assert main([*args, *extra]) == 2
    assert field in _failures(capsys)
    assert manifest.read_bytes() == before


def test_a_manifest_naming_another_repository_does_not_choose_whose_signatures_count(
    signed: tuple[Path, Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$GITHUB_REPOSITORY pins the repository when no --repository is given."""
    _, manifest, args = signed
    _edit(manifest, lambda d: d["project"].__setitem__("repository", "mallory/upm-sample"))
    monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
    assert main(args) == 2
    assert "manifest project.repository is 'mallory/upm-sample'" in _failures(capsys)


def test_the_public_key_omitted_from_the_manifest_fails_too(
    signed: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, manifest, args = signed
    _edit(manifest, lambda d: d["artifacts"].pop(_index(d, "artifacts", name=PUBKEY)))
    assert main(args) == 1
    assert PUBKEY in _failures(capsys)
