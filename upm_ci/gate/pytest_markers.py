"""pytest plugin the gate loads into the project's test run: markers into the JUnit XML.

The gate judges suites ``marker:NAME`` and sandbox coverage ``@pytest.mark.sandbox("plugin")``
from JUnit XML, where pytest writes a test's ``user_properties`` as ``<property>`` elements
(in every JUnit family). This plugin adds ``("marker", NAME)`` for each marker of each test
and ``("sandbox", PLUGIN)`` for each argument of a ``sandbox`` marker, so the project needs no
conftest of its own. It also registers ``sandbox`` so ``--strict-markers`` projects accept it.

The gate copies this file into a directory of its own, puts that directory on the test run's
``PYTHONPATH`` and names the module in ``PYTEST_PLUGINS``: it imports nothing from upm_ci,
because upm_ci is not installed in the project's test environment.
"""

from __future__ import annotations

from typing import Any

#: Marks pytest applies itself; they name no suite.
_BUILTIN = frozenset(
    {"parametrize", "usefixtures", "filterwarnings", "skip", "skipif", "xfail", "timeout"}
)
_DONE = "_upm_release_markers_done"


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "sandbox(plugin): an isolation test covering the named plugin (upm-release)"
    )


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if getattr(item, _DONE, False):
            continue
        setattr(item, _DONE, True)
        present = set(item.user_properties)
        for mark in item.iter_markers():
            if mark.name == "sandbox":
                wanted = [("sandbox", str(plugin)) for plugin in mark.args]
            elif mark.name not in _BUILTIN:
                wanted = [("marker", mark.name)]
            else:
                continue
            for prop in wanted:
                if prop not in present:
                    present.add(prop)
                    item.user_properties.append(prop)
