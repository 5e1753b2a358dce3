"""Print the key of the tool venv: sha256 of the hash-pinned lock and the Python running this.

setup.sh reuses a venv whose ``.upm-release-key`` marker holds this key; a venv built from
another lock or another interpreter is rebuilt. Runs with ``python -I``: stdlib only.
"""

import hashlib
import sys
from pathlib import Path

digest = hashlib.sha256(Path(sys.argv[1]).read_bytes())
digest.update(sys.version.encode())
print(digest.hexdigest())
