"""RLlib's PPO trains on keel/CartPole-v1, sampled by env runners that step Keel's vector env.

Run it in the RLlib environment (RLlib pins gymnasium 1.2.2, Keel's own environment 1.4.0):

    source scripts/env.sh && bash scripts/rllib_venv.sh scripts/rllib_cartpole.py [--iterations N] [--out FILE.json]

RLlib's env runners build their envs with `gymnasium.make_vec`; the id `keel:keel/CartPole-v1`
imports `keel` inside each env-runner process (which registers Keel's ids) and
`gym_env_vectorize_mode="vector_entry_point"` makes `make_vec` use Keel's vector entry point, so
each runner steps one `keel.vector.KeelVectorEnv` of `--envs` CartPoles on the Rust engine instead
of a Python loop over copies. The script checks that the runners hold that class, that the mean
episode return rises over the iterations, prints one line per iteration and the wall time, and
exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=8, help="training iterations (default 8)")
    parser.add_argument("--envs", type=int, default=8, help="envs per env runner (default 8)")
    parser.add_argument("--runners", type=int, default=1, help="remote env runners (default 1)")
    parser.add_argument("--batch", type=int, default=4000, help="env steps per iteration (default 4000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-gain", type=float, default=2.0,
                        help="the best late mean return must reach this multiple of the first (default 2)")
    parser.add_argument("--out", help="write the per-iteration returns and timings here (JSON)")
    args = parser.parse_args()
    if args.iterations < 2:
        parser.error("--iterations must be at least 2 (the check compares early and late returns)")

    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    started = time.perf_counter()
    # One CPU for the driver's learner, one per remote env runner; nothing else on this node.
    ray.init(num_cpus=1 + args.runners, include_dashboard=False, log_to_driver=False)
    try:
        config = (
            PPOConfig()
            .environment("keel:keel/CartPole-v1")
            .env_runners(
                num_env_runners=args.runners,
                num_envs_per_env_runner=args.envs,
                gym_env_vectorize_mode="vector_entry_point",
                num_cpus_per_env_runner=1,
            )
            .learners(num_learners=0)
            .training(train_batch_size_per_learner=args.batch, minibatch_size=500, num_epochs=10, lr=3e-4)
            .debugging(seed=args.seed)
        )
        algo = config.build_algo()
        kinds = algo.env_runner_group.foreach_env_runner(
            lambda runner: f"{type(runner.env.unwrapped).__module__}.{type(runner.env.unwrapped).__name__}",
            local_env_runner=False,
        )
        print(f"env runners' vector envs: {kinds}", flush=True)
        if not kinds or any(kind != "keel.vector.KeelVectorEnv" for kind in kinds):
            print(f"FAIL: the env runners do not step Keel's vector env: {kinds}", file=sys.stderr)
            return 1
        built = time.perf_counter()
        returns, steps = [], []
        for i in range(args.iterations):
            result = algo.train()
            runners = result["env_runners"]
            returns.append(float(runners["episode_return_mean"]))
            steps.append(int(runners.get("num_env_steps_sampled_lifetime", 0)))
            print(f"iteration {i + 1}: env steps {steps[-1]}, episode_return_mean {returns[-1]:.1f}", flush=True)
        trained = time.perf_counter()
        algo.stop()
    finally:
        ray.shutdown()

    late = max(returns[len(returns) // 2:])
    summary = {
        "env": "keel/CartPole-v1",
        "iterations": args.iterations,
        "env_runners": args.runners,
        "envs_per_runner": args.envs,
        "batch": args.batch,
        "seed": args.seed,
        "returns": returns,
        "env_steps": steps,
        "build_s": round(built - started, 1),
        "train_s": round(trained - built, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)
    if not late >= args.min_gain * returns[0]:
        print(f"FAIL: the return did not rise: first {returns[0]:.1f}, best of the second half {late:.1f} "
              f"(needs {args.min_gain}x)", file=sys.stderr)
        return 1
    print(f"ok: episode return {returns[0]:.1f} -> {returns[-1]:.1f} (best late {late:.1f}) in "
          f"{summary['train_s']} s of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
