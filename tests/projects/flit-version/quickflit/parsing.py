"""``parse("1h30m") == 5400``."""

import re

#: Seconds per unit, largest first.
UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}

_PART = re.compile(r"\s*(\d+)\s*([wdhms])")


def parse(text: str) -> int:
    """The number of seconds ``text`` (``"1h 30m"``) stands for."""
    total, pos = 0, 0
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match:
            raise ValueError(f"cannot read duration part {text[pos:]!r} of {text!r}")
        total += int(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    return total
