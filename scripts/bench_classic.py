#!/usr/bin/env python3
"""Keel's vector engine vs Gymnasium on the classic-control envs, in one run, as ratios.

Peers: Gymnasium 1.4's `SyncVectorEnv` for every env, and its NumPy-batched
`CartPoleVectorEnv` (`make_vec(..., vectorization_mode="vector_entry_point")`) for CartPole.
Actions are pre-drawn for every case; each case runs `--repeats` times and the median is kept.

Usage (after scripts/setup.sh):
    .venv/bin/python scripts/bench_classic.py [--num-envs 256] [--workers 2] [--repeats 5]
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import gymnasium as gym
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENVS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]


def gym_rate(envs, num_envs, seconds, repeats):
    envs.reset(seed=0)
    space = envs.action_space
    space.seed(0)
    actions = [space.sample() for _ in range(64)]
    rates = []
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for a in actions:
                envs.step(a)
            steps += len(actions)
        rates.append(steps * num_envs / (time.perf_counter() - start))
    envs.close()
    return statistics.median(rates)


def keel_rates(num_envs, workers, repeats):
    keel = ROOT / "target" / "keel"
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in ENVS:
            out = pathlib.Path(tmp) / f"{env_id}.json"
            subprocess.run(
                [str(keel), "bench", "--env", f"keel/{env_id}", "--num-envs", str(num_envs), "--workers", str(workers),
                 "--steps", "10000", "--repeats", str(repeats), "--json", str(out)],
                check=True, stdout=subprocess.DEVNULL,
            )
            rates[env_id] = json.loads(out.read_text())[0]["median_env_steps_per_s"]
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per Gymnasium repeat")
    args = parser.parse_args()

    keel = keel_rates(args.num_envs, args.workers, args.repeats)
    print(f"{args.num_envs} envs; Keel with {args.workers} workers; medians of {args.repeats} repeats; env-steps/s")
    print()
    print("| env | Keel | Gymnasium SyncVectorEnv | ratio | Gymnasium NumPy vector env | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for env_id in ENVS:
        sync = gym_rate(gym.make_vec(env_id, num_envs=args.num_envs, vectorization_mode="sync"),
                        args.num_envs, args.seconds, args.repeats)
        native = ""
        if env_id == "CartPole-v1":
            rate = gym_rate(gym.make_vec(env_id, num_envs=args.num_envs, vectorization_mode="vector_entry_point"),
                            args.num_envs, args.seconds, args.repeats)
            native = f"{rate / 1e6:.2f}M | {keel[env_id] / rate:.1f}x"
        else:
            native = "- | -"
        print(f"| {env_id} | {keel[env_id] / 1e6:.2f}M | {sync / 1e6:.3f}M | {keel[env_id] / sync:.0f}x | {native} |")


if __name__ == "__main__":
    main()
