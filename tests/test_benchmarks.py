"""The benchmark runner with tiny fake benchmarks, and the real benchmark modules' shape.

No timing is asserted anywhere: the figures belong in docs/benchmarks.md, not in tests.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from benchmarks import __main__ as runner
from benchmarks._harness import BenchResult

BENCH_DIR = Path(runner.__file__).resolve().parent

_OK = """\
from benchmarks._harness import BenchResult

def run():
    return [
        BenchResult(name="fast thing", ours=0.2, theirs=0.4, baseline="their-tool", target=0.6),
        BenchResult(name="slow thing", ours=3.0, theirs=1.0, baseline="other | tool", target=2.0,
                    note="ours does more"),
    ]
"""

_BOOM = """\
def run():
    raise RuntimeError("the stand-in did not start\\nsecond line")
"""

_NOT_A_LIST = """\
def run():
    return {"ours": 1}
"""

_BROKEN_IMPORT = """\
import module_that_does_not_exist_anywhere

def run():
    return []
"""


@pytest.fixture
def fake_benchmarks(tmp_path: Path) -> Path:
    """A benchmark directory with one good module and four that fail in different ways."""
    bench = tmp_path / "fake"
    bench.mkdir()
    (bench / "bench_ok.py").write_text(_OK)
    (bench / "bench_boom.py").write_text(_BOOM)
    (bench / "bench_shape.py").write_text(_NOT_A_LIST)
    (bench / "bench_imports.py").write_text(_BROKEN_IMPORT)
    (bench / "bench_exits.py").write_text("import sys\n\ndef run():\n    sys.exit(3)\n")
    (bench / "helper.py").write_text("raise SystemExit('helpers are not benchmarks')\n")
    return bench


def test_discover_finds_only_bench_modules(fake_benchmarks: Path) -> None:
    assert list(runner.discover(fake_benchmarks)) == ["boom", "exits", "imports", "ok", "shape"]


def test_all_run_error_rows_do_not_stop_the_others(
    fake_benchmarks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    code = runner.main(["--results-dir", str(results)], bench_dir=fake_benchmarks)
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == [
        "benchmark", "ours", "baseline", "tool", "theirs", "ratio", "target", "met?"
    ]  # fmt: skip
    rows = {line.split("  ")[0].strip(): line for line in lines[2:] if line.strip()}
    assert "RuntimeError: the stand-in did not start" in rows["boom"]
    assert "second line" not in out
    assert "TypeError: run() must return a list of BenchResult" in rows["shape"]
    assert "ModuleNotFoundError" in rows["imports"]
    assert "SystemExit: 3" in rows["exits"]
    assert "200 ms" in rows["fast thing"] and "400 ms" in rows["fast thing"]
    assert "0.50" in rows["fast thing"] and "≤ 0.6" in rows["fast thing"]
    assert rows["fast thing"].rstrip().endswith("yes")
    assert "3.00 s" in rows["slow thing"] and rows["slow thing"].rstrip().endswith("no")

    record = json.loads((results / "latest.json").read_text())
    assert record["schema"] == "upm-release/bench/v1"
    assert set(record["machine"]) == {"nproc", "cpu", "ram", "python", "os"}
    by_name = {r.get("name") or r["module"]: r for r in record["results"]}
    assert by_name["fast thing"]["ratio"] == pytest.approx(0.5)
    assert by_name["fast thing"]["met"] is True
    assert by_name["slow thing"]["met"] is False
    assert by_name["boom"]["error"].startswith("RuntimeError")
    assert not list(results.glob("*.tmp"))


def test_markdown_table_escapes_pipes_and_lists_notes(
    fake_benchmarks: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    assert runner.main(["ok", "--results-dir", str(results)], bench_dir=fake_benchmarks) == 0
    md = (results / "latest.md").read_text()
    assert md.startswith("Machine: ")
    assert "| benchmark | ours | baseline tool | theirs | ratio | target | met? |" in md
    assert "| slow thing | 3.00 s | other \\| tool | 1.00 s | 3.00 | ≤ 2 | no |" in md
    assert "- **slow thing**: ours does more" in md
    assert "boom" not in md


def test_names_select_benchmarks_with_or_without_prefix(
    fake_benchmarks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    code = runner.main(
        ["bench_ok", "boom", "--results-dir", str(results)], bench_dir=fake_benchmarks
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "fast thing" in out and "boom" in out and "shape" not in out


def test_unknown_name_is_usage_error_and_writes_nothing(
    fake_benchmarks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    code = runner.main(["nope", "--results-dir", str(results)], bench_dir=fake_benchmarks)
    err = capsys.readouterr().err
    assert code == 2
    assert "no benchmark named nope" in err and "available: boom, exits, imports, ok, shape" in err
    assert not results.exists()


def test_results_dir_from_environment(
    fake_benchmarks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_BENCH_RESULTS", str(tmp_path / "from-env"))
    assert runner.main(["ok"], bench_dir=fake_benchmarks) == 0
    assert (tmp_path / "from-env" / "latest.json").is_file()


def test_machine_describes_this_host() -> None:
    box = runner.machine()
    assert isinstance(box["nproc"], int) and box["nproc"] >= 1
    assert box["cpu"] and str(box["python"]).count(".") == 2


def test_higher_is_better_targets_render_with_their_bound() -> None:
    row = BenchResult(
        name="throughput", ours=300, theirs=100, baseline="x", target=2, unit="MB/s",
        higher_is_better=True,
    )  # fmt: skip
    assert runner.cells(row) == ["throughput", "300 MB/s", "x", "100 MB/s", "3.00", "≥ 2", "yes"]


@pytest.mark.parametrize("name", sorted(runner.discover(BENCH_DIR)))
def test_every_real_benchmark_imports_and_exposes_run(name: str) -> None:
    module = importlib.import_module(f"benchmarks.bench_{name}")
    assert callable(module.run)


def test_mine_are_discovered() -> None:
    assert {"startup", "gate", "rehearsal"} <= set(runner.discover(BENCH_DIR))


def test_gate_benchmark_cross_checks_on_a_small_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate benchmark's tree and its cross-check with grep, on 100 plugins (no timing)."""
    bench_gate = importlib.import_module("benchmarks.bench_gate")
    monkeypatch.setattr(bench_gate, "PLUGINS", 100)
    monkeypatch.setattr(bench_gate, "REPEAT", 1)
    rows = bench_gate._plugin_rows()
    assert [r.baseline for r in rows][0] == "grep -rL -F + grep -c"
    assert all(r.ours > 0 and r.theirs > 0 for r in rows)
    assert "grep finds 50" in rows[0].note


def test_gate_benchmark_refuses_figures_when_findings_disagree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gate result other than the tree's known defects is an error, not a figure."""
    bench_gate = importlib.import_module("benchmarks.bench_gate")
    monkeypatch.setattr(bench_gate, "PLUGINS", 100)
    monkeypatch.setattr(bench_gate, "REPEAT", 1)
    # The 10 "nested" plugins now hold a correct block; the expectation of 60 findings stays.
    monkeypatch.setattr(bench_gate, "_NESTED", bench_gate._BLOCK)
    with pytest.raises(RuntimeError, match="gate found"):
        bench_gate._plugin_rows()


def test_startup_benchmark_runs_and_sees_no_sigstore_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench_startup = importlib.import_module("benchmarks.bench_startup")
    monkeypatch.setattr(bench_startup, "REPEAT", 1)
    (row,) = bench_startup.run()
    assert row.baseline == "sigstore --help" and row.ours > 0 and row.theirs > 0
    assert "no sigstore import" in row.note


def test_rehearsal_benchmark_reports_a_failed_rehearsal_as_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rehearsal that does not pass gives no figure: the runner shows why instead."""
    bench_rehearsal = importlib.import_module("benchmarks.bench_rehearsal")
    not_a_project = tmp_path / "empty"
    not_a_project.mkdir()
    monkeypatch.setattr(bench_rehearsal, "EXAMPLE", not_a_project)
    with pytest.raises(RuntimeError, match=r"exited 2 \(.*pyproject.toml"):
        bench_rehearsal.rehearse_seconds(tmp_path, tmp_path / "cache")


def test_rehearsal_benchmark_can_be_run_without_a_docker_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """UPM_BENCH_DOCKER=off: no engine for either side, said in the note, no base image made."""
    bench_rehearsal = importlib.import_module("benchmarks.bench_rehearsal")
    monkeypatch.setenv("UPM_BENCH_DOCKER", "off")
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    image_base, why = bench_rehearsal.docker_case()
    assert image_base == ""
    assert why == f"no Docker engine at {bench_rehearsal.NO_ENGINE}"
    import os

    assert os.environ["DOCKER_HOST"] == bench_rehearsal.NO_ENGINE  # the rehearsal's too
