"""Atari throughput: Keel vs EnvPool (sync and async) vs ale-py's AtariVectorEnv, side by side.

    bash scripts/atari_venv.sh scripts/bench_atari.py [--seconds 3] [--games Pong Breakout] [--libs keel "keel async"]

Needs Keel's Python module built with the `atari` feature in Keel's environment (scripts/setup.sh
does it); the Atari venv (scripts/atari_venv.sh) sees it through its link to that environment.

Every library runs the same preprocessing, EnvPool's defaults: sticky actions off, 1..30 no-op
frames then FIRE at reset, frame skip 4 with a max-pool of the last two frames, 84x84 grayscale
INTER_AREA, a stack of 4, no episodic life, no reward clip, autoreset on the next step. Actions
are uniform random (drawn before the clock starts). Rates are agent steps per second (frames
per second = 4x), wall clock, one run per case; a second table gives, for the same cases, agent
steps per CPU-second of the process (all its threads), which a machine shared with other work
disturbs far less than the wall-clock rate. For each thread count the script tries a few
env counts per library and reports the best: EnvPool sync uses num_envs = batch = threads x k,
EnvPool async and Keel async num_envs = 2 x batch (batch = threads x k), ale-py and Keel sync
num_envs = threads x k, with k = 1, 2, 4 for every library. Both async modes run the same loop: recv a batch, send actions for its
env ids.
"""

import argparse
import json
import os
import platform
import time

import numpy as np


def keel_factory(game, num_envs, threads, batch):
    import keel

    envs = keel.KeelVectorEnv(f"keel/{game}-v5", num_envs, preset="envpool", workers=threads if threads > 1 else 0, copy=False)

    def reset():
        envs.reset(seed=0)

    def step(actions):
        envs.step(actions)

    return reset, step, envs.close


def keel_async_factory(game, num_envs, threads, batch):
    import keel

    # `threads` worker threads step; the calling thread only sends and receives, as EnvPool's.
    envs = keel.KeelAsyncVectorEnv(f"keel/{game}-v5", num_envs, batch, preset="envpool", workers=threads,
                                   copy=False)
    ids = {"next": None}

    def reset():
        envs.async_reset(seed=0)
        ids["next"] = envs.recv()[-1]["env_id"]

    def step(actions):
        envs.send(actions, ids["next"])
        ids["next"] = envs.recv()[-1]["env_id"]

    return reset, step, envs.close


def envpool_factory(game, num_envs, threads, batch):
    import envpool

    env = envpool.make_gymnasium(f"{game}-v5", num_envs=num_envs, batch_size=batch, num_threads=threads,
                                 repeat_action_probability=0.0, episodic_life=False, reward_clip=False,
                                 noop_max=30, use_fire_reset=True, stack_num=4, frame_skip=4, seed=0)
    if batch == num_envs:
        def reset():
            env.reset()

        def step(actions):
            env.step(actions)
    else:
        ids = {"next": None}

        def reset():
            env.async_reset()
            ids["next"] = env.recv()[-1]["env_id"]

        def step(actions):
            env.send(actions, ids["next"])
            ids["next"] = env.recv()[-1]["env_id"]

    return reset, step, env.close


def ale_factory(game, num_envs, threads, batch):
    from ale_py.vector_env import AtariVectorEnv

    rom = "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(game))
    env = AtariVectorEnv(game=rom, num_envs=num_envs, num_threads=threads, batch_size=num_envs,
                         repeat_action_probability=0.0, noop_max=30, frameskip=4, stack_num=4, img_height=84,
                         img_width=84, grayscale=True, episodic_life=False, use_fire_reset=True, maxpool=True,
                         reward_clipping=False)

    def reset():
        env.reset(seed=0)

    def step(actions):
        env.step(actions)

    return reset, step, env.close


def measure(factory, game, num_envs, threads, batch, seconds, n_actions):
    reset, step, close = factory(game, num_envs, threads, batch)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n_actions, size=(4096, batch), dtype=np.int32)
    reset()
    for k in range(50):  # warm up
        step(actions[k % len(actions)])
    steps, k = 0, 0
    cpu = os.times()
    start = time.perf_counter()
    while True:
        for _ in range(50):
            step(actions[k % len(actions)])
            k += 1
        steps += 50 * batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    now = os.times()
    cpu_seconds = (now.user - cpu.user) + (now.system - cpu.system)
    close()
    return steps / elapsed, steps / max(cpu_seconds, 1e-9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--games", nargs="+", default=["Pong", "Breakout"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--libs", nargs="+", default=None, help="only these libraries (default: all)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    n_actions = {"Pong": 6, "Breakout": 4}
    rows = []
    for game in args.games:
        for threads in args.threads:
            # Every library gets the same env counts (k = 1, 2, 4 per thread).
            ks = (1, 2, 4)
            cases = {
                "keel": [(threads * k, threads * k) for k in ks],
                "keel async": [(2 * threads * k, threads * k) for k in ks],
                "envpool sync": [(threads * k, threads * k) for k in ks],
                "envpool async": [(2 * threads * k, threads * k) for k in ks],
                "ale-py AtariVectorEnv": [(threads * k, threads * k) for k in ks],
            }
            factories = {"keel": keel_factory, "keel async": keel_async_factory, "envpool sync": envpool_factory,
                         "envpool async": envpool_factory, "ale-py AtariVectorEnv": ale_factory}
            for lib, shapes in cases.items():
                if args.libs and lib not in args.libs:
                    continue
                best = None
                for num_envs, batch in shapes:
                    rate, per_cpu = measure(factories[lib], game, num_envs, threads, batch, args.seconds,
                                            n_actions.get(game, 4))
                    print(f"{game:9s} threads={threads} {lib:22s} num_envs={num_envs:2d} batch={batch:2d}: {rate:8.0f} steps/s"
                          f" {per_cpu:8.0f} steps/CPU-s", flush=True)
                    if best is None or rate > best[0]:
                        best = (rate, num_envs, batch, per_cpu)
                rows.append({"game": game, "threads": threads, "library": lib, "steps_per_s": round(best[0]),
                             "num_envs": best[1], "batch": best[2], "steps_per_cpu_s": round(best[3])})
    print()
    libs = [lib for lib in ["keel", "keel async", "envpool sync", "envpool async", "ale-py AtariVectorEnv"]
            if not args.libs or lib in args.libs]
    names = {"keel": "Keel sync", "keel async": "Keel async", "envpool sync": "EnvPool sync",
             "envpool async": "EnvPool async", "ale-py AtariVectorEnv": "ale-py vector"}
    full = all(lib in libs for lib in ["keel", "keel async", "envpool sync", "envpool async"])
    print("| game | threads | " + " | ".join(names[lib] for lib in libs) + (" | best Keel / best EnvPool |" if full else " |"))
    print("|---|---|" + "---|" * (len(libs) + full))
    for game in args.games:
        for threads in args.threads:
            r = {row["library"]: row for row in rows if row["game"] == game and row["threads"] == threads}
            cells = [f"{r[lib]['steps_per_s']:,} ({r[lib]['num_envs']}/{r[lib]['batch']})" for lib in libs]
            ratio = ""
            if full:
                best_keel = max(r["keel"]["steps_per_s"], r["keel async"]["steps_per_s"])
                best_envpool = max(r["envpool sync"]["steps_per_s"], r["envpool async"]["steps_per_s"])
                ratio = f" {best_keel / best_envpool:.2f}x |"
            print(f"| {game} | {threads} | " + " | ".join(cells) + " |" + ratio)
    print()
    print("Agent steps per CPU-second of the same cases:")
    print()
    print("| game | threads | " + " | ".join(names[lib] for lib in libs) + " |")
    print("|---|---|" + "---|" * len(libs))
    for game in args.games:
        for threads in args.threads:
            r = {row["library"]: row for row in rows if row["game"] == game and row["threads"] == threads}
            print(f"| {game} | {threads} | " + " | ".join(f"{r[lib]['steps_per_cpu_s']:,}" for lib in libs) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                       "load": os.getloadavg(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
