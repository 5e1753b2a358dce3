"""The plugins' logic, called in-process."""

from __future__ import annotations

import hashlib

import pytest
from upm_sample.plugins import checksum, idna_encode, version_info


def test_checksum_is_sha256_of_utf8() -> None:
    assert checksum.main({"text": "grüß"}) == {
        "sha256": hashlib.sha256("grüß".encode()).hexdigest()
    }


def test_idna_encode_punycodes_each_label() -> None:
    assert idna_encode.main({"domain": "bücher.example"}) == {"ascii": "xn--bcher-kva.example"}


@pytest.mark.parametrize(
    ("given", "normalized", "prerelease"),
    [("1.2.0", "1.2.0", False), ("1.2.0RC1", "1.2.0rc1", True), ("v2", "2", False)],
)
def test_version_info_normalises(given: str, normalized: str, prerelease: bool) -> None:
    assert version_info.main({"version": given}) == {
        "normalized": normalized,
        "prerelease": prerelease,
    }
