#!/usr/bin/env bash
# Sets everything up (idempotent) and runs Keel's main job. Until training lands, that is the
# vector-engine benchmark over every registered env, printed as a table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
# Classic control at full width; the PDE envs (milliseconds per step, not nanoseconds) with a
# smaller batch so the job stays within minutes.
for id in keel/CartPole-v1 keel/Acrobot-v1 keel/MountainCar-v0 keel/MountainCarContinuous-v0 keel/Pendulum-v1; do
  "$root/target/keel" bench --env "$id" --num-envs 256 --steps 2000 --repeats 5 "$@"
done
"$root/target/keel" bench --env keel/Burgers-v0 --num-envs 16 --workers 2 --steps 20 --repeats 3 "$@"
