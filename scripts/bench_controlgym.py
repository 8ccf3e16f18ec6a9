#!/usr/bin/env python3
"""Keel vs controlgym 1.0.0 on the ten PDE envs, single thread, in one run, as ratios.

For every env at its default size and at n_state = 1024 and 4096 it measures env steps per
second of:

- controlgym as shipped (`env.step` with 0.1 N(0, 1) actions, default noise settings);
- controlgym with O(n) noise: its `rng.multivariate_normal(0, c I)` (an O(n^3) SVD per call)
  swapped for the bit-identical `sqrt(c) * standard_normal(n)`, to show the cost of its dynamics;
- Keel: `keel bench --num-envs 1 --workers 0` (one env, no worker thread, random actions);

and, once per env at its default size, Keel's 16-env vector on 2 workers (`--num-envs 16
--workers 2`), whose ratio to the single env shows the scaling to both cores.

controlgym as shipped is O(n^3) per step: at n_state = 4096 one step takes about half a minute
and the linear envs' constructors build dense 4096 x 4096 DFT matrices, so at 4096 the peer runs
only where `--peer-4096` names the env (default: burgers, one step).

Usage (controlgym needs its own venv: numpy < 2, gymnasium 0.29.1):
    bash scripts/controlgym_venv.sh scripts/bench_controlgym.py \\
        [--keel target/keel] [--sizes default,1024,4096] [--seconds 2]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import json
import pathlib
import subprocess
import tempfile
import time
import warnings

import numpy as np

import controlgym

from golden_controlgym import KEEL_IDS

warnings.filterwarnings("ignore", category=DeprecationWarning)

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENVS = KEEL_IDS


class LinearNoise:
    """numpy Generator whose multivariate_normal(0, c I) is O(n), bit-identical to numpy's."""

    def __init__(self, rng):
        self.rng = rng

    def multivariate_normal(self, mean, cov):
        return np.sqrt(cov[0, 0]) * self.rng.standard_normal(len(mean)) + mean

    def __getattr__(self, name):
        return getattr(self.rng, name)


def peer_rate(env_id, n_state, seconds, fast_noise, max_steps=None):
    kwargs = {"seed": 0} if n_state is None else {"seed": 0, "n_state": n_state}
    env = controlgym.make(env_id, **kwargs)
    if fast_noise:
        env.rng = LinearNoise(env.rng)
    rng = np.random.default_rng(1)
    env.reset()
    for _ in range(2 if max_steps is None else 0):
        env.step(0.1 * rng.standard_normal(env.n_action))
    steps, start = 0, time.process_time()
    while True:
        _, _, terminated, _, _ = env.step(0.1 * rng.standard_normal(env.n_action))
        steps += 1
        if terminated:
            env.reset()
        elapsed = time.process_time() - start
        if elapsed >= seconds or (max_steps is not None and steps >= max_steps):
            return steps / elapsed, env.n_state


def keel_rate(keel, keel_id, n_state, num_envs, workers, seconds):
    def run(steps, repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "bench.json"
            cmd = [keel, "bench", "--env", keel_id, "--num-envs", str(num_envs), "--workers", str(workers),
                   "--steps", str(steps), "--repeats", str(repeats), "--json", str(out)]
            if n_state is not None:
                cmd += ["--set", f"n_state={n_state}"]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            return json.loads(out.read_text())[0]["median_env_steps_per_s"]

    probe = run(max(1, 8 // num_envs), 1)
    steps = max(4, int(probe * seconds / num_envs))
    return run(steps, 3)


def fmt(rate):
    if rate is None:
        return "-"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keel", default=str(ROOT / "target/keel"))
    parser.add_argument("--sizes", default="default,1024,4096")
    parser.add_argument("--envs", default=",".join(ENVS))
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per peer measurement")
    parser.add_argument("--peer-4096", default="burgers", help="envs whose controlgym runs at n_state=4096")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    peer_big = set(filter(None, args.peer_4096.split(",")))
    rows = []
    print(f"controlgym {controlgym.__name__} 1.0.0, numpy {np.__version__}; Keel {args.keel}; single thread\n")
    print("| env | n_state | controlgym as shipped | controlgym, O(n) noise | Keel | Keel / shipped | Keel / O(n) noise |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        n_state = None if size == "default" else int(size)
        for env_id in args.envs.split(","):
            keel_id = ENVS[env_id]
            shipped = fast = None
            n = n_state
            if n_state is None or n_state < 4096 or env_id in peer_big:
                one_step = n_state is not None and n_state >= 4096
                shipped, n = peer_rate(env_id, n_state, args.seconds, False, 1 if one_step else None)
                fast, n = peer_rate(env_id, n_state, args.seconds, True, 3 if one_step else None)
            keel = keel_rate(args.keel, keel_id, n_state, 1, 0, 1.0)
            row = {"env": keel_id, "controlgym": env_id, "n_state": n or n_state, "controlgym_shipped": shipped,
                   "controlgym_linear_noise": fast, "keel": keel}
            rows.append(row)
            ratio = lambda peer: f"{keel / peer:,.0f}x" if peer else "-"
            print(f"| {keel_id} | {row['n_state'] or 'default'} | {fmt(shipped)} | {fmt(fast)} | {fmt(keel)} | "
                  f"{ratio(shipped)} | {ratio(fast)} |", flush=True)
    print("\nKeel vector engine, default sizes: 16 envs on 2 workers vs 1 env serial (env-steps/s)\n")
    print("| env | 1 env, serial | 16 envs, 2 workers | speed-up |")
    print("|---|---:|---:|---:|")
    for env_id in args.envs.split(","):
        keel_id = ENVS[env_id]
        single = next((r["keel"] for r in rows if r["env"] == keel_id and r["controlgym"] == env_id), None)
        single = single or keel_rate(args.keel, keel_id, None, 1, 0, 1.0)
        vector = keel_rate(args.keel, keel_id, None, 16, 2, 1.0)
        rows.append({"env": keel_id, "vector16_workers2": vector, "single": single})
        print(f"| {keel_id} | {fmt(single)} | {fmt(vector)} | {vector / single:.2f}x |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
