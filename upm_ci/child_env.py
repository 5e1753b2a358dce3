"""The environment the project's own code runs in: its tests, its build backend, its installs.

That code is the project's, not upm-release's, and a job may hold an OIDC request token, a
GitHub token, an index password or a GPG passphrase. Rather than remove the secrets we know
of, the project gets an allow-list: what a shell, Python, pip and git need to work, and the
harmless facts of the run. Anything named like a credential is dropped even where a prefix
is allowed, and a URL value loses its ``user:password@`` (a proxy or an index URL with
credentials): the project's code gets the proxy, never its password.

That only filters what a child inherits. Before the project's code starts,
:func:`isolate_process` also drops every credential from upm-ci's *own* environment and makes
the process non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``), so a process of the same user (the
project's tests or build hook) can read neither ``/proc/<upm-ci>/environ`` nor its memory.
:func:`project_env` makes the process non-dumpable on every call, so every path that starts
project code goes through that; the gate and build phases call :func:`isolate_process` once
their options are read.

The honest limits (docs/security.md): a process with ``CAP_SYS_PTRACE`` or root (``sudo`` on a
GitHub-hosted runner) reads anything; a pip that installs the project from source runs its
build backend, so it gets the index URL without credentials too (a private index's
credentials are for upm-ci's own wheel-only installs: :func:`install_env`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
from collections.abc import Collection, Mapping

log = logging.getLogger(__name__)

#: Variables passed through as they are.
ALLOWED = frozenset(
    {
        # shell, locale, temp
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ",
        "TMPDIR", "TEMP", "TMP", "PWD",
        # Windows
        "SYSTEMROOT", "SystemRoot", "SYSTEMDRIVE", "COMSPEC", "PATHEXT", "WINDIR",
        "APPDATA", "LOCALAPPDATA", "PROGRAMDATA", "PROGRAMFILES", "PROGRAMFILES(X86)",
        "USERPROFILE", "HOMEDRIVE", "HOMEPATH", "NUMBER_OF_PROCESSORS",
        "PROCESSOR_ARCHITECTURE", "OS",
        # where things are cached and which certificates to trust
        "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "SSL_CERT_FILE",
        "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
        # the facts of the run (no credentials among them)
        "CI", "GITHUB_ACTIONS", "GITHUB_WORKSPACE", "GITHUB_REPOSITORY", "GITHUB_REF",
        "GITHUB_REF_NAME", "GITHUB_REF_TYPE", "GITHUB_SHA", "GITHUB_EVENT_NAME",
        "GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "RUNNER_OS", "RUNNER_ARCH", "RUNNER_TEMP",
        "SOURCE_DATE_EPOCH", "PYTHONHASHSEED", "PYTHONUTF8", "PYTHONIOENCODING",
        "VIRTUAL_ENV", "PYENV_VERSION", "PYENV_ROOT",
    }
)  # fmt: skip
#: Prefixes passed through (installer, locale and backend settings).
ALLOWED_PREFIXES = ("LC_", "PIP_", "UV_", "SETUPTOOLS_SCM_", "HATCH_", "FLIT_", "PDM_")
#: Never passed, whatever the name's prefix.
_CREDENTIAL = re.compile(r"TOKEN|PASSW|SECRET|PASSPHRASE|CREDENTIAL|AUTH|(^|_)KEY($|_)", re.I)


#: Credentials by name that :data:`_CREDENTIAL` does not catch (the OIDC request URL mints a
#: token with the request token; AWS and GPG settings name keys and profiles).
_CREDENTIAL_NAMES = frozenset(
    {
        "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_RUNTIME_URL", "ACTIONS_CACHE_URL",
        "ACTIONS_RESULTS_URL", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "GNUPGHOME", "SSH_AUTH_SOCK", "NETRC",
    }
)  # fmt: skip
#: ``scheme://user:password@host``: the userinfo of a URL value.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*@)")

_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


def is_credential(name: str) -> bool:
    """Whether the variable ``name`` holds (or leads to) a credential."""
    return bool(_CREDENTIAL.search(name)) or name in _CREDENTIAL_NAMES


def strip_url_credentials(value: str) -> str:
    """``value`` with the ``user:password@`` of every URL in it removed."""
    if "@" not in value:
        return value
    return _URL_USERINFO.sub(lambda m: m.group("scheme"), value)


def allowed(name: str) -> bool:
    """Whether the variable ``name`` may reach the project's code."""
    if _CREDENTIAL.search(name):
        return False
    return name in ALLOWED or name.startswith(ALLOWED_PREFIXES)


def project_env(
    extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed part of ``base`` (default: this process's environment), plus ``extra``.

    ``extra`` is what upm-release itself sets for the child (a PATH entry, the pytest
    plugin); it is trusted and passed whole. Every call makes the process non-dumpable first
    (:func:`make_non_dumpable`): its callers start project code with the result.
    """
    make_non_dumpable()
    source = os.environ if base is None else base
    env = {name: strip_url_credentials(value) for name, value in source.items() if allowed(name)}
    env.update(extra or {})
    return env


def install_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of upm-ci's own pip that installs wheels only (no project code runs):
    the allow-list of :func:`project_env` with the index URLs' credentials kept (pip needs them
    to install from a private index), never a token of the job."""
    source = os.environ if base is None else base
    env = project_env(base=source)
    for name, value in source.items():
        if allowed(name) and name.startswith(("PIP_", "UV_")) and "URL" in name:
            env[name] = value
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def isolate_process(keep: Collection[str] = ()) -> list[str]:
    """Make upm-ci fit to start the project's code: non-dumpable, and no credential left in
    its own ``os.environ`` (but the names in ``keep``); the names dropped.

    Idempotent. Non-dumpable (Linux): ``/proc/<pid>/environ``, ``/proc/<pid>/mem`` and ptrace
    of this process are closed to other processes of the same user without
    ``CAP_SYS_PTRACE`` (the environ file shows the environment the process started with,
    whatever ``os.environ`` says now, so this is what protects the caller's secrets).
    Elsewhere it is a no-op with a debug log.
    """
    make_non_dumpable()
    dropped = [name for name in os.environ if is_credential(name) and name not in keep]
    for name in dropped:
        del os.environ[name]
    if dropped:
        log.debug("dropped from upm-ci's own environment: %s", ", ".join(sorted(dropped)))
    return dropped


def make_non_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)`` on Linux; whether the process is now non-dumpable."""
    if not sys.platform.startswith("linux"):
        log.debug("non-dumpable: not on Linux (%s), nothing to do", sys.platform)
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.debug("prctl(PR_SET_DUMPABLE, 0) failed: errno %d", ctypes.get_errno())
            return False
        return int(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError) as e:
        log.debug("non-dumpable: prctl unavailable (%s)", e)
        return False
