"""``python -m upm_ci``."""

import sys

from upm_ci.cli import main

if __name__ == "__main__":
    sys.exit(main())
