"""Async (EnvPool-style) Atari: uint8 batches without copies, trajectories equal to sync ones."""

import numpy as np
import pytest

import keel
from _require import skip_or_fail

if "keel/Pong-v5" not in keel.env_ids():
    skip_or_fail("KEEL_REQUIRE_ATARI", "Keel was built without the `atari` feature", module=True)


def scripted(i, t):
    return (t * 5 + i * 3) % 6


def record(obs, rew, term, trunc, info, k):
    return obs[k].tobytes(), float(rew[k]), bool(term[k]), bool(trunc[k]), float(info["lives"][k])


@pytest.mark.parametrize("workers", [0, 2])
def test_async_pong_equals_sync_pong_per_env(workers):
    n, b, steps = 4, 2, 40
    sync = keel.KeelVectorEnv("keel/Pong-v5", n, preset="envpool", workers=0, copy=False)
    obs, info = sync.reset(seed=3)
    want = [[(obs[i].tobytes(), 0.0, False, False, float(info["lives"][i]))] for i in range(n)]
    for t in range(steps):
        obs, rew, term, trunc, info = sync.step(np.array([scripted(i, t) for i in range(n)]))
        for i in range(n):
            want[i].append(record(obs, rew, term, trunc, info, i))
    sync.close()

    envs = keel.make_vec("keel/Pong-v5", num_envs=n, batch_size=b, workers=workers, preset="envpool", copy=False)
    envs.async_reset(seed=3)
    got = [[] for _ in range(n)]
    while any(len(g) <= steps for g in got):
        obs, rew, term, trunc, info = envs.recv()
        # Bytes end to end: a read-only uint8 view of the engine's output ring, no copy.
        assert obs.dtype == np.uint8 and obs.shape == (b, 4, 84, 84)
        assert not obs.flags.owndata and not obs.flags.writeable
        ids = info["env_id"]
        for k, i in enumerate(ids):
            got[i].append(record(obs, rew, term, trunc, info, k))
        envs.send(np.array([scripted(i, len(got[i]) - 1) for i in ids]), ids)
    envs.close()
    for i in range(n):
        assert got[i][: steps + 1] == want[i], f"env {i}"


def test_async_atari_rejects_actions_outside_the_minimal_set():
    envs = keel.make_vec("keel/Breakout-v5", num_envs=2, batch_size=1, workers=1, preset="envpool")
    envs.async_reset(seed=0)
    _, _, _, _, info = envs.recv()
    with pytest.raises(keel.ActionError):
        envs.send(np.array([4]), info["env_id"])  # Breakout has 4 actions
    envs.send(np.array([1]), info["env_id"])
    obs, *_ = envs.recv()
    assert obs.shape == (1, 4, 84, 84)


def test_a_missing_rom_says_how_to_get_it(tmp_path):
    # In a child interpreter: the ROM folder is read from the environment when an env is made.
    import os
    import subprocess
    import sys

    code = (
        "import keel\n"
        "try:\n"
        "    keel.make('keel/Pong-v5')\n"
        "except keel.DataMissingError as e:\n"
        "    print('DataMissingError:', e)\n"
    )
    env = {**os.environ, "KEEL_ALE_ROMS": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "DataMissingError:" in out.stdout and "pong.bin" in out.stdout and "setup.sh" in out.stdout, out.stdout
