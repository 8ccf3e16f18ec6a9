#!/usr/bin/env bash
# Idempotent: a Python environment with the Atari peers Keel is checked and measured against:
# ale-py 0.12.1 (the same ALE that keel-ale-sys compiles), gymnasium 1.4.0, opencv-python-headless
# (the INTER_AREA resize), envpool (the speed reference) and tensorboard (CleanRL's logging).
# It sits on top of Keel's environment (a .pth file adds $KEEL_CACHE/venv's packages after its
# own), so torch and Stable-Baselines3 2.9.2 (whose Atari wrappers CleanRL uses) are not downloaded twice.
#
# Usage: bash scripts/atari_venv.sh [SCRIPT.py ARGS...]: makes the venv if needed, then runs the
# script with its Python, e.g.
#   bash scripts/atari_venv.sh scripts/golden_atari.py
#   bash scripts/atari_venv.sh scripts/bench_atari.py
# Environment variables: KEEL_CACHE (default $HOME/.cache/keel); the venv is
# $KEEL_CACHE/atari-venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
base="$cache/venv"
venv="$cache/atari-venv"
python="${PYTHON:-python3}"
if [ ! -x "$base/bin/python" ]; then
  echo "atari venv: Keel's environment is missing; run scripts/setup.sh first" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "atari venv: creating $venv"
  "$python" -m venv "$venv"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  base_site="$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # addsitedir (not a plain path line) so that the .pth files there, e.g. the editable install
  # of Keel's Python module, apply too.
  echo "import site; site.addsitedir('$base_site')" > "$site/keel-base.pth"
fi
requirements=(
  "ale-py==0.12.1"
  "gymnasium==1.4.0"
  "opencv-python-headless==4.14.0.94"
  "envpool==1.2.5"
  # CleanRL's ppo_atari_envpool.py logs with torch's SummaryWriter (scripts/cleanrl_ppo_atari.py).
  "tensorboard==2.20.0"
)
stamp="$venv/.keel-requirements"
wanted="$(printf '%s\n' "${requirements[@]}")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "atari venv: installing ${requirements[*]}"
  "$venv/bin/pip" install -q "${requirements[@]}"
  printf '%s\n' "$wanted" > "$stamp"
fi
if [ "$#" -gt 0 ]; then
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  cd "$root"
  exec "$venv/bin/python" "$@"
fi
echo "$venv/bin/python"
