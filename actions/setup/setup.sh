#!/usr/bin/env bash
# Create (or reuse) upm-release's own virtual environment and print its python path.
#
# The venv lives in $RUNNER_TEMP (or $UPM_TOOL_VENV), never in the user's environment. It is
# keyed by the sha256 of the hash-pinned lock and the base Python's version (lock_key.py): a
# venv whose marker matches is reused (a later phase in the same job, or a venv a test
# prepared). Dependencies come only from requirements.txt with --require-hashes --no-deps.
# upm_ci itself is copied from this action's own checkout on every run (a few ms), so the
# code always matches the action's ref and no unpinned build backend ever runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="$here/requirements.txt"
source_root="$(cd "$here/../.." && pwd)"
base="${UPM_BASE_PYTHON:-python3}"

if [ ! -f "$source_root/upm_ci/__init__.py" ]; then
  echo "::error::upm-release: $source_root/upm_ci not found; the action checkout is incomplete" >&2
  exit 2
fi

key="$("$base" -I "$here/lock_key.py" "$lock")"

venv="${UPM_TOOL_VENV:-}"
if [ -z "$venv" ]; then
  venv="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/upm-release-venv-${key:0:16}"
fi
marker="$venv/.upm-release-key"

case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*) python="$venv/Scripts/python.exe" ;;
  *) python="$venv/bin/python" ;;
esac

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$key" ] && [ -x "$python" ]; then
  echo "upm-release: reusing tool venv $venv"
else
  if [ -e "$venv" ] && [ ! -f "$marker" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
    echo "::error::upm-release: tool-venv $venv exists and is not an upm-release tool venv;" \
      "pass an empty or new directory" >&2
    exit 2
  fi
  start=$SECONDS
  rm -rf "$venv"
  if command -v uv > /dev/null 2>&1 && [ "${UPM_NO_UV:-}" != "true" ]; then
    uv venv --quiet --python "$base" "$venv"
    uv pip install --quiet --python "$python" --require-hashes --no-deps -r "$lock"
  else
    "$base" -m venv "$venv"
    "$python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
      -r "$lock"
  fi
  echo "$key" > "$marker"
  echo "upm-release: tool venv ready in $((SECONDS - start)) s at $venv"
fi

site="$("$python" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
rm -rf "$site/upm_ci"
cp -R "$source_root/upm_ci" "$site/upm_ci"

"$python" -I -c 'import upm_ci' || {
  echo "::error::upm-release: the tool venv at $venv cannot import upm_ci" >&2
  exit 2
}
echo "python=$python" >> "${GITHUB_OUTPUT:-/dev/null}"
