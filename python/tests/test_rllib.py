"""RLlib's PPO trains keel/CartPole-v1 with env runners that step Keel's vector env.

RLlib 2.60 pins gymnasium 1.2.2 and Keel's environment 1.4.0, so this runs
scripts/rllib_cartpole.py in the separate, opt-in environment of scripts/rllib_venv.sh (which
installs Keel's wheel built from this checkout). Without that environment the test skips, unless
KEEL_REQUIRE_RLLIB=1, when a missing environment is a failure.
"""

import json
import os
import pathlib
import subprocess

import pytest
from _require import skip_or_fail

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = pathlib.Path(os.environ.get("KEEL_CACHE", pathlib.Path.home() / ".cache/keel")) / "rllib-venv"


def test_rllib_ppo_trains_on_keel_cartpole(tmp_path):
    if not (VENV / "bin/python").exists():
        skip_or_fail("KEEL_REQUIRE_RLLIB", f"no RLlib venv at {VENV} (bash scripts/rllib_venv.sh makes it, about 4.5 GB)")
    out = tmp_path / "rllib.json"
    # 5 iterations of 4000 steps: the return of an untrained policy (about 20) at least doubles.
    proc = subprocess.run(
        ["bash", "scripts/rllib_venv.sh", "scripts/rllib_cartpole.py", "--iterations", "5", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "env runners' vector envs: ['keel.vector.KeelVectorEnv']" in proc.stdout
    summary = json.loads(out.read_text())
    assert summary["env_steps"][-1] >= 5 * 4000
    assert max(summary["returns"][2:]) >= 2 * summary["returns"][0], summary["returns"]
