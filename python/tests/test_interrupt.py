"""Long vector constructions stop on Ctrl-C, and absurd sizes are refused before any env is made."""

import os
import signal
import threading

import gymnasium as gym
import numpy as np
import pytest

import keel


@pytest.mark.parametrize("make", [
    lambda: keel.KeelVectorEnv("keel-test/BytePattern-v0", 100_000, make_delay_ms=1),
    lambda: keel.KeelAsyncVectorEnv("keel-test/BytePattern-v0", 100_000, 8, make_delay_ms=1),
])
def test_a_signal_stops_a_long_construction(make):
    # 100,000 envs of 1 ms each would take 100 s; SIGINT, sent while they are being made, raises
    # KeyboardInterrupt out of the constructor, and the interpreter goes on.
    keel.register_test_envs()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            make()
    finally:
        timer.cancel()
    envs = keel.KeelVectorEnv("keel-test/BytePattern-v0", 2)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 2, 3, 4)
    envs.step(np.zeros(2, dtype=np.int64))
    envs.close()


def test_a_vector_larger_than_memory_is_refused_before_any_env_is_made():
    with pytest.raises(keel.ConfigError, match="num_envs"):
        gym.make_vec("keel/CartPole-v1", num_envs=10**13, vectorization_mode="vector_entry_point")
