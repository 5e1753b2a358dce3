"""The environment the project's own code runs in: its tests, its build backend, its installs.

That code is the project's, not upm-release's, and a job may hold an OIDC request token, a
GitHub token, an index password or a GPG passphrase. Rather than remove the secrets we know
of, the project gets an allow-list: what a shell, Python, pip and git need to work, and the
harmless facts of the run. Anything named like a credential is dropped even where a prefix
is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

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
    plugin); it is trusted and passed whole.
    """
    source = os.environ if base is None else base
    env = {name: value for name, value in source.items() if allowed(name)}
    env.update(extra or {})
    return env
