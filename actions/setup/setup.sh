#!/usr/bin/env bash
# Create (or reuse) upm-release's own virtual environment and print its python path.
#
# The venv lives in $RUNNER_TEMP (or $UPM_TOOL_VENV), never in the user's environment. It is
# keyed by the sha256 of the hash-pinned locks (requirements.txt, uv.txt) and the base
# Python's version (lock_key.py): a venv whose marker matches is reused (a later phase in the
# same job, or a venv a test prepared). Dependencies come only from requirements.txt with
# --require-hashes --no-deps, installed by uv: the runner's uv when it is on PATH, else the uv
# pinned by hash in uv.txt, fetched with the base Python's own `pip download` (nothing is
# installed into that Python) and cached in $RUNNER_TEMP for later phases of the job. When
# that uv cannot be had (no wheel for the platform, no pip, no index), or UPM_NO_UV=true,
# plain `python -m venv` + pip installs the same lock; a uv download that does not match
# uv.txt's hashes is refused (exit 2). upm_ci itself is copied from this action's own
# checkout on every run (a few ms), so the code always matches the action's ref and no
# unpinned build backend ever runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="$here/requirements.txt"
uv_lock="$here/uv.txt"
source_root="$(cd "$here/../.." && pwd)"
base="${UPM_BASE_PYTHON:-python3}"

if [ ! -f "$source_root/upm_ci/__init__.py" ]; then
  echo "::error::upm-release: $source_root/upm_ci not found; the action checkout is incomplete" >&2
  exit 2
fi

key="$("$base" -I "$here/lock_key.py" "$lock" "$uv_lock")"
temp="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"

venv="${UPM_TOOL_VENV:-}"
if [ -z "$venv" ]; then
  venv="$temp/upm-release-venv-${key:0:16}"
fi
marker="$venv/.upm-release-key"

case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*) python="$venv/Scripts/python.exe" uv_exe=uv.exe ;;
  *) python="$venv/bin/python" uv_exe=uv ;;
esac

# The uv to install with: the runner's, else uv.txt's (downloaded once per job and uv.txt).
# Prints its path; returns 1 when there is none (install with pip), 2 when it was refused.
find_uv() {
  if command -v uv > /dev/null 2>&1; then
    command -v uv
    return 0
  fi
  local uv_key uv_dir rc=0
  uv_key="$("$base" -I "$here/lock_key.py" "$uv_lock")"
  uv_dir="$temp/upm-release-uv-${uv_key:0:16}"
  if [ -O "$uv_dir" ] && [ -O "$uv_dir/$uv_exe" ] && [ -x "$uv_dir/$uv_exe" ]; then
    echo "upm-release: reusing uv from $uv_dir" >&2
  else
    if [ -e "$uv_dir" ] && [ ! -O "$uv_dir" ]; then  # not ours (a shared /tmp): a private one
      uv_dir="$(mktemp -d "$temp/upm-release-uv.XXXXXX")"
    fi
    mkdir -p -m 700 "$uv_dir"
    "$base" -I "$here/bootstrap_uv.py" "$uv_lock" "$uv_dir/$uv_exe" >&2 || rc=$?
    [ "$rc" -eq 0 ] || return "$((rc == 2 ? 2 : 1))"
  fi
  echo "$uv_dir/$uv_exe"
}

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$key" ] && [ -x "$python" ]; then
  echo "upm-release: reusing tool venv $venv"
else
  if [ -e "$venv" ] && [ ! -f "$marker" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
    echo "::error::upm-release: tool-venv $venv exists and is not an upm-release tool venv;" \
      "pass an empty or new directory" >&2
    exit 2
  fi
  start=$SECONDS
  uv=""
  if [ "${UPM_NO_UV:-}" != "true" ]; then
    rc=0
    uv="$(find_uv)" || rc=$?
    if [ "$rc" -eq 2 ]; then
      exit 2
    elif [ "$rc" -ne 0 ]; then
      echo "upm-release: no uv for this runner (see above); installing the lock with pip"
      uv=""
    fi
  fi
  rm -rf "$venv"
  if [ -n "$uv" ]; then
    # uv reads no pip.conf: an index that replaces PyPI for pip (PIP_INDEX_URL) does for uv.
    if [ -n "${PIP_INDEX_URL:-}" ] && [ -z "${UV_DEFAULT_INDEX:-}${UV_INDEX_URL:-}" ]; then
      export UV_DEFAULT_INDEX="$PIP_INDEX_URL"
    fi
    export UV_PYTHON_DOWNLOADS=never
    if "$uv" venv --quiet --python "$base" "$venv" \
      && "$uv" pip install --quiet --python "$python" --require-hashes --no-deps -r "$lock"; then
      installer="uv $("$uv" --version | cut -d' ' -f2)"
    else
      echo "upm-release: uv could not install the lock (see above); installing it with pip"
      rm -rf "$venv"
      uv=""
    fi
  fi
  if [ -z "$uv" ]; then
    installer=pip
    "$base" -m venv "$venv"
    "$python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
      -r "$lock"
  fi
  echo "$key" > "$marker"
  echo "upm-release: tool venv ready in $((SECONDS - start)) s at $venv (installed with $installer)"
fi

site="$("$python" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
rm -rf "$site/upm_ci"
cp -R "$source_root/upm_ci" "$site/upm_ci"
# The lock the venv was installed from, for the toolchain SBOM's hashes (upm_ci/toolchain.py).
cp "$lock" "$site/upm_ci/requirements.lock"

"$python" -I -c 'import upm_ci' || {
  echo "::error::upm-release: the tool venv at $venv cannot import upm_ci" >&2
  exit 2
}
echo "python=$python" >> "${GITHUB_OUTPUT:-/dev/null}"
