"""``format(5400) == "1h30m"``."""

from quickflit.parsing import UNITS


def format(seconds: int, largest: str = "w") -> str:  # noqa: A001 - the public name
    """``seconds`` as a duration, using units no larger than ``largest``."""
    if seconds < 0:
        raise ValueError("negative duration")
    if largest not in UNITS:
        raise ValueError(f"unknown unit {largest!r}")
    units = list(UNITS.items())
    units = units[[name for name, _ in units].index(largest) :]
    parts = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts) or "0s"
