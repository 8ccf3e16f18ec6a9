#!/usr/bin/env bash
# Idempotent: a Python environment with rliable 1.2.0 (Agarwal et al., NeurIPS 2021), the
# reference for `keel report`'s statistics. rliable 1.2.0 imports only with pandas < 3 (its
# dependency `arch` fails under pandas 3), so it lives apart from Keel's environment.
#
# Usage: bash scripts/rliable_venv.sh [SCRIPT.py ARGS...]: makes the venv if needed, then runs
# the script with its Python, e.g.
#   bash scripts/rliable_venv.sh scripts/golden_rliable.py
# Environment variables: KEEL_CACHE (default $HOME/.cache/keel); the venv is
# $KEEL_CACHE/rliable-venv.
set -euo pipefail
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
venv="$cache/rliable-venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "rliable venv: creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('rliable') == '1.2.0'; import rliable.library" 2>/dev/null; then
  echo "rliable venv: installing rliable 1.2.0 with pandas < 3"
  "$venv/bin/pip" install -q "rliable==1.2.0" "pandas<3" "numpy<3"
fi
if [ "$#" -gt 0 ]; then
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  exec "$venv/bin/python" "$@"
fi
echo "$venv/bin/python"
