#!/usr/bin/env bash
# Sets everything up (idempotent) and runs Keel's main job. Until training lands, that is the
# vector-engine benchmark over every registered env, printed as a table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
"$root/target/keel" bench --num-envs 256 --steps 2000 --repeats 5 "$@"
