"""Importing the package (the smoke test does) runs the spy too."""

from hostile_pkg import spy

spy.run("import")
