#!/usr/bin/env bash
# Training throughput of the humanoid walk config against the config it replaced, on one binary,
# alternating the two (REPEATS each) and printing each run's SPS and the medians.
#   bash scripts/bench_humanoid_train.sh [STEPS] [REPEATS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keel="${KEEL_BIN:-$root/target/keel}"
steps="${1:-65536}"
repeats="${2:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
declare -A results
for r in $(seq 1 "$repeats"); do
  for name in before after; do
    config="$root/configs/ppo_humanoid_walk.toml"
    [ "$name" = before ] && config="$root/scripts/humanoid_walk_before.toml"
    KEEL_TORCH_THREADS=1 "$keel" train --config "$config" --total-timesteps "$steps" --run-dir "$tmp/$name$r" --quiet >/dev/null
    sps="$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['sps']))" "$tmp/$name$r/summary.json")"
    echo "$name repeat $r: $sps SPS"
    results[$name]="${results[$name]:-} $sps"
  done
done
for name in before after; do
  echo "$name median: $(python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:]))))" ${results[$name]}) SPS"
done
