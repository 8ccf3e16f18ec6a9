#!/usr/bin/env bash
# On a CUDA machine: build, check that libtorch sees the GPU, run the same short PPO training on
# CPU and on CUDA, and print both SPS figures. Usage: bash scripts/gpu_check.sh [TIMESTEPS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-100000}"
bash "$root/scripts/setup.sh"
cd "$root"
target/keel doctor
if ! target/keel doctor | grep -q "CUDA available: true"; then
  echo "gpu_check: libtorch sees no CUDA device (driver too old for CUDA 13, or no GPU)" >&2
  exit 1
fi
out="$(mktemp -d)"
for device in cpu cuda; do
  target/keel train --algo ppo --env keel/CartPole-v1 --seed 1 --total-timesteps "$steps" \
    --device "$device" --run-dir "$out/$device" --quiet > /dev/null
done
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = {d: json.loads((out / d / "summary.json").read_text()) for d in ("cpu", "cuda")}
for d, s in rows.items():
    print(f"{d}: {s['sps']:.0f} SPS, final_return_mean {s['final_return_mean']:.1f}, {s['wall_time_s']:.1f} s")
print(f"cuda / cpu SPS: {rows['cuda']['sps'] / rows['cpu']['sps']:.2f}")
PY
# ILD: 300 differentiable rollouts of 128 steps + the stepwise backward pass, per iteration, on CPU
# and on CUDA (APG on the true reward: the same rollout and backward as ILD, no demo needed),
# then ILD itself on CUDA from a demo of that run.
for device in cpu cuda; do
  target/keel train --algo apg --env keel/DiffPendulum-v0 --seed 1 --set iterations=5 \
    --set num_envs=300 --device "$device" --run-dir "$out/apg_$device" --quiet > /dev/null
done
target/keel demo --run "$out/apg_cuda" --episodes 1 --steps 128 --out "$out/demo.safetensors"
target/keel train --algo ild --env keel/DiffPendulum-v0 --demo "$out/demo.safetensors" --seed 1 \
  --set iterations=5 --set bc_steps=10 --device cuda --run-dir "$out/ild_cuda" --quiet > /dev/null
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for d in ("apg_cpu", "apg_cuda", "ild_cuda"):
    s = json.loads((out / d / "summary.json").read_text())
    print(f"{d}: 300x128 rollout + backward: {s['wall_time_s'] / 5:.2f} s per iteration ({s['status']})")
PY
