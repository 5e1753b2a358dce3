"""The release manifest is a typed contract: every read checks it against one schema, every
phase refuses another release's manifest, and publish attaches only what the manifest lists
as signed. ``python -m tests.test_manifest`` rewrites ``docs/manifest.schema.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.fixtures.github import GITHUB_TOKEN
from tests.fixtures.pypi import PYPI_TOKEN, make_release
from tests.test_publish import _args, gh
from upm_ci.cli import main
from upm_ci.errors import InputError
from upm_ci.manifest import (
    MAX_BYTES,
    MAX_DEPTH,
    SCHEMA,
    Manifest,
    ProjectInfo,
    SignatureRecord,
    json_schema,
    merge,
    rebase_paths,
)
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.pypi import PypiStandIn

__all__ = ["gh"]

HEAD = json.dumps("schema") + ": " + json.dumps(SCHEMA)
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "manifest.schema.json"


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A signed release (sdist, wheel, SHA256SUMS, SBOMs, bundles) and its manifest."""
    return make_release(tmp_path / "proj")


def _doc(release: Path) -> dict[str, Any]:
    return json.loads(release.read_text())  # type: ignore[no-any-return]


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


# --- the schema -----------------------------------------------------------------------------
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of the document: set (or with ``...`` delete) the field at ``a.b[0].c``."""

    def edit(doc: dict[str, Any]) -> None:
        keys: list[Any] = []
        for part in path.replace("[", ".[").split("."):
            keys.append(int(part[1:-1]) if part.startswith("[") else part)
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        if value is ...:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return edit


BAD = [
    ("artifacts[0].name", "../evil.whl", "has a path separator"),
    ("artifacts[0].name", ".hidden", "starts with a dot or a dash"),
    ("artifacts[0].name", None, "expected a string, got null"),
    ("artifacts[0].kind", "trojan", "is not one of sdist, wheel"),
    ("artifacts[0].path", "/etc/passwd", "is an absolute path"),
    ("artifacts[0].path", "../outside/upm_sample-1.2.0.tar.gz", "goes up with '..'"),
    ("artifacts[0].path", "dist/other.tar.gz", "does not end in the name"),
    ("artifacts[0].sha256", "A" * 64, "is not 64 lowercase hex digits"),
    ("artifacts[0].sha256", 5, "expected a string, got a number"),
    ("artifacts[0].size", "12", "expected an integer, got a string"),
    ("artifacts[0].size", -1, "-1 is negative"),
    ("artifacts[0].size", True, "expected an integer, got a boolean"),
    ("artifacts[0].extra", 1, "unknown field"),
    ("artifacts[0].kind", ..., "is missing"),
    ("artifacts", {}, "expected an array, got an object"),
    ("signatures[0].method", "md5", "is not one of sigstore, gpg"),
    ("signatures[0].log_index", "1", "expected an integer, got a string"),
    ("signatures[0].file", "a/b.sigstore.json", "has a path separator"),
    ("project", None, "expected an object, got null"),
    ("project.name", "", "is empty"),
    ("project.version", ["1"], "expected a string, got an array"),
    ("project.tag", "v1\n::error::x", "has a control character"),
    ("phases", ["a"], "expected an object, got an array"),
    ("phases.gate", "pass", "expected an object, got a string"),
    ("phases.gate.status", 1, "expected a string, got a number"),
    ("images", [{"ref": "r", "digest": "sha256:xyz"}], "is not sha256:<64 lowercase hex"),
    ("ledger", {"github": {"a.whl": {"sha256": "", "state": "maybe", "at": ""}}}, "not one of"),
    ("tool_version", 2, "expected a string, got a number"),
    ("surprise", 1, "unknown field"),
]

#: Where the path in the message goes deeper than the edited field.
SHOWN_AS = {"images": "images[0].digest", "ledger": 'ledger.github["a.whl"].state'}


@pytest.mark.parametrize(("field", "value", "problem"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_every_schema_violation_is_one_line_of_bad_input_naming_file_and_field(
    release: Path, field: str, value: Any, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc(release)
    _set(field, value)(doc)
    _write(release, doc)
    with pytest.raises(InputError) as caught:
        Manifest.load(release)
    message = str(caught.value)
    assert message.startswith(f"{release}: malformed manifest field "), message
    shown = SHOWN_AS.get(field, field)
    assert f" {shown}: " in message and problem in message, message
    assert "\n" not in message

    assert main(["manifest", "show", "--manifest", str(release)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and shown in err


def test_the_json_schema_agrees_on_the_bad_fields_it_can_express(release: Path) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    assert list(validator.iter_errors(_doc(release))) == []
    for field, value, _ in BAD:
        if problem_beyond_schema(field, value):
            continue
        doc = _doc(release)
        _set(field, value)(doc)
        assert list(validator.iter_errors(doc)), (field, value)


def problem_beyond_schema(field: str, value: Any) -> bool:
    """What a JSON Schema cannot say: a path that must end in the artifact's name."""
    return field == "artifacts[0].path" and value == "dist/other.tar.gz"


def test_the_published_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "docs/manifest.schema.json is stale: run `python -m tests.test_manifest`"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"schema": "x", "a": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}", "deeper"),
        ("{" + HEAD + ", " + HEAD + "}", "duplicate key"),
        ("{" + HEAD + ', "project": NaN}', "NaN is not a JSON number"),
        ("{" + HEAD + ', "x": ' + "9" * 5000 + "}", "not valid JSON"),
        ("{" + HEAD + ', "project": {"name": "\\udc80"}}', "lone surrogate"),
        ("[1]", "no 'schema' field"),
        ('{"schema": ["upm-release/manifest/v1"]}', "is not 'upm-release/manifest/v1'"),
    ],
    ids=[
        "deep",
        "deeper-than-limit",
        "duplicate-key",
        "nan",
        "huge-int",
        "surrogate",
        "array",
        "schema-list",
    ],
)
def test_hostile_json_is_bad_input(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=problem):
        Manifest.load(path)


def test_a_file_over_the_size_limit_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no 16 MiB written
    with pytest.raises(InputError, match="larger than 16 MiB"):
        Manifest.load(path)
    with pytest.raises(InputError, match="not a regular file"):
        Manifest.load(tmp_path)
    (tmp_path / "bytes.json").write_bytes(b'{"schema": "\xff"}')
    with pytest.raises(InputError, match="not UTF-8"):
        Manifest.load(tmp_path / "bytes.json")


def test_a_symlink_out_of_the_manifest_directory_is_refused_where_it_is_read(
    release: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    manifest = Manifest.load(release)
    wheel = next(a for a in manifest.artifacts if a.kind == "wheel")
    path = release.parent / wheel.path
    path.unlink()
    path.symlink_to(secret)
    again = Manifest.load(release)  # the JSON is fine ...
    with pytest.raises(InputError, match=f"resolves to {secret}, outside"):
        again.resolve(again.artifact(wheel.name))  # type: ignore[arg-type]


def test_add_file_and_merge_keep_paths_inside_the_manifest_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside.whl"
    outside.write_bytes(b"w")
    m = Manifest(project=ProjectInfo("p", "1.0", "v1.0"), path=tmp_path / "sub" / "m.json")
    with pytest.raises(InputError, match="outside the manifest's directory"):
        m.add_file(outside, "wheel")
    (tmp_path / "sub").mkdir()
    inside = tmp_path / "sub" / "p-1.0.tar.gz"
    inside.write_bytes(b"s")
    assert m.add_file(inside, "sdist").path == "p-1.0.tar.gz"
    m.save()
    merged = merge([Manifest.load(m.path)])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="is outside"):
        rebase_paths(merged, tmp_path / "elsewhere" / "m.json")
    rebase_paths(merged, tmp_path / "m.json")
    assert [a.path for a in merged.artifacts] == ["sub/p-1.0.tar.gz"]


def test_merge_refuses_another_release(tmp_path: Path) -> None:
    a = Manifest(project=ProjectInfo("p", "1.0", "v1.0"), path=tmp_path / "a.json")
    b = Manifest(project=ProjectInfo("p", "1.0", "release-1.0"), path=tmp_path / "b.json")
    with pytest.raises(InputError, match="at tag release-1.0, not tag v1.0"):
        merge([a, b])


def test_gate_may_restamp_the_tag_of_a_manifest_that_holds_only_a_gate_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.json"
    m = Manifest(project=ProjectInfo("p", "1.0", "v1.1"), path=path)
    m.record_phase("gate", "fail")
    m.save()
    wanted = ProjectInfo("p", "1.0", "v1.0")
    with pytest.raises(InputError, match="at tag v1.1, not tag v1.0"):
        Manifest.load_or_new(path, wanted)
    assert Manifest.load_or_new(path, wanted, restamp=True).project.tag == "v1.0"
    m.record_phase("build", "pass")
    m.save()
    with pytest.raises(InputError, match="at tag v1.1, not tag v1.0"):
        Manifest.load_or_new(path, wanted, restamp=True)
    with pytest.raises(InputError, match="is for p 1.0, not q 1.0"):
        Manifest.load_or_new(path, ProjectInfo("q", "1.0", "v1.0"), restamp=True)


# --- every phase refuses another release's manifest --------------------------------------------
def _other_release(release: Path) -> Path:
    doc = _doc(release)
    doc["project"] = {"name": "other", "version": "9.9", "tag": "v9.9"}
    return _write(release.parent / "other-manifest.json", doc)


@pytest.mark.parametrize(
    "phase",
    [
        ["gate", "--junit-xml", "{junit}"],
        ["build", "--no-smoke-test"],
        ["sbom", "--osv-url", "http://127.0.0.1:9/"],
        ["sign", "--identity-token", "x.y.z", "--trust-config", "{junit}"],
        [
            "publish",
            *("--github-api-url", "http://127.0.0.1:9", "--github-token", GITHUB_TOKEN),
            *("--pypi-upload-url", "http://127.0.0.1:9/", "--pypi-token", PYPI_TOKEN),
        ],
        ["verify", "{dist}", "--offline", "--trust-config", "{junit}"],
    ],
    ids=lambda p: p[0],
)
def test_every_phase_refuses_another_releases_manifest_naming_both(
    release: Path,
    phase: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = _other_release(release)
    junit = release.parent / "junit.xml"
    junit.write_text('<testsuite><testcase classname="t" name="t"/></testsuite>')
    before = {p: p.stat().st_mtime_ns for p in release.parent.rglob("*")}
    monkeypatch.chdir(release.parent)
    argv = [a.format(junit=junit, dist=release.parent / "dist") for a in phase]
    argv += ["--project", str(release.parent), "--manifest", str(other)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{other}: manifest is for other 9.9, not upm-sample" in err, err
    assert {p: p.stat().st_mtime_ns for p in release.parent.rglob("*")} == before


def test_publish_and_verify_refuse_a_manifest_of_another_tag(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc(release)
    doc["project"]["tag"] = "release-1.2.0"
    _write(release, doc)
    publish = ["publish", "--project", str(release.parent), "--manifest", str(release)]
    publish += ["--skip-pypi", "--github-api-url", "http://127.0.0.1:9", "--dry-run"]
    assert main(publish) == 2
    assert "manifest is for upm-sample 1.2.0 at tag release-1.2.0, not tag v1.2.0" in (
        capsys.readouterr().err
    )
    verify = ["verify", "--github-release", "v1.2.0", "--repository", "o/r", "--offline"]
    verify += ["--github-api-url", "http://127.0.0.1:9", "--manifest", str(release)]
    assert main(verify) == 2
    assert "at tag release-1.2.0, not tag v1.2.0" in capsys.readouterr().err


# --- publish attaches only signed files --------------------------------------------------------
def _unsigned_extra(release: Path, kind: str = "sbom") -> str:
    """Record one more release file in the manifest, with no signature over it."""
    extra = release.parent / "dist" / "upm_sample-1.2.0.extra.cdx.json"
    extra.write_text("{}")
    manifest = Manifest.load(release)
    manifest.add_file(extra, kind)
    manifest.save()
    return extra.name


@pytest.mark.parametrize(
    "tamper",
    [
        "unsigned",
        "signature-of-other-bytes",
        "signature-file-of-wrong-kind",
    ],
)
def test_publish_refuses_an_unsigned_manifest_entry_before_anything_is_uploaded(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    release: Path,
    tamper: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _unsigned_extra(release)
    manifest = Manifest.load(release)
    if tamper == "signature-of-other-bytes":
        manifest.add_signature(SignatureRecord(name, "0" * 64, f"{name}.sigstore.json", "sigstore"))
    elif tamper == "signature-file-of-wrong-kind":  # it claims to be a bundle, but is an SBOM
        manifest.add_signature(SignatureRecord("SHA256SUMS", "0" * 64, name, "sigstore"))
    manifest.save()
    before = json.dumps(gh.snapshot(), sort_keys=True)
    requests_before = len(gh.requests)

    assert main(_args(release, gh, pypi_standin)) == 2
    err = capsys.readouterr().err
    assert f"lists {name} with no signature record over its digest; nothing was published" in err
    assert json.dumps(gh.snapshot(), sort_keys=True) == before
    assert len(gh.requests) == requests_before
    assert pypi_standin.uploads == []
    assert main([*_args(release, gh, pypi_standin), "--dry-run"]) == 2


def test_publish_plans_signed_files_and_the_gpg_public_key_only(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = release.parent / "dist" / "upm_sample-1.2.0.pub.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    manifest = Manifest.load(release)
    manifest.add_file(key, "gpg-public-key")  # the exception publish makes: a key, not signed
    manifest.save()
    assert main([*_args(release, gh, pypi_standin), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    attached = set(re.findall(r"github: attach (\S+)", plan))
    assert attached == {a.name for a in manifest.artifacts} | {"upm-sample-1.2.0.audit.jsonl"}
    assert key.name in attached
    assert manifest.unsigned() == [manifest.artifact(key.name)]


def test_a_signature_counts_only_over_the_current_digest_and_when_recorded(
    release: Path,
) -> None:
    manifest = Manifest.load(release)
    sums, bundle = manifest.artifact("SHA256SUMS"), manifest.artifact("SHA256SUMS.sigstore.json")
    assert sums is not None and bundle is not None and manifest.unsigned() == []
    manifest.signatures = [s for s in manifest.signatures if s.subject != "SHA256SUMS"]
    assert manifest.unsigned() == [sums, bundle]  # no record names the bundle either
    manifest.add_signature(SignatureRecord("SHA256SUMS", "0" * 64, "SHA256SUMS.asc", "gpg"))
    assert manifest.unsigned() == [sums, bundle]  # a signature over other bytes
    manifest.add_signature(SignatureRecord("SHA256SUMS", sums.sha256, "SHA256SUMS.asc", "gpg"))
    assert manifest.unsigned() == [bundle]


def _main() -> None:
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    _main()
