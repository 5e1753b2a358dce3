"""One error hierarchy, caught once by the CLI, which maps each class to an exit code.

Every error carries one line that names the file or field at fault and what to do about it,
so a user never needs a traceback to act on it.
"""

from __future__ import annotations


class UpmError(Exception):
    """Base class: ``str(err)`` is the one-line message shown to the user."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class PolicyError(UpmError):
    """The release policy says no: gate blocked, vulnerability, verification failed (exit 1)."""

    exit_code = 1


class InputError(UpmError):
    """Bad input or usage: a malformed file, a missing field, a wrong option (exit 2)."""

    exit_code = 2


class ServiceError(UpmError):
    """A service (GitHub, PyPI, Sigstore, OSV) kept failing after retries (exit 3)."""

    exit_code = 3


EXIT_OK = 0
EXIT_POLICY = PolicyError.exit_code
EXIT_INPUT = InputError.exit_code
EXIT_SERVICE = ServiceError.exit_code
