"""Print a key of hash-pinned locks: sha256 of the files given and the Python running this.

setup.sh keys the tool venv by ``requirements.txt`` and ``uv.txt`` (a venv whose
``.upm-release-key`` marker holds this key is reused; one built from other locks or another
interpreter is rebuilt), and the cached uv binary by ``uv.txt`` alone. Runs with
``python -I``: stdlib only.
"""

import hashlib
import sys
from pathlib import Path

digest = hashlib.sha256()
for name in sys.argv[1:]:
    digest.update(hashlib.sha256(Path(name).read_bytes()).digest())
digest.update(sys.version.encode())
print(digest.hexdigest())
