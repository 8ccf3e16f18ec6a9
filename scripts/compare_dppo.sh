#!/usr/bin/env bash
# PPO vs D-PPO on CartPole-v1 and Pendulum-v1, 3 seeds each, with the embedded default configs
# (D-PPO: drop_rate 0.1, cross-term ranking per advantage sign). Writes runs under $1 (default
# runs/dppo) and PNGs there: returns, Var(r·A) and Var((r-1)·A) per env. Prints a table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-runs/dppo}"
keel="$root/target/keel"
mkdir -p "$out"
for env in CartPole-v1 Pendulum-v1; do
  for algo in ppo dppo; do
    for seed in 1 2 3; do
      dir="$out/${env}_${algo}_s${seed}"
      [ -f "$dir/summary.json" ] && grep -q '"completed"' "$dir/summary.json" && continue
      rm -rf "$dir"
      "$keel" train --algo "$algo" --env "keel/$env" --seed "$seed" --run-dir "$dir" --quiet > /dev/null
    done
  done
  "$keel" plot "$out/${env}"_*_s* --out "$out/${env}_return.png" > /dev/null
  "$keel" plot "$out/${env}"_*_s* --metric surrogate_variance --out "$out/${env}_surrogate_variance.png" > /dev/null
  "$keel" plot "$out/${env}"_*_s* --metric deviation_variance --out "$out/${env}_deviation_variance.png" > /dev/null
done
python3 - "$out" <<'PY'
import csv, json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
print("| env | algo | final_return_mean per seed | mean ± std | mean Var(r·A) | mean Var((r-1)·A) | kept fraction |")
print("|---|---|---|---:|---:|---:|---:|")
for env in ["CartPole-v1", "Pendulum-v1"]:
    for algo in ["ppo", "dppo"]:
        finals, variances, deviations, kept = [], [], [], []
        for seed in (1, 2, 3):
            run = out / f"{env}_{algo}_s{seed}"
            finals.append(json.loads((run / "summary.json").read_text())["final_return_mean"])
            rows = list(csv.DictReader((run / "metrics.csv").open()))
            variances.append(statistics.mean(float(r["surrogate_variance"]) for r in rows))
            deviations.append(statistics.mean(float(r["deviation_variance"]) for r in rows))
            kept.append(statistics.mean(float(r["kept_fraction"]) for r in rows))
        per_seed = ", ".join(f"{f:.1f}" for f in finals)
        print(f"| {env} | {algo} | {per_seed} | {statistics.mean(finals):.1f} ± {statistics.stdev(finals):.1f} | "
              f"{statistics.mean(variances):.4f} | {statistics.mean(deviations):.5f} | {statistics.mean(kept):.3f} |")
PY
