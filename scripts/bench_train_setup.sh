#!/usr/bin/env bash
# A venv for scripts/bench_train.py: CleanRL 1.2.0 (its ppo.py, from the PyPI wheel) with the
# stack it was written for (gym 0.23, NumPy 1.x) and the same torch as Keel's libtorch.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
venv="$KEEL_CACHE/cleanrl-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "torch==2.11.0" "numpy<2" "gym==0.23.1" "tensorboard" "pygame"
# CleanRL 1.2.0 declares python <3.11 but its ppo.py runs on 3.11; its pinned extras are not needed.
"$venv/bin/pip" install -q --no-deps --ignore-requires-python "cleanrl==1.2.0"
echo "bench setup: done: $venv"
