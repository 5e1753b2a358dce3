"""The ``[tool.upm-release]`` table of the released project's ``pyproject.toml``.

Every key is a field of :class:`Config` with its default and a one-line doc (the field's
``metadata["doc"]``); the README's configuration reference is generated from these fields and a
test keeps the two in step. Unknown keys and wrong types are :class:`InputError` s that name the
key and suggest the nearest valid one; a table's problems are all found at once
(:class:`ConfigErrors`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upm_ci.errors import InputError
from upm_ci.identity import DEFAULT_RELEASE_WORKFLOW

#: The documents RELEASE.md references; the ``docs`` gate check requires them by default.
RELEASE_MD_DOCS = [
    "RELEASE.md",
    "CHANGELOG.md",
    "CONTRIBUTING.md",
    "PLUGINS.md",
    "SECURITY.md",
    "CONFIGURATION.md",
    "LOGGING.md",
    "API.md",
]

#: The mandatory sandbox entrypoint block every plugin file must contain at module level.
DEFAULT_ENTRYPOINT_BLOCK = """\
if __name__ == "__main__":
    from upm.sandbox import run_sandboxed

    run_sandboxed(main)
"""


@dataclass(frozen=True)
class AuditAllowance:
    """One allow-listed vulnerability: accepted until ``expires``, for the stated reason."""

    id: str
    reason: str
    expires: dt.date


def _key(default: Any, doc: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Config:
    """upm-release settings; the TOML key is the field name with ``-`` for ``_``."""

    # --- project -------------------------------------------------------------------------
    repository: str = _key(
        "", "GitHub `owner/name`; empty: `$GITHUB_REPOSITORY`, else the git remote `origin`."
    )
    tag_prefix: str = _key("v", "Prefix of release tags (`v1.2.0`).")
    dist_dir: str = _key(
        "dist",
        "Where build writes artifacts, relative to the project; it must also lie inside the "
        "manifest's directory.",
    )
    changelog: str = _key(
        "CHANGELOG.md",
        "Changelog whose version section is the release notes: Markdown (Keep a Changelog, "
        "towncrier, `## v1.2.0`, `## Version 1.2.0`, `## 1.2.0 (date)`) or, for `.rst`, "
        "reStructuredText titles (`1.2.0 (date)`, `Version 1.2.0`).",
    )
    version_module: str = _key(
        "", "File that declares `__version__`; empty: the package's `__init__.py` if it does."
    )
    # --- gate: tests ---------------------------------------------------------------------
    test_command: list[str] = _key(
        ["python", "-m", "pytest", "-q", "--junitxml={junit}"],
        "Command that runs the test suite; `{junit}` is replaced by the JUnit XML path.",
    )
    test_install: str = _key(
        "",
        "pip arguments that install the project into the gate's new test venv; empty: "
        "`.[test]`/`.[tests]` if the project has that extra, else `. <group test/tests>` "
        "(PEP 735), else `. pytest`.",
    )
    junit_xml: str = _key("", "Use this JUnit XML instead of running `test-command`.")
    test_suites: dict[str, str] = _key(
        {
            "unit": "path:tests/unit",
            "integration": "path:tests/integration",
            "security": "path:tests/security",
        },
        "Suites that must each run at least one test: `path:DIR` or `marker:NAME`.",
    )
    # --- gate: plugins -------------------------------------------------------------------
    plugins: list[str] = _key(
        ["src/*/plugins/*.py", "*/plugins/*.py"],
        "Globs of plugin files (relative); `[]`: the project has no plugins (both plugin rows "
        "are n/a).",
    )
    plugin_exclude: list[str] = _key(["**/__init__.py"], "Globs excluded from `plugins`.")
    entrypoint_block: str = _key(
        DEFAULT_ENTRYPOINT_BLOCK,
        "The mandatory sandbox entrypoint block; compared by syntax tree at module level.",
    )
    sandbox_test_pattern: str = _key(
        "test_sandbox_{plugin}",
        'A test whose name starts with this (or marked `sandbox("{plugin}")`) covers a plugin.',
    )
    # --- gate: code review, docs, audit, version -------------------------------------------
    review_without_token: str = _key(
        "skip",
        "`code-review` without a GitHub token on a local run: `skip` (the row says "
        '"skipped: no token, local run") or `fail`. In CI (`GITHUB_ACTIONS=true` or '
        "`CI=true`) a missing token always fails the row.",
    )
    previous_tag: str = _key("", "Previous release tag; empty: the highest lower version tag.")
    required_docs: list[str] = _key(RELEASE_MD_DOCS, "Documents that must exist and not be empty.")
    audit_allow: list[AuditAllowance] = _key(
        [], "Allowed vulnerabilities: tables with `id`, `reason`, `expires` (a TOML date)."
    )
    osv_url: str = _key(
        "",
        "OSV API URL for the vulnerability audit; empty: pip-audit's default (OSV). Its answers "
        "are bounded: 32 MiB each, 256 MiB and 600 s per audit (`UPM_OSV_MAX_ANSWER`, "
        "`UPM_OSV_MAX_TOTAL` in bytes, `UPM_OSV_DEADLINE` in seconds); over a limit the audit "
        "fails.",
    )
    provenance_lock: str = _key(
        "upm-provenance.json",
        "The provenance lock (`upm-ci trust lock` writes it): each runtime dependency's PEP 740 "
        "publisher, or unsigned with an approval; the gate's `dependency-provenance` row checks "
        "the index against it.",
    )
    # --- build ---------------------------------------------------------------------------
    check_reproducible: bool = _key(False, "Build twice and fail on any byte difference.")
    smoke_imports: list[str] = _key(
        [], "Modules to import in the wheel's smoke test, besides the entry points."
    )
    dockerfile: str = _key("Dockerfile", "Dockerfile for the image, relative to the project.")
    image: str = _key("", "Image name (`ghcr.io/owner/name`); empty: no image is built.")
    # --- sign ----------------------------------------------------------------------------
    sign_files: list[str] = _key(
        ["unipkg.yaml", ".unipkg.lock"], "Project manifests signed with the release."
    )
    sign_plugins: bool = _key(False, "Also sign every plugin file.")
    release_workflow: str = _key(
        DEFAULT_RELEASE_WORKFLOW,
        "Workflow whose identity signs releases; verify expects it.",
    )
    official_identities: list[str] = _key(
        [], "Extra certificate identities the trust policy accepts as official."
    )
    trust_approvals: str = _key(
        "trust-approvals.json", "Approval records for community-signed artifacts."
    )
    gpg_fingerprint: str = _key(
        "",
        "Fingerprint of the release's GPG key; verify trusts `.asc` signatures only by it (or "
        "by `--gpg-public-key`), never by a key shipped in the release alone.",
    )
    # --- publish -------------------------------------------------------------------------
    pypi_upload_url: str = _key("https://upload.pypi.org/legacy/", "Index upload URL (twine).")
    pypi_index_url: str = _key(
        "https://pypi.org/simple/",
        "Index read URL used to find already-uploaded files; its Integrity API (`/integrity/` "
        "next to `/simple/`) serves the dependencies' PEP 740 provenance to the gate.",
    )
    github_api_url: str = _key("https://api.github.com", "GitHub REST API base URL.")
    make_latest: str = _key("true", "Release `make_latest`: `true`, `false` or `legacy`.")
    audit_bucket: str = _key(
        "",
        "`s3://bucket/prefix` for the signed audit log and its bundle (SSE-KMS, never "
        "overwritten); empty: no upload.",
    )
    audit_kms_key: str = _key(
        "",
        "KMS key id or ARN the audit log is encrypted with (not an alias); needed with "
        "`audit-bucket`.",
    )
    audit_region: str = _key("", "AWS region of the bucket; empty: the AWS chain's.")
    audit_endpoint_url: str = _key("", "S3 endpoint for S3-compatible stores; empty: AWS.")

    @classmethod
    def keys(cls) -> dict[str, dataclasses.Field[Any]]:
        """TOML key -> dataclass field."""
        return {f.name.replace("_", "-"): f for f in dataclasses.fields(cls)}


#: Keys whose value, when set, must be an http(s) URL.
URL_KEYS = ("osv_url", "pypi_upload_url", "pypi_index_url", "github_api_url", "audit_endpoint_url")


def http_url_problem(value: str) -> str | None:
    """Why ``value`` is not an http(s) URL a client can use, or None."""
    from urllib.parse import urlsplit

    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        return "has a space or a control character"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL"
    return None


def check_http_url(value: str, *, where: str) -> str:
    """``value`` if it is an http(s) URL, else an InputError naming ``where``."""
    problem = http_url_problem(value)
    if problem:
        shown = value.encode("unicode_escape").decode("ascii")[:100]
        raise InputError(f"{where} {shown!r} {problem}", hint="give an http:// or https:// URL")
    return value


class ConfigErrors(InputError):
    """Every problem of one ``[tool.upm-release]`` table, found in one pass (``problems``);
    the message is the first one's, with how many more there are."""

    def __init__(self, problems: list[InputError]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: upm-ci check-config lists them)"
        super().__init__(
            first.message + (more if len(problems) > 1 else ""),
            hint=first.hint if len(problems) == 1 else None,
        )
        self.problems = problems


def unknown_key_hint(key: str, known: typing.Iterable[str]) -> str:
    """``did you mean 'tag-prefix'?`` for a near miss, else the list of valid keys."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"valid keys: {', '.join(sorted(known))}"


#: Keys that name one file or directory of the project ("" where the key is optional): a
#: relative path that stays inside the project, symlinks resolved (:func:`check_project_paths`).
PATH_KEYS = (
    "dist_dir",
    "changelog",
    "version_module",
    "junit_xml",
    "dockerfile",
    "release_workflow",
    "trust_approvals",
    "provenance_lock",
)
OPTIONAL_PATH_KEYS = ("version_module", "junit_xml")
#: Keys that are lists of such paths, and lists of globs (relative, never absolute or ``..``).
PATH_LIST_KEYS = ("sign_files",)
GLOB_KEYS = ("plugins", "plugin_exclude")
#: Keys that go into git and gh command lines as one word: no control character, no dash first.
WORD_KEYS = ("tag_prefix", "previous_tag")

_REPOSITORY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _escaped(value: str) -> str:
    """``value`` on one line (control characters escaped), at most 100 characters."""
    return value.encode("unicode_escape").decode("ascii")[:100]


def repository_problem(value: str) -> str | None:
    """Why ``value`` is not exactly a GitHub ``owner/name``, or None."""
    if not _REPOSITORY.fullmatch(value) or len(value) > 140:
        return "is not exactly owner/name (letters, digits, - _ . ; one slash)"
    return None


def check_repository(value: str, *, where: str) -> str:
    """``value`` if it is exactly ``owner/name``, else an InputError naming ``where``."""
    problem = repository_problem(value)
    if problem:
        raise InputError(f"{where} {_escaped(value)!r} {problem}", hint="e.g. octo-org/octo-repo")
    return value


def word_problem(value: str) -> str | None:
    """Why ``value`` cannot be a tag or tag prefix on a command line, or None."""
    from upm_ci.layout import line_problem

    if value.startswith("-"):
        return "starts with a dash (git would read an option)"
    return line_problem(value)


def check_word(value: str, *, where: str) -> str:
    """``value`` if :func:`word_problem` finds nothing, else an InputError naming ``where``."""
    problem = word_problem(value)
    if problem:
        raise InputError(
            f"{where} {_escaped(value)!r} {problem}", hint="give a plain tag such as v1.2.0"
        )
    return value


def _check_settings(values: dict[str, Any], source: str) -> None:
    """The shape of every path, repository and tag setting: nothing read or written yet."""
    from upm_ci.layout import check_relative_path, line_problem

    def where(name: str) -> str:
        return f"{source}: [tool.upm-release] {name.replace('_', '-')}"

    for name in PATH_KEYS:
        if name in values and (values[name] or name not in OPTIONAL_PATH_KEYS):
            check_relative_path(values[name], where=where(name))
    for name in PATH_LIST_KEYS + GLOB_KEYS:
        for i, item in enumerate(values.get(name, [])):
            check_relative_path(item, where=f"{where(name)}[{i}]")
    for suite, spec in values.get("test_suites", {}).items():
        kind, _, value = spec.partition(":")
        at = f"{where('test_suites')}.{suite}"
        if kind not in ("path", "marker") or not value.strip():
            raise InputError(f"{at} = {spec!r} is not 'path:DIR' or 'marker:NAME'")
        if kind == "path":
            check_relative_path(value.strip(), where=at, what="a directory inside the project")
        elif line_problem(value):
            raise InputError(f"{at} = {_escaped(spec)!r} {line_problem(value)}")
    for name in WORD_KEYS:
        if values.get(name):
            check_word(values[name], where=where(name))
    if values.get("repository"):
        check_repository(values["repository"], where=where("repository"))


def check_project_paths(config: Config, root: Path, *, source: str) -> None:
    """Every path setting of ``config`` stays inside ``root`` once symlinks are resolved
    (what is not there yet is checked by its name alone): run when the project is loaded, so
    every phase and ``check-config`` refuse the same settings before anything is written."""
    from upm_ci.layout import check_confined

    def where(name: str) -> str:
        return f"{source}: [tool.upm-release] {name.replace('_', '-')}"

    for name in PATH_KEYS:
        value = getattr(config, name)
        if value:
            check_confined(root, value, where=where(name))
    for name in PATH_LIST_KEYS:
        for i, item in enumerate(getattr(config, name)):
            check_confined(root, item, where=f"{where(name)}[{i}]")
    for suite, spec in config.test_suites.items():
        kind, _, value = spec.partition(":")
        if kind == "path":
            check_confined(root, value.strip(), where=f"{where('test_suites')}.{suite}")


def config_from_table(table: dict[str, Any], *, source: str = "pyproject.toml") -> Config:
    """Validate a ``[tool.upm-release]`` table and build the :class:`Config`.

    Every key is checked before anything is refused: :class:`ConfigErrors` carries all the
    problems at once.
    """
    known = Config.keys()
    hints = typing.get_type_hints(Config)
    values: dict[str, Any] = {}
    problems: list[InputError] = []

    def check(run: typing.Callable[[], Any]) -> None:
        try:
            run()
        except InputError as e:
            problems.append(e)

    for key, raw in table.items():
        if key not in known:
            problems.append(
                InputError(
                    f"{source}: [tool.upm-release] has unknown key {key!r}",
                    hint=unknown_key_hint(key, known),
                )
            )
            continue
        name = known[key].name

        def coerce(name: str = name, raw: Any = raw, key: str = key) -> None:
            values[name] = _coerce(raw, hints[name], f"{source}: [tool.upm-release] {key}")

        check(coerce)
    for name in URL_KEYS:
        if values.get(name):
            where = f"{source}: [tool.upm-release] {name.replace('_', '-')}"
            check(functools.partial(check_http_url, values[name], where=where))
    check(functools.partial(_check_settings, values, source))
    if values.get("review_without_token", "skip") not in ("skip", "fail"):
        problems.append(
            InputError(f"{source}: [tool.upm-release] review-without-token must be skip or fail")
        )
    if values.get("make_latest", "true") not in ("true", "false", "legacy"):
        problems.append(
            InputError(f"{source}: [tool.upm-release] make-latest must be true, false or legacy")
        )
    if "gpg_fingerprint" in values:

        def fingerprint() -> None:
            values["gpg_fingerprint"] = normalize_fingerprint(
                values["gpg_fingerprint"], where=f"{source}: [tool.upm-release] gpg-fingerprint"
            )

        check(fingerprint)
    if problems:
        raise ConfigErrors(problems)
    return Config(**values)


_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")


def normalize_fingerprint(value: str, *, where: str) -> str:
    """An OpenPGP fingerprint in gpg's form (upper-case hex, no spaces, no ``0x``); ""
    stays "". Anything else (a short key id, a user id) is an InputError naming ``where``."""
    text = "".join(value.split()).upper().removeprefix("0X")
    if text and not _FINGERPRINT.fullmatch(text):
        raise InputError(
            f"{where}: {value[:80]!r} is not a full OpenPGP fingerprint",
            hint="give all 40 (or 64) hex digits: gpg --fingerprint KEYID",
        )
    return text


def _coerce(raw: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is AuditAllowance:
        return _allowance(raw, where)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(raw, list):
            raise InputError(f"{where}: expected a list, got {type(raw).__name__}")
        return [_coerce(x, item, f"{where}[{i}]") for i, x in enumerate(raw)]
    if origin is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(raw, dict):
            raise InputError(f"{where}: expected a table, got {type(raw).__name__}")
        return {str(k): _coerce(v, value_type, f"{where}.{k}") for k, v in raw.items()}
    if origin in (typing.Union, types.UnionType):
        raise AssertionError("unions are not used in Config")  # pragma: no cover
    if hint is bool and not isinstance(raw, bool):
        raise InputError(f"{where}: expected true or false, got {raw!r}")
    if hint in (str, int) and (not isinstance(raw, hint) or isinstance(raw, bool)):
        raise InputError(f"{where}: expected {_type_name(hint)}, got {raw!r}")
    return raw


def _allowance(raw: Any, where: str) -> AuditAllowance:
    if not isinstance(raw, dict) or set(raw) != {"id", "reason", "expires"}:
        raise InputError(
            f"{where}: an allow-list entry needs exactly id, reason and expires",
            hint='e.g. { id = "GHSA-xxxx", reason = "not reachable", expires = 2026-12-31 }',
        )
    if not isinstance(raw["expires"], dt.date) or isinstance(raw["expires"], dt.datetime):
        raise InputError(f"{where}.expires: expected a TOML date like 2026-12-31")
    if not str(raw["reason"]).strip():
        raise InputError(f"{where}.reason: say why this vulnerability is accepted")
    return AuditAllowance(id=str(raw["id"]), reason=str(raw["reason"]), expires=raw["expires"])


def _type_name(hint: Any) -> str:
    return {str: "a string", int: "an integer"}.get(hint, str(hint))


def reference_markdown() -> str:
    """The configuration reference table for the README (a test checks it is current)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, f in Config.keys().items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        shown = _toml_literal(default)
        rows.append(f"| `{key}` | `{shown}` | {f.metadata['doc']} |")
    return "\n".join(rows)


def _toml_literal(value: Any) -> str:
    """``value`` as TOML a user can copy: strings are basic strings with JSON's escapes
    (``\\"``, ``\\n``, ``\\uXXXX``), which TOML reads the same way."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(str(k))} = {_toml_literal(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    return str(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is inside, for messages and annotations."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
