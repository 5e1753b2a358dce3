"""Make markers visible in JUnit XML, where upm-release's gate reads them.

pytest writes a test's ``user_properties`` as ``<property>`` elements of its ``<testcase>``
(in every JUnit family). Each marker becomes ``<property name="marker" value="NAME"/>``, and
``@pytest.mark.sandbox("plugin")`` becomes ``<property name="sandbox" value="plugin"/>``.
"""

from __future__ import annotations

import pytest

_BUILTIN = {"parametrize", "usefixtures", "filterwarnings", "skip", "skipif", "xfail"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers():
            if mark.name == "sandbox":
                item.user_properties.extend(("sandbox", str(plugin)) for plugin in mark.args)
            elif mark.name not in _BUILTIN:
                item.user_properties.append(("marker", mark.name))
