"""upm-sample: a small plugin host that runs every plugin in a sandboxed process."""

__version__ = "1.2.0"
