"""The foundation every phase stands on: manifest, config, Actions I/O, retry, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from upm_ci import gha
from upm_ci.changelog import parse_changelog, section_for
from upm_ci.cli import main
from upm_ci.config import Config, config_from_table, reference_markdown
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.layout import sha256_file
from upm_ci.manifest import SCHEMA, ImageRecord, Manifest, ProjectInfo, merge
from upm_ci.project import load_project, version_from_tag
from upm_ci.retry import RetryPolicy, call_with_retry, classify_http, is_connection_error

PYPROJECT = """\
[project]
name = "demo-pkg"
version = "1.2.0"

[tool.upm-release]
tag-prefix = "v"
"""


def write_project(root: Path, pyproject: str = PYPROJECT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(pyproject)
    return root


# --- manifest ----------------------------------------------------------------------------
def test_sha256_file_matches_hashlib_for_sizes_around_the_chunk(tmp_path: Path) -> None:
    for size in (0, 1, 4 << 20, (4 << 20) + 1):
        f = tmp_path / f"f{size}"
        f.write_bytes(os.urandom(size))
        assert sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_manifest_round_trip_with_relative_paths(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "a.whl").write_bytes(b"wheel")
    m = Manifest.load_or_new(tmp_path / "release-manifest.json", ProjectInfo("p", "1.0", "v1.0"))
    entry = m.add_file(dist / "a.whl", "wheel")
    m.record_ledger("github", "a.whl", sha256=entry.sha256, state="done")
    m.save()
    data = json.loads((tmp_path / "release-manifest.json").read_text())
    assert data["schema"] == SCHEMA
    assert data["artifacts"][0]["path"] == "dist/a.whl"
    again = Manifest.load(tmp_path / "release-manifest.json")
    assert again.resolve(again.artifacts[0]) == (dist / "a.whl").resolve()
    assert again.ledger_entry("github", "a.whl").state == "done"  # type: ignore[union-attr]


def test_manifest_refuses_other_schema_and_malformed(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"schema": "upm-release/manifest/v2", "project": {}}))
    with pytest.raises(InputError, match="incompatible"):
        Manifest.load(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        Manifest.load(p)
    with pytest.raises(InputError, match="not found"):
        Manifest.load(tmp_path / "missing.json")


def test_manifest_for_another_release_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    Manifest(project=ProjectInfo("p", "1.0", "v1.0")).save(p)
    with pytest.raises(InputError, match="not p 2.0"):
        Manifest.load_or_new(p, ProjectInfo("p", "2.0", "v2.0"))


def test_atomic_save_leaves_no_temp_files_and_keeps_old_on_failure(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    m = Manifest(project=ProjectInfo("p", "1.0", "v1.0"))
    m.save(p)
    before = p.read_text()
    m.phases["x"] = {"bad": object()}  # not JSON-serialisable
    with pytest.raises(TypeError):
        m.save()
    assert p.read_text() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]


def _job(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    d = tmp_path / name
    (d / "dist").mkdir(parents=True)
    m = Manifest.load_or_new(d / "release-manifest.json", ProjectInfo("p", "1.0", "v1.0"))
    for fname, data in files.items():
        (d / "dist" / fname).write_bytes(data)
        m.add_file(d / "dist" / fname, "wheel")
    return m.save()


def test_manifest_merge_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _job(tmp_path, "linux", {"p-1.0-linux.whl": b"L", "p-1.0.tar.gz": b"S"})
    b = _job(tmp_path, "mac", {"p-1.0-mac.whl": b"M", "p-1.0.tar.gz": b"S"})
    out = tmp_path / "release-manifest.json"  # above both builds: its paths stay inside
    assert main(["manifest", "merge", "-o", str(out), str(a), str(b)]) == 0
    merged = Manifest.load(out)
    assert sorted(x.name for x in merged.artifacts) == [
        "p-1.0-linux.whl",
        "p-1.0-mac.whl",
        "p-1.0.tar.gz",
    ]
    for artifact in merged.artifacts:
        assert merged.resolve(artifact).read_bytes() in (b"L", b"M", b"S")


def test_manifest_merge_fails_on_two_digests_for_one_name(tmp_path: Path) -> None:
    a = _job(tmp_path, "one", {"p-1.0.tar.gz": b"first"})
    b = _job(tmp_path, "two", {"p-1.0.tar.gz": b"second"})
    with pytest.raises(PolicyError, match="two different digests"):
        merge([Manifest.load(a), Manifest.load(b)])
    out = tmp_path / "merged.json"
    assert main(["manifest", "merge", "-o", str(out), str(a), str(b)]) == 1
    assert not out.exists()


# --- config and project ----------------------------------------------------------------
def test_config_defaults_and_unknown_key_lists_valid_keys() -> None:
    assert config_from_table({}) == Config()
    with pytest.raises(InputError) as err:
        config_from_table({"tag-prefx": "v"})
    assert "tag-prefx" in str(err.value) and "tag-prefix" in str(err.value)


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"tag-prefix": 3}, "tag-prefix: expected a string"),
        ({"plugins": "src/*.py"}, "plugins: expected a list"),
        ({"check-reproducible": "yes"}, "check-reproducible: expected true or false"),
        ({"test-suites": {"unit": 1}}, "test-suites.unit"),
        ({"audit-allow": [{"id": "X"}]}, "needs exactly id, reason and expires"),
        ({"review-without-token": "maybe"}, "skip or fail"),
    ],
)
def test_config_wrong_types_name_the_key(table: dict[str, object], fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        config_from_table(table)


def test_reference_table_lists_every_key() -> None:
    ref = reference_markdown()
    for key in Config.keys():
        assert f"| `{key}` |" in ref


def test_load_project_errors_are_one_line(tmp_path: Path) -> None:
    write_project(tmp_path / "bad", "[project\nname=")
    with pytest.raises(InputError, match="invalid TOML") as err:
        load_project(tmp_path / "bad")
    assert "\n" not in str(err.value)
    write_project(tmp_path / "none", '[project]\nname = "x"\n')
    with pytest.raises(InputError, match="has no version"):
        load_project(tmp_path / "none")
    # A dynamic version loads; the backend is asked only when the version is used.
    write_project(tmp_path / "dyn", '[project]\nname = "x"\ndynamic = ["version"]\n')
    assert load_project(tmp_path / "dyn").version_is_dynamic
    write_project(tmp_path / "v", '[project]\nname = "x"\nversion = "one"\n')
    with pytest.raises(InputError, match="not a PEP 440 version"):
        load_project(tmp_path / "v")


def test_project_names_and_tag(tmp_path: Path) -> None:
    p = load_project(write_project(tmp_path / "p"))
    assert (p.name, p.normalized_name, p.dist_name, p.tag) == (
        "demo-pkg",
        "demo-pkg",
        "demo_pkg",
        "v1.2.0",
    )
    assert str(version_from_tag("refs/tags/v1.2.0rc1")) == "1.2.0rc1"
    with pytest.raises(InputError):
        version_from_tag("vnext")


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "p")
    assert main(["check-config", "--project", str(root)]) == 0
    assert "is valid" in capsys.readouterr().out
    write_project(root, PYPROJECT + 'bogus = "x"\n')
    assert main(["check-config", "--project", str(root)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'bogus'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# --- changelog --------------------------------------------------------------------------
def test_changelog_sections(tmp_path: Path) -> None:
    log = tmp_path / "CHANGELOG.md"
    log.write_text(
        "# Changelog\n\n## [Unreleased]\n\n## [1.2.0] - 2026-11-01\n### Added\n- x\n\n"
        "## [1.1.0] - 2026-10-01\n- y\n"
    )
    sections = parse_changelog(log)
    assert [s.version for s in sections] == ["Unreleased", "1.2.0", "1.1.0"]
    found = section_for(log, "1.2.0")
    assert found is not None and "- x" in found.body and found.line == 5
    log.write_text("# Changelog\n\n## Version one point two\n")
    with pytest.raises(InputError, match=r"CHANGELOG.md:3"):
        parse_changelog(log)


# --- GitHub Actions I/O ----------------------------------------------------------------
def test_outputs_summary_annotations_and_masking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    gha.mask("sentinel-secret-value")
    gha.set_output("single", "one")
    gha.set_output("multi", "a\nsentinel-secret-value\nb")
    gha.add_summary("| x |\n|---|\n| sentinel-secret-value |")
    gha.annotate("error", "bad, very: bad\nsecond", file="src/a,b.py", line=3)
    text = out.read_text()
    assert "single=one\n" in text
    delim = text.split("multi<<", 1)[1].split("\n", 1)[0]
    assert delim.startswith("upm_") and len(delim) > 20
    assert "sentinel-secret-value" not in text + summary.read_text()
    stdout = capsys.readouterr().out
    assert "::add-mask::sentinel-secret-value" in stdout
    assert "::error file=src/a%2Cb.py,line=3::bad, very: bad%0Asecond" in stdout


def test_gha_is_harmless_outside_actions(capsys: pytest.CaptureFixture[str]) -> None:
    gha.set_output("x", "y")
    gha.add_summary("nothing")
    gha.annotate("warning", "plain", file="f.py", line=2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "warning: f.py:2: plain\n"


# --- retry -------------------------------------------------------------------------------
class Http(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.headers = status, headers or {}


def _classify(exc: BaseException) -> float | None:
    if isinstance(exc, Http):
        return classify_http(exc.status, exc.headers)
    return 0.0 if is_connection_error(exc) else None


def test_retry_transient_then_success_honours_retry_after() -> None:
    waits: list[float] = []
    answers: list[BaseException | str] = [
        Http(503),
        Http(429, {"Retry-After": "7"}),
        ConnectionResetError(),
        "ok",
    ]

    def call() -> str:
        item = answers.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    policy = RetryPolicy(base_delay=0.01, sleep=waits.append)
    assert call_with_retry(call, what="upload", classify=_classify, policy=policy) == "ok"
    assert len(waits) == 3 and waits[1] == 7.0


def test_retry_never_retries_other_4xx_and_gives_up_with_service_error() -> None:
    calls = 0

    def bad_request() -> None:
        nonlocal calls
        calls += 1
        raise Http(422)

    with pytest.raises(Http):
        call_with_retry(bad_request, what="x", classify=_classify, policy=RetryPolicy())
    assert calls == 1

    def down() -> None:
        raise Http(502)

    policy = RetryPolicy(attempts=3, base_delay=0, sleep=lambda s: None)
    with pytest.raises(ServiceError, match="still failing after 3 attempts"):
        call_with_retry(down, what="GitHub", classify=_classify, policy=policy)


def test_secondary_rate_limit_is_retried_but_plain_403_is_not() -> None:
    assert classify_http(403, {"Retry-After": "3"}) == 3.0
    assert classify_http(403, {}, "You have exceeded a secondary rate limit") == 1.0
    assert classify_http(403, {}, "Resource not accessible by integration") is None
    assert classify_http(404, {}) is None


# --- CLI -------------------------------------------------------------------------------
def test_help_does_not_import_heavy_clients() -> None:
    code = (
        "import sys\n"
        "from upm_ci.cli import main\n"
        "for argv in ([], ['--help'], *[[c, '--help'] for c in "
        "('gate','build','sbom','sign','publish','verify','trust','rehearse','check-config')]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('sigstore', 'github', 'pip_audit', 'twine', 'cyclonedx',"
        " 'spdx_tools', 'requests') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_python_dash_m_and_usage_error_exit_2() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "upm_ci", "no-such-phase"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "No such command" in run.stderr and "Traceback" not in run.stderr
    ok = subprocess.run([sys.executable, "-m", "upm_ci", "--version"], capture_output=True)
    assert ok.returncode == 0


def test_options_read_from_upm_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_project(tmp_path / "p")
    monkeypatch.setenv("UPM_PROJECT", str(root))
    assert main(["check-config"]) == 0
    assert "demo-pkg 1.2.0" in capsys.readouterr().out


def test_add_image_records_the_image_and_its_sbom_as_a_release_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "release-manifest.json"
    Manifest(project=ProjectInfo("p", "1.0", "v1.0")).save(path)
    sbom = tmp_path / "dist" / "p-1.0.image.spdx.json"
    sbom.parent.mkdir()
    sbom.write_text('{"spdxVersion": "SPDX-2.3"}')
    digest = "sha256:" + "ab" * 32
    args = ["manifest", "add-image", "--manifest", str(path), "--ref", "ghcr.io/o/p:1.0"]
    assert main([*args, "--digest", digest, "--sbom", str(sbom)]) == 0
    m = Manifest.load(path)
    assert m.images[0].digest == digest and m.images[0].sbom == sbom.name
    assert m.artifact(sbom.name) is not None and m.artifact(sbom.name).kind == "sbom"  # type: ignore[union-attr]
    assert main([*args, "--digest", "sha256:nothex"]) == 2
    assert main([*args, "--digest", digest, "--sbom", str(tmp_path / "missing.json")]) == 2
    assert len(Manifest.load(path).images) == 1


def test_image_hosts_reads_the_manifest_with_its_checks_and_sets_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actions send registry credentials only to these hosts (no inline json.load)."""
    path = tmp_path / "release-manifest.json"
    m = Manifest(project=ProjectInfo("p", "1.0", "v1.0"))
    digest = "sha256:" + "ab" * 32
    m.add_image(ImageRecord(ref="ghcr.io/o/p:1.0", digest=digest, repository="ghcr.io/o/p"))
    m.add_image(ImageRecord(ref="127.0.0.1:5000/p:1.0", digest=digest))
    m.save(path)
    out = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    assert main(["manifest", "image-hosts", "--manifest", str(path)]) == 0
    assert capsys.readouterr().out == "127.0.0.1:5000 ghcr.io\n"
    assert out.read_text() == "hosts=127.0.0.1:5000 ghcr.io\n"
    Manifest(project=ProjectInfo("p", "1.0", "v1.0")).save(path)
    assert main(["manifest", "image-hosts", "--manifest", str(path)]) == 0
    assert capsys.readouterr().out == "\n"
    doc = json.loads(path.read_text())
    doc["images"] = [{"ref": "ghcr.io/o/p:1.0", "digest": "sha256:nothex"}]
    path.write_text(json.dumps(doc))
    assert main(["manifest", "image-hosts", "--manifest", str(path)]) == 2
    err = capsys.readouterr().err
    assert "images[0].digest" in err and "Traceback" not in err


def test_an_inner_retry_that_gave_up_is_not_retried_again() -> None:
    """Nested retries (a retried call inside a retried call) must not multiply attempts."""
    calls = 0

    def inner() -> None:
        nonlocal calls
        calls += 1
        raise Http(503)

    quick = RetryPolicy(attempts=3, base_delay=0, sleep=lambda s: None)

    def outer() -> None:
        call_with_retry(inner, what="inner", classify=_classify, policy=quick)

    with pytest.raises(ServiceError):
        call_with_retry(outer, what="outer", classify=_classify, policy=quick)
    assert calls == 3


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "not a number"),
        ("0", "below 1"),
        ("nan", "not a finite number"),
        ("inf", "not a finite number"),
        ("-inf", "not a finite number"),
        ("1e308", "above 100"),
        ("101", "above 100"),
    ],
)
def test_bad_retry_settings_are_bad_input(
    value: str, fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", value)
    with pytest.raises(InputError, match=fragment):
        RetryPolicy.from_env()


def test_manifest_with_mistyped_fields_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    doc = Manifest(project=ProjectInfo("p", "1.0", "v1.0")).to_json()
    path.write_text(json.dumps({**doc, "phases": ["a"]}))
    with pytest.raises(InputError, match="malformed manifest field"):
        Manifest.load(path)
