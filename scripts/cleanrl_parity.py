"""Runs CleanRL 1.2.0's `ppo.py` on CartPole-v1 over several seeds and records its returns: the
reference distribution of Keel's PPO parity test (`agents/tests/ppo_parity.rs`).

Each seed runs the installed module `cleanrl.ppo` as a program (its own process, CPU, one torch
thread, no tracking, no video), with its default hyperparameters except `--total-timesteps`.
The episodes it logs (TensorBoard scalar `charts/episodic_return`, at the global step where each
ended) are read back and reduced per seed to:

- `final_return`: the mean return of the last `last_episodes` logged episodes;
- `curve`: for `windows` equal windows of global steps, ((k-1) T/windows, k T/windows], the mean
  return of the episodes logged in window k (its mean over windows is the area under the
  learning curve, per step).

CleanRL 1.2.0's `ppo.py` logs at most one episode per vector step: when several envs finish in
the same step it logs the first (lowest env index) and skips the others. The statistics above
are over the logged episodes, and the Rust test applies the same rule to Keel's episodes.

The resolved `ppo.py` arguments (its own `parse_args` with the same command line), the versions
used and the commands are recorded with the results, in
`agents/tests/fixtures/cleanrl_ppo_cartpole.json`.

Usage (CleanRL's own environment, made by the helper):
    bash scripts/cleanrl_venv.sh scripts/cleanrl_parity.py [--seeds 20] [--total-timesteps 102400]
"""

import argparse
import importlib.metadata as metadata
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "agents/tests/fixtures/cleanrl_ppo_cartpole.json"
ENV_ID = "CartPole-v1"
# Runs `cleanrl.ppo` as `__main__` (what `python -m cleanrl.ppo` does) after pinning torch to one
# intra-op thread; the rest of the command line is ppo.py's.
RUNNER = "import runpy, torch; torch.set_num_threads(1); runpy.run_module('cleanrl.ppo', run_name='__main__')"


def ppo_arguments(seed, total_timesteps):
    return [
        "--env-id", ENV_ID,
        "--seed", str(seed),
        "--total-timesteps", str(total_timesteps),
        "--cuda", "False",
        "--track", "False",
        "--capture-video", "False",
    ]  # fmt: skip


def resolved_arguments(total_timesteps):
    """ppo.py's own argument parser on our command line: every hyperparameter it will use."""
    from cleanrl import ppo  # the module only defines functions unless run as __main__

    saved = sys.argv
    sys.argv = ["ppo.py", *ppo_arguments(1, total_timesteps)]
    try:
        args = vars(ppo.parse_args())
    finally:
        sys.argv = saved
    for key in ("seed", "exp_name", "wandb_project_name", "wandb_entity", "track", "capture_video", "cuda"):
        args.pop(key)
    return args


def logged_episodes(run_dir):
    """(global step, return) of every episode ppo.py logged, in logging order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars("charts/episodic_return")]


def summarise(episodes, total_timesteps, last_episodes, windows):
    returns = [r for _, r in episodes]
    final = returns[-last_episodes:]
    curve = []
    for k in range(1, windows + 1):
        low, high = (k - 1) * total_timesteps / windows, k * total_timesteps / windows
        inside = [r for step, r in episodes if low < step <= high]
        curve.append(sum(inside) / len(inside) if inside else math.nan)
    return {
        "episodes": len(episodes),
        "final_return": sum(final) / len(final),
        "curve": curve,
        "auc": sum(curve) / len(curve),
    }


def mean_std(values):
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def run_seed(seed, total_timesteps):
    with tempfile.TemporaryDirectory(prefix=f"cleanrl-ppo-{seed}-") as work:
        command = [sys.executable, "-c", RUNNER, *ppo_arguments(seed, total_timesteps)]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        start = time.perf_counter()
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"cleanrl.ppo seed {seed} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        (run_dir,) = (Path(work) / "runs").iterdir()
        return logged_episodes(run_dir), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds 1..=N (default 20)")
    parser.add_argument("--total-timesteps", type=int, default=102_400, help="per seed (default 102400, 200 iterations)")
    parser.add_argument("--last-episodes", type=int, default=20, help="episodes in final_return (default 20)")
    parser.add_argument("--windows", type=int, default=10, help="learning-curve windows (default 10)")
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args()
    if metadata.version("cleanrl") != "1.2.0":
        sys.exit(f"expected cleanrl 1.2.0, found {metadata.version('cleanrl')}: use scripts/cleanrl_venv.sh")

    cleanrl_args = resolved_arguments(args.total_timesteps)
    if args.total_timesteps % cleanrl_args["batch_size"] != 0:
        sys.exit(f"--total-timesteps must be a multiple of the batch size {cleanrl_args['batch_size']}")
    runs = []
    started = time.perf_counter()
    for seed in range(1, args.seeds + 1):
        episodes, seconds = run_seed(seed, args.total_timesteps)
        stats = summarise(episodes, args.total_timesteps, args.last_episodes, args.windows)
        runs.append({"seed": seed, **stats, "seconds": round(seconds, 1)})
        print(
            f"seed {seed}: {stats['episodes']} episodes logged, final return {stats['final_return']:.1f}, "
            f"curve area {stats['auc']:.1f} ({seconds:.0f} s)",
            flush=True,
        )
    final_mean, final_std = mean_std([r["final_return"] for r in runs])
    auc_mean, auc_std = mean_std([r["auc"] for r in runs])
    fixture = {
        "generator": "bash scripts/cleanrl_venv.sh scripts/cleanrl_parity.py " + " ".join(sys.argv[1:]),
        "reference": "cleanrl.ppo (CleanRL 1.2.0 from PyPI, unmodified), run as: python -c \"" + RUNNER + "\" "
        + " ".join(ppo_arguments("SEED", args.total_timesteps)),
        "versions": {
            "python": platform.python_version(),
            **{name: metadata.version(name) for name in ("cleanrl", "gym", "torch", "numpy", "tensorboard")},
        },
        "env_id": ENV_ID,
        "cleanrl_args": cleanrl_args,
        "network": "actor and critic: separate MLPs 64-64 tanh, orthogonal init (ppo.py's Agent)",
        "seeds": [r["seed"] for r in runs],
        "last_episodes": args.last_episodes,
        "windows": args.windows,
        "logging_rule": "at most one episode per vector step, the lowest env index (ppo.py breaks after the first)",
        "runs": runs,
        "summary": {
            "final_return_mean": final_mean,
            "final_return_std": final_std,
            "auc_mean": auc_mean,
            "auc_std": auc_std,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1) + "\n")
    print(
        f"final return {final_mean:.1f} ± {final_std:.1f}, curve area {auc_mean:.1f} ± {auc_std:.1f} "
        f"over {len(runs)} seeds; wrote {args.out} ({fixture['seconds']:.0f} s)"
    )


if __name__ == "__main__":
    main()
