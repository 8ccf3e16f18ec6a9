#!/usr/bin/env python3
"""Env-steps per second from Python: Keel vs Gymnasium, envpool and rlox, in one run.

Cases: CartPole-v1 and Pendulum-v1 at 8 and 256 envs. Peers: Gymnasium 1.4 `SyncVectorEnv`,
Gymnasium's NumPy `CartPoleVectorEnv` (CartPole only), envpool 1.2.5 (1 and 2 threads, the faster
kept), rlox 1.2.0 (CartPole only; its torch-free core extension is loaded directly). A peer that did
not install is skipped with a note. Each case runs `--repeats` times for `--seconds` and the median
is kept; actions are pre-drawn. Also: the per-call cost of a single-env `step` from Python.

Run it in the benchmark venv, which holds the peers (scripts/bench_python_setup.sh makes it):
    bash scripts/bench_python_setup.sh
    ~/.cache/keel/bench-venv/bin/python scripts/bench_python.py
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import statistics
import sys
import time

import gymnasium as gym
import numpy as np

import keel


def load_rlox():
    try:
        spec = importlib.util.find_spec("rlox")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = pathlib.Path(list(spec.submodule_search_locations)[0])
    lib = next(folder.glob("_rlox_core*.so"), None)
    if lib is None:
        return None
    core_spec = importlib.util.spec_from_file_location("_rlox_core", lib)
    module = importlib.util.module_from_spec(core_spec)
    core_spec.loader.exec_module(module)
    return module


def rate(step, actions, num_envs, seconds, repeats):
    """Median env-steps/s of `step(action)` cycling over `actions`."""
    for a in actions[:8]:
        step(a)
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for a in actions:
                step(a)
            calls += len(actions)
        rates.append(calls * num_envs / (time.perf_counter() - start))
    return statistics.median(rates)


def draw(space, count, seed=0):
    space.seed(seed)
    return [space.sample() for _ in range(count)]


def bench_gym_vector(envs, n, args):
    envs.reset(seed=0)
    acts = draw(envs.action_space, 64)
    result = rate(envs.step, acts, n, args.seconds, args.repeats)
    envs.close()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    try:
        import envpool
    except ImportError:
        envpool = None
        print("note: envpool is not installed; skipped (run scripts/bench_python_setup.sh)")
    rlox = load_rlox()
    if rlox is None:
        print("note: rlox is not installed; skipped (run scripts/bench_python_setup.sh)")

    print(f"python {sys.version.split()[0]}, gymnasium {gym.__version__}, numpy {np.__version__}, keel {keel.__version__}")
    print(f"medians of {args.repeats} x {args.seconds}s; env-steps/s (wall)\n")
    rows = []
    for env_id in ["CartPole-v1", "Pendulum-v1"]:
        for n in [8, 256]:
            row = {"case": f"{env_id} x{n}"}
            row["keel"] = bench_gym_vector(gym.make_vec(f"keel/{env_id}", num_envs=n), n, args)
            row["sync"] = bench_gym_vector(gym.make_vec(env_id, num_envs=n, vectorization_mode="sync"), n, args)
            if env_id == "CartPole-v1":
                row["numpy"] = bench_gym_vector(gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point"), n, args)
            if envpool is not None:
                best = 0.0
                for threads in (1, 2):
                    envs = envpool.make_gymnasium(env_id, num_envs=n, batch_size=n, num_threads=threads, seed=0)
                    envs.reset()
                    acts = [np.asarray(a) for a in draw(gym.vector.utils.batch_space(envs.action_space, n), 64)]
                    best = max(best, rate(envs.step, acts, n, args.seconds, args.repeats))
                    envs.close()
                row["envpool"] = best
            if rlox is not None and env_id == "CartPole-v1":
                venv = rlox.VecEnv(n, 0)
                venv.reset_all()
                acts = [list(np.random.default_rng(k).integers(0, 2, n)) for k in range(64)]
                row["rlox"] = rate(venv.step_all, acts, n, args.seconds, args.repeats)
            rows.append(row)
            print(f"  measured {row['case']}", file=sys.stderr)

    def fmt(value):
        return "-" if value is None else f"{value / 1e6:.3f}M"

    print("| case | Keel | SyncVectorEnv | NumPy vector | envpool | rlox | Keel/Sync | Keel/envpool | Keel/rlox |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = lambda key: "-" if r.get(key) is None else f"{r['keel'] / r[key]:.1f}x"  # noqa: E731
        print(f"| {r['case']} | {fmt(r['keel'])} | {fmt(r.get('sync'))} | {fmt(r.get('numpy'))} | {fmt(r.get('envpool'))} | "
              f"{fmt(r.get('rlox'))} | {ratio('sync')} | {ratio('envpool')} | {ratio('rlox')} |")

    # Single env: the cost of one step call from Python, wrappers and all.
    print("\nsingle-env step, per call (median):")
    for label, env in [("keel.KeelEnv (unwrapped)", gym.make("keel/CartPole-v1").unwrapped),
                       ("gymnasium CartPole (unwrapped)", gym.make("CartPole-v1").unwrapped),
                       ("keel via gym.make (TimeLimit, checkers)", gym.make("keel/CartPole-v1", max_episode_steps=10**9))]:
        env.reset(seed=0)
        acts = [0, 1] * 32
        per_call = 1e6 / rate(env.step, acts, 1, args.seconds, args.repeats)
        print(f"  {label}: {per_call:.2f} us")


if __name__ == "__main__":
    main()
