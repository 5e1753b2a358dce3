"""Checks ``plugin-entrypoint`` and ``plugin-sandbox`` on copies of the example project."""

from __future__ import annotations

from pathlib import Path

import pytest

from upm_ci.errors import InputError
from upm_ci.gate.model import GateContext
from upm_ci.gate.plugins import (
    check_plugin_entrypoint,
    check_plugin_sandbox,
    plugin_files,
    sandbox_coverage,
)
from upm_ci.gate.tests import TestRun, parse_junit
from upm_ci.project import load_project

BLOCK = """if __name__ == "__main__":
    from upm_sample.sandbox import run_sandboxed

    run_sandboxed(main)
"""
PLUGINS = ["checksum", "idna_encode", "version_info"]


def ctx_for(root: Path, tmp_path: Path) -> GateContext:
    return GateContext(project=load_project(root), tag="v1.2.0", work_dir=tmp_path / "work")


def plugin(root: Path, name: str) -> Path:
    return root / "src" / "upm_sample" / "plugins" / f"{name}.py"


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def set_config(root: Path, line: str) -> None:
    rewrite(root / "pyproject.toml", "[tool.upm-release]\n", f"[tool.upm-release]\n{line}\n")


# --- plugin-entrypoint -------------------------------------------------------------------


def test_every_sample_plugin_has_the_block(sample_copy: Path, tmp_path: Path) -> None:
    ctx = ctx_for(sample_copy, tmp_path)
    assert [p.stem for p in plugin_files(ctx)] == PLUGINS  # __init__.py is excluded
    result = check_plugin_entrypoint(ctx)
    assert (result.status, result.reason) == ("pass", "3 plugins")


def test_formatting_and_comments_do_not_matter(sample_copy: Path, tmp_path: Path) -> None:
    rewrite(
        plugin(sample_copy, "checksum"),
        BLOCK,
        "if __name__ == '__main__':  # run me sandboxed\n"
        "    from upm_sample.sandbox import (run_sandboxed)\n"
        "    run_sandboxed( main )\n",
    )
    assert check_plugin_entrypoint(ctx_for(sample_copy, tmp_path)).status == "pass"


def test_a_removed_block_fails_at_line_1(sample_copy: Path, tmp_path: Path) -> None:
    rewrite(plugin(sample_copy, "checksum"), BLOCK, "")
    result = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path))
    assert (result.status, result.reason) == ("fail", "1 of 3 plugins lack the entrypoint block")
    (finding,) = result.findings
    assert (finding.file, finding.line) == ("src/upm_sample/plugins/checksum.py", 1)
    assert finding.message == "mandatory sandbox entrypoint block is missing"


def test_a_block_nested_in_a_function_fails_at_its_line(sample_copy: Path, tmp_path: Path) -> None:
    nested = "def _entry():\n" + "".join(
        f"    {line}\n" if line else "\n" for line in BLOCK.splitlines()
    )
    rewrite(plugin(sample_copy, "idna_encode"), BLOCK, nested)
    (finding,) = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path)).findings
    text = plugin(sample_copy, "idna_encode").read_text().splitlines()
    assert text[finding.line - 1].strip().startswith("if __name__")  # type: ignore[operator]
    assert "nested inside `def _entry`" in finding.message


def test_a_block_under_another_condition_fails(sample_copy: Path, tmp_path: Path) -> None:
    guarded = "import os\nif os.environ.get('FAST'):\n" + "".join(
        f"    {line}\n" if line else "\n" for line in BLOCK.splitlines()
    )
    rewrite(plugin(sample_copy, "version_info"), BLOCK, guarded)
    (finding,) = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path)).findings
    assert "nested inside `if os.environ.get('FAST')`" in finding.message


def test_a_weakened_condition_is_a_near_miss_at_its_line(sample_copy: Path, tmp_path: Path) -> None:
    path = plugin(sample_copy, "checksum")
    rewrite(path, 'if __name__ == "__main__":', 'if __name__ == "__main__" or True:')
    (finding,) = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path)).findings
    assert finding.message.startswith("entrypoint block differs from the configured one")
    assert path.read_text().splitlines()[finding.line - 1].startswith("if __name__")  # type: ignore[operator]


def test_a_changed_body_is_a_near_miss(sample_copy: Path, tmp_path: Path) -> None:
    rewrite(plugin(sample_copy, "checksum"), "    run_sandboxed(main)\n", "    main({})\n")
    (finding,) = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path)).findings
    assert "differs" in finding.message


def test_a_plugin_that_does_not_parse_fails_at_the_error_line(
    sample_copy: Path, tmp_path: Path
) -> None:
    path = plugin(sample_copy, "checksum")
    path.write_text("x = 1\ndef broken(:\n" + path.read_text())
    (finding,) = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path)).findings
    assert (finding.line, finding.message.startswith("does not parse")) == (2, True)


def test_an_unparseable_configured_block_is_an_input_error(
    sample_copy: Path, tmp_path: Path
) -> None:
    rewrite(sample_copy / "pyproject.toml", "    run_sandboxed(main)\n", "    run_sandboxed(main\n")
    with pytest.raises(InputError, match="entrypoint-block is not valid Python"):
        check_plugin_entrypoint(ctx_for(sample_copy, tmp_path))


def test_default_globs_matching_nothing_warn(sample_copy: Path, tmp_path: Path) -> None:
    for name in PLUGINS:
        plugin(sample_copy, name).unlink()
    result = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path))
    assert result.status == "warn" and not result.blocks


def test_configured_globs_matching_nothing_fail(sample_copy: Path, tmp_path: Path) -> None:
    set_config(sample_copy, 'plugins = ["src/*/plugin/*.py"]')
    result = check_plugin_entrypoint(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    assert result.reason == "config plugins (src/*/plugin/*.py) matches no file"
    assert check_plugin_sandbox(ctx_for(sample_copy, tmp_path), TestRun(tmp_path, [])).blocks


def test_plugin_exclude_removes_files(sample_copy: Path, tmp_path: Path) -> None:
    set_config(sample_copy, 'plugin-exclude = ["**/__init__.py", "**/checksum.py"]')
    rewrite(plugin(sample_copy, "checksum"), BLOCK, "")
    assert check_plugin_entrypoint(ctx_for(sample_copy, tmp_path)).reason == "2 plugins"


# --- plugin-sandbox ----------------------------------------------------------------------


def results(tmp_path: Path, *cases: str) -> TestRun:
    path = tmp_path / "junit.xml"
    path.write_text(f"<testsuites><testsuite>{''.join(cases)}</testsuite></testsuites>")
    return TestRun(source=path, cases=parse_junit(path))


def named(name: str, inner: str = "") -> str:
    return f'<testcase classname="tests.security.test_sandbox" name="{name}">{inner}</testcase>'


def marked(name: str, plugin_name: str, inner: str = "") -> str:
    prop = f'<properties><property name="sandbox" value="{plugin_name}"/></properties>'
    return named(name, prop + inner)


COVERED = [
    named("test_sandbox_checksum"),
    named("test_sandbox_idna_encode[x]"),
    marked("test_isolated[v]", "version_info"),
]


def test_every_plugin_covered_passes(sample_copy: Path, tmp_path: Path) -> None:
    result = check_plugin_sandbox(ctx_for(sample_copy, tmp_path), results(tmp_path, *COVERED))
    assert (result.status, result.reason) == ("pass", "3 plugins covered by sandbox tests")


def test_a_plugin_without_a_sandbox_test_fails(sample_copy: Path, tmp_path: Path) -> None:
    run = results(tmp_path, *COVERED[:2], named("test_sandbox_version"), named("test_version_info"))
    result = check_plugin_sandbox(ctx_for(sample_copy, tmp_path), run)
    assert result.status == "fail"
    (finding,) = result.findings
    assert finding.file == "src/upm_sample/plugins/version_info.py"
    assert "'version_info' has no sandbox test" in finding.message


@pytest.mark.parametrize(
    ("inner", "outcome"),
    [
        ("<failure message='leaked HOME'/>", "failed"),
        ("<error/>", "error"),
        ("<skipped/>", "skipped"),
    ],
)
def test_a_covering_test_that_did_not_pass_fails_that_plugin(
    sample_copy: Path, tmp_path: Path, inner: str, outcome: str
) -> None:
    run = results(tmp_path, *COVERED, named("test_sandbox_checksum_env", inner))
    result = check_plugin_sandbox(ctx_for(sample_copy, tmp_path), run)
    assert result.status == "fail"
    assert result.reason == "1 of 3 plugins not covered by passing sandbox tests"
    (finding,) = result.findings
    assert f"test_sandbox_checksum_env {outcome}" in finding.message


def test_the_pattern_is_configurable_and_validated(sample_copy: Path, tmp_path: Path) -> None:
    set_config(sample_copy, 'sandbox-test-pattern = "test_isolation_of_{plugin}"')
    run = results(tmp_path, *(named(f"test_isolation_of_{p}") for p in PLUGINS))
    assert check_plugin_sandbox(ctx_for(sample_copy, tmp_path), run).status == "pass"
    rewrite(sample_copy / "pyproject.toml", "{plugin}", "{name}")
    with pytest.raises(InputError, match="sandbox-test-pattern"):
        check_plugin_sandbox(ctx_for(sample_copy, tmp_path), run)


def test_sandbox_coverage_matches_names_at_word_boundaries(tmp_path: Path) -> None:
    run = results(
        tmp_path,
        named("test_sandbox_checksumx"),  # another word: covers nothing
        named("test_sandbox_idna_encode_env[a]"),  # idna_encode, and idna (prefix + "_")
        named("test_checksum_isolated"),
        marked("test_anything", "version_info"),
        marked("test_unknown", "not_a_plugin"),
    )
    plugins = {"checksum", "idna", "idna_encode", "version_info"}
    coverage = sandbox_coverage(run.cases, plugins, "test_sandbox_{plugin}")
    assert {p: [c.name for c in cs] for p, cs in coverage.items()} == {
        "checksum": [],
        "idna": ["test_sandbox_idna_encode_env[a]"],
        "idna_encode": ["test_sandbox_idna_encode_env[a]"],
        "version_info": ["test_anything"],
    }
    tailed = sandbox_coverage(run.cases, plugins, "test_{plugin}_isolated")
    assert [c.name for c in tailed["checksum"]] == ["test_checksum_isolated"]


def test_a_pattern_without_the_placeholder_is_an_input_error(
    sample_copy: Path, tmp_path: Path
) -> None:
    set_config(sample_copy, 'sandbox-test-pattern = "test_sandbox"')
    with pytest.raises(InputError, match="must hold {plugin} once"):
        check_plugin_sandbox(ctx_for(sample_copy, tmp_path), results(tmp_path, *COVERED))
