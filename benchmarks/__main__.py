"""``python -m benchmarks [NAME ...]`` (``make bench``): run every side-by-side benchmark.

Discovers ``benchmarks/bench_*.py``, calls each module's ``run()`` in turn, prints one table
(ours beside the tool a user would otherwise run, in the same run) and records the machine
with the figures in ``benchmarks/results/latest.json`` and ``latest.md`` (the table to paste
into docs/benchmarks.md). A benchmark that raises becomes an error row, not a crash; the exit
code is 0 only if every benchmark ran.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from benchmarks._harness import BenchResult

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
HEADERS = ["benchmark", "ours", "baseline tool", "theirs", "ratio", "target", "met?"]


@dataclass(frozen=True)
class BenchError:
    """A benchmark module that could not run: its name and the one-line reason."""

    module: str
    error: str


Row = BenchResult | BenchError


def discover(directory: Path = BENCH_DIR) -> dict[str, Path]:
    """Benchmark name (``startup`` for ``bench_startup.py``) -> file, sorted by name."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(directory.glob("bench_*.py"))}


def select(found: dict[str, Path], names: Sequence[str]) -> dict[str, Path]:
    """The benchmarks named on the command line (``gate`` or ``bench_gate``); all if none."""
    if not names:
        return found
    wanted = [n.removeprefix("bench_").removesuffix(".py") for n in names]
    unknown = [n for n in wanted if n not in found]
    if unknown:
        raise LookupError(
            f"benchmarks: no benchmark named {', '.join(unknown)} "
            f"(available: {', '.join(found) or 'none'})"
        )
    return {n: found[n] for n in wanted}


def _load(name: str, path: Path) -> ModuleType:
    """Import a benchmark file; files outside this package get a name of their own."""
    inside = path.resolve().parent == BENCH_DIR
    module_name = f"benchmarks.bench_{name}" if inside else f"_upm_bench_file_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def run_one(name: str, path: Path) -> list[Row]:
    """Import one benchmark module and call its ``run()``; any failure is one error row."""
    try:
        results = _load(name, path).run()
        if not isinstance(results, list) or not all(isinstance(r, BenchResult) for r in results):
            raise TypeError("run() must return a list of BenchResult")
        if not results:
            raise ValueError("run() returned no results")
        return list(results)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - one broken run must not stop the rest
        if os.environ.get("UPM_BENCH_DEBUG"):
            traceback.print_exc()
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return [BenchError(name, f"{type(e).__name__}: {message}".rstrip(": "))]


def machine() -> dict[str, str | int]:
    """The machine the figures belong to."""
    cpu = platform.processor() or platform.machine()
    ram_gib = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count() or 0,
        "cpu": cpu,
        "ram": f"{ram_gib:.1f} GiB" if ram_gib else "unknown",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def _figure(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.3g} {unit}"


def cells(row: Row) -> list[str]:
    """One table row's cells, in :data:`HEADERS` order."""
    if isinstance(row, BenchError):
        return [row.module, "error", row.error, "", "", "", "no"]
    bound = "≥" if row.higher_is_better else "≤"
    return [
        row.name,
        _figure(row.ours, row.unit),
        row.baseline,
        _figure(row.theirs, row.unit),
        f"{row.ratio:.2f}",
        f"{bound} {row.target:g}",
        "yes" if row.meets_target else "no",
    ]


def text_table(rows: Sequence[Row]) -> str:
    """The terminal table."""
    body = [cells(r) for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in body)]) for i, h in enumerate(HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def markdown(rows: Sequence[Row], box: dict[str, str | int]) -> str:
    """The Markdown table for docs/benchmarks.md, with the machine it ran on."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = [
        f"Machine: {box['nproc']} cores, {box['cpu']}, {box['ram']} RAM, "
        f"Python {box['python']}, {box['os']}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    out += ["| " + " | ".join(cell(c) for c in cells(r)) + " |" for r in rows]
    notes = [f"- **{r.name}**: {r.note}" for r in rows if isinstance(r, BenchResult) and r.note]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def as_json(rows: Sequence[Row], box: dict[str, str | int], started: str) -> dict[str, object]:
    """The machine-readable record of one run."""
    results: list[dict[str, object]] = []
    for r in rows:
        if isinstance(r, BenchError):
            results.append({"module": r.module, "error": r.error})
        else:
            results.append(
                {
                    "name": r.name,
                    "ours": r.ours,
                    "theirs": r.theirs,
                    "unit": r.unit,
                    "baseline": r.baseline,
                    "ratio": r.ratio,
                    "target": r.target,
                    "higher_is_better": r.higher_is_better,
                    "met": r.meets_target,
                    "note": r.note,
                }
            )
    return {
        "schema": "upm-release/bench/v1",
        "started": started,
        "machine": box,
        "results": results,
    }


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None, *, bench_dir: Path = BENCH_DIR) -> int:
    """Run the selected benchmarks, print the table, write the results; 0 if all ran."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (e.g. startup gate)")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path(os.environ.get("UPM_BENCH_RESULTS", RESULTS_DIR)),
        help="where latest.json and latest.md go [default: benchmarks/results]",
    )
    args = parser.parse_args(argv)
    try:
        chosen = select(discover(bench_dir), args.names)
    except LookupError as e:
        print(e, file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rows: list[Row] = []
    for name, path in chosen.items():
        print(f"benchmarks: running {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        rows += run_one(name, path)
        print(f"benchmarks: {name} took {time.perf_counter() - start:.1f} s", file=sys.stderr)
    box = machine()
    print(text_table(rows))
    _write_atomic(
        args.results_dir / "latest.json", json.dumps(as_json(rows, box, started), indent=2)
    )
    _write_atomic(args.results_dir / "latest.md", markdown(rows, box))
    print(f"\nresults: {args.results_dir / 'latest.json'}, {args.results_dir / 'latest.md'}")
    return 1 if any(isinstance(r, BenchError) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
