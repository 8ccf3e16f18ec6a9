#!/usr/bin/env bash
# Idempotent, opt-in: a Python environment where RLlib's PPO trains on Keel's envs. RLlib 2.60's
# `rllib` extra pins gymnasium 1.2.2 and Keel's environment (.venv) pins 1.4.0, so RLlib lives
# apart, with Keel's wheel (built from this checkout by `maturin build`, never `maturin develop`)
# installed into it. RLlib also needs torch: about 4.5 GB with its CUDA libraries, which is why
# scripts/setup.sh does not make this venv (see docs/python.md, "RLlib"; scripts/test.sh makes it for its test).
#
# Usage: bash scripts/rllib_venv.sh [SCRIPT.py ARGS...]: makes the venv if needed, (re)installs
# Keel's wheel when the Rust or Python sources changed, then runs the script with its Python, e.g.
#   bash scripts/rllib_venv.sh scripts/rllib_cartpole.py
# Environment variables: KEEL_CACHE (default $HOME/.cache/keel); the venv is
# $KEEL_CACHE/rllib-venv. Source scripts/env.sh first (CARGO_TARGET_DIR, the maturin on PATH).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
venv="$cache/rllib-venv"
python="${PYTHON:-python3}"
requirements=(
  "ray[rllib]==2.60.0"
  "gymnasium==1.2.2"
  "torch==2.11.0"
  "numpy>=2,<3"
)
if [ ! -x "$venv/bin/python" ]; then
  echo "rllib venv: creating $venv" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
fi
stamp="$venv/.keel-requirements"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${requirements[*]}" ]; then
  echo "rllib venv: installing ${requirements[*]} (about 4.5 GB with torch, once)" >&2
  "$venv/bin/pip" install -q "${requirements[@]}" >&2
  printf '%s\n' "${requirements[*]}" > "$stamp"
fi

# Keel's wheel, rebuilt when a source file is newer than the installed one.
installed="$venv/.keel-wheel"
newest="$(find "$root/python/keel" "$root/python/src" "$root/python/Cargo.toml" "$root/python/pyproject.toml" \
  "$root/envs/src" "$root/envs/Cargo.toml" "$root/physics/src" "$root/physics/Cargo.toml" -newer "$installed" \
  -type f \( -name '*.rs' -o -name '*.py' -o -name '*.toml' -o -name '*.json' \) -print -quit 2>/dev/null || true)"
if [ ! -f "$installed" ] || [ -n "$newest" ]; then
  maturin="${MATURIN:-$(command -v maturin)}"
  wheels="$(mktemp -d)"
  trap 'rm -rf "$wheels"' EXIT
  echo "rllib venv: building Keel's wheel (maturin build --release)" >&2
  (cd "$root" && "$maturin" build --release --quiet -m python/Cargo.toml -i "$venv/bin/python" -o "$wheels" >&2)
  "$venv/bin/pip" install -q --force-reinstall --no-deps "$wheels"/keel-*.whl >&2
  touch "$installed"
fi

if [ "$#" -gt 0 ]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  exec "$venv/bin/python" "$@"
fi
echo "$venv/bin/python"
