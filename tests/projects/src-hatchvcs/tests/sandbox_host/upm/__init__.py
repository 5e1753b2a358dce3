"""A minimal stand-in for the UPM host, for tests only (never shipped)."""
