#!/usr/bin/env bash
# The SkillMimic-V2 robustness study on keel/HumanoidTrack-v0 `walk` (docs/results.md): four
# start-state variants x 3 seeds, the same PPO budget each, then recovery from perturbed starts
# with `keel eval --perturb`. Usage: scripts/robustness_study.sh [KEEL] [STEPS] [OUT]
set -euo pipefail
KEEL=${1:-keel}
STEPS=${2:-81920}
OUT=${3:-runs/robustness}
EPISODES=${EPISODES:-50}
export KEEL_TORCH_THREADS=${KEEL_TORCH_THREADS:-1}
mkdir -p "$OUT"
[ -f runs/stg_walk_run.json ] || "$KEEL" curricula stg --clips walk,run --out runs/stg_walk_run.json
declare -A CONFIG=(
  [rsi]=configs/ppo_humanoid_walk.toml
  [stf]=configs/ppo_humanoid_walk_stf.toml
  [stf_ats]=configs/ppo_humanoid_walk_stf_ats.toml
  [stf_ats_stg]=configs/ppo_humanoid_walk_stf_ats_stg.toml
)
for seed in 1 2 3; do
  for v in rsi stf stf_ats stf_ats_stg; do
    run="$OUT/${v}_s$seed"
    if [ ! -f "$run/summary.json" ]; then
      rm -rf "$run"
      "$KEEL" train --config "${CONFIG[$v]}" --seed "$seed" --total-timesteps "$STEPS" --run-dir "$run" --quiet
    fi
    for scale in 0 1 2 4; do
      "$KEEL" eval --run "$run" --perturb "$scale" --episodes "$EPISODES" --deterministic
    done
    # The success rate along training: every kept checkpoint at scale 2.
    for ckpt in "$run"/checkpoints/iter_*.safetensors; do
      stem=$(basename "$ckpt" .safetensors)
      tmp="$OUT/.tmp_${v}_s${seed}_$stem"
      rm -rf "$tmp"; mkdir -p "$tmp/checkpoints"
      cp "$run/config.toml" "$tmp/"
      for f in "$run"/checkpoints/"$stem"*; do ln -s "$(realpath "$f")" "$tmp/checkpoints/"; done
      echo "$stem" > "$tmp/checkpoints/latest"
      "$KEEL" eval --run "$tmp" --perturb 2 --episodes "$EPISODES" --deterministic
      cp "$tmp/robustness_2.json" "$run/robustness_2_$stem.json"
      rm -rf "$tmp"
    done
  done
done
echo "study done"
