"""Changelogs as projects write them: the version sections, in file order.

The gate compares the top section with the version, and publish uses the section as release
notes, so both read it the same way here.

Two formats, chosen by the file's suffix: reStructuredText for ``.rst``, else Markdown. The
version sections are the headings of the level of the first title that carries a version
(the newest entry, where the release is); headings above it, and headings at it before the
first version, are the document's title (``# Changelog``). Titles read as versions when
they look like:

- Keep a Changelog: ``## [1.2.0] - 2026-11-26``, ``## [Unreleased]``, ``[YANKED]``;
- towncrier: ``## [26.1.0](https://…/compare/v26.0.0...v26.1.0) - 2026-01-02``,
  ``## 26.1.0 (2026-01-02)``, rst ``pip 24.0 (2024-02-03)`` over ``=====``;
- ``## Version 8.5.0``, ``# 1.0.0``, ``## v8.1.0``, rst ``Version 8.1.7`` over ``-----``
  followed by a ``Released 2023-08-17`` (or ``Unreleased``) line.

A section whose title or first line says it is not released yet (``Unreleased``, ``TBD``,
``in development``) is not a release. A heading at the version level that carries no version
is not an error here: it is a :class:`Problem` that the ``docs`` gate check reports, and so
is a second section for one version. A problem in or above the released version's section
blocks; one below it is history, a warning (:meth:`Changelog.judged_for`). Only a changelog
that is missing, unreadable, or has no version section at all is an InputError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from upm_ci.errors import InputError

STYLES_HINT = (
    "headings like '## [1.2.0] - 2026-11-26', '## 1.2.0 (2026-11-26)', '## Version 1.2.0', "
    "or in .rst a title '1.2.0 (2026-11-26)' over a line of '-'"
)

_VERSION = re.compile(
    r"""
    ^(?:(?P<name>[A-Za-z][\w.]*?)[\s-]+)?           # project name: 'pip 24.0', 'hatch-v1.9.0'
    (?P<word>(?:version|release|rel\.)\s*)?          # 'Version 8.5.0'
    (?P<v>v)?                                        # 'v1.2.0'
    (?P<version>\d+(?:\.\d+)*
        (?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview|dev|post)[-_.]?\d*)*
        (?:\+[A-Za-z0-9.]+)?)
    (?P<rest>.*)$
    """,
    re.IGNORECASE | re.VERBOSE,
)
_UNRELEASED_TITLE = re.compile(r"^(?:unreleased|upcoming|in development)\b", re.IGNORECASE)
#: Words that may follow a version in a title (dates, release status).
_TRAILER_WORDS = {
    "released",
    "release",
    "on",
    "unreleased",
    "yanked",
    "tbd",
    "tba",
    "not",
    "yet",
    "in",
    "development",
    "upcoming",
    "utc",
    *(
        "jan feb mar apr may jun jul aug sep sept oct nov dec january february march april "
        "june july august september october november december"
    ).split(),
}
_PENDING = re.compile(
    r"\b(?:unreleased|tbd|tba|in development|not (?:yet )?released|upcoming)\b", re.IGNORECASE
)
_ISO_DATE = re.compile(r"\b\d{4}[-/.]\d{2}[-/.]\d{2}\b")
_WORDY_DATE = re.compile(
    r"\b(?:\d{1,2}(?:st|nd|rd|th)?\s+[A-Za-z]{3,9}\.?,?\s+\d{4}|[A-Za-z]{3,9}\.?\s+\d{1,2}"
    r"(?:st|nd|rd|th)?,?\s+\d{4})\b"
)
#: A first body line that dates the section: 'Released 2023-08-17', 'Unreleased'.
_RELEASED_LINE = re.compile(
    r"^[*_]*(?:(?P<released>released)(?:\s+on)?:?\s+(?P<date>[^*_]+?)|(?P<pending>unreleased|"
    r"not (?:yet )?released|in development)\.?)[*_]*\s*$",
    re.IGNORECASE,
)

_MD_ATX = re.compile(r"^ {0,3}(?P<hashes>#{1,6})(?:[ \t]+(?P<title>.*?))?[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_MD_LINK_DEF = re.compile(r"^ {0,3}\[(?P<label>[^\]]+)\]:[ \t]*\S")
_MD_REF = re.compile(r"\[(?P<text>[^\]]*)\](?:\[(?P<label>[^\]]*)\])?")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


@dataclass(frozen=True)
class Section:
    """One version section: ``version`` as written (without a ``v``), or ``Unreleased``."""

    version: str
    date: str | None
    body: str
    line: int
    #: The title says so, or its first line does: ``[1.3.0] - Unreleased``, ``TBD``.
    pending: bool = False

    @property
    def is_unreleased(self) -> bool:
        return self.pending or self.version.lower() == "unreleased"


@dataclass(frozen=True)
class Problem:
    """A heading at the version level that cannot be read, or a second section for a version
    (``version``), with its line."""

    line: int
    message: str
    version: str = ""


@dataclass(frozen=True)
class Changelog:
    """What a changelog holds: its version sections in file order, and what could not be read."""

    path: Path
    sections: tuple[Section, ...]
    problems: tuple[Problem, ...] = field(default=())

    @property
    def released(self) -> list[Section]:
        """Sections that are releases (not ``Unreleased`` or marked so), newest first as written."""
        return [s for s in self.sections if not s.is_unreleased]

    def section_for(self, version: str) -> Section | None:
        """The released section for ``version`` (compared as PEP 440 versions when both parse)."""
        return next((s for s in self.released if same_version(s.version, version)), None)

    def judged_for(self, version: str) -> tuple[list[Problem], list[Problem]]:
        """The problems as a release of ``version`` sees them: ``(blocking, history)``.

        The release's own section (its heading down to the next version heading) and
        everything above it must be readable and unique, and ``version`` must have one
        section only: those problems block. Problems below it are in sections released long
        ago (a towncrier section written twice, ``## Fixed`` at the version level): history,
        reported but not blocking. Without a section for ``version`` every problem blocks."""
        own = next((s for s in self.sections if same_version(s.version, version)), None)
        if own is None:
            return list(self.problems), []
        below = next((s.line for s in self.sections if s.line > own.line), None)
        blocking: list[Problem] = []
        history: list[Problem] = []
        for problem in self.problems:
            ours = bool(problem.version) and same_version(problem.version, version)
            (blocking if ours or below is None or problem.line < below else history).append(problem)
        return blocking, history


def same_version(a: str, b: str) -> bool:
    """Equal as PEP 440 versions, else as text."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except (InvalidVersion, ValueError):  # ValueError: a part too long to be an int
        return a == b


@dataclass(frozen=True)
class _Heading:
    level: int  # Markdown: number of '#' (setext: 1 or 2); rst: 1 + order of first use
    title: str
    line: int  # the title's line (1-based)
    start: int  # index of the heading's first line (the overline in rst)
    end: int  # index just after the heading's last line


@dataclass(frozen=True)
class _Title:
    version: str
    date: str | None
    pending: bool


def read_changelog(path: Path) -> Changelog:
    """Sections and problems; an InputError for a missing or unreadable file, or no versions."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{path}: file not found", hint="add the changelog or set [tool.upm-release] changelog"
        ) from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a changelog file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    rst = path.suffix.lower() == ".rst"
    lines = text.splitlines()
    headings = _rst_headings(lines) if rst else _markdown_headings(lines)
    titles = {h.line: _read_title(h.title) for h in headings}
    level = _version_level(headings, titles)
    if level is None:
        raise _no_versions(path, headings)
    at_level = [h for h in headings if h.level == level]
    first = next(h.line for h in at_level if titles[h.line] is not None)
    sections: list[Section] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for heading in at_level:
        title = titles[heading.line]
        if title is None:
            if heading.line > first or re.search(r"\d", heading.title):
                problems.append(Problem(heading.line, _unreadable(heading.title, rst)))
            continue
        stop = next(
            (h.start for h in headings if h.start >= heading.end and h.level <= level),
            len(lines),
        )
        body_lines = lines[heading.end : stop]
        date, pending = title.date, title.pending
        dated = _dated_by_first_line(body_lines)
        if dated is not None and title.version.lower() != "unreleased":
            date = date or dated[0]
            pending = pending or dated[1]
        body = _trim(body_lines) if rst else _markdown_body(body_lines, lines)
        sections.append(Section(title.version, date, body, heading.line, pending))
        key = title.version.lower()
        if key != "unreleased":
            if key in seen:
                problems.append(
                    Problem(
                        heading.line,
                        f"a second section for {title.version} (the first is at line "
                        f"{seen[key]}): merge them",
                        title.version,
                    )
                )
            seen.setdefault(key, heading.line)
    return Changelog(path, tuple(sections), tuple(sorted(problems, key=lambda p: p.line)))


def parse_changelog(path: Path) -> list[Section]:
    """All version sections (headings that cannot be read are left out; see read_changelog)."""
    return list(read_changelog(path).sections)


def released_sections(path: Path) -> list[Section]:
    """Sections other than ``[Unreleased]``, newest first as written."""
    return read_changelog(path).released


def section_for(path: Path, version: str) -> Section | None:
    """The section for ``version`` (compared as PEP 440 versions when both parse)."""
    return read_changelog(path).section_for(version)


# --- titles ---------------------------------------------------------------------------------
def _plain_title(title: str) -> str:
    """The title's text: links, link references, rst hyperlinks and emphasis removed."""
    title = re.sub(r"\s*\{:?\s*#[^}]*\}\s*$", "", title)  # '{#anchor}', '{: #anchor }'
    title = re.sub(r"\s+#+\s*$", "", title)  # closing '#'s of an ATX heading
    title = re.sub(r"`([^`<]+?)\s*<[^>]*>`__?", r"\1", title)  # rst `text <url>`_
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # [text](url)
    title = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", title)  # [text][ref]
    title = re.sub(r"^\[([^\]]*)\]", r"\1", title.strip())  # [1.2.0] - date
    return title.strip().strip("*_`").strip()


def _read_title(raw: str) -> _Title | None:
    title = _plain_title(raw)
    if _UNRELEASED_TITLE.match(title):
        return _Title("Unreleased", None, True)
    m = _VERSION.match(title)
    if not m:
        return None
    version, rest = m.group("version"), m.group("rest")
    explicit = m.group("word") or m.group("v")
    if "." not in version and not explicit:
        return None
    if not _readable_trailer(rest):
        return None
    date_match = _ISO_DATE.search(rest) or _WORDY_DATE.search(rest)
    date = date_match.group(0) if date_match else None
    return _Title(version, date, bool(_PENDING.search(rest)))


def _readable_trailer(rest: str) -> bool:
    """What follows a version: nothing, punctuation (' - 2026-01-02', ' (…)'), or a date word."""
    if not rest.strip():
        return True
    if not rest[0].isspace() and rest[0] not in ")]:,;–—/|(" and not rest.startswith("-"):
        return False  # '1.1.x', '1.2.0of'
    stripped = rest.lstrip()
    first_word = re.match(r"[A-Za-z]+", stripped)
    if first_word:
        return first_word.group(0).lower() in _TRAILER_WORDS
    return True


def _dated_by_first_line(body: list[str]) -> tuple[str | None, bool] | None:
    """``(date, pending)`` from a first line like 'Released 2023-08-17' or 'Unreleased'."""
    first = next((line.strip() for line in body if line.strip()), "")
    m = _RELEASED_LINE.match(first)
    if not m:
        return None
    if m.group("pending"):
        return None, True
    date = m.group("date").strip().rstrip(".")
    if not re.search(r"\d", date):
        return None  # 'Released the kraken' is no date
    return date, False


def _unreadable(title: str, rst: bool) -> str:
    example = (
        "'1.2.0 (2026-11-26)' or 'Version 1.2.0' over the underline"
        if rst
        else "'## [1.2.0] - 2026-11-26', '## 1.2.0 (2026-11-26)' or '## Version 1.2.0'"
    )
    return f"cannot read a version in heading {title.strip()!r}: write it like {example}"


def _version_level(headings: list[_Heading], titles: dict[int, _Title | None]) -> int | None:
    """The level of the first heading that carries a version (or says ``Unreleased``).

    The newest entries are at the top, where the release is; what years of history did
    differently further down (a few versions one level deeper, subheadings written at the
    version level) must not move the level the release is read at. Stray headings further
    down at this level read as the history they are (problems that do not block)."""
    return next((h.level for h in headings if titles[h.line] is not None), None)


def _no_versions(path: Path, headings: list[_Heading]) -> InputError:
    """No heading carries a version: point at the heading most likely meant as one."""
    top = min((h.level for h in headings), default=0)
    candidates = [h for h in headings if re.search(r"\d", h.title)]
    candidates = candidates or [h for h in headings if h.level > top]
    if candidates:
        heading = candidates[0]
        return InputError(
            f"{path}:{heading.line}: cannot read version heading {heading.title.strip()!r}, "
            "and no other heading carries a version",
            hint=f"use {STYLES_HINT}",
        )
    return InputError(f"{path}: no version sections found", hint=f"use {STYLES_HINT}")


# --- Markdown -------------------------------------------------------------------------------
def _markdown_headings(lines: list[str]) -> list[_Heading]:
    """ATX (``## x``) and setext (``x`` over ``===``/``---``) headings outside code and comments."""
    out: list[_Heading] = []
    fence = ""
    in_comment = False
    for i, line in enumerate(lines):
        if fence:
            if line.strip().startswith(fence):
                fence = ""
            continue
        if in_comment:
            in_comment = "-->" not in line
            continue
        opened = _MD_FENCE.match(line)
        if opened:
            fence = opened.group("fence")[0] * 3
            continue
        if line.lstrip().startswith("<!--") and "-->" not in line:
            in_comment = True
            continue
        atx = _MD_ATX.match(line)
        if atx:
            out.append(
                _Heading(len(atx.group("hashes")), atx.group("title") or "", i + 1, i, i + 1)
            )
            continue
        if i + 1 < len(lines) and _setext_title(lines, i):
            level = 1 if lines[i + 1].strip().startswith("=") else 2
            out.append(_Heading(level, line.strip(), i + 1, i, i + 2))
    return out


def _setext_title(lines: list[str], i: int) -> bool:
    """A one-line paragraph over ``===`` or ``---`` (at least three)."""
    line, under = lines[i], lines[i + 1]
    if not re.match(r"^ {0,3}(?:={3,}|-{3,})\s*$", under):
        return False
    if (
        not line.strip()
        or line.startswith("    ")
        or re.match(r"^\s*(?:[-*+>|#]|\d+[.)](?:\s|$))", line)
    ):
        return False
    return i == 0 or not lines[i - 1].strip()


def _markdown_body(body: list[str], document: list[str]) -> str:
    """The section's text; link reference definitions it uses are kept, wherever they are.

    Keep a Changelog puts ``[1.2.0]: https://…`` definitions at the bottom of the file, which
    would otherwise end the last section's notes; they are dropped from every body, and the
    ones a body refers to are appended to it so its links still resolve.
    """
    definitions: dict[str, str] = {}
    for line in document:
        m = _MD_LINK_DEF.match(line)
        if m:
            definitions.setdefault(_label(m.group("label")), line.strip())
    kept = [line for line in body if not _MD_LINK_DEF.match(line)]
    text = _trim(kept)
    used: list[str] = []
    for m in _MD_REF.finditer(text):
        if text.startswith("(", m.end()):
            continue  # an inline link
        label = _label(m.group("label") or m.group("text"))
        if label in definitions and definitions[label] not in used:
            used.append(definitions[label])
    return text + "\n\n" + "\n".join(used) if used and text else text


def _label(text: str) -> str:
    return " ".join(text.split()).casefold()


# --- reStructuredText -----------------------------------------------------------------------
def _rst_headings(lines: list[str]) -> list[_Heading]:
    """Section titles: a line under (and optionally over) a line of one punctuation character.

    Levels follow the order in which each adornment style first appears, as in docutils.
    """
    out: list[_Heading] = []
    styles: list[tuple[str, bool]] = []
    i = 0
    while i < len(lines):
        found = _rst_title_at(lines, i)
        if found is None:
            i += 1
            continue
        style, title_index, end = found
        if style not in styles:
            styles.append(style)
        out.append(
            _Heading(styles.index(style) + 1, lines[title_index].strip(), title_index + 1, i, end)
        )
        i = end
    return out


def _rst_title_at(lines: list[str], i: int) -> tuple[tuple[str, bool], int, int] | None:
    """``((char, overlined), title index, end index)`` of a title starting at line ``i``."""
    if i > 0 and lines[i - 1].strip():
        return None  # a title starts a block
    line = lines[i]
    over = _RST_ADORNMENT.match(line)
    if over and i + 2 < len(lines):
        title, under = lines[i + 1], lines[i + 2]
        u = _RST_ADORNMENT.match(under)
        if title.strip() and u and u.group(1) == over.group(1) and not _RST_ADORNMENT.match(title):
            return (over.group(1), True), i + 1, i + 3
    if over or not line.strip() or line[0].isspace() or i + 1 >= len(lines):
        return None
    u = _RST_ADORNMENT.match(lines[i + 1])
    if u and len(lines[i + 1].rstrip()) >= min(len(line.rstrip()), 4):
        return (u.group(1), False), i, i + 2
    return None


def _trim(lines: list[str]) -> str:
    """The lines as they are, without the blank lines around them."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(line.rstrip() for line in lines[start:end])
