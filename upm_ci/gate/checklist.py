"""The gate's run: RELEASE.md's Pre-Release Checklist, one check per row, in its order, and
its record in the release manifest.

:func:`gate_release` is the phase: it runs :func:`run_gate` and records the result (every
row's status, a one-line summary per row, the reasons, each check's details) as the
manifest's ``gate`` phase. :func:`run_gate` runs every check and returns a
:class:`GateReport`. A check that finds bad input (an ``InputError``) stops the gate with
exit 2; any other exception inside a check fails that check with the reason (fail closed)
and the others still run. Test results are read once and shared by ``tests`` and
``plugin-sandbox``.

The rows that wait on subprocesses or the network (:data:`CONCURRENT`: the test run, the code
review's API calls, the audit, the provenance fetches) start at once in a thread pool; the
others run meanwhile, in order. The report keeps the checklist's order and each row's result
is what it would be alone: the rows are taken in order, a row's log lines are let out with it
(never interleaved with another's), and an error that stops the gate stops it at the first row,
in order, that raised one. The dependencies are resolved once for the audit and the provenance
rows (``GateContext.resolution``).

A check can run in a process of its own: ``only`` runs just the given rows (the code-review
check, the one that needs a token, in a step that runs none of the project's code), and
``skip`` takes the given rows' results from ``recorded`` (what that run left in the
manifest) instead of running them. A skipped row with no recorded result fails: nothing is
passed that was not checked.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import tempfile
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upm_ci import gha
from upm_ci.errors import InputError, ServiceError
from upm_ci.gate.model import CheckResult, GateContext, GitHubAccess
from upm_ci.gate.report import CHECKLIST, GateReport, task_of
from upm_ci.manifest import Manifest
from upm_ci.project import Project
from upm_ci.release_statement import one_line
from upm_ci.timings import timed

if TYPE_CHECKING:
    from upm_ci.gate.tests import TestRun

__all__ = ["CHECKS", "GateReport", "gate_release", "recorded_checks", "run_gate"]

log = logging.getLogger(__name__)

#: check id -> (module, function); modules are imported only when the gate runs.
CHECKS = {
    "tests": ("upm_ci.gate.tests", "check_tests"),
    "plugin-sandbox": ("upm_ci.gate.plugins", "check_plugin_sandbox"),
    "plugin-entrypoint": ("upm_ci.gate.plugins", "check_plugin_entrypoint"),
    "code-review": ("upm_ci.gate.review", "check_code_review"),
    "docs": ("upm_ci.gate.docs", "check_docs"),
    "dependency-audit": ("upm_ci.gate.dependency_audit", "check_dependency_audit"),
    "dependency-provenance": ("upm_ci.gate.provenance", "check_dependency_provenance"),
    "version-bump": ("upm_ci.gate.version", "check_version_bump"),
}
_USES_TEST_RESULTS = {"tests", "plugin-sandbox"}
#: Rows that wait on subprocesses or the network: they run side by side, in threads (the
#: report keeps the checklist's order, and each row's log lines are shown together with it).
CONCURRENT = ("tests", "code-review", "dependency-audit", "dependency-provenance")
#: Checks whose service failure (after retries) stops the gate with exit 3.
_SERVICE_STOPS = {"dependency-provenance"}


def gate_release(
    project: Project,
    manifest: Manifest,
    *,
    tag: str | None,
    junit_xml: Path | None,
    github: GitHubAccess | None,
    osv_url: str,
    test_python: str = "",
    only: Collection[str] = (),
    skip: Collection[str] = (),
    index_url: str = "",
    trust_config: Path | None = None,
    today: dt.date | None = None,
) -> GateReport:
    """The gate phase: run the checklist (:func:`run_gate`, in a work directory of its own;
    ``skip`` rows from what an earlier ``--only`` run recorded in ``manifest``), record the
    result as the manifest's ``gate`` phase and save it. Text that reaches the manifest is
    redacted like the report."""
    with tempfile.TemporaryDirectory(prefix="upm-gate-") as work_dir:
        report = run_gate(
            project,
            tag=tag,
            junit_xml=junit_xml,
            github=github,
            osv_url=osv_url,
            work_dir=Path(work_dir),
            today=today,
            test_python=test_python,
            only=only,
            skip=skip,
            recorded=recorded_checks(manifest.phases.get("gate")),
            index_url=index_url,
            trust_config=trust_config,
        )
    rows = gha.redact_data(report.to_json())["checks"]  # test output may hold secrets
    details = gha.redact_data({k: v for check in report.checks for k, v in check.details.items()})
    manifest.record_phase(
        "gate",
        "pass" if report.passed else "fail",
        checks={check.id: check.status for check in report.checks},
        # One line per row for the release statement (redacted like the report).
        summaries={str(row.get("id")): one_line(str(row.get("reason", ""))) for row in rows},
        reasons={check.id: gha.redact(check.reason) for check in report.checks},
        **({"only": list(only)} if only else {}),
        **details,
    )
    manifest.save()
    return report


def recorded_checks(record: Any) -> dict[str, CheckResult]:
    """The checks an earlier gate run (``--only``) recorded in the manifest's gate record."""
    checks = record.get("checks") if isinstance(record, dict) else None
    reasons = record.get("reasons") if isinstance(record, dict) else None
    if not isinstance(checks, dict) or not isinstance(reasons, dict):
        return {}
    found = {}
    for check_id, status in checks.items():
        reason = reasons.get(check_id)
        if status in ("pass", "fail", "warn", "skipped", "n/a") and isinstance(reason, str):
            found[check_id] = CheckResult(check_id, task_of(check_id), status, reason)
    return found


def run_gate(
    project: Project,
    *,
    tag: str | None,
    junit_xml: Path | None,
    github: GitHubAccess | None,
    osv_url: str,
    work_dir: Path,
    today: dt.date | None = None,
    test_python: str = "",
    only: Collection[str] = (),
    skip: Collection[str] = (),
    recorded: Mapping[str, CheckResult] | None = None,
    index_url: str = "",
    trust_config: Path | None = None,
) -> GateReport:
    """Run every check for ``project`` at ``tag`` (default: the project's own tag).

    ``only``: run just these rows (the report holds only them); ``skip``: take these rows
    from ``recorded`` instead of running them (see the module docstring). A ServiceError from
    ``dependency-provenance`` (the index still failing after retries) stops the gate with exit
    3: what could not be checked is neither a pass nor a verdict.
    """
    for name, ids in (("--only", only), ("--skip", skip)):
        unknown = sorted(set(ids) - set(CHECKS))
        if unknown:
            raise InputError(
                f"{name}: no gate check {', '.join(unknown)}",
                hint=f"use one of {', '.join(CHECKS)}",
            )
    ctx = GateContext(
        project=project,
        tag=tag or project.tag,
        work_dir=work_dir,
        junit_xml=junit_xml,
        github=github,
        osv_url=osv_url,
        today=today or dt.date.today(),
        test_python=test_python,
        index_url=index_url,
        trust_config=trust_config,
    )
    rows = [row for row in CHECKLIST if not only or row.id in only]
    shared = _SharedTestResults(ctx)
    results: list[CheckResult] = []
    held = _HeldLogs()
    with held, ThreadPoolExecutor(max_workers=len(CONCURRENT)) as pool:
        # Rows that wait on subprocesses or the network start at once, side by side; every
        # row is then taken in the checklist's order, as if they had run one after another.
        started = {
            row.id: pool.submit(held.run, _run_check, row.id, ctx, shared)
            for row in rows
            if row.id in CONCURRENT and row.id not in skip
        }
        try:
            for row in rows:
                if row.id in skip:
                    results.append(_recorded(row.id, recorded or {}))
                elif row.id in started:
                    results.append(held.release(started[row.id]))
                else:
                    results.append(_run_check(row.id, ctx, shared))
        finally:
            for future in started.values():
                future.cancel()
    report = GateReport(project.name, project.version, ctx.tag, results)
    log.info("gate: %s", "passed" if report.passed else "blocked")
    return report


def _run_check(check_id: str, ctx: GateContext, shared: _SharedTestResults) -> CheckResult:
    """Run one row: its result, a failed result when it crashed (fail closed); an InputError,
    or a ServiceError of a row in ``_SERVICE_STOPS``, is raised (it stops the gate)."""
    module_name, function_name = CHECKS[check_id]
    log.info("gate: %s", task_of(check_id))
    with timed(f"gate: {check_id}"):
        try:
            check = getattr(importlib.import_module(module_name), function_name)
            if check_id in _USES_TEST_RESULTS:
                test_results = shared.get()
                if isinstance(test_results, CheckResult):
                    result: CheckResult = _failed_like(test_results, check_id)
                else:
                    result = check(ctx, test_results)
            else:
                result = check(ctx)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - fail closed: a crashed check is a failed check
            if isinstance(e, ServiceError) and check_id in _SERVICE_STOPS:
                raise
            log.debug("gate: %s crashed", check_id, exc_info=True)
            result = CheckResult(
                check_id, task_of(check_id), "fail", f"check could not run: {_brief(e)}"
            )
    return result


class _SharedTestResults:
    """The test results, read once per gate run by whichever row asks first; a row asking
    while they are being read waits for them."""

    def __init__(self, ctx: GateContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._results: TestRun | CheckResult | None = None

    def get(self) -> TestRun | CheckResult:
        with self._lock:
            if self._results is None:
                self._results = _load_test_results(self._ctx)
            return self._results


class _HeldLogs:
    """While rows run side by side, each row's log lines are held back and let out with its
    result, in the checklist's order: the log reads as if the rows ran one after another.

    Entered, it stands in for the handlers of ``upm_ci`` (and, when that logger propagates,
    of the root logger): a record logged from a thread running a row (:meth:`run`) is kept
    with that row, every other record goes straight through. Threads a check starts itself
    log straight through too.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._swapped: list[tuple[logging.Logger, list[logging.Handler]]] = []

    def __enter__(self) -> _HeldLogs:
        logger: logging.Logger | None = logging.getLogger("upm_ci")
        while logger is not None:
            if logger.handlers:
                own = list(logger.handlers)
                self._swapped.append((logger, own))
                logger.handlers[:] = [_Holding(own, self._local)]
            logger = logger.parent if logger.propagate else None
        return self

    def __exit__(self, *exc: object) -> None:
        for logger, own in self._swapped:
            logger.handlers[:] = own
        self._swapped.clear()

    def run(
        self, fn: Callable[..., CheckResult], *args: Any
    ) -> tuple[list[logging.LogRecord], CheckResult | BaseException]:
        """``fn(*args)`` with its log records held; they come back with its outcome."""
        held: list[logging.LogRecord] = []
        self._local.held = held
        try:
            return held, fn(*args)
        except Exception as e:  # noqa: BLE001 - raised again, in order, by release()
            return held, e
        finally:
            self._local.held = None

    def release(
        self, future: Future[tuple[list[logging.LogRecord], CheckResult | BaseException]]
    ) -> CheckResult:
        """Wait for a row started with :meth:`run`: log its records, then return its result
        or raise its error."""
        held, outcome = future.result()
        for record in held:
            logging.getLogger(record.name).handle(record)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class _Holding(logging.Handler):
    """A logger's handlers, behind one that keeps a row's records while it runs."""

    def __init__(self, handlers: list[logging.Handler], local: threading.local) -> None:
        super().__init__()
        self._handlers = handlers
        self._local = local

    def handle(self, record: logging.LogRecord) -> bool:
        held: list[logging.LogRecord] | None = getattr(self._local, "held", None)
        if held is not None:
            held.append(record)
            return True
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        for handler in self._handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def _load_test_results(ctx: GateContext) -> TestRun | CheckResult:
    """The shared test results, or a failed CheckResult saying why there are none."""
    from upm_ci.gate.tests import load_test_results

    try:
        return load_test_results(ctx)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - fail closed, see run_gate
        return CheckResult("tests", task_of("tests"), "fail", f"no test results: {_brief(e)}")


def _recorded(check_id: str, recorded: Mapping[str, CheckResult]) -> CheckResult:
    """The result another gate run recorded for ``check_id``; a failure when there is none."""
    result = recorded.get(check_id)
    if result is None:
        return CheckResult(
            check_id,
            task_of(check_id),
            "fail",
            f"not checked: run `upm-ci gate --only {check_id}` first "
            "(its result is read from the manifest)",
        )
    log.info("gate: %s: %s in its own step", task_of(check_id), result.status)
    return result


def _failed_like(failure: CheckResult, check_id: str) -> CheckResult:
    return CheckResult(check_id, task_of(check_id), "fail", failure.reason)


def _brief(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]
