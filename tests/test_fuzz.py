"""Every input is hostile: the parsers and the CLI, fuzzed with hypothesis.

The property everywhere: no internal error, ever. A parser returns or raises an ``UpmError``
subclass; the CLI exits 0, 1 or 2 (3 only for a service that could not be reached, and never
"internal error"), and prints no traceback. Inputs are mutations of real documents (a release
manifest, a pyproject, a JUnit report, a changelog, SHA256SUMS, GitHub's release JSON) and
arbitrary ones; nothing reaches a server but 127.0.0.1 (closed port 9, or a local server here).

Bounded: a fixed ``max_examples`` per test and a generous per-example ``deadline`` (it catches a
hang or runaway backtracking, not slowness); ``derandomize`` on CI (``CI=true``) so a run there
is reproducible; no example database is written into the checkout.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.pypi import make_release
from upm_ci import changelog, gha
from upm_ci.cli import cli, main
from upm_ci.config import Config, config_from_table
from upm_ci.errors import UpmError
from upm_ci.gate.tests import parse_junit
from upm_ci.manifest import Manifest
from upm_ci.project import load_project
from upm_ci.publish.notes import release_notes
from upm_ci.release_download import DownloadLimits, download_release
from upm_ci.verify.checks import _parse_sums

CI = os.environ.get("CI", "").lower() == "true"


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=dt.timedelta(seconds=10),
        derandomize=CI,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


@pytest.fixture(autouse=True)
def _one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused connection fails at once (no backoff between examples); the secrets the
    fuzzed options mask ("null", "true", ...) are forgotten after the test, or every later
    test in this process would find them redacted out of its JSON."""
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0")
    monkeypatch.setattr(gha, "_secrets", set(gha._secrets))


# --- strategies -----------------------------------------------------------------------------
#: Strings that broke parsers somewhere: separators, traversal, controls, surrogates, huge.
NASTY = [
    "",
    " ",
    ".",
    "..",
    "../x",
    "/etc/passwd",
    "C:\\x",
    "a/b",
    "-rf",
    ".hidden",
    "\x00",
    "a\nb",
    "::error::x",
    "\udc80",
    "\ud800",
    "²",
    "٣",
    "9" * 5000,
    "x" * 300,
    "A" * 64,
    "0" * 64,
    "sha256:" + "0" * 64,
    "https://127.0.0.1:9/x",
    "${{ secrets.X }}",
    "NaN",
    "null",
]
texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=24))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*at, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*at, i))


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` with one to three fields replaced, deleted or added."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(json_values)
            continue
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(texts)] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def _no_internal_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "internal error" not in err, (argv, err)
    assert "Traceback" not in out + err, (argv, err)
    assert code in (0, 1, 2, 3), (argv, code)
    return code


# --- the release manifest ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed release and its manifest (its documents are what the mutations start from)."""
    return make_release(tmp_path_factory.mktemp("fuzz") / "proj")


@fuzz(150)
@given(data=st.data())
def test_manifest_loader_and_its_readers(
    kit: Path, data: st.DataObject, capsys: pytest.CaptureFixture[str]
) -> None:
    valid = json.loads(kit.read_text())
    doc = data.draw(st.one_of(mutated(valid), json_values), label="document")
    path = kit.parent / "fuzz-manifest.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    try:
        manifest = Manifest.load(path)
    except UpmError:
        manifest = None
    if manifest is not None:
        for artifact in manifest.artifacts:
            try:
                manifest.resolve(artifact)
            except UpmError:
                pass
        manifest.unsigned()
        assert Manifest.from_json(json.loads(json.dumps(manifest.to_json()))).to_json() == (
            manifest.to_json()
        )
    shown = _no_internal_error(["manifest", "show", "--manifest", str(path)], capsys)
    assert shown == (0 if manifest is not None else 2)
    plan = ["publish", "--project", str(kit.parent), "--manifest", str(path), "--dry-run"]
    plan += ["--pypi-upload-url", "http://127.0.0.1:9/", "--pypi-token", "t"]
    assert _no_internal_error(plan, capsys) in (0, 1, 2)


@fuzz(60)
@given(raw=st.one_of(st.binary(max_size=200), st.sampled_from([_deep(5000).encode(), b"\xff"])))
def test_manifest_loader_on_arbitrary_bytes(kit: Path, raw: bytes) -> None:
    path = kit.parent / "fuzz-bytes.json"
    path.write_bytes(raw)
    try:
        Manifest.load(path)
    except UpmError:
        pass


# --- [tool.upm-release] and pyproject.toml ------------------------------------------------------
toml_values = st.one_of(
    st.sampled_from(
        [
            '"x"',
            '""',
            "1",
            "-1",
            "true",
            "1.5",
            "inf",
            "nan",
            "2026-01-01",
            "[]",
            '["a", 1]',
            "{}",
            '{ id = "X", reason = "r", expires = 2026-01-01 }',
            '[{ id = "X", reason = "r", expires = 2026-01-01 }]',
            "[{ id = 1 }]",
            '{ unit = "path:tests" }',
            "{ unit = 1 }",
            '"\\u0000"',
            "[" * 400 + "]" * 400,
        ]
    ),
    texts.map(json.dumps),
)
config_keys = st.one_of(st.sampled_from(sorted(Config.keys())), texts)


@fuzz(150)
@given(table=st.dictionaries(config_keys, json_values, max_size=4))
def test_config_from_table(table: dict[str, Any]) -> None:
    try:
        config_from_table(table)
    except UpmError:
        pass


@fuzz(120)
@given(
    name=toml_values,
    version=toml_values,
    extra=st.lists(st.tuples(config_keys, toml_values), max_size=4),
    raw=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_load_project_on_generated_pyproject(
    name: str, version: str, extra: list[tuple[str, str]], raw: bytes | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = f"[project]\nname = {name}\nversion = {version}\n\n[tool.upm-release]\n"
        text += "".join(f"{json.dumps(k)} = {v}\n" for k, v in extra)
        (Path(tmp) / "pyproject.toml").write_bytes(raw if raw is not None else text.encode())
        try:
            project = load_project(tmp)
            _ = project.tag, project.dist_name, project.normalized_name
        except UpmError:
            pass


# --- JUnit XML ---------------------------------------------------------------------------------
attr_values = texts


@fuzz(150)
@given(
    root=st.sampled_from(["testsuites", "testsuite", "html", "testcase"]),
    cases=st.lists(
        st.tuples(
            st.dictionaries(
                st.sampled_from(["name", "classname", "file", "line", "time"]),
                attr_values,
                max_size=5,
            ),
            st.sampled_from(["", "<skipped/>", '<failure message="m">t</failure>', "<error/>"]),
            st.lists(st.tuples(attr_values, attr_values), max_size=2),
        ),
        max_size=4,
    ),
    raw=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_parse_junit(
    root: str, cases: list[tuple[dict[str, str], str, list[tuple[str, str]]]], raw: bytes | None
) -> None:
    from xml.sax.saxutils import quoteattr

    body = ""
    for attrs, child, props in cases:
        shown = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        properties = "".join(
            f"<property name={quoteattr(n)} value={quoteattr(v)}/>" for n, v in props
        )
        body += f"<testcase {shown}>{child}<properties>{properties}</properties></testcase>"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "junit.xml"
        xml = f"<{root}>{body}</{root}>".encode("utf-8", "surrogatepass")
        path.write_bytes(raw if raw is not None else xml)
        try:
            for case in parse_junit(path):
                _ = case.nodeid, case.ran
        except UpmError:
            pass


# --- CHANGELOG ---------------------------------------------------------------------------------
heading_lines = st.one_of(
    st.sampled_from(
        [
            "## [1.2.0] - 2026-11-26",
            "## [Unreleased]",
            "## 1.2.0",
            "## [1.2.0]",
            "## v1.0 (2026-01-01)",
            "# Changelog",
            "### Added",
            "1.2.0 (2026-01-01)",
            "==================",
            "-----",
            "- item",
            "",
            "## ",
            "## [" + "9" * 5000 + "]",
        ]
    ),
    texts.map(lambda s: "## " + s),
    texts,
)


@fuzz(150)
@given(
    lines=st.lists(heading_lines, max_size=12),
    version=st.one_of(st.sampled_from(["1.2.0", "1.2", "v1.2.0", "Unreleased"]), texts),
    suffix=st.sampled_from(["CHANGELOG.md", "CHANGELOG.rst", "CHANGES"]),
)
def test_changelog(lines: list[str], version: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / suffix
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
        for call in (
            lambda: changelog.parse_changelog(path),
            lambda: changelog.released_sections(path),
            lambda: changelog.section_for(path, version),
        ):
            try:
                call()
            except UpmError:
                pass


# --- SHA256SUMS --------------------------------------------------------------------------------
sum_lines = st.one_of(
    st.builds(
        lambda h, sep, name: f"{h}{sep}{name}",
        st.sampled_from(["0" * 64, "A" * 64, "0" * 63, "g" * 64, ""]),
        st.sampled_from(["  ", " *", " ", "\t", ""]),
        texts,
    ),
    texts,
)


@fuzz(100)
@given(
    lines=st.lists(sum_lines, max_size=6),
    raw=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_sha256sums_in_verify_and_in_the_release_notes(
    kit: Path, lines: list[str], raw: bytes | None
) -> None:
    data = raw if raw is not None else "\n".join(lines).encode("utf-8", "surrogatepass")
    manifest = Manifest.load(kit)
    sums = kit.parent / "dist" / "SHA256SUMS"
    original = sums.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "SHA256SUMS"
        path.write_bytes(data)
        listed, bad = _parse_sums(path)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in listed.items())
        assert all(isinstance(n, int) for n in bad)
    try:
        sums.write_bytes(data)
        release_notes(load_project(kit.parent), manifest, repository="o/r", tag="v1.2.0")
    except UpmError:
        pass
    finally:
        sums.write_bytes(original)


# --- the release JSON verify reads from GitHub ----------------------------------------------------
class _Answers:
    """What the local "GitHub" answers, set per example."""

    release: bytes = b"{}"
    assets: bytes = b"[]"
    content: bytes = b""


class _Handler(http.server.BaseHTTPRequestHandler):
    answers = _Answers()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if "/releases/tags/" in self.path:
            body, kind = self.answers.release, "application/json"
        elif "/assets?" in self.path:
            body, kind = self.answers.assets, "application/json"
        else:
            body, kind = self.answers.content, "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fake_github() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


asset_values = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.integers(-1, 2**70), json_values),
        "name": st.one_of(st.sampled_from(["a.whl", "SHA256SUMS"]), texts, json_values),
        "size": st.one_of(st.integers(-1, 40), st.integers(0, 2**70), json_values),
        "state": st.one_of(st.sampled_from(["uploaded", "starter"]), json_values),
    },
)


@fuzz(80)
@given(
    release=st.one_of(
        st.fixed_dictionaries(
            {"id": st.one_of(st.integers(0, 2**70), json_values)}, optional={"draft": json_values}
        ),
        json_values,
    ),
    assets=st.one_of(st.lists(asset_values, max_size=3), json_values),
    raw=st.one_of(
        st.none(),
        st.sampled_from([b"", b"not json", b"\xff", _deep(3000).encode(), b"1e999999"]),
    ),
    content=st.binary(max_size=48),
)
def test_release_json_of_a_hostile_github(
    fake_github: str, release: Any, assets: Any, raw: bytes | None, content: bytes
) -> None:
    _Handler.answers.release = raw if raw is not None else json.dumps(release).encode()
    _Handler.answers.assets = json.dumps(assets).encode()
    _Handler.answers.content = content
    limits = DownloadLimits(request_timeout=5, deadline=10, max_bytes=1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            download_release(fake_github, "t", "o/r", "v1.2.0", Path(tmp) / "d", limits=limits)
        except UpmError:
            pass


# --- the CLI's options -------------------------------------------------------------------------
#: Values that cannot reach a server but 127.0.0.1's closed port 9.
URLS = ["http://127.0.0.1:9", "http://127.0.0.1:9/api/v3", "127.0.0.1:9", "", "ftp://127.0.0.1:9"]
#: Subcommands fuzzed with the real project; the others (which run builds, test suites and
#: pip) only get projects they must refuse before doing any of that.
CHEAP = {"publish", "sign", "verify", "trust", "check-config", "manifest"}


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, command in sorted(cli.commands.items()):
        if isinstance(command, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in sorted(command.commands.items())]
        else:
            out.append((name, command))
    return out


@st.composite
def argv_for(
    draw: st.DrawFn, name: str, command: click.Command, pool: dict[str, list[str]]
) -> list[str]:
    args = name.split()
    params = [p for p in command.params if p.name not in ("help",)]
    for param in draw(st.lists(st.sampled_from(params), max_size=6)) if params else []:
        if isinstance(param, click.Argument):
            args += draw(st.lists(st.sampled_from(pool["path"]) | texts, min_size=1, max_size=2))
            continue
        flag = draw(st.sampled_from([o for o in param.opts + param.secondary_opts]))
        if getattr(param, "is_flag", False):
            args.append(flag)
            continue
        kind = param.name or ""
        if "url" in kind:
            values = st.sampled_from(URLS)
        elif kind in pool:
            values = st.sampled_from(pool[kind]) | texts
        else:
            values = st.sampled_from(pool["path"] + ["1", "0", "-1", "nan", "1e999"]) | texts
        args += [flag, draw(values)]
    return [_as_argv(a) for a in args if "--debug" not in a]


def _as_argv(text: str) -> str:
    """``text`` as a real argv item can be: no NUL; lone surrogates only as Python decodes
    bytes that are not UTF-8 (surrogateescape, U+DC80..U+DCFF)."""
    return "".join(
        c
        for c in text
        if c != "\x00"
        and not (
            "\ud800" <= c <= "\udfff" and c < "\udc80" or c > "\udcff" and "\ud800" <= c <= "\udfff"
        )
    )


@fuzz(25)
@given(data=st.data())
@pytest.mark.parametrize(("name", "command"), _commands(), ids=[n for n, _ in _commands()])
def test_cli_options(
    kit: Path,
    name: str,
    command: click.Command,
    data: st.DataObject,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(kit.parent, work / "proj")  # a phase may extend its manifest
        kit = work / "proj" / kit.name
        monkeypatch.setenv("UPM_TRUST_CONFIG", str(work / "file"))  # never Sigstore's TUF
        monkeypatch.setenv("UPM_OFFLINE", "1")
        (work / "empty").mkdir()
        (work / "bad").mkdir()
        (work / "bad" / "pyproject.toml").write_text("[project\n")
        (work / "file").write_text("x")
        monkeypatch.chdir(work)
        projects = [str(work / "empty"), str(work / "bad"), str(work / "file"), "missing"]
        if name.split()[0] in CHEAP:
            projects.append(str(kit.parent))
        pool = {
            "project": projects,
            "manifest": [str(kit), str(work / "file"), "missing.json", str(work / "out.json")],
            "path": [str(kit.parent / "dist"), str(work / "file"), str(work / "new"), "-"],
            "trust_config": [str(work / "file"), "missing.json"],
            "tag": ["v1.2.0", "v9", "refs/tags/v1.2.0", "main"],
            "repository": ["unexpected/upm-sample", "o/r", "noslash", "/"],
        }
        argv = data.draw(argv_for(name, command, pool), label="argv")
        if name.split()[0] not in CHEAP | {"rehearse"}:
            argv += ["--project", data.draw(st.sampled_from(projects), label="project")]
        if name.split()[0] == "publish":
            argv.append("--no-sign-audit-log")
        _no_internal_error(argv, capsys)
