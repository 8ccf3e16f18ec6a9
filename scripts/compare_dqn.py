#!/usr/bin/env python3
"""DQN on CartPole-v1: `keel train --algo dqn` next to CleanRL 1.2.0's `dqn.py`, seed by seed.

Both run the same settings (dqn.py's defaults, which are Keel's `DqnConfig` defaults and
`configs/dqn_cartpole.toml`), one process at a time, interleaved per seed so that machine load
falls on both alike; libtorch and BLAS get one thread each. For every run the script reports the
mean return of the last 100 episodes and the steps per second over the whole process wall time
(start-up included, the same clock for both), and the peak of that last-100 mean over the run
(the best it reached; for Keel from `metrics.csv`, whose rows hold the mean return and the count
of the episodes of each 1000-step iteration, over the fewest trailing iterations holding at
least 100 episodes). It prints a Markdown table with the medians and the SPS ratio, and writes
every number to OUT/summary.json.

    bash scripts/cleanrl_venv.sh      # once: CleanRL's environment
    cargo build --release && cp "$CARGO_TARGET_DIR/release/keel" /tmp/keel-dqn
    .venv/bin/python scripts/compare_dqn.py --keel /tmp/keel-dqn --seeds 1 2 3 --out runs/compare_dqn

Options: --steps (default 500000), --only keel|cleanrl (one side only), --extra KEY=VALUE
(passed to `keel train --set`, e.g. a variant of the Keel side; the table says so).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("KEEL_CACHE", pathlib.Path.home() / ".cache" / "keel"))
CLEANRL_PYTHON = CACHE / "cleanrl-venv" / "bin" / "python"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "KEEL_TORCH_THREADS": "1"}
EPISODE = re.compile(r"episodic_return=\[?([-0-9.e+]+)")


def run_keel(keel: str, seed: int, steps: int, extra: list[str], out: pathlib.Path) -> dict:
    run_dir = out / f"keel_s{seed}"
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    command = [keel, "train", "--algo", "dqn", "--env", "keel/CartPole-v1", "--seed", str(seed),
               "--run-dir", str(run_dir), "--quiet", "--set", f"total_timesteps={steps}"]
    for item in extra:
        command += ["--set", item]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, **ONE_THREAD}, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"final_return_mean": summary["final_return_mean"], "peak_return_mean": keel_peak(run_dir),
            "wall_s": wall, "sps": steps / wall}


def keel_peak(run_dir: pathlib.Path) -> float:
    """The best mean return over trailing windows of whole iterations holding >= 100 episodes."""
    rows = [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if int(r["episodes"]) > 0]
    best = float("-inf")
    for end in range(len(rows)):
        total, count = 0.0, 0
        for row in reversed(rows[: end + 1]):
            total += float(row["episodic_return"]) * int(row["episodes"])
            count += int(row["episodes"])
            if count >= 100:
                best = max(best, total / count)
                break
    return best


def rolling_peak(returns: list[float]) -> float:
    """The best mean of 100 consecutive episodes."""
    return max(statistics.fmean(returns[i - 100:i]) for i in range(100, len(returns) + 1))


def run_cleanrl(seed: int, steps: int, out: pathlib.Path) -> dict:
    work = out / f"cleanrl_s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    command = [str(CLEANRL_PYTHON), "-m", "cleanrl.dqn", "--seed", str(seed), "--total-timesteps", str(steps),
               "--env-id", "CartPole-v1", "--cuda", "False"]
    start = time.perf_counter()
    result = subprocess.run(command, check=True, cwd=work, env={**os.environ, **ONE_THREAD},
                            capture_output=True, text=True)
    wall = time.perf_counter() - start
    returns = [float(m.group(1)) for m in EPISODE.finditer(result.stdout)]
    (work / "stdout.txt").write_text(result.stdout)
    last = returns[-100:]
    return {"final_return_mean": statistics.fmean(last), "peak_return_mean": rolling_peak(returns),
            "episodes": len(returns), "wall_s": wall, "sps": steps / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keel", default=str(ROOT / "target" / "keel"), help="the keel binary")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--only", choices=["keel", "cleanrl"])
    parser.add_argument("--extra", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "runs" / "compare_dqn")
    args = parser.parse_args()
    if args.only != "keel" and not CLEANRL_PYTHON.exists():
        sys.exit(f"error: {CLEANRL_PYTHON} is missing; run `bash scripts/cleanrl_venv.sh` first")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[int, dict]] = {"keel": {}, "cleanrl": {}}
    for seed in args.seeds:
        if args.only != "cleanrl":
            results["keel"][seed] = run_keel(args.keel, seed, args.steps, args.extra, args.out)
            print(f"keel    seed {seed}: {results['keel'][seed]}", file=sys.stderr)
        if args.only != "keel":
            results["cleanrl"][seed] = run_cleanrl(seed, args.steps, args.out)
            print(f"cleanrl seed {seed}: {results['cleanrl'][seed]}", file=sys.stderr)
    (args.out / "summary.json").write_text(json.dumps({"steps": args.steps, "extra": args.extra, **results}, indent=2))

    keel_name = "Keel" + (f" ({', '.join(args.extra)})" if args.extra else "")
    seeds = ", ".join(map(str, args.seeds))
    print(f"| implementation | final last-100 return (seeds {seeds}) | peak last-100 return | median SPS |")
    print("|---|---|---|---:|")
    medians = {}
    for side, name in (("keel", keel_name), ("cleanrl", "CleanRL dqn.py")):
        runs = results[side]
        if not runs:
            continue
        medians[side] = statistics.median(r["sps"] for r in runs.values())
        final = ", ".join(f"{runs[s]['final_return_mean']:.2f}" for s in args.seeds)
        peak = ", ".join(f"{runs[s]['peak_return_mean']:.2f}" for s in args.seeds)
        print(f"| {name} | {final} | {peak} | {medians[side]:,.0f} |")
    if len(medians) == 2:
        print(f"\nSPS ratio Keel / CleanRL (medians): {medians['keel'] / medians['cleanrl']:.1f}x")


if __name__ == "__main__":
    main()
