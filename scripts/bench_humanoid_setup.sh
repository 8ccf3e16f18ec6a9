#!/usr/bin/env bash
# A separate venv for scripts/bench_humanoid.py: MuJoCo 4.0.0 (and numpy), kept out of the project
# venv; and Keel's physics bench binary (physics/examples/bench_physics.rs), built in release mode.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
bench="$KEEL_CACHE/mujoco-venv"
[ -x "$bench/bin/python" ] || python3 -m venv "$bench"
"$bench/bin/pip" install -q "numpy>=2,<3" "mujoco==4.0.0"
(cd "$root" && cargo build --release -q -p keel-physics --example bench_physics)
echo "bench setup: done: $bench/bin/python scripts/bench_humanoid.py"
