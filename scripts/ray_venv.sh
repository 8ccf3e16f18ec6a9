#!/usr/bin/env bash
# Idempotent: the Python environment that drives `keel sweep --ray` (Ray Tune, pinned). It is
# separate from Keel's environment (.venv) so Ray's dependencies (pandas, pyarrow, ...) never
# move the pins there; the trials run the `keel` program itself, so nothing of Keel is installed
# into it. scripts/setup.sh calls it.
#
# Usage: bash scripts/ray_venv.sh [SCRIPT.py ARGS...]: makes the venv if needed, then runs the
# script with its Python; without arguments prints the Python's path.
# Environment variables: KEEL_CACHE (default $HOME/.cache/keel); the venv is $KEEL_CACHE/ray-venv
# (what `keel sweep --ray` uses unless KEEL_RAY_PYTHON names another Python).
set -euo pipefail
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
venv="$cache/ray-venv"
python="${PYTHON:-python3}"
requirement="ray[tune]==2.60.0"
if [ ! -x "$venv/bin/python" ]; then
  echo "ray venv: creating $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
fi
stamp="$venv/.keel-requirements"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$requirement" ]; then
  echo "ray venv: installing $requirement (about 80 MB, once)" >&2
  "$venv/bin/pip" install -q "$requirement" >&2
  printf '%s\n' "$requirement" > "$stamp"
fi
if [ "$#" -gt 0 ]; then
  exec "$venv/bin/python" "$@"
fi
echo "$venv/bin/python"
