"""Keep-a-Changelog parsing: the version sections, in file order.

The gate compares the top section with the version, and publish uses the section as release
notes, so both read it the same way here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from upm_ci.errors import InputError

_HEADING = re.compile(r"^##\s+(?P<title>.+?)\s*$")
_VERSION = re.compile(
    r"^\[?(?P<version>[^\]\s]+)\]?(?:\s*[-–—]\s*(?P<date>\d{4}-\d{2}-\d{2}|TBD|unreleased))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Section:
    """One ``## [x.y.z] - date`` section."""

    version: str
    date: str | None
    body: str
    line: int

    @property
    def is_unreleased(self) -> bool:
        return self.version.lower() == "unreleased"


def parse_changelog(path: Path) -> list[Section]:
    """All version sections; an InputError for a missing, empty or unparseable changelog."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found", hint="add a CHANGELOG.md") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    sections: list[Section] = []
    current: tuple[str, str | None, int] | None = None
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        heading = _HEADING.match(line)
        if heading and not line.startswith("###"):
            if current:
                sections.append(
                    Section(current[0], current[1], "\n".join(body).strip(), current[2])
                )
            m = _VERSION.match(heading.group("title"))
            if not m:
                raise InputError(
                    f"{path}:{number}: cannot read version heading {line.strip()!r}",
                    hint="use Keep a Changelog headings: '## [1.2.0] - 2026-11-26'",
                )
            current, body = (m.group("version"), m.group("date"), number), []
        elif current:
            body.append(line)
    if current:
        sections.append(Section(current[0], current[1], "\n".join(body).strip(), current[2]))
    if not sections:
        raise InputError(
            f"{path}: no version sections found",
            hint="use Keep a Changelog headings: '## [1.2.0] - 2026-11-26'",
        )
    return sections


def released_sections(path: Path) -> list[Section]:
    """Sections other than ``[Unreleased]``, newest first as written."""
    return [s for s in parse_changelog(path) if not s.is_unreleased]


def section_for(path: Path, version: str) -> Section | None:
    """The section for ``version`` (compared as PEP 440 versions when both parse)."""
    from packaging.version import InvalidVersion, Version

    for section in released_sections(path):
        try:
            if Version(section.version) == Version(version):
                return section
        except InvalidVersion:
            if section.version == version:
                return section
    return None
