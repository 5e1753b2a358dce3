"""The toolchain SBOM (``TOOLCHAIN_SBOM``): what made and signed the release, as CycloneDX 1.6.

Made in the sign phase from the running tool itself, with cyclonedx-python-lib's public API:

- the metadata component is upm-release: its version and, when known, the git commit it runs
  from (its checkout's ``HEAD``, else the runner's ``GITHUB_ACTION_REF`` of a ``uses:``-ed
  upm-release action);
- one component per package of the interpreter's environment (the tool venv) with its
  version, and the sha256 hashes the hash-pinned lock (``actions/setup/requirements.txt``,
  which the actions' setup copies into the venv as ``upm_ci/requirements.lock``) holds for
  it when the installed version is the locked one (property ``upm-release:locked`` says
  whether it is);
- the interpreter as a ``platform`` component: implementation, version and path;
- in GitHub Actions, the refs the runner and the OIDC token give: ``GITHUB_ACTION_REPOSITORY``
  / ``GITHUB_ACTION_REF`` (the action running), ``GITHUB_WORKFLOW_REF`` / ``GITHUB_WORKFLOW_SHA``,
  ``GITHUB_JOB``, ``GITHUB_RUN_ID``, and the token's ``job_workflow_ref`` / ``job_workflow_sha``
  (a reusable workflow's own ref and commit), as ``upm-release:github:*`` properties.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from upm_ci import __version__

#: Where the hash-pinned lock of the tool venv is: next to the package when the actions'
#: setup copied both into the tool venv, else in a checkout of upm-release.
LOCKS = (
    Path(__file__).resolve().parent / "requirements.lock",
    Path(__file__).resolve().parent.parent / "actions" / "setup" / "requirements.txt",
)
#: The runner's variables recorded, as ``upm-release:github:<lower-case name>``.
GITHUB_VARIABLES = (
    "GITHUB_ACTION_REPOSITORY",
    "GITHUB_ACTION_REF",
    "GITHUB_WORKFLOW_REF",
    "GITHUB_WORKFLOW_SHA",
    "GITHUB_JOB",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_REPOSITORY",
)
_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_hashes(lock: Path | None = None) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [sha256, ...])} of a pip-compile ``--generate-hashes`` lock
    (default: the first of LOCKS that exists); {} when there is none."""
    lock = lock or next((p for p in LOCKS if p.is_file()), None)
    if lock is None or not lock.is_file():
        return {}
    out: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in lock.read_text(encoding="utf-8").splitlines():
        if m := _REQ.match(line):
            current = _canonical(m.group(1))
            out[current] = (m.group(2), [])
        elif current and (h := _HASH.search(line)):
            out[current][1].append(h.group(1))
        elif line and not line.startswith((" ", "\t")):
            current = ""
    return out


def source_commit() -> str:
    """The git commit upm-release runs from: its checkout's HEAD, or the action's ref when
    that is a commit; "" when neither is known."""
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            proc = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            proc = None
        if (
            proc is not None
            and proc.returncode == 0
            and re.fullmatch(r"[0-9a-f]{40}", proc.stdout.strip())
        ):
            return proc.stdout.strip()
    ref = os.environ.get("GITHUB_ACTION_REF", "")
    return ref if re.fullmatch(r"[0-9a-f]{40}", ref) else ""


def toolchain_sbom(claims: Mapping[str, str] | None = None, *, lock: Path | None = None) -> str:
    """The toolchain SBOM's JSON text (validated CycloneDX 1.6, sorted keys).

    ``claims``: the OIDC token's ``job_workflow_ref`` / ``job_workflow_sha`` when known.
    """
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    from upm_ci.sbom_validation import validate_cyclonedx

    commit = source_commit()
    tool_props = [Property(name="upm-release:commit", value=commit)] if commit else []
    for var in GITHUB_VARIABLES:
        if value := os.environ.get(var, ""):
            tool_props.append(Property(name=f"upm-release:github:{var.lower()}", value=value))
    for claim in ("job_workflow_ref", "job_workflow_sha"):
        if claims and (value := claims.get(claim, "")):
            tool_props.append(Property(name=f"upm-release:github:{claim}", value=value))
    tool = Component(
        type=ComponentType.APPLICATION,
        name="upm-release",
        version=__version__,
        bom_ref="upm-release",
        purl=PackageURL("github", "unexpected", "upm-release", commit or None),
        properties=tool_props,
    )
    bom = Bom()
    bom.metadata.component = tool
    locked = locked_hashes(lock)
    seen: set[str] = set()
    # Each METADATA parsed once (``dist.metadata`` parses it anew at every access).
    installed = [(meta["Name"] or "", meta["Version"] or "") for meta in _metadata()]
    for name, version in sorted(installed, key=lambda item: _canonical(item[0])):
        if not name or _canonical(name) in seen:
            continue
        seen.add(_canonical(name))
        lock_version, hashes = locked.get(_canonical(name), ("", []))
        matches = lock_version == version
        bom.components.add(
            Component(
                type=ComponentType.LIBRARY,
                name=name,
                version=version,
                bom_ref=f"pypi:{_canonical(name)}",
                purl=PackageURL("pypi", None, _canonical(name), version),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in hashes]
                if matches
                else [],
                properties=[Property(name="upm-release:locked", value=str(matches).lower())],
            )
        )
    bom.components.add(
        Component(
            type=ComponentType.PLATFORM,
            name=sys.implementation.name,
            version=platform.python_version(),
            bom_ref="interpreter",
            properties=[
                Property(name="upm-release:interpreter:path", value=sys.executable),
                Property(
                    name="upm-release:interpreter:implementation",
                    value=platform.python_implementation(),
                ),
            ],
        )
    )
    bom.register_dependency(tool, list(bom.components))
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    validate_cyclonedx(text)
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def _metadata() -> list[Any]:
    return [dist.metadata for dist in metadata.distributions()]


def same_toolchain(old_text: str, new_text: str) -> bool:
    """True when two toolchain SBOMs differ at most in their serial number and timestamp
    (a re-run of sign by the same tool keeps the signed one)."""
    try:
        old, new = json.loads(old_text), json.loads(new_text)
    except ValueError:
        return False
    for doc in (old, new):
        if not isinstance(doc, dict):
            return False
        doc.pop("serialNumber", None)
        if isinstance(doc.get("metadata"), dict):
            doc["metadata"].pop("timestamp", None)
    return bool(old == new)
