"""The release statement: every file of the release by name and digest, and the gate's verdict.

One in-toto Statement v1 (``RELEASE_STATEMENT``, a DSSE bundle signed in the sign phase with
the release's certificate) whose

- ``subject`` lists every release file by its asset name and sha256 as it stands after
  signing (distributions, SBOMs, signed project files and plugins, their bundles, provenance,
  SBOM and PEP 740 attestations, GPG files, ``SHA256SUMS``, the toolchain SBOM), and each
  container image by its repository (``ghcr.io/o/n``) and manifest digest;
- ``predicate`` is a SLSA Verification Summary v1 (``VSA_PREDICATE_TYPE``): the verifier
  (upm-release and its version), when the gate verified the release, the release's URI, the
  policy (``RELEASE.md`` as upm-release carries it, ``upm_ci/gate/RELEASE.md``, whose
  Pre-Release Checklist the gate runs, by URI and sha256), ``PASSED``/``FAILED`` and the levels.
  What VSA has no field for is under the predicate's ``upm_release`` key:

  - ``checks``: the gate's rows, ``{name, status, summary}`` in the checklist's order;
  - ``images``: the subject names that are images, not files (the only subjects whose
    names may hold ``/``);
  - ``publishedLater``: the names publish adds after signing (the audit log and its bundle).
    They cannot have a digest yet, so they are no subjects: each must be present in the
    release, and each that is not a ``.sigstore.json`` bundle is bound by its own bundle
    (``<name>.sigstore.json``, also listed), signed with the same identity.

A verifier holds the release to it: every subject present with its digest, every
``publishedLater`` name present, and no other file than these and the statement itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upm_ci import __version__
from upm_ci.layout import BUNDLE_SUFFIX, MAX_NAME, VSA_PREDICATE_TYPE
from upm_ci.provenance import STATEMENT_TYPE

#: upm-release's own URI: the VSA's verifier id.
VERIFIER_ID = "https://github.com/unexpected/upm-release"
#: The policy the gate checks: RELEASE.md as upm-release carries it, by URI and digest.
POLICY_FILE = Path(__file__).resolve().parent / "gate" / "RELEASE.md"
POLICY_URI = f"{VERIFIER_ID}/blob/v{__version__}/upm_ci/gate/RELEASE.md"
#: The predicate key under which upm-release records what VSA has no field for.
OWN_KEY = "upm_release"
PASSED = "PASSED"
FAILED = "FAILED"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class GateRow:
    """One row of the gate's report as the statement carries it."""

    name: str
    status: str
    summary: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "summary": self.summary}


def one_line(text: str, limit: int = 300) -> str:
    """The first line of ``text``, at most ``limit`` characters."""
    lines = text.strip().splitlines()
    return (lines[0] if lines else "")[:limit]


def build_statement(
    files: dict[str, str],
    *,
    images: dict[str, str],
    published_later: list[str],
    gate_rows: list[GateRow],
    gate_passed: bool,
    time_verified: str,
    resource_uri: str,
    policy_uri: str,
    policy_sha256: str,
    tool_version: str,
) -> dict[str, Any]:
    """The release statement (a plain in-toto Statement v1 dict).

    ``files``: {asset name: sha256}; ``images``: {repository: sha256 of the manifest}.
    """
    subjects = [{"name": n, "digest": {"sha256": d}} for n, d in sorted(files.items())]
    subjects += [{"name": n, "digest": {"sha256": d}} for n, d in sorted(images.items())]
    passed = gate_passed and bool(gate_rows) and all(r.status != "fail" for r in gate_rows)
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {"upm-release": tool_version}},
        "timeVerified": time_verified,
        "resourceUri": resource_uri,
        "policy": {"uri": policy_uri, "digest": {"sha256": policy_sha256}},
        "verificationResult": PASSED if passed else FAILED,
        "verifiedLevels": ["SLSA_BUILD_LEVEL_1"] if passed else [],
        "slsaVersion": "1.0",
        OWN_KEY: {
            "checks": [r.to_json() for r in gate_rows],
            "images": sorted(images),
            "publishedLater": sorted(published_later),
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": predicate,
    }


class StatementProblem(ValueError):
    """The statement is malformed; the message names the field and the value."""


@dataclass
class ParsedStatement:
    """What a verifier needs of a release statement, every field checked."""

    files: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    published_later: list[str] = field(default_factory=list)
    result: str = ""
    checks: list[GateRow] = field(default_factory=list)
    policy_uri: str = ""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file of a release directory, or None: a statement names
    files in one directory, never a path."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is '.' or '..'"
    if _CONTROL.search(name):
        return "has a control character"
    if "/" in name or "\\" in name:
        return "has a path separator"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        return f"is longer than {MAX_NAME} bytes"
    return None


def _shown(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")[:120]


def parse_statement(statement: Any) -> ParsedStatement:
    """The release statement's subjects and verdict; StatementProblem naming what is wrong:
    a predicate type that is not VSA, a file name with a separator, ``..`` or a control
    character, a duplicate name, a digest that is not 64 hex digits."""
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise StatementProblem(f"not an in-toto {STATEMENT_TYPE} statement")
    predicate_type = statement.get("predicateType")
    if predicate_type != VSA_PREDICATE_TYPE:
        shown = _shown(str(predicate_type))
        raise StatementProblem(f"predicateType {shown!r} is not {VSA_PREDICATE_TYPE}")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise StatementProblem("predicate is not an object")
    own = predicate.get(OWN_KEY)
    if not isinstance(own, dict):
        raise StatementProblem(f"predicate.{OWN_KEY} is missing")
    image_names = _names(own.get("images", []), f"predicate.{OWN_KEY}.images")
    later = _names(own.get("publishedLater", []), f"predicate.{OWN_KEY}.publishedLater")
    for later_name in later:
        if problem := name_problem(later_name):
            raise StatementProblem(
                f"predicate.{OWN_KEY}.publishedLater: {_shown(later_name)!r} {problem}"
            )
    parsed = ParsedStatement(published_later=later, policy_uri=_policy_uri(predicate))
    raw = statement.get("subject")
    if not isinstance(raw, list) or not raw:
        raise StatementProblem("subject is missing or empty")
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"subject[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("digest"), dict):
            raise StatementProblem(f"{where}: not a {{name, digest}} object")
        name, digest = item.get("name"), item["digest"].get("sha256")
        if not isinstance(name, str):
            raise StatementProblem(f"{where}.name is not a string")
        shown = _shown(name)
        if name in seen:
            raise StatementProblem(f"{where}: duplicate name {shown!r}")
        seen.add(name)
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
            value = _shown(str(digest))
            raise StatementProblem(
                f"{where} ({shown}): digest.sha256 {value!r} is not 64 hex digits"
            )
        if name in image_names:
            if _CONTROL.search(name) or ".." in name.split("/"):
                raise StatementProblem(f"{where}: image name {shown!r} is not a repository")
            parsed.images[name] = digest.lower()
            continue
        if problem := name_problem(name):
            raise StatementProblem(f"{where}: file name {shown!r} {problem}")
        parsed.files[name] = digest.lower()
    if set(later) & set(parsed.files):
        both = sorted(set(later) & set(parsed.files))[0]
        raise StatementProblem(f"{both!r} is both a subject and published later")
    for later_name in later:
        if not later_name.endswith(BUNDLE_SUFFIX) and later_name + BUNDLE_SUFFIX not in later:
            raise StatementProblem(
                f"predicate.{OWN_KEY}.publishedLater: {later_name!r} without its bundle"
            )
    result = predicate.get("verificationResult")
    if result not in (PASSED, FAILED):
        raise StatementProblem(f"predicate.verificationResult {_shown(str(result))!r}")
    parsed.result = str(result)
    checks = own.get("checks", [])
    if not isinstance(checks, list):
        raise StatementProblem(f"predicate.{OWN_KEY}.checks is not a list")
    for row in checks:
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k), str) for k in ("name", "status", "summary")
        ):
            raise StatementProblem(f"predicate.{OWN_KEY}.checks: malformed row")
        parsed.checks.append(GateRow(row["name"], row["status"], row["summary"]))
    return parsed


def _names(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise StatementProblem(f"{where} is not a list of names")
    if len(set(raw)) != len(raw):
        raise StatementProblem(f"{where} names one twice")
    return list(raw)


def _policy_uri(predicate: dict[str, Any]) -> str:
    policy = predicate.get("policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("uri"), str):
        raise StatementProblem("predicate.policy.uri is missing")
    return str(policy["uri"])
