#!/usr/bin/env bash
# Find a Python >= 3.10 on the runner without changing anything. Writes the step outputs
# `found` (true/false) and `python` (its path); the caller sets up Python only when not found.
set -euo pipefail

found=false
python=""
for candidate in "${UPM_BASE_PYTHON:-}" python3 python; do
  [ -n "$candidate" ] || continue
  path="$(command -v "$candidate" 2>/dev/null || true)"
  [ -n "$path" ] || continue
  if "$path" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    found=true
    python="$path"
    break
  fi
done

if [ "$found" = true ]; then
  echo "upm-release: using $("$python" -c 'import sys; print(sys.version.split()[0])') at $python"
else
  echo "upm-release: no Python >= 3.10 on PATH; setting one up (the job's PATH is untouched)"
fi
{
  echo "found=$found"
  echo "python=$python"
} >> "${GITHUB_OUTPUT:-/dev/null}"
