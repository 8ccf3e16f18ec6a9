#!/usr/bin/env python3
"""Record golden trajectories of Gymnasium's classic-control envs for Keel's golden tests.

For every env: a few cases, each a fixed initial state (written into the unwrapped env after
reset, as `keel rollout --init-state` does) and an action sequence (seeded random actions, or a
simple feedback policy that reaches the goal or the time limit). The env is made with
`gymnasium.make`, so the time limit and its truncation are part of the data.

Usage (the setup installs gymnasium into .venv):
    .venv/bin/python scripts/golden_classic.py [--out envs/tests/fixtures/classic]
"""

import argparse
import json
import math
import pathlib

import gymnasium as gym
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cartpole_policy(obs, rng):
    # Lean into the fall: keeps the pole up long enough to reach the 500-step limit.
    return int(obs[2] + 0.5 * obs[3] > 0)


def acrobot_policy(obs, rng):
    # Pump energy: torque along the second joint's velocity (swings up in about 100 steps).
    return 2 if obs[5] > 0 else 0


def mountain_car_policy(obs, rng):
    return 2 if obs[1] > 0 else 0


def mcc_policy(obs, rng):
    # Overdriven on purpose, so the env's own clipping is exercised.
    return [1.3 if obs[1] >= 0 else -1.3]


def pendulum_policy(obs, rng):
    return [float(np.clip(-3.0 * obs[2], -2.5, 2.5))]


def random_discrete(n):
    return lambda obs, rng: int(rng.integers(n))


def random_box(bound):
    return lambda obs, rng: [float(rng.uniform(-bound, bound))]


ENVS = {
    "CartPole-v1": {
        "states": [[0.01, -0.02, 0.03, 0.04], [0.0, 0.0, 0.0, 0.0], [2.0, 1.0, -0.15, -1.0]],
        "policies": [random_discrete(2), cartpole_policy, random_discrete(2)],
    },
    "Acrobot-v1": {
        "states": [[0.05, -0.02, 0.01, 0.03], [0.2, 0.0, 0.0, 0.0], [3.0, -2.5, 5.0, -20.0]],
        "policies": [random_discrete(3), acrobot_policy, acrobot_policy],
    },
    "MountainCar-v0": {
        "states": [[-0.5, 0.0], [-1.19, -0.05], [0.3, 0.06]],
        "policies": [random_discrete(3), mountain_car_policy, mountain_car_policy],
    },
    "MountainCarContinuous-v0": {
        "states": [[-0.5, 0.0], [-1.15, -0.06], [-0.45, 0.0]],
        "policies": [random_box(1.5), mcc_policy, mcc_policy],
    },
    "Pendulum-v1": {
        "states": [[math.pi, 0.0], [0.5, -7.9], [-2.0, 1.0]],
        "policies": [random_box(2.5), pendulum_policy, random_box(1.0)],
    },
}


def observe(env, env_id):
    """The observation the unwrapped env would return for its current state."""
    u = env.unwrapped
    for name in ("_get_obs", "_get_ob"):  # Acrobot calls it _get_ob
        if hasattr(u, name):
            return getattr(u, name)()
    return np.array(u.state, dtype=np.float32)


def as_action(env, action):
    if isinstance(env.action_space, gym.spaces.Box):
        return np.array(action, dtype=np.float32)
    return action


def record_case(env_id, state, policy, seed, max_steps):
    env = gym.make(env_id)
    env.reset(seed=seed)
    dtype = np.float64
    env.unwrapped.state = np.array(state, dtype=dtype)
    obs = observe(env, env_id)
    case = {
        "seed": seed,
        "initial_state": [float(v) for v in state],
        "initial_obs": [float(v) for v in obs],
        "actions": [],
        "steps": [],
    }
    rng = np.random.default_rng(seed)
    for _ in range(max_steps):
        action = policy(obs, rng)
        if isinstance(action, list):
            action = [float(np.float32(a)) for a in action]
        obs, reward, terminated, truncated, _ = env.step(as_action(env, action))
        case["actions"].append(action)
        case["steps"].append(
            {
                "obs": [float(v) for v in obs],
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "state": [float(v) for v in np.asarray(env.unwrapped.state, dtype=np.float64)],
            }
        )
        if terminated or truncated:
            break
    env.close()
    return case


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "envs/tests/fixtures/classic")
    parser.add_argument("--max-steps", type=int, default=500)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id, spec in ENVS.items():
        cases = [
            record_case(env_id, state, policy, seed, args.max_steps)
            for seed, (state, policy) in enumerate(zip(spec["states"], spec["policies"]))
        ]
        data = {
            "id": env_id,
            "keel_id": f"keel/{env_id}",
            "gymnasium": gym.__version__,
            "numpy": np.__version__,
            "cases": cases,
        }
        path = args.out / f"{env_id}.json"
        path.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
        lengths = [len(c["steps"]) for c in cases]
        ends = ["T" if c["steps"][-1]["terminated"] else ("t" if c["steps"][-1]["truncated"] else "-") for c in cases]
        print(f"{env_id}: {len(cases)} cases, lengths {lengths}, ends {ends} -> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
