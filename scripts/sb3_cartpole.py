#!/usr/bin/env python3
"""Stable-Baselines3 PPO on Keel's CartPole-v1 through `keel.sb3.make_vec`, to the reward threshold.

Hyperparameters are RL Zoo's for CartPole-v1 (8 envs, n_steps 32, batch 256, 20 epochs, gamma
0.98, GAE lambda 0.8, linear learning rate from 1e-3, 100k steps). Evaluates the final policy
deterministically on 20 episodes of a fresh Keel env and prints the mean return.

    .venv/bin/python scripts/sb3_cartpole.py [--seed 0] [--timesteps 100000]
"""

import argparse
import time

import numpy as np
import torch
from stable_baselines3 import PPO

import keel.sb3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=8, seed=args.seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                ent_coef=0.0, learning_rate=lambda progress: 1e-3 * progress, clip_range=0.2,
                seed=args.seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(args.timesteps)
    seconds = time.perf_counter() - start
    train_returns = [e["r"] for e in model.ep_info_buffer]

    eval_env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=1, seed=10_000 + args.seed)
    returns, obs, total = [], eval_env.reset(), 0.0
    while len(returns) < 20:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, done, _ = eval_env.step(action)
        total += float(reward[0])
        if done[0]:
            returns.append(total)
            total = 0.0
    print(f"seed {args.seed}: {args.timesteps} steps in {seconds:.0f} s; "
          f"last-100 training return {np.mean(train_returns):.1f}; "
          f"deterministic eval over 20 episodes {np.mean(returns):.1f} +- {np.std(returns):.1f} (threshold 475)")


if __name__ == "__main__":
    main()
