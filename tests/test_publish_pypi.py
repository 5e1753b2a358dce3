"""Trusted Publishing's token exchange (against a tiny local endpoint) and audit-log signing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.github import GITHUB_TOKEN, SAMPLE_NAME, SAMPLE_OWNER
from tests.fixtures.pypi import make_release
from upm_ci import gha
from upm_ci.errors import InputError
from upm_ci.manifest import Manifest
from upm_ci.project import load_project
from upm_ci.publish.phase import PublishSettings, publish_release
from upm_ci.publish.pypi import preflight_claims, trusted_publishing_token
from upm_ci.retry import RetryPolicy
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.oidc import mint_github_token

MINTED = "pypi-minted-upload-token-0123456789abcdef"


class _Exchange:
    """``/_/oidc/audience`` and ``/_/oidc/mint-token`` as PyPI answers them."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.refuse: dict[str, Any] | None = None
        self.fail_first = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _json(self, status: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._json(200, {"audience": "pypi"})

            def do_POST(self) -> None:
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if owner.fail_first:
                    owner.fail_first -= 1
                    self._json(503, {"message": "unavailable"})
                    return
                owner.tokens.append(doc["token"])
                if owner.refuse is not None:
                    self._json(422, owner.refuse)
                else:
                    self._json(200, {"success": True, "token": MINTED, "expires": 0})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.upload_url = f"http://127.0.0.1:{self.server.server_address[1]}/legacy/"


@pytest.fixture
def exchange() -> Iterator[_Exchange]:
    ex = _Exchange()
    yield ex
    ex.server.shutdown()
    ex.server.server_close()


def test_exchange_mints_a_masked_token(exchange: _Exchange) -> None:
    exchange.fail_first = 1
    audiences: list[str] = []
    oidc = mint_github_token(audience="pypi")

    def id_token(audience: str) -> str:
        audiences.append(audience)
        return oidc

    token = trusted_publishing_token(
        exchange.upload_url, id_token=id_token, policy=RetryPolicy(base_delay=0)
    )
    assert token == MINTED and audiences == ["pypi"] and exchange.tokens == [oidc]
    assert gha.redact(f"x {MINTED} y") == "x *** y"


def test_refused_exchange_names_the_reasons(exchange: _Exchange) -> None:
    exchange.refuse = {
        "message": "Token request failed",
        "errors": [{"code": "invalid-publisher", "description": "no corresponding publisher"}],
    }
    with pytest.raises(InputError, match="invalid-publisher: no corresponding publisher"):
        trusted_publishing_token(exchange.upload_url, id_token=lambda a: mint_github_token())


def test_reusable_workflow_is_caught_before_the_exchange(exchange: _Exchange) -> None:
    token = mint_github_token(
        job_workflow_ref="unexpected/upm-release/.github/workflows/publish.yml@refs/tags/v1",
    )
    with pytest.raises(InputError, match="reusable workflow"):
        trusted_publishing_token(exchange.upload_url, id_token=lambda a: token)
    assert exchange.tokens == []


def test_preflight_passes_a_direct_workflow_and_refuses_pull_requests() -> None:
    ref = "unexpected/upm-sample/.github/workflows/release.yml@refs/tags/v1.2.0"
    assert preflight_claims({"workflow_ref": ref, "job_workflow_ref": ref}) == []
    problems = preflight_claims(
        {"workflow_ref": ref, "job_workflow_ref": ref, "event_name": "pull_request_target"}
    )
    assert problems and "pull_request_target" in problems[0]


def test_audit_log_is_signed_and_attached_before_publishing(tmp_path: Path) -> None:
    manifest_path = make_release(tmp_path / "proj")
    project = load_project(tmp_path / "proj")
    seen_drafts: list[bool] = []

    with GitHubStandIn(token={GITHUB_TOKEN: "bot"}) as gh:
        gh.add_commit(gh.add_repo(SAMPLE_OWNER, SAMPLE_NAME), message="init", author="a")

        def sign_file(path: Path) -> Path:
            [release] = gh.snapshot()["repos"][0]["releases"]
            seen_drafts.append(release["draft"])
            assert json.loads(path.read_text().splitlines()[-1])["what"] == (
                "github-release-publish-requested"
            )
            bundle = path.with_name(path.name + ".sigstore.json")
            bundle.write_text('{"signed": "' + path.name + '"}')
            return bundle

        settings = PublishSettings(
            repository=f"{SAMPLE_OWNER}/{SAMPLE_NAME}",
            tag="v1.2.0",
            github_api_url=gh.api_url,
            github_token=GITHUB_TOKEN,
            skip_pypi=True,
        )
        manifest = Manifest.load(manifest_path)
        publish_release(project, manifest, settings, sign_file=sign_file)
        [release] = gh.snapshot()["repos"][0]["releases"]
    assert seen_drafts == [True]
    names = {a["name"] for a in release["assets"]}
    assert {"upm-sample-1.2.0.audit.jsonl", "upm-sample-1.2.0.audit.jsonl.sigstore.json"} <= names
    assert release["draft"] is False
    saved = Manifest.load(manifest_path)
    assert any(s.subject == "upm-sample-1.2.0.audit.jsonl" for s in saved.signatures)
