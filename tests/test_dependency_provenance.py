"""The ``dependency-provenance`` rules against the PyPI stand-in's Integrity API: real PEP 740
attestations made through the local Sigstore, verified by pypi-attestations' models and
sigstore's verifier; the provenance lock and ``upm-ci trust lock``; bad input and faults."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from upm_ci import dependency_provenance as dp
from upm_ci.cli import main
from upm_ci.errors import InputError, ServiceError
from upm_ci.retry import RetryPolicy
from upm_ci.sigstore_common import make_verifier
from upm_ci.standins.faults import FaultRule
from upm_ci.standins.integrity import DemoPublisher
from upm_ci.standins.pypi import PypiStandIn
from upm_ci.standins.sigstore_server import SigstoreStandIn
from upm_ci.vulnerability_audit import ResolvedFile

TODAY = dt.date(2026, 12, 6)
ALPHA = DemoPublisher("alpha-org/alpha", "release.yml", "pypi")
BETA = DemoPublisher("beta-org/beta", "publish.yml", None)
MALLORY = DemoPublisher("mallory/alpha-fork", "release.yml", "pypi")
NO_RETRY = RetryPolicy(attempts=2, base_delay=0, max_delay=0)


def pinned(name: str, version: str = "1.0") -> ResolvedFile:
    wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    return ResolvedFile(name, version, wheel, hashlib.sha256(wheel.encode()).hexdigest())


def as_publisher(demo: DemoPublisher) -> dp.Publisher:
    return dp.Publisher("GitHub", demo.repository, demo.workflow, demo.environment)


@pytest.fixture(scope="module")
def index(sigstore_standin: SigstoreStandIn) -> Iterator[PypiStandIn]:
    with PypiStandIn(integrity=True) as pypi:
        pypi.integrity.trust_config = sigstore_standin.trust_config()
        yield pypi


@pytest.fixture
def serve(index: PypiStandIn) -> Iterator[PypiStandIn]:
    """The index serving alpha (ALPHA) and beta (BETA); gamma has no provenance."""
    for file, publisher in ((pinned("alpha"), ALPHA), (pinned("beta"), BETA)):
        index.integrity.publish(file.name, file.version, file.filename, file.sha256, publisher)
    yield index
    index.faults.rules.clear()
    index.integrity.latency = 0.0


@pytest.fixture(scope="module")
def verifier(sigstore_standin: SigstoreStandIn) -> object:
    return make_verifier(sigstore_standin.trust_config().trusted_root)


def fetcher(index: PypiStandIn, verifier: object, **kwargs: object) -> dp.ProvenanceFetcher:
    return dp.ProvenanceFetcher(index.simple_url, verifier, policy=NO_RETRY, **kwargs)  # type: ignore[arg-type]


def lock_of(tmp_path: Path, **entries: dp.LockEntry) -> dp.ProvenanceLock:
    lock = dp.ProvenanceLock(tmp_path / "upm-provenance.json")
    for entry in entries.values():
        lock.set(entry)
    return lock


def signed_entry(name: str, demo: DemoPublisher) -> dp.LockEntry:
    return dp.LockEntry(name, as_publisher(demo), "2026-12-01T00:00:00Z", "1.0")


def unsigned_entry(name: str, expires: dt.date) -> dp.LockEntry:
    approval = dp.Approval("alice", "vendored and reviewed", expires)
    return dp.LockEntry(name, None, "2026-12-01T00:00:00Z", "1.0", approval)


def check(
    serve: PypiStandIn, verifier: object, lock: dp.ProvenanceLock, *names: str
) -> dp.ProvenanceOutcome:
    files = [pinned(n) for n in names]
    return dp.check_files(files, lock, fetcher(serve, verifier), today=TODAY)


# --- the rules ---------------------------------------------------------------------------------
def test_publisher_matching_the_lock_is_accepted_and_named(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    lock = lock_of(tmp_path, a=signed_entry("alpha", ALPHA), b=signed_entry("beta", BETA))
    outcome = check(serve, verifier, lock, "alpha", "beta")
    assert outcome.passed, outcome.summary()
    assert [v.decision for v in outcome.verdicts] == [dp.ACCEPTED, dp.ACCEPTED]
    assert "alpha 1.0: GitHub alpha-org/alpha release.yml, environment pypi" in outcome.summary()
    assert "beta 1.0: GitHub beta-org/beta publish.yml" in outcome.summary()
    assert outcome.verdicts[0].observation.log_index.isdigit()


def test_a_changed_publisher_is_blocked_naming_package_version_and_both_identities(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    serve.integrity.resign(pinned("alpha").filename, MALLORY)
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")
    (verdict,) = outcome.verdicts
    assert not outcome.passed and verdict.decision == dp.BLOCKED
    assert "alpha 1.0" in outcome.summary()
    assert "alpha-org/alpha" in verdict.reason and "mallory/alpha-fork" in verdict.reason


def test_a_lock_entry_with_another_repository_blocks(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    changed = DemoPublisher("alpha-org/other", ALPHA.workflow, ALPHA.environment)
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", changed)), "alpha")
    assert outcome.verdicts[0].decision == dp.BLOCKED
    assert "publisher changed" in outcome.verdicts[0].reason


def test_provenance_that_disappeared_is_blocked(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    serve.integrity.drop(pinned("alpha").filename)
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")
    (verdict,) = outcome.verdicts
    assert verdict.decision == dp.BLOCKED
    assert "provenance disappeared" in verdict.reason and "alpha-org/alpha" in verdict.reason


def test_a_new_publisher_needs_review(serve: PypiStandIn, verifier: object, tmp_path: Path) -> None:
    outcome = check(serve, verifier, lock_of(tmp_path), "beta")
    (verdict,) = outcome.verdicts
    assert not outcome.passed and verdict.decision == dp.NEEDS_REVIEW
    assert "beta-org/beta" in verdict.reason and "upm-ci trust lock" in verdict.reason


def test_an_unsigned_package_is_blocked_without_approval(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    outcome = check(serve, verifier, lock_of(tmp_path), "gamma")
    assert outcome.verdicts[0].decision == dp.BLOCKED
    assert "unsigned" in outcome.verdicts[0].reason and not outcome.passed


def test_an_unsigned_package_with_an_unexpired_approval_passes_saying_by_whom(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    lock = lock_of(tmp_path, g=unsigned_entry("gamma", TODAY))
    outcome = check(serve, verifier, lock, "gamma")
    assert outcome.passed
    assert "approved by alice until 2026-12-06" in outcome.summary()


def test_an_expired_approval_blocks(serve: PypiStandIn, verifier: object, tmp_path: Path) -> None:
    lock = lock_of(tmp_path, g=unsigned_entry("gamma", TODAY - dt.timedelta(days=1)))
    outcome = check(serve, verifier, lock, "gamma")
    assert outcome.verdicts[0].decision == dp.BLOCKED
    assert "expired on 2026-12-05" in outcome.verdicts[0].reason


def test_a_package_once_unsigned_now_signed_needs_review(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    lock = lock_of(tmp_path, b=unsigned_entry("beta", TODAY))
    assert check(serve, verifier, lock, "beta").verdicts[0].decision == dp.NEEDS_REVIEW


# --- answers that must never pass -------------------------------------------------------------
def _put(serve: PypiStandIn, name: str, body: bytes) -> None:
    file = pinned(name)
    serve.integrity.put_raw(file.name, file.version, file.filename, file.sha256, body)


def test_provenance_for_another_file_fails_the_row_naming_the_package(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    _put(serve, "alpha", serve.integrity.body(pinned("beta").filename))
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", BETA)), "alpha")
    (verdict,) = outcome.verdicts
    assert verdict.decision == dp.ERROR and not outcome.passed
    assert "attests beta-1.0" in verdict.reason and "alpha 1.0" in outcome.summary()


def test_provenance_for_another_digest_fails(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    file = pinned("alpha")
    other = ResolvedFile(file.name, file.version, file.filename, "0" * 64)
    outcome = dp.check_files(
        [other], lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), fetcher(serve, verifier),
        today=TODAY,
    )  # fmt: skip
    assert outcome.verdicts[0].decision == dp.ERROR
    assert "subject sha256" in outcome.verdicts[0].reason


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>oops</html>", "malformed provenance"),
        (b'{"version": 1, "attestation_bundles": []}', "no attestation bundles"),
        (b"[" * 100_000, "malformed provenance"),
        (b" " * (dp.MAX_BODY + 1), "larger than"),
    ],
    ids=["not-json", "no-bundles", "deeply-nested", "too-large"],
)
def test_malformed_or_oversized_answers_fail(
    serve: PypiStandIn, verifier: object, tmp_path: Path, body: bytes, why: str
) -> None:
    _put(serve, "alpha", body)
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")
    assert outcome.verdicts[0].decision == dp.ERROR
    assert why in outcome.verdicts[0].reason


def test_a_claimed_publisher_the_certificate_does_not_carry_fails(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    """A provenance whose publisher field was edited to the locked one: the certificate says
    who really signed, so it does not verify."""
    serve.integrity.resign(pinned("alpha").filename, MALLORY)
    forged = json.loads(serve.integrity.body(pinned("alpha").filename))
    forged["attestation_bundles"][0]["publisher"]["repository"] = ALPHA.repository
    _put(serve, "alpha", json.dumps(forged).encode())
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")
    assert outcome.verdicts[0].decision == dp.ERROR
    assert "does not verify as GitHub alpha-org/alpha" in outcome.verdicts[0].reason


def test_an_attestation_from_another_sigstore_fails(
    serve: PypiStandIn, tmp_path: Path, fresh_sigstore_standin: SigstoreStandIn
) -> None:
    other_root = make_verifier(fresh_sigstore_standin.trust_config().trusted_root)
    outcome = check(serve, other_root, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")
    assert outcome.verdicts[0].decision == dp.ERROR


def test_a_file_without_a_known_digest_is_not_checked_and_fails(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    outcome = dp.check_files(
        [ResolvedFile("alpha", "1.0", "", "")], lock_of(tmp_path), fetcher(serve, verifier),
        today=TODAY,
    )  # fmt: skip
    assert outcome.verdicts[0].decision == dp.ERROR


# --- faults ------------------------------------------------------------------------------------
def test_a_transient_5xx_is_retried(serve: PypiStandIn, verifier: object, tmp_path: Path) -> None:
    serve.faults.add_rule(FaultRule("503", path_regex="^/integrity/alpha/", count=1))
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")
    assert outcome.passed and serve.faults.counts().get("503", 0) >= 1


@pytest.mark.parametrize("kind", ["502", "reset", "429"])
def test_an_index_that_keeps_failing_is_a_service_error(
    serve: PypiStandIn, verifier: object, tmp_path: Path, kind: str
) -> None:
    serve.faults.add_rule(FaultRule(kind, path_regex="^/integrity/", count=10))
    with pytest.raises(ServiceError, match="still failing after 2 attempts"):
        check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")


def test_a_timeout_is_retried_then_a_service_error(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    serve.integrity.latency = 0.5
    slow = fetcher(serve, verifier, timeout=0.1)
    with pytest.raises(ServiceError, match="ReadTimeout"):
        dp.check_files([pinned("alpha")], lock_of(tmp_path), slow, today=TODAY)
    # The server's late answers meet closed connections: let that happen inside this test.
    time.sleep(serve.integrity.latency + 0.3)


def test_a_held_index_answers_once_released_with_what_was_signed_meanwhile(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    """A rehearsal's index holds its Integrity API while it signs the dependencies'
    provenance beside the gate: a question asked meanwhile gets the answer signed after it."""
    lock = lock_of(tmp_path, d=signed_entry("delta", ALPHA))
    delta = pinned("delta")
    asked = serve.integrity.requests
    serve.integrity.hold()
    try:
        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(check, serve, verifier, lock, "delta")
            while serve.integrity.requests == asked and not outcome.done():
                time.sleep(0.01)
            serve.integrity.publish(delta.name, delta.version, delta.filename, delta.sha256, ALPHA)
            serve.integrity.release()
            assert outcome.result().passed, outcome.result().verdicts
    finally:
        serve.integrity.release()
        serve.integrity.drop(delta.filename)


def test_another_4xx_fails_the_row_without_retry(
    serve: PypiStandIn, verifier: object, tmp_path: Path
) -> None:
    serve.faults.add_rule(FaultRule("403", path_regex="^/integrity/alpha/", count=1))
    outcome = check(serve, verifier, lock_of(tmp_path, a=signed_entry("alpha", ALPHA)), "alpha")
    assert outcome.verdicts[0].decision == dp.ERROR
    assert "HTTP 403" in outcome.verdicts[0].reason


# --- the lock file -----------------------------------------------------------------------------
def test_the_lock_round_trips(tmp_path: Path) -> None:
    lock = lock_of(tmp_path, a=signed_entry("alpha", ALPHA), g=unsigned_entry("gamma", TODAY))
    lock.save()
    again = dp.load_lock(lock.path)
    assert again.entries == lock.entries
    assert json.loads(lock.path.read_text())["schema"] == dp.LOCK_SCHEMA


def test_a_missing_lock_is_empty_unless_required(tmp_path: Path) -> None:
    assert dp.load_lock(tmp_path / "none.json").entries == {}
    with pytest.raises(InputError, match="none.json: provenance lock not found"):
        dp.load_lock(tmp_path / "none.json", required=True)


GOOD_PUBLISHER = {"kind": "GitHub", "repository": "o/r", "workflow": "r.yml", "environment": None}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "other", "packages": {}}', "not a provenance lock"),
        (json.dumps({"schema": dp.LOCK_SCHEMA, "packages": []}), "packages: expected"),
        (
            json.dumps({"schema": dp.LOCK_SCHEMA, "packages": {"idna": {"seen": "x"}}}),
            "packages.idna: needs either publisher",
        ),
        (
            json.dumps(
                {
                    "schema": dp.LOCK_SCHEMA,
                    "packages": {"idna": {"publisher": {**GOOD_PUBLISHER, "repository": ""}}},
                }
            ),
            "packages.idna.publisher.repository",
        ),
        (
            json.dumps(
                {
                    "schema": dp.LOCK_SCHEMA,
                    "packages": {"idna": {"publisher": {**GOOD_PUBLISHER, "repository": "x"}}},
                }
            ),
            "is not OWNER/NAME",
        ),
        (
            json.dumps(
                {
                    "schema": dp.LOCK_SCHEMA,
                    "packages": {
                        "gamma": {
                            "unsigned": True,
                            "approval": {"by": "a", "reason": "r", "expires": "soon"},
                        }
                    },
                }
            ),
            "packages.gamma.approval.expires",
        ),
        (
            json.dumps(
                {
                    "schema": dp.LOCK_SCHEMA,
                    "packages": {"gamma": {"unsigned": True, "approval": {"by": "a"}}},
                }
            ),
            "packages.gamma.approval: an approval needs exactly by, reason and expires",
        ),
        (
            json.dumps(
                {
                    "schema": dp.LOCK_SCHEMA,
                    "packages": {"Idna": {"unsigned": True}, "idna": {"unsigned": True}},
                }
            ),
            "listed twice",
        ),
        (
            json.dumps({"schema": dp.LOCK_SCHEMA, "packages": {"idna": {"publisher": {}, "x": 1}}}),
            "unknown keys x",
        ),
    ],
    ids=[
        "not-json", "schema", "packages-list", "neither", "empty-repo", "bad-repo",
        "bad-date", "approval-keys", "twice", "unknown-key",
    ],
)  # fmt: skip
def test_a_hand_broken_lock_is_bad_input_naming_file_and_entry(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "upm-provenance.json"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        dp.load_lock(path)
    assert str(path) in str(caught.value) and where in str(caught.value)


# --- update_lock (what `upm-ci trust lock` records) --------------------------------------------
def _observed(name: str, demo: DemoPublisher | None, error: str = "") -> dp.Observation:
    return dp.Observation(pinned(name), as_publisher(demo) if demo else None, error)


def _now() -> dt.datetime:
    return dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.timezone.utc)


def test_update_lock_records_new_publishers_and_refuses_changes_unless_accepted(
    tmp_path: Path,
) -> None:
    lock = lock_of(tmp_path, a=signed_entry("alpha", ALPHA))
    seen = [_observed("alpha", MALLORY), _observed("beta", BETA), _observed("gamma", None)]
    update = dp.update_lock(lock, seen, now=_now)
    assert [line.split(":")[0] for line in update.added] == ["beta 1.0"]
    assert len(update.refused) == 2 and not update.complete
    assert lock.get("alpha") == signed_entry("alpha", ALPHA)  # the change was not recorded
    assert lock.get("beta") is not None and lock.get("beta").seen == "2026-12-06T12:00:00Z"  # type: ignore[union-attr]
    approval = dp.Approval("bob", "reviewed the sdist", TODAY)
    again = dp.update_lock(
        lock, seen, now=_now, accept_changed=["alpha"], unsigned=approval, unsigned_names=["gamma"]
    )
    assert again.complete and lock.get("gamma").approval == approval  # type: ignore[union-attr]
    assert lock.get("alpha").publisher == as_publisher(MALLORY)  # type: ignore[union-attr]


def test_update_lock_never_records_an_unchecked_file(tmp_path: Path) -> None:
    lock = lock_of(tmp_path)
    update = dp.update_lock(lock, [_observed("alpha", None, "malformed")], now=_now)
    assert not update.complete and lock.entries == {}


# --- pylock.toml and the CLI -------------------------------------------------------------------
def write_project(root: Path, names: list[str], *, index_url: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1.0"\ndependencies = ["alpha", "gamma"]\n'
        f'[tool.upm-release]\npypi-index-url = "{index_url}"\n'
    )
    packages = []
    for name in names:
        file = pinned(name)
        packages.append(
            f'[[packages]]\nname = "{name}"\nversion = "1.0"\n'
            f'wheels = [{{ name = "{file.filename}", url = "https://files.example/{file.filename}",'
            f' hashes = {{ sha256 = "{file.sha256}" }} }}]\n'
        )
    (root / "pylock.toml").write_text('lock-version = "1.0"\n' + "\n".join(packages))
    return root


def test_pylock_gives_the_exact_files(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", ["alpha", "gamma"], index_url="https://x.example/simple/")
    assert dp.pylock_files(root / "pylock.toml") == [pinned("alpha"), pinned("gamma")]


def test_trust_lock_writes_the_lock_then_approves_the_unsigned_one(
    serve: PypiStandIn, sigstore_standin: SigstoreStandIn, tmp_path: Path
) -> None:
    root = write_project(tmp_path / "p", ["alpha", "gamma"], index_url=serve.simple_url)
    args = ["trust", "lock", "--project", str(root)]
    args += ["--trust-config", str(sigstore_standin.trust_config_path)]
    assert main(args) == 1  # gamma is unsigned and not approved
    lock = dp.load_lock(root / "upm-provenance.json", required=True)
    assert lock.get("alpha").publisher == as_publisher(ALPHA)  # type: ignore[union-attr]
    assert lock.get("gamma") is None
    approve = ["--approve-unsigned", "gamma", "--by", "carol", "--reason", "vendored"]
    assert main([*args, *approve, "--until", "2099-01-01"]) == 0
    entry = dp.load_lock(root / "upm-provenance.json").get("gamma")
    assert entry is not None and entry.approval == dp.Approval(
        "carol", "vendored", dt.date(2099, 1, 1)
    )


def test_trust_lock_bad_approval_options_are_bad_input(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", ["alpha"], index_url="https://x.example/simple/")
    assert main(["trust", "lock", "--project", str(root), "--approve-unsigned", "gamma"]) == 2
    args = ["trust", "lock", "--project", str(root), "--approve-unsigned", "g", "--by", "a"]
    assert main([*args, "--reason", "r", "--until", "someday"]) == 2


def test_trust_lock_with_a_broken_lock_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_project(tmp_path / "p", ["alpha"], index_url="https://x.example/simple/")
    (root / "upm-provenance.json").write_text(
        '{"schema": "upm-release/provenance-lock/v1", "packages": {"alpha": 1}}'
    )
    assert main(["trust", "lock", "--project", str(root)]) == 2
    err = capsys.readouterr().err
    assert "upm-provenance.json: packages.alpha: expected an object" in err
    assert "Traceback" not in err


def test_trust_files_still_works_as_before(
    tmp_path: Path, sigstore_standin: SigstoreStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f.whl").write_bytes(b"x")
    config = ["--trust-config", str(sigstore_standin.trust_config_path)]
    assert main(["trust", "--project", str(tmp_path), str(tmp_path / "f.whl"), *config]) == 1
    assert "3rd-party unsigned" in capsys.readouterr().out


def test_the_docs_lock_example_is_a_valid_lock(tmp_path: Path) -> None:
    from tests.test_readme import DOCS, snippet

    path = tmp_path / "upm-provenance.json"
    path.write_text(snippet("provenance-lock", DOCS / "provenance.md"))
    lock = dp.load_lock(path)
    assert lock.get("idna").publisher.repository == "kjd/idna"  # type: ignore[union-attr]
    assert lock.get("text-unidecode").approval.by == "alice"  # type: ignore[union-attr]


def test_the_example_commits_a_valid_lock_for_its_dependencies() -> None:
    from tests.conftest import EXAMPLE
    from upm_ci.standins.integrity import DEMO_PUBLISHERS

    lock = dp.load_lock(EXAMPLE / "upm-provenance.json", required=True)
    for name, demo in DEMO_PUBLISHERS.items():
        assert lock.get(name).publisher == as_publisher(demo)  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["../outside.json", "/etc/upm-provenance.json"])
def test_a_provenance_lock_outside_the_project_is_bad_input(tmp_path: Path, value: str) -> None:
    root = write_project(tmp_path / "p", ["alpha"], index_url="https://x.example/simple/")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'provenance-lock = "{value}"\n')
    assert main(["trust", "lock", "--project", str(root)]) == 2
    assert not (tmp_path / "outside.json").exists()
