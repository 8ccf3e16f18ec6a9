"""The extension module builds, imports and sees the Rust registry."""

import keel


def test_registry_is_visible():
    ids = keel.env_ids()
    for expected in ["keel/CartPole-v1", "keel/Acrobot-v1", "keel/MountainCar-v0",
                     "keel/MountainCarContinuous-v0", "keel/Pendulum-v1"]:
        assert expected in ids


def test_version():
    assert keel.__version__.count(".") == 2
