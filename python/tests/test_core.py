"""The extension module builds, imports and sees the Rust registry."""

import keel


def test_registry_is_visible():
    ids = keel.env_ids()
    for expected in ["keel/CartPole-v1", "keel/Acrobot-v1", "keel/MountainCar-v0",
                     "keel/MountainCarContinuous-v0", "keel/Pendulum-v1"]:
        assert expected in ids


def test_version():
    assert keel.__version__.count(".") == 2


def test_import_tolerates_an_env_whose_data_is_missing(tmp_path):
    # A fresh interpreter whose cache and venv hold no controlgym data: `import keel` still
    # works and lists keel/Linear-v0; making it raises DataMissingError saying what to install.
    import os
    import subprocess
    import sys

    code = (
        "import gymnasium as gym, keel\n"
        "assert 'keel/Linear-v0' in keel.env_ids() and 'keel/Linear-v0' in gym.registry\n"
        "try:\n"
        "    gym.make('keel/Linear-v0')\n"
        "except keel.DataMissingError as e:\n"
        "    print('missing:', e)\n"
    )
    env = {**os.environ, "KEEL_CACHE": str(tmp_path), "VIRTUAL_ENV": str(tmp_path)}
    env.pop("KEEL_CONTROLGYM_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "missing: missing data" in out.stdout and "controlgym" in out.stdout
