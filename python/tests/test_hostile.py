"""Hostile input from Python: every case is a clear ``keel.KeelError`` (a ``ValueError``), raised
before anything is allocated or changed; nothing aborts the interpreter or hangs."""

import math
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

import keel
import keel.sb3


def test_sizes_are_checked_against_memory_before_allocating():
    start = time.perf_counter()
    with pytest.raises(keel.ConfigError, match=r"n_state = 1000000000000 needs about 256\.0 TB"):
        gym.make("keel/Burgers-v0", n_state=10**12)
    with pytest.raises(keel.ConfigError, match="num_envs = 100000000 needs about"):
        gym.make_vec("keel/CartPole-v1", num_envs=10**8)
    with pytest.raises(keel.ConfigError, match="num_envs"):
        keel.KeelVectorEnv("keel/CartPole-v1", 10**12)
    with pytest.raises(keel.ConfigError, match="num_envs"):
        keel.KeelVectorEnv("keel/CartPole-v1", 10**30)
    assert time.perf_counter() - start < 5.0


def test_action_shapes_are_checked_as_gymnasium_spaces_do():
    env = keel.KeelEnv("keel/Burgers-v0", n_state=64)  # Box(8,)
    env.reset(seed=0)
    for bad in [np.zeros((2, 4)), np.zeros((8, 1)), np.zeros(7), 0.5]:
        with pytest.raises(keel.ActionError, match="shape"):
            env.step(bad)
    env.step(np.zeros(8))
    envs = keel.KeelVectorEnv("keel/Pendulum-v1", 3)  # batches of shape (3, 1)
    envs.reset(seed=0)
    for bad in [np.zeros((1, 3), np.float32), np.zeros(3, np.float32), np.zeros((3, 1, 1), np.float32)]:
        with pytest.raises(keel.ActionError, match=r"\(3, 1\) is expected"):
            envs.step(bad)
    envs.step(np.zeros((3, 1), np.float32))
    cart = keel.KeelVectorEnv("keel/CartPole-v1", 2)
    cart.reset(seed=0)
    with pytest.raises(keel.ActionError, match="shape"):
        cart.step(np.zeros((2, 1), np.int64))


def test_states_beyond_the_observation_range_are_errors():
    env = keel.KeelEnv("keel/CartPole-v1")
    with pytest.raises(keel.ConfigError, match="float32"):
        env.reset(options={"state": [1e308, 1e308, 0.0, 0.0]})
    with pytest.raises(keel.ConfigError, match="float32"):
        env.reset(options={"state": [1e300, 0.0, 0.0, 0.0]})
    env.reset(seed=0)
    env.step(0)


def test_non_finite_config_and_options_name_the_field():
    with pytest.raises(keel.ConfigError, match="gravity = nan.*not finite"):
        gym.make("keel/CartPole-v1", gravity=math.nan)
    env = gym.make("keel/CartPole-v1")
    with pytest.raises(keel.ConfigError, match="high = inf.*not finite"):
        env.reset(options={"high": math.inf})
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 2)
    with pytest.raises(keel.ConfigError, match=r"\[1\].state\[0\]"):
        envs.reset(options=[{}, {"state": [math.nan, 0, 0, 0]}])
    with pytest.raises(keel.ConfigError, match="high"):
        envs.set_params(high=-math.inf)


@pytest.mark.parametrize("seed", [2**70, -1, 1.5, "7"])
def test_seeds_out_of_range_name_the_argument(seed):
    with pytest.raises(keel.ConfigError, match="seed"):
        gym.make("keel/CartPole-v1").reset(seed=seed)
    with pytest.raises(keel.ConfigError, match="seed"):
        keel.KeelVectorEnv("keel/CartPole-v1", 2).reset(seed=seed)
    with pytest.raises(keel.ConfigError, match="seed"):
        keel.sb3.make_vec("keel/CartPole-v1", n_envs=2, seed=seed)


def test_counts_out_of_range_name_the_argument():
    with pytest.raises(keel.ConfigError, match="workers"):
        keel.KeelVectorEnv("keel/CartPole-v1", 2, workers=-1)
    with pytest.raises(keel.ConfigError, match="num_envs"):
        keel.KeelVectorEnv("keel/CartPole-v1", -3)
    with pytest.raises(keel.ConfigError, match="n_envs"):
        keel.sb3.make_vec("keel/CartPole-v1", n_envs=-1)
    with pytest.raises(keel.ConfigError, match="workers"):
        keel.sb3.make_vec("keel/CartPole-v1", n_envs=2, workers=-2)


def test_closed_envs_say_so():
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 2)
    envs.reset(seed=0)
    envs.close()
    for call in [lambda: envs.step(np.zeros(2, np.int64)), lambda: envs.reset(), lambda: envs.state(0)]:
        with pytest.raises(keel.ClosedError, match="closed"):
            call()
    sb3_env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=2)
    sb3_env.close()
    with pytest.raises(keel.ClosedError, match="closed"):
        sb3_env.reset()
    single = gym.make("keel/CartPole-v1")
    single.reset(seed=0)
    single.close()
    with pytest.raises(keel.ClosedError, match="closed"):
        single.step(0)


def test_two_threads_on_one_vector_env_get_one_clear_error():
    envs = keel.KeelVectorEnv("keel/KuramotoSivashinsky-v0", 8, workers=1)
    envs.reset(seed=0)
    actions = np.zeros((8, 8))
    errors = []

    def stepper():
        for _ in range(30):
            try:
                envs.step(actions)
            except keel.InUseError:
                pass

    thread = threading.Thread(target=stepper)
    thread.start()
    while thread.is_alive():
        try:
            envs.step(actions)
        except Exception as e:  # noqa: BLE001 - every kind is recorded and checked below
            errors.append(e)
    thread.join()
    assert errors, "the two threads never met"
    assert all(isinstance(e, keel.InUseError) and "another thread" in str(e) for e in errors), errors[:3]
    envs.step(actions)


def test_sb3_attributes_are_parameters_or_errors():
    env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=4)
    with pytest.raises(keel.ConfigError, match="gravity"):
        env.set_attr("gravity", 1000.0)
    with pytest.raises(keel.ConfigError, match="num_envs"):
        env.set_attr("num_envs", 2)
    assert env.num_envs == 4 and env.reset().shape == (4, 4)
    with pytest.raises(IndexError):
        env.get_attr("high", indices=[10])


def test_null_config_values_say_null_is_not_allowed():
    with pytest.raises(keel.ConfigError, match="invalid `gravity`: null is not allowed"):
        gym.make("keel/CartPole-v1", gravity=None)
    with pytest.raises(keel.ConfigError, match="invalid `high`: null is not allowed"):
        keel.KeelVectorEnv("keel/CartPole-v1", 2).set_params(high=None)


def test_indices_out_of_range_and_huge_integers_are_named():
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 2)
    for bad in [-1, 2, 2**70]:
        with pytest.raises(IndexError, match=f"sub-env index {bad} out of range for 2 envs"):
            envs.params(bad)
        with pytest.raises(IndexError, match="out of range"):
            envs.state(bad)
        with pytest.raises(IndexError, match="out of range"):
            envs.set_params(indices=[bad], high=0.1)
    envs.set_params(indices=[1], high=0.1)
    assert envs.params(1)["high"] == 0.1
    with pytest.raises(keel.ConfigError, match=r"`gravity = 1e400` is not finite"):
        gym.make("keel/CartPole-v1", gravity=10**400)
    with pytest.raises(NotImplementedError, match="does not render"):
        gym.make("keel/CartPole-v1").unwrapped.render()


def test_seeds_and_options_of_the_wrong_kind_name_the_argument():
    for envs in (keel.KeelVectorEnv("keel/CartPole-v1", 2), keel.KeelAsyncVectorEnv("keel/CartPole-v1", 2, 1)):
        reset = envs.reset
        with pytest.raises(keel.ConfigError, match=r"seed\[1\] is None"):
            reset(seed=[1, None])
        with pytest.raises(keel.ConfigError, match=r"seed\[0\] must be an integer"):
            reset(seed=[-1, 2])
        with pytest.raises(keel.ConfigError, match="3 seeds for 2 envs"):
            reset(seed=[1, 2, 3])
        with pytest.raises(keel.ConfigError, match="seed must be an integer, a list"):
            reset(seed={"a": 1})
        with pytest.raises(keel.ConfigError, match=r"options\[0\] must be a mapping \(or None\), got int"):
            reset(options=[1, 2])
        with pytest.raises(keel.ConfigError, match="options must be a mapping or a list"):
            reset(options=5)
        with pytest.raises(keel.ConfigError, match="1 mappings for 2 envs"):
            reset(options=[{}])
        reset(seed=[1, 2], options=[None, {}])


def test_integer_actions_beyond_int64_are_named_not_wrapped():
    cart = gym.make("keel/CartPole-v1")
    cart.reset(seed=0)
    with pytest.raises(keel.ActionError, match=r"action 1180591620717411303424 is outside the action space Discrete\(2\)"):
        cart.step(2**70)
    with pytest.raises(keel.ActionError, match="action 18446744073709551615 is outside"):
        cart.step(np.uint64(2**64 - 1))
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 2)
    envs.reset(seed=0)
    for bad, value in [(np.array([2**64 - 1, 0], np.uint64), 2**64 - 1), ([0, 2**70], 2**70), ([0, -(2**70)], -(2**70))]:
        with pytest.raises(keel.ActionError, match=f"action {value} is outside the action space"):
            envs.step(bad)
    with pytest.raises(keel.ActionError, match="sub-env 1"):  # in int64, outside the space: the engine's check
        envs.step(np.array([0, 7], np.uint64))
    cart.step(1)
    envs.step(np.array([1, 0], np.uint64))


def test_float_actions_beyond_float32_are_named_not_infinite():
    pend = gym.make("keel/Pendulum-v1")
    pend.reset(seed=0)
    with pytest.raises(keel.ActionError, match=r"action value 1e300 does not fit the float32 of the action space Box"):
        pend.step(np.array([1e300]))
    envs = keel.KeelVectorEnv("keel/Pendulum-v1", 2)
    envs.reset(seed=0)
    with pytest.raises(keel.ActionError, match=r"-1e300 does not fit the float32"):
        envs.step([[0.0], [-1e300]])
    pend.step(np.array([0.5]))
    envs.step(np.zeros((2, 1)))


def test_a_worker_thread_that_cannot_start_is_a_config_error_naming_workers():
    # In a child interpreter asking for thread stacks larger than the address space, so no
    # worker thread can start.
    import os
    import subprocess
    import sys

    code = (
        "import keel\n"
        "for make in (lambda: keel.KeelVectorEnv('keel/CartPole-v1', 4, workers=2),\n"
        "             lambda: keel.KeelAsyncVectorEnv('keel/CartPole-v1', 4, 2, workers=2)):\n"
        "    try:\n"
        "        make()\n"
        "        print('made')\n"
        "    except keel.ConfigError as e:\n"
        "        print('ConfigError:', e)\n"
    )
    env = {**os.environ, "RUST_MIN_STACK": str(2**60)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ConfigError:") for line in lines), out.stdout
    assert all("cannot start env worker thread" in line and "fewer workers" in line for line in lines), out.stdout
