#!/usr/bin/env bash
# Sets everything up (idempotent) and runs Keel's main job: PPO on keel/CartPole-v1 with the
# embedded default config (CleanRL's ppo.py settings, 500k steps), into runs/main. Ends by
# printing where the run folder and its learning curve are. Extra arguments go to `keel train`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
run_dir="runs/main-$(date +%Y%m%d-%H%M%S)"
exec "$root/target/keel" train --algo ppo --env keel/CartPole-v1 --seed 1 --run-dir "$run_dir" "$@"
