"""Counter plugins. Each module has ``main(payload) -> dict`` and UPM's entrypoint block."""
