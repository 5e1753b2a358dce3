"""Bundled plugins; each is registered in the ``upm_sample.plugins`` entry-point group."""
