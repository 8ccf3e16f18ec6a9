#!/usr/bin/env bash
# The SkillMimic-V2 robustness study on keel/HumanoidTrack-v1 (docs/results.md): four
# start-state variants x 3 seeds, the same PPO budget each, then recovery from perturbed starts
# with `keel eval --perturb`, on a clip set.
# Usage: scripts/robustness_study.sh [KEEL] [STEPS] [OUT] [CLIPS]
#   CLIPS: `walk` (default; configs/ppo_humanoid_walk*.toml) or `walk,run`
#   (configs/ppo_humanoid_walk_run*.toml, multi-clip training). With one clip a run's results
#   are robustness_<scale>.json; with several, each clip is evaluated on its own (the run's
#   config with env_config.clip set to it) into robustness_<clip>_<scale>.json.
# Finished runs and evaluations are kept, so an interrupted study continues where it stopped.
set -euo pipefail
KEEL=${1:-keel}
STEPS=${2:-81920}
OUT=${3:-runs/robustness}
CLIPS=${4:-walk}
EPISODES=${EPISODES:-50}
export KEEL_TORCH_THREADS=${KEEL_TORCH_THREADS:-1}
mkdir -p "$OUT" runs
[ -f runs/stg_walk_run.json ] || "$KEEL" curricula stg --clips walk,run --out runs/stg_walk_run.json
PREFIX=configs/ppo_humanoid_${CLIPS//,/_}
IFS=, read -r -a CLIP_LIST <<< "$CLIPS"
declare -A CONFIG=(
  [rsi]=$PREFIX.toml
  [stf]=${PREFIX}_stf.toml
  [stf_ats]=${PREFIX}_stf_ats.toml
  [stf_ats_stg]=${PREFIX}_stf_ats_stg.toml
)
for f in "${CONFIG[@]}"; do [ -f "$f" ] || { echo "no config $f for clips $CLIPS" >&2; exit 2; }; done

# eval_at RUN STEM CLIP SCALE DEST: `keel eval --perturb SCALE` of checkpoint STEM of RUN on
# CLIP (a scratch run folder with the run's config, the clip set, and that checkpoint linked),
# its robustness_<SCALE>.json copied to DEST. Skipped if DEST exists.
eval_at() {
  local run=$1 stem=$2 clip=$3 scale=$4 dest=$5
  [ -f "$dest" ] && return 0
  local tmp="$OUT/.tmp_$(basename "$run")_${stem}_$clip"
  rm -rf "$tmp"; mkdir -p "$tmp/checkpoints"
  sed "s/^clip = .*/clip = \"$clip\"/" "$run/config.toml" > "$tmp/config.toml"
  for f in "$run"/checkpoints/"$stem".*; do ln -s "$(realpath "$f")" "$tmp/checkpoints/"; done
  echo "$stem" > "$tmp/checkpoints/latest"
  "$KEEL" eval --run "$tmp" --perturb "$scale" --episodes "$EPISODES" --deterministic
  cp "$tmp/robustness_$scale.json" "$dest"
  rm -rf "$tmp"
}

for seed in 1 2 3; do
  for v in rsi stf stf_ats stf_ats_stg; do
    run="$OUT/${v}_s$seed"
    if [ ! -f "$run/summary.json" ]; then
      rm -rf "$run"
      "$KEEL" train --config "${CONFIG[$v]}" --seed "$seed" --total-timesteps "$STEPS" --run-dir "$run" --quiet
    fi
    latest=$(cat "$run/checkpoints/latest")
    for clip in "${CLIP_LIST[@]}"; do
      for scale in 0 1 2 4; do
        if [ ${#CLIP_LIST[@]} -eq 1 ]; then
          [ -f "$run/robustness_$scale.json" ] ||
            "$KEEL" eval --run "$run" --perturb "$scale" --episodes "$EPISODES" --deterministic
        else
          eval_at "$run" "$latest" "$clip" "$scale" "$run/robustness_${clip}_$scale.json"
        fi
      done
      # The success rate along training: every kept checkpoint at scale 2.
      for ckpt in "$run"/checkpoints/iter_*.safetensors; do
        stem=$(basename "$ckpt" .safetensors)
        if [ ${#CLIP_LIST[@]} -eq 1 ]; then
          eval_at "$run" "$stem" "$clip" 2 "$run/robustness_2_$stem.json"
        else
          eval_at "$run" "$stem" "$clip" 2 "$run/robustness_${clip}_2_$stem.json"
        fi
      done
    done
  done
done
echo "study done"
