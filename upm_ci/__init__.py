"""upm-release: carry out UPM's release policy (RELEASE.md) in CI, one phase at a time."""

__version__ = "0.1.0"
