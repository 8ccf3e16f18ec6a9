#!/usr/bin/env python3
"""Record golden trajectories of controlgym 1.0.0 for Keel's compat-mode golden tests.

Every case is noise-free (process and sensor noise 0), starts from a given state and plays
given actions `u[t][k] = 0.1 sin(0.3 t + k)` (rounded to float32, the type Keel's actions have),
for 50 steps:

- the ten PDE envs at n_state = 64 (small files; every other parameter at its default), starting
  from the env's initial-condition family at its mean parameters;
- Burgers at its default size (n_state = 256) for 20 steps, replayed by the `keel rollout` test;
- the linear systems toy, he1 and ac3 from x0[i] = 1/(i+1), with the LQR gain controlgym computes.

Recorded per step: the observation controlgym returns (of the pre-step state), the reward and
its `terminated` / `truncated` flags; every fifth step also the post-step state. No system matrix is written: the
COMPleib data stays in the controlgym package.

controlgym pins numpy < 2 and gymnasium 0.29.1, which clash with Keel's own environment, so it
lives in a venv of its own (scripts/controlgym_venv.sh makes it, once):

    bash scripts/controlgym_venv.sh scripts/golden_controlgym.py
"""

import argparse
import json
import pathlib
import warnings

import numpy as np

import controlgym
from controlgym.controllers import LQR

# `import controlgym` turns every warning into an error; its linear envs then fail on Python
# 3.11's deprecation of importlib.resources.path.
warnings.filterwarnings("ignore", category=DeprecationWarning)

ROOT = pathlib.Path(__file__).resolve().parent.parent
PDES = [
    "allen_cahn",
    "burgers",
    "cahn_hilliard",
    "convection_diffusion_reaction",
    "fisher",
    "ginzburg_landau",
    "korteweg_de_vries",
    "kuramoto_sivashinsky",
    "schrodinger",
    "wave",
]
KEEL_IDS = {
    "allen_cahn": "keel/AllenCahn-v0",
    "burgers": "keel/Burgers-v0",
    "cahn_hilliard": "keel/CahnHilliard-v0",
    "convection_diffusion_reaction": "keel/ConvectionDiffusionReaction-v0",
    "fisher": "keel/Fisher-v0",
    "ginzburg_landau": "keel/GinzburgLandau-v0",
    "korteweg_de_vries": "keel/KortewegDeVries-v0",
    "kuramoto_sivashinsky": "keel/KuramotoSivashinsky-v0",
    "schrodinger": "keel/Schrodinger-v0",
    "wave": "keel/Wave-v0",
}
LINEAR = ["toy", "he1", "ac3"]
STATE_EVERY = 5


def actions(steps, n_action):
    return [[float(np.float32(0.1 * np.sin(0.3 * t + k))) for k in range(n_action)] for t in range(steps)]


def floats(values):
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def mean_start(env):
    """The initial-condition family at its mean parameters (widths set to zero)."""
    keys = [k for k in vars(env) if k.startswith("init_") and k.endswith("_mean")]
    return env.select_init_state(**{k[: -len("_mean")]: getattr(env, k) for k in keys})


def play(env, x0, acts):
    _, info = env.reset(state=np.array(x0, dtype=np.float64))
    steps = []
    for t, a in enumerate(acts):
        obs, reward, terminated, truncated, info = env.step(np.array(a, dtype=np.float64))
        record = {"obs": floats(obs), "reward": float(reward), "terminated": bool(terminated), "truncated": bool(truncated)}
        # Every reward depends on the whole pre-step state, so every state is checked through
        # it; the states themselves are kept every STATE_EVERY steps to keep the files small.
        if (t + 1) % STATE_EVERY == 0:
            record["state"] = floats(info["state"])
        steps.append(record)
    return steps


def pde_case(env_id, n_state, steps):
    kwargs = {"process_noise_cov": 0.0, "sensor_noise_cov": 0.0, "seed": 0}
    if n_state is not None:
        kwargs["n_state"] = n_state
    env = controlgym.make(env_id, **kwargs)
    x0 = floats(mean_start(env))
    acts = actions(steps, env.n_action)
    config = {"compat": "controlgym", "process_noise_cov": 0.0, "sensor_noise_cov": 0.0, "n_state": env.n_state}
    return {
        "controlgym_id": env_id,
        "keel_id": KEEL_IDS[env_id],
        "config": config,
        "initial_state": x0,
        "actions": acts,
        "steps": play(env, x0, acts),
    }


def linear_case(env_id, steps):
    env = controlgym.make(env_id, noise_cov=0.0, random_init_state_cov=0.0, seed=0)
    x0 = [1.0 / (i + 1) for i in range(env.n_state)]
    acts = actions(steps, env.n_action)
    case = {
        "controlgym_id": env_id,
        "keel_id": "keel/Linear-v0",
        "config": {"compat": "controlgym", "system": env_id, "noise_cov": 0.0, "random_init_state_cov": 0.0},
        "initial_state": x0,
        "actions": acts,
        "steps": play(env, x0, acts),
    }
    lqr = LQR(env)
    case["lqr_gain"] = [floats(row) for row in lqr.gain_lqr]
    return case


def write(out, name, data):
    path = out / name
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"{name}: {len(data['steps'])} steps, {path.stat().st_size // 1024} KiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "envs/tests/fixtures/controlgym")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    versions = {"controlgym": "1.0.0", "numpy": np.__version__}
    for env_id in PDES:
        write(args.out, f"{env_id}.json", {**versions, **pde_case(env_id, 64, 50)})
    write(args.out, "burgers_default.json", {**versions, **pde_case("burgers", None, 20)})
    for env_id in LINEAR:
        write(args.out, f"linear_{env_id}.json", {**versions, **linear_case(env_id, 50)})


if __name__ == "__main__":
    main()
