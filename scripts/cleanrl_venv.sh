#!/usr/bin/env bash
# Idempotent: a Python environment where CleanRL 1.2.0's `ppo.py` and `dqn.py` run as released, for
# the PPO parity recording (scripts/cleanrl_parity.py) and the DQN comparison (scripts/compare_dqn.py). It is separate from Keel's environment (.venv:
# numpy 2, gymnasium 1.4): CleanRL 1.2.0's `ppo.py` is written against gym 0.23.1 (4-tuple
# `step`, `env.seed`), which needs numpy < 2.
#
# CleanRL 1.2.0 declares Python >= 3.7.1, < 3.11, so a Python 3.10 is used when one is found
# ($PYTHON, `python3.10` on the PATH, or a pyenv 3.10); otherwise `python3` with
# `--ignore-requires-python` (ppo.py itself runs on 3.11; `distutils` is removed only in 3.12).
# The package is installed without its declared dependencies (wandb, stable-baselines3 1.2.0,
# moviepy, huggingface-hub are not used by `ppo.py` without --track/--capture-video); what
# `ppo.py` imports is pinned below (pygame at CleanRL's pin: gym 0.23.1's CartPole imports it).
#
# Usage: bash scripts/cleanrl_venv.sh [SCRIPT.py ARGS...]: makes the venv if needed, then runs
# the script with its Python (single-threaded torch and BLAS), e.g.
#   bash scripts/cleanrl_venv.sh scripts/cleanrl_parity.py
# Environment variables: KEEL_CACHE (default $HOME/.cache/keel); the venv is
# $KEEL_CACHE/cleanrl-venv.
set -euo pipefail
cache="${KEEL_CACHE:-$HOME/.cache/keel}"
venv="$cache/cleanrl-venv"
requirements=(
  "gym==0.23.1"
  "numpy==1.26.4"
  "torch==2.11.0"
  "tensorboard==2.20.0"
  "pygame==2.1.0"
  # dqn.py: gymnasium (CleanRL's lower bound) and the SB3 replay buffer it asks for (>= 2.0).
  "gymnasium==0.28.1"
  "stable-baselines3==2.0.0"
)

# The first Python 3.10 that runs (a pyenv shim can exist without its version being active).
find_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  local candidate
  for candidate in python3.10 $(ls -d "$(pyenv root 2>/dev/null)"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -rV); do
    if "$candidate" --version >/dev/null 2>&1; then echo "$candidate"; return; fi
  done
  echo python3
}

if [ ! -x "$venv/bin/python" ]; then
  python="$(find_python)"
  echo "cleanrl venv: creating $venv with $("$python" --version 2>&1) ($python)"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
stamp="$venv/.keel-requirements"
wanted="$(printf '%s\n' cleanrl==1.2.0 "${requirements[@]}")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "cleanrl venv: installing cleanrl==1.2.0 ${requirements[*]} (torch is large; this happens once)"
  "$venv/bin/pip" install -q "${requirements[@]}"
  "$venv/bin/pip" install -q --no-deps --ignore-requires-python "cleanrl==1.2.0"
  printf '%s\n' "$wanted" > "$stamp"
fi
if [ "$#" -gt 0 ]; then
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
  exec "$venv/bin/python" "$@"
fi
echo "$venv/bin/python"
