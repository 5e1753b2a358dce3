"""Phase 1, the gate: RELEASE.md's Pre-Release Checklist, one check per row, in its order.

Where things are: :mod:`upm_ci.gate.checklist` (the phase: :func:`gate_release` runs the
rows, :func:`run_gate`, and records them in the manifest), one module per check
(:data:`CHECKS`), :mod:`upm_ci.gate.model` (what a check gets and returns),
:mod:`upm_ci.gate.report` (the checklist's rows and the report), :mod:`upm_ci.gate.testenv`
(the project's test venv) and :mod:`upm_ci.gate.pytest_markers` (the plugin loaded into the
project's test run).

The package imports none of its modules (each is imported by its own name), so importing one
of them runs only what that one needs.
"""
