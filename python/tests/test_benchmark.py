"""The controlgym envs with ``preset="benchmark"``: SB3's PPO trains on every one of them.

controlgym's defaults have unbounded actions (SB3 refuses them) and no divergence limit (an
open-loop unstable system's returns reach -1e24 and PPO's losses overflow). The preset bounds the
actions and ends a diverging episode (the ``diverged`` info), derived from each system.
"""

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3

import keel
import keel.sb3

# Every system of keel/Linear-v0 (controlgym's toy and its 36 COMPleib systems): the preset's
# bounds are derived per system, so each one is a separate case. The large ones (cm5, cbm, iss:
# hundreds of states) take 17–103 s each on a shared core; all 50 cases about 4 min.
LINEAR_SYSTEMS = (
    "toy ac1 ac2 ac3 ac4 ac5 ac6 ac7 ac8 ac9 ac10 bdt1 bdt2 cbm cdp cm1 cm2 cm3 cm4 cm5 dis1 dis2 dlr "
    "he1 he2 he3 he4 he5 he6 iss je1 je2 lah pas psm rea umv"
).split()

CONTROL_ENVS = [("keel/Linear-v0", {"system": system}) for system in LINEAR_SYSTEMS] + [
    ("keel/AllenCahn-v0", {}),
    ("keel/Burgers-v0", {}),
    ("keel/CahnHilliard-v0", {}),
    ("keel/ConvectionDiffusionReaction-v0", {}),
    ("keel/Fisher-v0", {}),
    ("keel/GinzburgLandau-v0", {}),
    ("keel/KortewegDeVries-v0", {}),
    ("keel/KuramotoSivashinsky-v0", {}),
    ("keel/Schrodinger-v0", {}),
    ("keel/Wave-v0", {}),
]


def test_default_stays_unbounded():
    env = gym.make("keel/Linear-v0")
    assert np.isinf(env.action_space.high).all()
    env = gym.make("keel/Linear-v0", preset="benchmark")
    assert np.isfinite(env.action_space.high).all()


@pytest.mark.parametrize("env_id,config", CONTROL_ENVS, ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
def test_sb3_ppo_trains_on_the_benchmark_preset(env_id, config):
    import torch

    torch.set_num_threads(1)
    env = keel.sb3.make_vec(env_id, n_envs=4, seed=0, preset="benchmark", **config)
    model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=128, n_epochs=2, seed=0, device="cpu", verbose=0)
    model.learn(2048)
    assert model.num_timesteps >= 2048
    for p in model.policy.parameters():
        assert torch.isfinite(p).all(), env_id
    returns = [e["r"] for e in model.ep_info_buffer]
    assert all(np.isfinite(returns)), returns


def test_divergence_is_reported_and_ends_the_episode():
    env = gym.make("keel/Linear-v0", system="he1", preset="benchmark")
    env.reset(seed=0)
    zero = np.zeros(env.action_space.shape)
    for t in range(1000):
        _, reward, terminated, truncated, info = env.step(zero)
        assert np.isfinite(reward)
        if terminated or truncated:
            break
    assert terminated and info["diverged"] == 1.0 and t < 999
