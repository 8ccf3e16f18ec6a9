#!/usr/bin/env python3
"""Training speed: CleanRL's ppo.py and `keel train` on CartPole-v1, same hyperparameters and
budget, in one run; prints steps per second, final returns and the ratio.

CleanRL 1.2.0's ppo.py (from its PyPI wheel, on gym 0.23's CartPole-v1, torch 2.11 on CPU) is run
as shipped, with its defaults: 4 envs x 128 steps, 4 epochs of 4 minibatches, lr 2.5e-4 annealed.
Keel runs the same settings, with CleanRL's handling of time limits (`bootstrap_truncated=false`).
Both use one libtorch thread (CleanRL via OMP_NUM_THREADS=1, the faster setting on 2 cores).
Returns are the mean of the last 100 training episodes of each run.

    bash scripts/bench_train_setup.sh                       # once: the CleanRL venv
    .venv/bin/python scripts/bench_train.py [--timesteps 100000] [--seeds 1]
"""

import argparse
import glob
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("KEEL_CACHE", pathlib.Path.home() / ".cache/keel"))
CLEANRL_PY = CACHE / "cleanrl-venv/bin/python"

READ_RETURNS = """
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
values = [e.value for e in acc.Scalars("charts/episodic_return")]
last = values[-100:]
print(sum(last) / len(last))
"""


def run_cleanrl(timesteps, seed, workdir):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    script = CLEANRL_PY.parent.parent / "lib/python3.11/site-packages/cleanrl/ppo.py"
    start = time.perf_counter()
    out = subprocess.run(
        [str(CLEANRL_PY), str(script), "--total-timesteps", str(timesteps), "--seed", str(seed), "--cuda", "False"],
        cwd=workdir, env=env, capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - start
    sps = [int(m) for m in re.findall(r"SPS:\s*(\d+)", out.stdout)]
    events = sorted(glob.glob(str(pathlib.Path(workdir) / "runs" / "*")))[-1]
    ret = float(subprocess.run([str(CLEANRL_PY), "-c", READ_RETURNS, events], capture_output=True, text=True, check=True).stdout)
    return {"sps": sps[-1] if sps else timesteps / wall, "return": ret, "wall_s": wall}


def run_keel(timesteps, seed, workdir):
    run_dir = pathlib.Path(workdir) / f"keel_s{seed}"
    start = time.perf_counter()
    subprocess.run(
        [str(ROOT / "target/keel"), "train", "--algo", "ppo", "--env", "keel/CartPole-v1", "--seed", str(seed),
         "--total-timesteps", str(timesteps), "--set", "bootstrap_truncated=false", "--run-dir", str(run_dir), "--quiet"],
        check=True, capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"sps": summary["sps"], "return": summary["final_return_mean"], "wall_s": wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    if not CLEANRL_PY.exists():
        sys.exit(f"{CLEANRL_PY} missing: run scripts/bench_train_setup.sh first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            rows.append(("CleanRL ppo.py", seed, run_cleanrl(args.timesteps, seed, tmp)))
            rows.append(("keel train", seed, run_keel(args.timesteps, seed, tmp)))
    print(f"CartPole-v1, {args.timesteps} steps, CleanRL ppo.py defaults\n")
    print("| trainer | seed | SPS | final return (last 100) | wall s |")
    print("|---|---:|---:|---:|---:|")
    for name, seed, r in rows:
        print(f"| {name} | {seed} | {r['sps']:.0f} | {r['return']:.1f} | {r['wall_s']:.1f} |")
    keel = statistics.median(r["sps"] for n, _, r in rows if n == "keel train")
    clean = statistics.median(r["sps"] for n, _, r in rows if n != "keel train")
    print(f"\nmedian SPS: keel {keel:.0f}, CleanRL {clean:.0f}: ratio {keel / clean:.1f}x")


if __name__ == "__main__":
    main()
