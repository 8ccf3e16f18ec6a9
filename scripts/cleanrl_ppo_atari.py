#!/usr/bin/env python3
"""Runs CleanRL 1.2.0's `ppo_atari_envpool.py` as released, on EnvPool 1.2.5, for the SPS
comparison of docs/results.md ("PPO on Atari").

The file is taken from the `cleanrl` package that scripts/cleanrl_venv.sh installs (it is not
copied into Keel). It was written against EnvPool 0.6's `gym` front-end (`env_type="gym"`,
4-tuple `step`, `reset` returning the observation); EnvPool 1.2.5, the version
scripts/atari_venv.sh installs (Python >= 3.11, which CleanRL's own Python 3.10 venv cannot
load), only has the Gymnasium front-end. So this script runs the file under the Atari venv's
Python with two small adapters and changes nothing in CleanRL's code:

- `envpool.make(..., env_type="gym")` makes the Gymnasium pool and returns `reset()`'s
  observation alone and `step()`'s `(obs, reward, terminated | truncated, info)`;
- a `gym` module whose `Wrapper` forwards to the wrapped env and whose `spaces` are Gymnasium's
  (CleanRL subclasses `gym.Wrapper` for its episode statistics and checks `gym.spaces.Discrete`).

    bash scripts/cleanrl_venv.sh                 # once: installs cleanrl 1.2.0 (its scripts)
    bash scripts/atari_venv.sh scripts/cleanrl_ppo_atari.py --env-id Breakout-v5 \\
        --total-timesteps 20480 --cuda False --seed 1

Every argument is CleanRL's. The script prints CleanRL's output; its last `SPS:` line is the
rate over the whole run (CleanRL's own clock, from before the first reset).
"""

from __future__ import annotations

import os
import pathlib
import runpy
import sys
import types

CACHE = pathlib.Path(os.environ.get("KEEL_CACHE", pathlib.Path.home() / ".cache" / "keel"))


def cleanrl_script(name: str) -> pathlib.Path:
    found = sorted((CACHE / "cleanrl-venv").glob(f"lib/python3*/site-packages/cleanrl/{name}"))
    if not found:
        sys.exit(f"cleanrl_ppo_atari: {name} not found under {CACHE / 'cleanrl-venv'}; "
                 "run `bash scripts/cleanrl_venv.sh` first (it installs cleanrl 1.2.0)")
    return found[-1]


class _GymPool:
    """EnvPool's Gymnasium pool with the gym 0.2x calling convention CleanRL's file uses."""

    def __init__(self, pool):
        self._pool = pool

    def __getattr__(self, name):
        return getattr(self._pool, name)

    def reset(self, **kwargs):
        obs, _info = self._pool.reset(**kwargs)
        return obs

    def step(self, action, env_id=None):
        obs, reward, terminated, truncated, info = self._pool.step(action, env_id)
        return obs, reward, terminated | truncated, info


def install_adapters() -> None:
    import envpool
    import gymnasium

    make = envpool.make

    def make_gym(task_id, env_type=None, **kwargs):
        if env_type == "gym":
            return _GymPool(make(task_id, env_type="gymnasium", **kwargs))
        return make(task_id, env_type=env_type, **kwargs)

    envpool.make = make_gym

    class Wrapper:
        def __init__(self, env):
            self.env = env

        def __getattr__(self, name):
            return getattr(self.env, name)

        def reset(self, **kwargs):
            return self.env.reset(**kwargs)

        def step(self, action):
            return self.env.step(action)

        def close(self):
            return self.env.close()

    gym = types.ModuleType("gym")
    gym.Wrapper = Wrapper
    gym.spaces = gymnasium.spaces
    sys.modules["gym"] = gym


def main() -> None:
    script = cleanrl_script("ppo_atari_envpool.py")
    install_adapters()
    sys.argv = [str(script), *sys.argv[1:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
