"""The README shows what the code does: its ``--help`` blocks and configuration reference are
compared with the real output. ``python -m tests.test_readme`` rewrites the generated blocks.

Blocks sit between markers: ``<!-- help:upm-ci rehearse:start -->`` ... ``:end -->`` holds a
fenced ``text`` block with ``upm-ci rehearse --help`` at 100 columns;
``<!-- config-reference:start -->`` ... ``:end -->`` holds ``reference_markdown()``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from upm_ci.cli import main
from upm_ci.config import Config, reference_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
DOCS = README.parent / "docs"
COLUMNS = "100"
_BLOCK = re.compile(
    r"<!-- (?!snippet:)(?P<key>[^:>]+(?::[^:>]+)?):start -->\n(?P<body>.*?)<!-- (?P=key):end -->",
    re.S,
)
#: Hand-written snippets (``<!-- snippet:NAME:start -->``) that tests run as users copy them.
_SNIPPET = re.compile(
    r"<!-- snippet:(?P<name>[^:>]+):start -->\n```\w*\n(?P<body>.*?)```\n"
    r"<!-- snippet:(?P=name):end -->",
    re.S,
)
PROJECTS = README.parent / "tests" / "projects"


def snippet(name: str, page: Path = README) -> str:
    """The text of the hand-written snippet ``name`` in ``page``."""
    found = {m["name"]: m["body"] for m in _SNIPPET.finditer(page.read_text(encoding="utf-8"))}
    return found[name]


def help_text(command: str) -> str:
    """``<command> --help`` as the CLI prints it at 100 columns (``command`` starts ``upm-ci``)."""
    argv = command.split()[1:] + ["--help"]
    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = COLUMNS
    try:
        with contextlib.redirect_stdout(out):
            code = main(argv)
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    assert code == 0, f"{command} --help exited {code}"
    return out.getvalue()


def expected_body(key: str) -> str:
    """What belongs between the markers named ``key``."""
    if key == "config-reference":
        return reference_markdown() + "\n"
    if key.startswith("help:"):
        return "```text\n" + help_text(key.removeprefix("help:")) + "```\n"
    raise KeyError(f"README marker {key!r} is not a generated block")


def blocks(text: str) -> dict[str, str]:
    return {m["key"]: m["body"] for m in _BLOCK.finditer(text)}


def regenerate(text: str) -> str:
    return _BLOCK.sub(
        lambda m: f"<!-- {m['key']}:start -->\n{expected_body(m['key'])}<!-- {m['key']}:end -->",
        text,
    )


def test_readme_has_the_generated_blocks() -> None:
    found = blocks(README.read_text(encoding="utf-8"))
    assert {"config-reference", "help:upm-ci", "help:upm-ci rehearse"} <= set(found)


@pytest.mark.parametrize("key", sorted(blocks(README.read_text(encoding="utf-8"))))
def test_generated_block_matches_the_code(key: str) -> None:
    body = blocks(README.read_text(encoding="utf-8"))[key]
    assert body == expected_body(key), (
        f"README block {key!r} is stale: run `.venv/bin/python -m tests.test_readme`"
    )


@pytest.mark.parametrize("name", ["flat-scm", "flit-version", "setuptools-rst"])
def test_fixture_projects_use_the_readmes_snippet_for_ordinary_projects(name: str) -> None:
    """The README's starting point for a non-UPM project is what the fixture projects run."""
    from upm_ci.project import read_toml

    wanted = tomllib.loads(snippet("ordinary-project"))["tool"]["upm-release"]
    pyproject = PROJECTS / name / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip(f"{name} is not there yet")
    table = read_toml(pyproject)["tool"]["upm-release"]
    changelog = table.get("changelog", "CHANGELOG.md")  # the snippet's comment: your documents
    wanted["required-docs"] = [
        changelog if d == "CHANGELOG.md" else d for d in wanted["required-docs"]
    ]
    assert {key: table.get(key) for key in wanted} == wanted


def test_config_reference_names_every_key_once() -> None:
    table = blocks(README.read_text(encoding="utf-8"))["config-reference"]
    for key in Config.keys():
        assert table.count(f"| `{key}` |") == 1, key


def test_help_blocks_go_through_main_and_honour_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is against real output: every line fits 100 columns and it lists phases."""
    monkeypatch.delenv("COLUMNS", raising=False)
    text = help_text("upm-ci")
    assert "COLUMNS" not in os.environ
    assert max(len(line) for line in text.splitlines()) <= int(COLUMNS)
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify", "rehearse"):
        assert re.search(rf"^  {phase}\s", text, re.M), phase


def test_make_targets_in_the_quickstart_exist() -> None:
    readme = README.read_text(encoding="utf-8")
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    assert "make test\nmake rehearse\n" in readme
    for target in ("test", "rehearse", "bench", "lint"):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_relative_links_in_readme_and_docs_point_at_files() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    pages = [README, *sorted(DOCS.glob("*.md"))]
    missing = []
    for page in pages:
        for target in link.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.name} -> {target}")
    assert not missing


def test_readme_states_the_exit_codes_the_cli_uses() -> None:
    from upm_ci.errors import EXIT_INPUT, EXIT_OK, EXIT_POLICY, EXIT_SERVICE

    readme = README.read_text(encoding="utf-8")
    for code in (EXIT_OK, EXIT_POLICY, EXIT_INPUT, EXIT_SERVICE):
        assert f"| {code} |" in readme


if __name__ == "__main__":
    README.write_text(regenerate(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"regenerated the blocks of {README}", file=sys.stderr)


#: The release the README's "Verifying a release" commands are for.
SAMPLE_REPO, SAMPLE_TAG = "OWNER/REPO", "v1.2.0"
SAMPLE_SIGNER = (
    "https://github.com/unexpected/upm-release/.github/workflows/upm-release.yml@refs/tags/v1"
)


def _notes_commands_of_a_sample_release(root: Path) -> str:
    """What the release notes print for upm-sample 1.2.0 of OWNER/REPO, signed by upm-release's
    reusable workflow at v1 on a tag push (a GitHub-hosted runner), as sign records it."""
    from tests.test_sign import make_release
    from upm_ci.layout import BUNDLE_SUFFIX
    from upm_ci.manifest import AttestationRecord, Manifest, SignatureRecord
    from upm_ci.project import load_project
    from upm_ci.provenance import CYCLONEDX_BOM, SLSA_PROVENANCE_V1
    from upm_ci.publish.notes import verify_commands

    project_dir = make_release(root)
    manifest = Manifest.load(project_dir / "release-manifest.json")
    for art in manifest.artifacts:
        manifest.add_signature(
            SignatureRecord(art.name, art.sha256, art.name + BUNDLE_SUFFIX, "sigstore")
        )
    dists: list[dict[str, Any]] = [
        {"name": a.name, "digest": {"sha256": a.sha256}} for a in manifest.distributions()
    ]
    wheel = [d for d in dists if str(d["name"]).endswith(".whl")]
    manifest.add_attestation(
        AttestationRecord("upm_sample-1.2.0.intoto.jsonl", SLSA_PROVENANCE_V1, dists)
    )
    manifest.add_attestation(
        AttestationRecord(f"{wheel[0]['name']}.cdx.intoto.jsonl", CYCLONEDX_BOM, wheel)
    )
    manifest.record_phase(
        "sign",
        "pass",
        identity=SAMPLE_SIGNER,
        repository=SAMPLE_REPO,
        ref=f"refs/tags/{SAMPLE_TAG}",
        trigger="push",
        runner_environment="github-hosted",
        sha="d6cd1e2bd19e03a81132a23b2025920577f84e37",
    )
    commands = verify_commands(
        load_project(project_dir), manifest, repository=SAMPLE_REPO, tag=SAMPLE_TAG
    )
    lines = [commands.install[0], commands.all_at_once, commands.download, *commands.by_hand]
    return "\n".join(lines) + "\n"


def test_readme_shows_the_verify_commands_as_the_release_notes_print_them(
    tmp_path: Path,
) -> None:
    assert snippet("release-notes-verify") == _notes_commands_of_a_sample_release(tmp_path), (
        "README snippet release-notes-verify is stale: print "
        "tests.test_readme._notes_commands_of_a_sample_release(tmp) into it"
    )


def test_readme_is_in_the_order_its_readers_need() -> None:
    """What it is, adopting it, what consumers run, developing upm-release last."""
    headings = re.findall(r"^## (.+)$", README.read_text(encoding="utf-8"), re.M)
    order = [
        headings.index("Adopting it in a workflow"),
        headings.index("Verifying a release (as a consumer)"),
        headings.index("Developing upm-release"),
    ]
    assert order == sorted(order) and order[-1] == len(headings) - 1, headings


def test_the_jobs_diagram_is_the_reusable_workflows() -> None:
    """Every job, its needs and its permissions, as the workflow file says."""
    import yaml

    workflow = yaml.safe_load(
        (README.parent / ".github/workflows/upm-release.yml").read_text(encoding="utf-8")
    )
    diagram = snippet("reusable-workflow-jobs")
    assert diagram.startswith("flowchart LR\n")
    nodes = dict(re.findall(r'^  (\w+)\["(.*?)"\]$', diagram, re.M))
    edges = set(re.findall(r"^  (\w+) --(?: \".*?\" --)?> (\w+)$", diagram, re.M))
    assert set(nodes) == set(workflow["jobs"])
    for name, job in workflow["jobs"].items():
        shown = nodes[name].split("<br/>")[1:]
        granted = job.get("permissions") or {}
        wanted = [f"{k}: {v}" for k, v in granted.items()] or ["permissions: none"]
        assert [line for line in shown if not line.startswith("environment")] == wanted, name
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            assert (need, name) in edges, f"{need} --> {name}"
    needed = {
        (need, name)
        for name, job in workflow["jobs"].items()
        for need in ([job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []))
    }
    assert edges == needed
