#!/usr/bin/env bash
# Idempotent: a Python environment with controlgym 1.0.0 and its own pinned dependencies
# (numpy < 2, gymnasium 0.29.1, scipy, torch), for the golden-data and benchmark scripts that run
# controlgym itself. It is separate from Keel's environment (.venv: numpy 2, gymnasium 1.4),
# which holds only controlgym's data files (see scripts/setup.sh).
#
# Usage: bash scripts/controlgym_venv.sh [SCRIPT.py ARGS...]: makes the venv if needed, then runs
# the script with its Python (single-threaded BLAS), e.g.
#   bash scripts/controlgym_venv.sh scripts/golden_controlgym.py
#   bash scripts/controlgym_venv.sh scripts/bench_controlgym.py
# Environment variables: KEEL_CACHE (default $HOME/.cache/keel); the venv is
# $KEEL_CACHE/controlgym-venv.
set -euo pipefail
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
venv="$cache/controlgym-venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "controlgym venv: creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('controlgym') == '1.0.0'" 2>/dev/null; then
  echo "controlgym venv: installing controlgym 1.0.0 (with torch; this happens once)"
  "$venv/bin/pip" install -q "controlgym==1.0.0" "torch==2.11.0"
fi
if [ "$#" -gt 0 ]; then
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  exec "$venv/bin/python" "$@"
fi
echo "$venv/bin/python"
