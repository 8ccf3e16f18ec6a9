#!/usr/bin/env python3
"""Hostile inputs to Keel: the ``keel`` command line and the ``keel`` Python package.

Every case runs in its own process, under a time limit and an address-space limit (so a
runaway allocation cannot take the machine down), and its outcome is classified:

    error    a clear error: one line (the command line's ``error: ...``, clap's usage error, or a
             Python exception of a documented kind), naming what the case expects it to name
    ok       accepted, and the result passes the case's sanity check
    PANIC    a Rust panic or backtrace
    ABORT    killed by a signal (abort, segfault, the OOM killer)
    HANG     still running at the time limit
    SILENT   accepted where an error was due, or accepted with a result that fails its check
    UNCLEAR  an error, but not one clear line (several lines, a debug dump, a cause said twice,
             or without the word it must name)
    LOST     an error, but the case's check finds the user's data damaged (an input replaced,
             a half-written output left behind)

Cases with ``interrupt`` get SIGINT (Ctrl-C) after that many seconds: they must stop with status
130 (or die by SIGINT, where there is nothing to clean up) before the time limit, and pass their
check (no partial output).

The script prints a table of every case and a summary, and exits 1 if any case is PANIC, ABORT,
HANG, SILENT, UNCLEAR or LOST.

    .venv/bin/python scripts/hostile_inputs.py            # all cases (about a minute on 2 cores)
    .venv/bin/python scripts/hostile_inputs.py -k train   # cases whose name contains "train"
    .venv/bin/python scripts/hostile_inputs.py --keel path/to/keel --jobs 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BAD = ("PANIC", "ABORT", "HANG", "SILENT", "UNCLEAR", "LOST")
ADDRESS_SPACE = 24 << 30  # bytes; libtorch maps a few GB of address space on its own


@dataclass
class Case:
    name: str
    kind: str  # "cli" or "py"
    command: list[str] | str  # keel arguments, or Python source
    expect: str  # "error", "ok" or "either"
    needle: str = ""  # what an error must name (case-insensitive)
    check: Callable[[subprocess.CompletedProcess], str | None] | None = None  # returns None when sane
    timeout: float = 30.0
    interrupt: float | None = None  # seconds before SIGINT; the case must then stop cleanly


@dataclass
class Outcome:
    case: Case
    verdict: str
    seconds: float
    detail: str


# --- fixtures ---------------------------------------------------------------------------------


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def files(folder: Path, prefix: str, suffix: str, texts: dict[str, str]) -> dict[str, str]:
    """Each text written to `folder/prefix_NAME.suffix`; their paths by name."""
    return {name: write(folder / f"{prefix}_{name}.{suffix}", text) for name, text in texts.items()}


def safetensors_read(path: Path) -> dict[str, tuple[str, list[int], bytes]]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    return {
        k: (v["dtype"], v["shape"], data[v["data_offsets"][0] : v["data_offsets"][1]])
        for k, v in header.items()
        if k != "__metadata__"
    }


def safetensors_write(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def demo_file(path: Path, state: float = 0.0, observation: float = 0.0) -> str:
    """A one-episode demo of keel/DiffPendulum-v0 (the format `keel demo` writes), zeros but
    `state` and `observation` at step 5."""
    steps, env_id = 128, b"keel/DiffPendulum-v0"
    states = [0.0] * (steps * 2)
    states[5 * 2 + 1] = state
    observations = [0.0] * (steps * 3)
    observations[5 * 3 + 1] = observation
    safetensors_write(path, {
        "env_id": ("U8", [len(env_id)], env_id),
        "states": ("F64", [1, steps, 2], struct.pack(f"<{len(states)}d", *states)),
        "observations": ("F32", [1, steps, 3], struct.pack(f"<{len(observations)}f", *observations)),
        "actions": ("F32", [1, steps, 1], b"\0" * (4 * steps)),
        "rewards": ("F32", [1, steps], b"\0" * (4 * steps)),
    })
    return str(path)


class Fixtures:
    """Input files, a small trained run and damaged copies of it, in a scratch folder."""

    def __init__(self, keel: str, base: Path):
        self.dir = base
        d = base
        self.file = write(d / "a_file", "not a folder")
        self.actions = files(d, "actions", "json", {
            "cart": "[0, 1, 1]",
            "empty": "[]",
            "float": "[0.5]",
            "negative": "[-1]",
            "huge": "[1e30]",
            "object": '{"a": 1}',
            "broken": "[0, 1",
            "pendulum": "[[0.5], [-0.5]]",
            "pendulum_wide": "[[1, 2]]",
            "pendulum_text": '[["x"]]',
            "pendulum_beyond": "[[1e400]]",
            "nested": "[[[0]]]",
            "bool": "[true]",
            "burgers": json.dumps([[0.0] * 8] * 3),
        })
        self.states = files(d, "state", "json", {
            "huge": "[1e308, 1e308, 0, 0]",
            "1e300": "[1e300, 0, 0, 0]",
            "short": "[0, 0]",
            "long": "[0, 0, 0, 0, 0]",
            "text": '["a", 0, 0, 0]',
            "wrong_key": '{"stat": [0, 0, 0, 0]}',
            "ok_object": '{"state": [0.01, 0, 0, 0]}',
            "null": "null",
            "beyond": "[1e400, 0, 0, 0]",
            "diff_1e30": "[3.0, 1e30]",
            "diff_1e7": "[1e7, 0.0]",
        })
        # ILD demos of keel/DiffPendulum-v0 (128 steps) with one absurd or non-finite value.
        self.demos = {
            "states_1e30": demo_file(d / "demo_states_1e30.safetensors", state=1e30),
            "observations_nan": demo_file(d / "demo_observations_nan.safetensors", observation=float("nan")),
        }
        self.configs = files(d, "config", "toml", {
            "pendulum": 'env_id = "keel/Pendulum-v1"\n',
            "dppo": 'algo = "dppo"\n',
            "sac": 'algo = "sac"\n',
            "env_number": "env_id = 5\n",
            "nan": "learning_rate = nan\n",
            "inf_env": "[env_config]\ngravity = inf\n",
            "syntax": "learning_rate = = 3\n",
            "empty": "",
            "unknown": "learning_rte = 1\n",
            "sampler_short": '[sampler]\nkind = "uniform_start_state"\nlow = [0.0]\nhigh = [0.1]\n',
            "sampler_kind": '[sampler]\nkind = "teleport"\n',
            "minibatches": "num_minibatches = 3\n",
            "binary": "\x00\x01\x02",
            "sampler_huge": '[sampler]\nkind = "uniform_start_state"\nlow = [-1e300, 0.0, 0.0, 0.0]\n'
                            'high = [1e300, 0.0, 0.0, 0.0]\n',
            "sampler_scale": '[sampler]\nkind = "uniform_start_state"\nlow = [0.0, 0.0, 0.0, 0.0]\n'
                             'high = [0.1, 0.1, 0.1, 0.1]\nscale = 0.0\n',
            "sampler_reversed": '[sampler]\nkind = "uniform_start_state"\nlow = [0.1, 0.0, 0.0, 0.0]\n'
                                'high = [0.0, 0.1, 0.1, 0.1]\n',
        })
        sweep_head = 'algorithms = ["ppo"]\nseeds = [0]\ntotal_timesteps = 128\nset = { num_envs = 2, num_steps = 32 }\n'
        cart_env = '[[envs]]\nid = "keel/CartPole-v1"\nname = "cartpole"\n'
        self.sweeps = files(d, "sweep", "toml", {
            "ok": sweep_head + cart_env,
            "sac": 'algorithms = ["sac"]\nseeds = [0]\n' + cart_env,
            "env": sweep_head + '[[envs]]\nid = "keel/Nope-v0"\n',
            "field": sweep_head + "seedz = [1]\n" + cart_env,
            "no_seeds": 'algorithms = ["ppo"]\nseeds = []\n' + cart_env,
            "jobs0": sweep_head + "jobs = 0\n" + cart_env,
            "cpus0": sweep_head + "cpus_per_run = 0\n" + cart_env,
            "grid": sweep_head + "[grid]\nlearning_rate = []\n" + cart_env,
            "env_config": sweep_head + cart_env + "config = { gravityy = 9.8 }\n",
            "env_value": sweep_head + cart_env + "config = { tau = -1.0 }\n",
        })
        (d / "empty_dir").mkdir()
        # Inputs that a case names as its own output too: each its own, so the others keep theirs.
        self.own_actions = write(d / "own_actions.json", "[0, 1]")
        self.own_state = write(d / "own_state.json", "[0.01, 0, 0, 0]")
        # Valid but for the one fault, so that a Keel that missed the fault would run the sweep.
        plain = sweep_head
        tail = 'total_timesteps = 128\nset = { num_envs = 2, num_steps = 32 }\n'
        self.sweeps.update(files(d, "sweep", "toml", {
            "escape": plain + cart_env.replace('name = "cartpole"', 'name = "../../x"'),
            "dot_name": plain + cart_env.replace('name = "cartpole"', 'name = "."'),
            "seeds_twice": 'algorithms = ["ppo"]\nseeds = [0, 1, 0]\n' + tail + cart_env,
            "algos_twice": 'algorithms = ["ppo", "ppo"]\nseeds = [0]\n' + tail + cart_env,
            "grid_twice": plain + "grid = { learning_rate = [0.1, 0.1] }\n" + cart_env,
            "reference_nan": plain + cart_env + "reference = [nan, 1.0]\n",
            "reference_equal": plain + cart_env + "reference = [1.0, 1.0]\n",
            "reference_reversed": plain + cart_env + "reference = [5.0, 1.0]\n",
        }))
        self.run = d / "run"
        trained = subprocess.run(
            [keel, "train", "--run-dir", str(self.run), *TINY, "--max-iterations", "1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if trained.returncode != 0:
            sys.exit(f"cannot train the fixture run: {trained.stderr}")
        self.damaged = {name: self.damage(name, how) for name, how in DAMAGE.items()}
        empty_metrics = self.copy("empty_metrics")
        (empty_metrics / "metrics.csv").write_text("")
        self.damaged["empty_metrics"] = str(empty_metrics)
        text_metrics = self.copy("text_metrics")
        (text_metrics / "metrics.csv").write_text("iteration,episodic_return\n1,abc\n2,1e400\n")
        self.damaged["text_metrics"] = str(text_metrics)
        header_metrics = self.copy("header_metrics")
        (header_metrics / "metrics.csv").write_text("iteration,episodic_return\n")
        self.damaged["header_metrics"] = str(header_metrics)
        self.foreign_sweep = self.sweep_with_a_foreign_run()

    def sweep_with_a_foreign_run(self) -> str:
        """A sweep folder of two CartPole PPO runs, the second of which is a Pendulum run copied in."""
        summary = json.loads((self.run / "summary.json").read_text())
        seed = summary["seed"]
        folder = self.dir / "foreign_sweep"
        trials = []
        for k in range(2):
            name = f"cartpole_ppo_s{seed + k}"
            shutil.copytree(self.run, folder / "runs" / name)
            run_summary = dict(summary, status="completed", seed=seed + k,
                               env_id="keel/Pendulum-v1" if k else summary["env_id"])
            (folder / "runs" / name / "summary.json").write_text(json.dumps(run_summary))
            trials.append({"name": name, "algo": "ppo", "env_id": summary["env_id"], "env": "cartpole",
                           "variant": "", "seed": seed + k, "sets": [], "total_timesteps": 128})
        spec = {"algorithms": ["ppo"], "envs": [{"id": summary["env_id"], "name": "cartpole", "config": {}}],
                "seeds": [seed, seed + 1], "total_timesteps": 128, "jobs": None, "cpus_per_run": 1, "set": {},
                "grid": {}, "scheduler": None}
        (folder / "sweep.json").write_text(json.dumps({"spec": spec, "trials": trials}))
        return str(folder)

    def copy(self, name: str) -> Path:
        target = self.dir / f"run_{name}"
        shutil.copytree(self.run, target)
        return target

    def damage(self, name: str, how: Callable[[Path], None]) -> str:
        target = self.copy(name)
        how(target / "checkpoints")
        return str(target)


TINY = ["--total-timesteps", "128", "--set", "num_steps=32", "--set", "num_envs=2", "--quiet"]


def _tensors(how: Callable[[dict], dict | None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "iter_000001.safetensors"
        tensors = safetensors_read(path)
        changed = how(tensors)
        safetensors_write(path, tensors if changed is None else changed)

    return apply


def _set(name: str, dtype: str, shape: list[int], raw: bytes) -> Callable[[dict], None]:
    def apply(tensors: dict) -> None:
        tensors[name] = (dtype, shape, raw)

    return apply


def _json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "iter_000001.json"
        state = json.loads(path.read_text())
        change(state)
        path.write_text(json.dumps(state))

    return apply


def _nan_bias(tensors: dict) -> None:
    dtype, shape, raw = tensors["actor.head.bias"]
    tensors["actor.head.bias"] = (dtype, shape, struct.pack("<f", float("nan")) * (len(raw) // 4))


def _negative_moment(tensors: dict) -> None:
    dtype, shape, raw = tensors["adam.exp_avg_sq.0"]
    tensors["adam.exp_avg_sq.0"] = (dtype, shape, struct.pack("<f", -1.0) * (len(raw) // 4))


def _reshaped(tensors: dict) -> None:
    dtype, shape, raw = tensors["actor.head.bias"]
    tensors["actor.head.bias"] = (dtype, [1, len(raw) // 4], raw)


def _as_int(tensors: dict) -> None:
    dtype, shape, raw = tensors["actor.head.bias"]
    tensors["actor.head.bias"] = ("I32", shape, raw)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "random_bytes": lambda f: (f / "iter_000001.safetensors").write_bytes(os.urandom(3000)),
    "empty_tensors": lambda f: (f / "iter_000001.safetensors").write_bytes(b""),
    "missing_tensors": lambda f: (f / "iter_000001.safetensors").unlink(),
    "nan_weights": _tensors(_nan_bias),
    "no_optimiser": _tensors(lambda t: {k: v for k, v in t.items() if not k.startswith("adam")}),
    "foreign_tensors": _tensors(lambda t: {"x": ("F32", [2], b"\0" * 8)}),
    "empty_step_count": _tensors(_set("adam.steps", "I64", [0], b"")),
    "float_step_count": _tensors(_set("adam.steps", "F32", [1], struct.pack("<f", 3.5))),
    "negative_step_count": _tensors(_set("adam.steps", "I64", [1], struct.pack("<q", -5))),
    "negative_moment": _tensors(_negative_moment),
    "reshaped_weight": _tensors(_reshaped),
    "int_weight": _tensors(_as_int),
    "latest_traversal": lambda f: (f / "latest").write_text("../../../etc/passwd"),
    "latest_empty": lambda f: (f / "latest").write_text(""),
    "latest_missing": lambda f: (f / "latest").unlink(),
    "state_garbage": lambda f: (f / "iter_000001.json").write_text("garbage"),
    "state_missing": lambda f: (f / "iter_000001.json").unlink(),
    "state_env_count": _json(lambda s: s.update(done=s["done"] * 3)),
    "state_snapshot": _json(lambda s: s.update(envs={"garbage": True})),
    "state_negative_step": _json(lambda s: s.update(global_step=-1)),
    "config_garbage": lambda f: (f.parent / "config.toml").write_text("this is = = not toml\n"),
    "config_no_algo": lambda f: (f.parent / "config.toml").write_text('env_id = "keel/CartPole-v1"\n'),
    "config_other_algo": lambda f: (f.parent / "config.toml").write_text('algo = "sac"\n'),
    "config_bigger_net": lambda f: (f.parent / "config.toml").write_text(
        (f.parent / "config.toml").read_text().replace("    64,\n    64,\n", "    64,\n    65,\n")
    ),
}


# --- cases -------------------------------------------------------------------------------------


Check = Callable[[subprocess.CompletedProcess], "str | None"]  # None: the result is sane


def file_has(path: str, test: Callable[[dict], bool], what: str) -> Check:
    def check(_: subprocess.CompletedProcess) -> str | None:
        try:
            return None if test(json.loads(Path(path).read_text())) else f"{path}: {what}"
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"{path}: {e}"

    return check


def run_config(run: Path, test: Callable[[str], bool], what: str) -> Check:
    def check(_: subprocess.CompletedProcess) -> str | None:
        try:
            return None if test((run / "config.toml").read_text()) else f"{run}/config.toml: {what}"
        except OSError as e:
            return str(e)

    return check


def unchanged(path: str, text: str) -> Check:
    def check(_: subprocess.CompletedProcess) -> str | None:
        try:
            now = Path(path).read_text()
        except OSError as e:
            return f"{path}: {e}"
        return None if now == text else f"{path} was replaced"

    return check


def no_partial(folder: Path, name: str) -> Check:
    """Neither `folder/name` nor a temporary file beside it is left."""
    def check(_: subprocess.CompletedProcess) -> str | None:
        left = [p.name for p in folder.iterdir() if p.name == name or (p.name.startswith(f".{name}") and
                                                                      p.name.endswith(".tmp"))]
        return f"left behind: {left}" if left else None

    return check


def cli_cases(fx: Fixtures) -> list[Case]:
    d = fx.dir
    a, s, c, dmg = fx.actions, fx.states, fx.configs, fx.damaged
    sw = fx.sweeps
    out = str(d / "out.json")

    def rollout(env: str, *extra: str, actions: str = a["cart"], to: str = out) -> list[str]:
        return ["rollout", "--env", env, *extra, "--actions", actions, "--out", to]

    cart, pend, burgers = "keel/CartPole-v1", "keel/Pendulum-v1", "keel/Burgers-v0"
    run = str(fx.run)
    cases = [
        # rollout: sizes, values, files
        Case("rollout n_state=1e12", "cli", rollout(burgers, "--set", "n_state=1000000000000", actions=a["pendulum"]),
             "error", "n_state = 1000000000000"),
        Case("rollout n_state=0", "cli", rollout(burgers, "--set", "n_state=0"), "error", "n_state"),
        Case("rollout n_state=-1", "cli", rollout(burgers, "--set", "n_state=-1"), "error", "n_state"),
        Case("rollout n_state=1.5", "cli", rollout(burgers, "--set", "n_state=1.5"), "error", "n_state"),
        Case("rollout gravity=1e400", "cli", rollout(cart, "--set", "gravity=1e400"), "error", "not a finite number"),
        Case("rollout gravity=nan", "cli", rollout(cart, "--set", "gravity=nan"), "error", "not a finite number"),
        Case("rollout gravity=-inf", "cli", rollout(cart, "--set", "gravity=-inf"), "error", "not a finite number"),
        Case("rollout gravity=Infinity", "cli", rollout(cart, "--set", "gravity=Infinity"), "error", "finite"),
        Case("rollout gravity=null", "cli", rollout(cart, "--set", "gravity=null"), "error", "null is not allowed"),
        Case("rollout gravity=[1,2]", "cli", rollout(cart, "--set", "gravity=[1,2]"), "error", "gravity"),
        Case("rollout gravity=[1e400]", "cli", rollout(cart, "--set", "gravity=[1e400]"), "error", "finite"),
        Case("rollout gravity={broken", "cli", rollout(cart, "--set", "gravity={broken"), "error", "gravity"),
        Case("rollout --set without =", "cli", rollout(cart, "--set", "gravity"), "error", "key=value"),
        Case("rollout --set with empty key", "cli", rollout(cart, "--set", "=5"), "error", "empty key"),
        Case("rollout unknown field", "cli", rollout(cart, "--set", "gravityy=1"), "error", "gravityy"),
        Case("rollout negative tau", "cli", rollout(cart, "--set", "tau=-1"), "error", "tau"),
        Case("rollout max_episode_steps=0", "cli", rollout(cart, "--set", "max_episode_steps=0"), "error",
             "max_episode_steps"),
        Case("rollout max_episode_steps=-5", "cli", rollout(cart, "--set", "max_episode_steps=-5"), "error",
             "max_episode_steps"),
        # Huge noise: finite observations are sane; a state that leaves float64 ends the episode
        # (terminated, as the controlgym envs document), never an infinite observation mid-episode.
        Case("rollout sensor_noise_cov=1e308", "cli",
             rollout(burgers, "--set", "sensor_noise_cov=1e308", actions=a["burgers"]), "either",
             check=file_has(out, lambda t: all(x is not None for r in [t["reset"], *t["steps"]] for x in r["obs"]),
                            "a non-finite observation")),
        Case("rollout process_noise_cov=1e308", "cli",
             rollout(burgers, "--set", "process_noise_cov=1e308", actions=a["burgers"]), "either",
             check=file_has(out, lambda t: all(None not in r["obs"] or r["terminated"] for r in t["steps"]),
                            "a non-finite observation in a running episode")),
        Case("rollout linear system path", "cli", rollout("keel/Linear-v0", "--set", "system=../../etc/passwd"),
             "error", "system"),
        Case("rollout unknown env", "cli", rollout("keel/CartPole-v9"), "error", "unknown environment id"),
        Case("rollout empty env id", "cli", rollout(""), "error", "unknown environment id"),
        Case("rollout env id with control chars", "cli", rollout("keel/\x1b[31mred"), "error", "unknown environment"),
        Case("rollout init state 1e308", "cli", rollout(cart, "--init-state", s["huge"]), "error", "float32"),
        Case("rollout init state 1e300", "cli", rollout(cart, "--init-state", s["1e300"]), "error", "float32"),
        Case("rollout init state too short", "cli", rollout(cart, "--init-state", s["short"]), "error", "state"),
        Case("rollout init state too long", "cli", rollout(cart, "--init-state", s["long"]), "error", "state"),
        Case("rollout init state text", "cli", rollout(cart, "--init-state", s["text"]), "error", "element 0"),
        Case("rollout init state wrong key", "cli", rollout(cart, "--init-state", s["wrong_key"]), "error", "state"),
        Case("rollout init state null", "cli", rollout(cart, "--init-state", s["null"]), "error", "list of numbers"),
        Case("rollout init state 1e400", "cli", rollout(cart, "--init-state", s["beyond"]), "error", "JSON"),
        Case("rollout init state object", "cli", rollout(cart, "--init-state", s["ok_object"]), "ok",
             check=file_has(out, lambda t: len(t["steps"]) == 3, "3 steps")),
        # Differentiable envs: start states within 1e6, finite; demos of them likewise.
        Case("rollout DiffPendulum init state 1e30", "cli",
             rollout("keel/DiffPendulum-v0", "--init-state", s["diff_1e30"], actions=a["pendulum"]), "error",
             "element 1 = 1e30"),
        Case("rollout DiffPendulum init state 1e7", "cli",
             rollout("keel/DiffPendulum-v0", "--init-state", s["diff_1e7"], actions=a["pendulum"]), "error", "1e6"),
        Case("train ild demo states 1e30", "cli",
             ["train", "--algo", "ild", "--env", "keel/DiffPendulum-v0", "--set", f"demo={fx.demos['states_1e30']}",
              "--run-dir", str(d / "ild_states"), "--quiet"], "error", "`states` of episode 0, step 5"),
        Case("train ild demo observations nan", "cli",
             ["train", "--algo", "ild", "--env", "keel/DiffPendulum-v0", "--set",
              f"demo={fx.demos['observations_nan']}", "--run-dir", str(d / "ild_obs"), "--quiet"], "error",
             "is not finite"),
        Case("rollout init state missing file", "cli", rollout(cart, "--init-state", str(d / "nope.json")), "error",
             "nope.json"),
        Case("rollout no actions", "cli", rollout(cart, actions=a["empty"]), "ok",
             check=file_has(out, lambda t: t["steps"] == [] and t["unplayed_actions"] == 0, "no steps")),
        Case("rollout action 0.5 for Discrete", "cli", rollout(cart, actions=a["float"]), "error", "action 0"),
        Case("rollout action -1 for Discrete", "cli", rollout(cart, actions=a["negative"]), "error", "action 0"),
        Case("rollout action 1e30 for Discrete", "cli", rollout(cart, actions=a["huge"]), "error", "action 0"),
        Case("rollout action true for Discrete", "cli", rollout(cart, actions=a["bool"]), "error", "action 0"),
        Case("rollout actions object", "cli", rollout(cart, actions=a["object"]), "error", "JSON list"),
        Case("rollout actions broken JSON", "cli", rollout(cart, actions=a["broken"]), "error", "JSON"),
        Case("rollout actions nested", "cli", rollout(cart, actions=a["nested"]), "error", "action 0"),
        Case("rollout actions missing file", "cli", rollout(cart, actions=str(d / "nope.json")), "error", "nope.json"),
        Case("rollout actions is a folder", "cli", rollout(cart, actions=str(d)), "error", str(d)),
        Case("rollout pendulum wide action", "cli", rollout(pend, actions=a["pendulum_wide"]), "error", "action 0"),
        Case("rollout pendulum text action", "cli", rollout(pend, actions=a["pendulum_text"]), "error", "action 0"),
        Case("rollout pendulum 1e400 action", "cli", rollout(pend, actions=a["pendulum_beyond"]), "error", "JSON"),
        Case("rollout pendulum", "cli", rollout(pend, actions=a["pendulum"]), "ok",
             check=file_has(out, lambda t: len(t["steps"]) == 2, "2 steps")),
        Case("rollout --out /proc", "cli", rollout(cart, to="/proc/keel/t.json"), "error", "/proc/keel"),
        Case("rollout --out folder", "cli", rollout(cart, to=str(d)), "error", "is a folder"),
        Case("rollout --out under a file", "cli", rollout(cart, to=fx.file + "/t.json"), "error", "not a folder"),
        Case("rollout --out empty", "cli", rollout(cart, to=""), "error", "--out"),
        Case("rollout --out is --actions", "cli", rollout(cart, actions=fx.own_actions, to=fx.own_actions), "error",
             "--actions", check=unchanged(fx.own_actions, "[0, 1]")),
        Case("rollout --out is --init-state", "cli",
             rollout(cart, "--init-state", fx.own_state, to=str(Path(fx.own_state).parent / "." / "own_state.json")),
             "error", "--init-state", check=unchanged(fx.own_state, "[0.01, 0, 0, 0]")),
        Case("rollout --seed -1", "cli", rollout(cart, "--seed", "-1"), "error", "seed"),
        Case("rollout --seed 2^64", "cli", rollout(cart, "--seed", "18446744073709551616"), "error", "seed"),
        Case("rollout --seed 2^64-1", "cli", rollout(cart, "--seed", "18446744073709551615"), "ok"),
        # bench
        Case("bench --num-envs 1e8", "cli", ["bench", "--num-envs", "100000000", "--steps", "1", "--repeats", "1"],
             "error", "num_envs = 100000000"),
        Case("bench --num-envs 2^64-1", "cli",
             ["bench", "--env", cart, "--num-envs", "18446744073709551615", "--steps", "1", "--repeats", "1"],
             "error", "num_envs"),
        Case("bench --num-envs 0", "cli", ["bench", "--env", cart, "--num-envs", "0"], "error", "must be positive"),
        Case("bench --steps 0", "cli", ["bench", "--env", cart, "--steps", "0"], "error", "must be positive"),
        Case("bench --steps 2^64-1", "cli",
             ["bench", "--env", cart, "--num-envs", "4", "--steps", "18446744073709551615"], "error", "2^64",
             timeout=10),
        Case("bench --repeats 0", "cli", ["bench", "--env", cart, "--repeats", "0"], "error", "must be positive"),
        Case("bench --num-envs -1", "cli", ["bench", "--env", cart, "--num-envs", "-1"], "error", "num-envs"),
        Case("bench n_state=1e12", "cli",
             ["bench", "--env", burgers, "--set", "n_state=1000000000000", "--steps", "1", "--repeats", "1"],
             "error", "n_state"),
        Case("bench gravity=nan", "cli", ["bench", "--env", cart, "--set", "gravity=nan"], "error", "finite"),
        Case("bench --json /proc (before measuring)", "cli",
             ["bench", "--env", cart, "--steps", "100000000", "--json", "/proc/keel/b.json"], "error", "/proc/keel",
             timeout=10),
        Case("bench --json folder", "cli", ["bench", "--env", cart, "--json", str(d)], "error", "is a folder"),
        Case("bench --autoreset disabled", "cli", ["bench", "--env", cart, "--autoreset", "disabled"], "error",
             "disabled"),
        Case("bench --workers 100000", "cli",
             ["bench", "--env", cart, "--num-envs", "4", "--workers", "100000", "--steps", "10", "--repeats", "1"],
             "either"),
        Case("bench unknown env", "cli", ["bench", "--env", "keel/Nope-v0"], "error", "unknown environment id"),
        # train: config resolution
        Case("train env_id in --config honoured", "cli",
             ["train", "--config", c["pendulum"], "--run-dir", str(d / "t_pendulum"), *TINY], "ok",
             check=run_config(d / "t_pendulum", lambda t: 'env_id = "keel/Pendulum-v1"' in t, "not Pendulum")),
        Case("train algo in --config honoured", "cli",
             ["train", "--config", c["dppo"], "--run-dir", str(d / "t_dppo"), *TINY], "ok",
             check=run_config(d / "t_dppo", lambda t: 'algo = "dppo"' in t, "not dppo")),
        Case("train --config env_id vs --env", "cli",
             ["train", "--config", c["pendulum"], "--env", cart, "--run-dir", str(d / "t_x1"), *TINY], "error",
             "given twice"),
        Case("train --set env_id vs --env", "cli",
             ["train", "--set", f"env_id={pend}", "--env", cart, "--run-dir", str(d / "t_x2"), *TINY], "error",
             "given twice"),
        Case("train --config algo vs --algo", "cli",
             ["train", "--config", c["dppo"], "--algo", "ppo", "--run-dir", str(d / "t_x3"), *TINY], "error",
             "given twice"),
        Case("train --set algo vs --algo", "cli",
             ["train", "--set", "algo=dppo", "--algo", "ppo", "--run-dir", str(d / "t_x4"), *TINY], "error",
             "given twice"),
        Case("train --config algo sac", "cli", ["train", "--config", c["sac"], "--run-dir", str(d / "t_x5"), *TINY],
             "error", "unknown algorithm `sac`"),
        Case("train --config env_id = 5", "cli",
             ["train", "--config", c["env_number"], "--run-dir", str(d / "t_x6"), *TINY], "error", "must be a string"),
        Case("train --config nan", "cli", ["train", "--config", c["nan"], "--run-dir", str(d / "t_x7"), *TINY],
             "error", "learning_rate` = NaN is not finite"),
        Case("train --config env_config inf", "cli",
             ["train", "--config", c["inf_env"], "--run-dir", str(d / "t_x8"), *TINY], "error", "env_config.gravity"),
        Case("train --config syntax", "cli", ["train", "--config", c["syntax"], "--run-dir", str(d / "t_x9"), *TINY],
             "error", "line 1"),
        Case("train --config binary", "cli", ["train", "--config", c["binary"], "--run-dir", str(d / "t_x10"), *TINY],
             "error", "TOML"),
        Case("train --config unknown field", "cli",
             ["train", "--config", c["unknown"], "--run-dir", str(d / "t_x11"), *TINY], "error", "learning_rte"),
        Case("train --config missing", "cli", ["train", "--config", str(d / "nope.toml"), *TINY], "error",
             "nope.toml"),
        Case("train --config is a folder", "cli", ["train", "--config", str(d), *TINY], "error", str(d)),
        Case("train --config empty", "cli", ["train", "--config", c["empty"], "--run-dir", str(d / "t_empty"), *TINY],
             "ok", check=run_config(d / "t_empty", lambda t: 'algo = "ppo"' in t, "not ppo")),
        Case("train sampler of the wrong size", "cli",
             ["train", "--config", c["sampler_short"], "--run-dir", str(d / "t_x12"), *TINY], "error", "state"),
        Case("train sampler of unknown kind", "cli",
             ["train", "--config", c["sampler_kind"], "--run-dir", str(d / "t_x13"), *TINY], "error", "teleport"),
        Case("train num_minibatches in --config", "cli",
             ["train", "--config", c["minibatches"], "--run-dir", str(d / "t_x14"), *TINY], "error",
             "num_minibatches"),
        Case("train sampler beyond float32", "cli",
             ["train", "--config", c["sampler_huge"], "--run-dir", str(d / "t_x15"), *TINY], "error", "float32"),
        Case("train sampler scale 0", "cli",
             ["train", "--config", c["sampler_scale"], "--run-dir", str(d / "t_x16"), *TINY], "error", "scale"),
        Case("train sampler low > high", "cli",
             ["train", "--config", c["sampler_reversed"], "--run-dir", str(d / "t_x17"), *TINY], "error", "low"),
        # train: values
        Case("train clip_coef=1e308", "cli", ["train", "--set", "clip_coef=1e308", "--run-dir", str(d / "t30")],
             "error", "clip_coef"),
        Case("train obs_clip=1e300", "cli",
             ["train", "--set", "obs_clip=1e300", "--set", "normalize_obs=true", "--run-dir", str(d / "t31")],
             "error", "obs_clip"),
        Case("train init_log_std=100", "cli",
             ["train", "--env", pend, "--set", "init_log_std=100", "--run-dir", str(d / "t32")], "error",
             "init_log_std"),
        Case("train env_config gravity=1e300", "cli",
             ["train", "--set", "env_config.gravity=1e300", "--run-dir", str(d / "t33"), *TINY], "either",
             check=lambda p: None if "completed" in p.stdout else "not completed"),
        Case("train --device cuda", "cli", ["train", "--device", "cuda", "--run-dir", str(d / "t34"), *TINY],
             "either"),
        Case("train --max-iterations 0", "cli",
             ["train", "--max-iterations", "0", "--run-dir", str(d / "t35"), *TINY], "either"),
        Case("train bad --set type for a table", "cli",
             ["train", "--set", "dppo=5", "--run-dir", str(d / "t36")], "error", "dppo"),
        Case("train num_minibatches=3", "cli", ["train", "--set", "num_minibatches=3", "--run-dir", str(d / "t1")],
             "error", "`num_minibatches`: 3 does not divide"),
        Case("train num_minibatches=512", "cli", ["train", "--set", "num_minibatches=512", "--run-dir", str(d / "t2")],
             "error", "num_minibatches"),
        Case("train num_minibatches=0", "cli", ["train", "--set", "num_minibatches=0", "--run-dir", str(d / "t3")],
             "error", "num_minibatches"),
        Case("train num_envs=0", "cli", ["train", "--set", "num_envs=0", "--run-dir", str(d / "t4")], "error",
             "num_envs"),
        Case("train --num-envs 1e8", "cli",
             ["train", "--num-envs", "100000000", "--total-timesteps", "100000000000000", "--run-dir", str(d / "t5")],
             "error", "num_envs = 100000000"),
        Case("train num_steps=1e9", "cli",
             ["train", "--set", "num_steps=1000000000", "--total-timesteps", "100000000000", "--run-dir",
              str(d / "t6")], "error", "num_steps = 1000000000"),
        Case("train num_envs x num_steps overflows", "cli",
             ["train", "--set", "num_steps=9223372036854775807", "--set", "num_envs=4", "--run-dir", str(d / "t7")],
             "error", "num_steps"),
        Case("train hidden_sizes=[1e9]", "cli",
             ["train", "--set", "hidden_sizes=[1000000000]", "--run-dir", str(d / "t8")], "error", "hidden_sizes"),
        Case("train hidden_sizes=[0]", "cli", ["train", "--set", "hidden_sizes=[0]", "--run-dir", str(d / "t9")],
             "error", "hidden_sizes"),
        Case("train hidden_sizes=[-3]", "cli", ["train", "--set", "hidden_sizes=[-3]", "--run-dir", str(d / "t10")],
             "error", "hidden_sizes"),
        Case("train learning_rate=nan", "cli", ["train", "--set", "learning_rate=nan", "--run-dir", str(d / "t11")],
             "error", "not a finite number"),
        Case("train learning_rate=1e400", "cli",
             ["train", "--set", "learning_rate=1e400", "--run-dir", str(d / "t12")], "error", "not a finite number"),
        Case("train learning_rate=null", "cli", ["train", "--set", "learning_rate=null", "--run-dir", str(d / "t13")],
             "error", "null is not allowed"),
        Case("train learning_rate=-1", "cli", ["train", "--set", "learning_rate=-1", "--run-dir", str(d / "t14")],
             "error", "learning_rate"),
        Case("train gamma=2", "cli", ["train", "--set", "gamma=2", "--run-dir", str(d / "t15")], "error", "gamma"),
        Case("train total_timesteps=0", "cli", ["train", "--total-timesteps", "0", "--run-dir", str(d / "t16")],
             "error", "total_timesteps"),
        Case("train device=tpu", "cli", ["train", "--device", "tpu", "--run-dir", str(d / "t17")], "error", "device"),
        Case("train checkpoint_every=0", "cli",
             ["train", "--set", "checkpoint_every=0", "--run-dir", str(d / "t18")], "error", "checkpoint_every"),
        Case("train seed=-1", "cli", ["train", "--set", "seed=-1", "--run-dir", str(d / "t19")], "error", "seed"),
        Case("train num_envs=1e20", "cli", ["train", "--set", "num_envs=1e20", "--run-dir", str(d / "t20")], "error",
             "num_envs"),
        Case("train env_config.gravity=nan", "cli",
             ["train", "--set", "env_config.gravity=nan", "--run-dir", str(d / "t21")], "error", "finite"),
        Case("train env_config.gravity=null", "cli",
             ["train", "--set", "env_config.gravity=null", "--run-dir", str(d / "t22")], "error", "null"),
        Case("train env_config n_state=1e12", "cli",
             ["train", "--env", burgers, "--set", "env_config.n_state=1000000000000", "--run-dir", str(d / "t23")],
             "error", "n_state"),
        Case("train sampler.scale without sampler", "cli",
             ["train", "--set", "sampler.scale=0.5", "--run-dir", str(d / "t24")], "error", "give the whole table"),
        Case("train dotted key into a number", "cli", ["train", "--set", "gamma.x=1", "--run-dir", str(d / "t25")],
             "error", "not a table"),
        Case("train unknown algo", "cli", ["train", "--algo", "sac", "--run-dir", str(d / "t26")], "error",
             "unknown algorithm"),
        Case("train --seed 2^64-1", "cli", ["train", "--seed", "18446744073709551615", "--run-dir",
                                            str(d / "t_seed"), *TINY], "ok"),
        # train: folders
        Case("train --run-dir /proc", "cli", ["train", "--run-dir", "/proc/keel", *TINY], "error", "/proc/keel"),
        Case("train --run-dir a file", "cli", ["train", "--run-dir", fx.file, *TINY], "error", "not a folder"),
        Case("train --run-dir under a file", "cli", ["train", "--run-dir", fx.file + "/run", *TINY], "error",
             "not a folder"),
        Case("train --run-dir empty", "cli", ["train", "--run-dir", "", *TINY], "error", "--run-dir"),
        Case("train --run-dir holding a run", "cli", ["train", "--run-dir", run, *TINY], "error", "--resume"),
        Case("train --resume with --env", "cli", ["train", "--resume", run, "--env", cart], "error", "--env"),
        Case("train --resume with --algo", "cli", ["train", "--resume", run, "--algo", "dppo"], "error", "--algo"),
        Case("train --resume missing", "cli", ["train", "--resume", str(d / "nope")], "error", "nope"),
        Case("train --resume a file", "cli", ["train", "--resume", fx.file], "error", "a_file"),
    ]
    # Damaged run folders: resume and eval both refuse them, naming the file or the tensor.
    named = {
        "random_bytes": "not a valid checkpoint",
        "empty_tensors": "not a valid checkpoint",
        "missing_tensors": "iter_000001.safetensors",
        "nan_weights": "actor.head.bias",
        "no_optimiser": "lacks `adam.steps`",
        "foreign_tensors": "lacks parameter",
        "empty_step_count": "adam.steps",
        "float_step_count": "adam.steps",
        "negative_step_count": "adam.steps",
        "negative_moment": "exp_avg_sq",
        "reshaped_weight": "actor.head.bias",
        "int_weight": "actor.head.bias",
        "latest_traversal": "iter_NNNNNN",
        "latest_empty": "iter_NNNNNN",
        "latest_missing": "latest",
        "state_garbage": "not a valid checkpoint",
        "state_missing": "iter_000001.json",
        "state_env_count": "envs",
        "state_snapshot": "not a valid checkpoint",
        "state_negative_step": "not a valid checkpoint",
        "config_garbage": "TOML",
        "config_no_algo": "algo",
        "config_other_algo": "sac",
        "config_bigger_net": "parameter",
    }
    for name, needle in named.items():
        cases.append(Case(f"eval {name}", "cli", ["eval", "--run", dmg[name], "--episodes", "1"], "error", needle))
    for name in ["random_bytes", "nan_weights", "empty_step_count", "int_weight", "latest_traversal"]:
        cases.append(Case(f"resume {name}", "cli", ["train", "--resume", dmg[name], "--quiet"], "error", named[name]))
    cases += [
        Case("eval --episodes 0", "cli", ["eval", "--run", run, "--episodes", "0"], "error", "episodes"),
        Case("eval --episodes 2^64-1", "cli", ["eval", "--run", run, "--episodes", "18446744073709551615"], "error",
             "episodes"),
        Case("eval --max-episode-steps 0", "cli", ["eval", "--run", run, "--max-episode-steps", "0"], "error",
             "max-episode-steps"),
        Case("eval --threshold -1", "cli", ["eval", "--run", run, "--perturb", "0.5", "--threshold", "-1"], "error",
             "--threshold must be"),
        Case("eval --seed 2^64-1", "cli", ["eval", "--run", run, "--episodes", "2", "--seed", "18446744073709551615"],
             "ok", check=file_has(str(fx.run / "eval.json"), lambda e: e["episodes"] == 2, "2 episodes")),
        Case("eval missing run", "cli", ["eval", "--run", str(d / "nope")], "error", "nope"),
        Case("eval run is a file", "cli", ["eval", "--run", fx.file], "error", "a_file"),
        # plot
        Case("plot --out /proc", "cli", ["plot", run, "--out", "/proc/keel.png"], "error", "/proc"),
        Case("plot --out folder", "cli", ["plot", run, "--out", str(d)], "error", "is a folder"),
        Case("plot --out not png", "cli", ["plot", run, "--out", str(d / "curves.txt")], "error", ".png"),
        Case("plot --out missing folder", "cli", ["plot", run, "--out", str(d / "nope/curves.png")], "error",
             "does not exist"),
        Case("plot unknown metric", "cli", ["plot", run, "--metric", "nope", "--out", str(d / "p.png")], "error",
             "nope"),
        Case("plot missing run", "cli", ["plot", str(d / "nope"), "--out", str(d / "p.png")], "error", "nope"),
        Case("plot empty metrics", "cli", ["plot", dmg["empty_metrics"], "--out", str(d / "p.png")], "error",
             "episodic_return"),
        Case("plot text in metrics", "cli", ["plot", dmg["text_metrics"], "--out", str(d / "p2.png")], "error",
             "no finite value"),
        Case("plot header-only metrics", "cli", ["plot", dmg["header_metrics"], "--out", str(d / "p4.png")], "error",
             "no rows"),
        Case("plot the same run twice", "cli", ["plot", run, run + "/.", "--out", str(d / "p5.png")], "error",
             "same run folder"),
        Case("plot --smooth 0", "cli", ["plot", run, "--smooth", "0", "--out", str(d / "p3.png")], "ok"),
        # performative
        Case("figure2 --out-dir /proc (before computing)", "cli",
             ["performative", "figure2", "--out-dir", "/proc/keel"], "error", "/proc", timeout=10),
        Case("figure2 --out-dir a file", "cli", ["performative", "figure2", "--out-dir", fx.file], "error",
             "not a folder"),
        Case("figure2 --iters 1e15", "cli", ["performative", "figure2", "--out-dir", str(d / "f2"), "--iters",
                                             "1000000000000000"], "error", "iters", timeout=10),
        Case("performative --out /proc (before computing)", "cli",
             ["performative", "--out", "/proc/keel/p.json"], "error", "/proc/keel", timeout=10),
        Case("performative --iters 1e15", "cli", ["performative", "--iters", "1000000000000000"], "error", "iters",
             timeout=10),
        Case("performative --iters 0", "cli", ["performative", "--iters", "0"], "error", "rounds"),
        Case("performative --lambda nan", "cli", ["performative", "--lambda", "nan", "--iters", "2"], "error",
             "lambda"),
        Case("performative --beta inf", "cli", ["performative", "--beta", "inf", "--iters", "2"], "error", "beta"),
        Case("performative --eta nan", "cli", ["performative", "--method", "rga", "--eta", "nan", "--iters", "2"],
             "error", "eta"),
        Case("performative --samples 0", "cli", ["performative", "--samples", "0", "--iters", "2"], "error",
             "samples"),
        Case("performative --followers 0", "cli", ["performative", "--followers", "0", "--iters", "2"], "error",
             "followers"),
        Case("performative --min-state-occupancy -1", "cli",
             ["performative", "--min-state-occupancy", "-1", "--iters", "2"], "error", "min_state_occupancy"),
        Case("performative --seeds 1e15", "cli",
             ["performative", "--samples", "5", "--seeds", "1000000000000000", "--iters", "2"], "error", "iters",
             timeout=10),
        Case("performative --samples 1e12", "cli", ["performative", "--samples", "1000000000000", "--iters", "2"],
             "error", "--samples", timeout=10),
        Case("performative samples x iters x seeds", "cli",
             ["performative", "--samples", "1000", "--iters", "100000", "--seeds", "1000"], "error", "trajectories",
             timeout=10),
        Case("performative --workers 0", "cli", ["performative", "--iters", "2", "--workers", "0"], "ok"),
        # baseline
        Case("baseline --out /proc", "cli",
             ["baseline", "--env", burgers, "--controller", "zero", "--out", "/proc/keel/b.json"], "error",
             "/proc/keel"),
        Case("baseline --episodes 0", "cli", ["baseline", "--env", burgers, "--controller", "zero", "--episodes", "0"],
             "error", "episodes"),
        Case("baseline --episodes 1e18", "cli",
             ["baseline", "--env", burgers, "--controller", "zero", "--episodes", "1000000000000000000"], "error",
             "episodes", timeout=10),
        # An episode cap of a trillion steps: Ctrl-C stops the episode, not only between episodes.
        Case("baseline one endless episode Ctrl-C", "cli",
             ["baseline", "--env", pend, "--controller", "zero", "--episodes", "1", "--set",
              "max_episode_steps=1000000000000", "--out", str(d / "b_long.json")], "either",
             check=no_partial(d, "b_long.json"), interrupt=2.0),
        Case("baseline lqr without a model", "cli", ["baseline", "--env", burgers, "--controller", "lqr"], "error",
             "no linear model"),
        Case("baseline unknown controller", "cli", ["baseline", "--env", burgers, "--controller", "pid"], "error",
             "pid"),
        Case("baseline n_state=1e12", "cli",
             ["baseline", "--env", burgers, "--set", "n_state=1000000000000", "--controller", "zero"], "error",
             "n_state"),
        Case("baseline lqr n_state=3000", "cli",
             ["baseline", "--env", "keel/ConvectionDiffusionReaction-v0", "--controller", "lqr", "--set", "n_state=3000"],
             "error", "n_state=3000", timeout=10),
        Case("baseline zero on Discrete actions", "cli", ["baseline", "--env", cart, "--controller", "zero"], "error",
             "Box action space"),
        Case("baseline --seed 2^64-1", "cli",
             ["baseline", "--env", burgers, "--set", "n_state=64", "--controller", "zero", "--episodes", "2", "--seed",
              "18446744073709551615"], "ok"),
        # DQN
        Case("dqn tiny run", "cli",
             ["train", "--algo", "dqn", "--run-dir", str(d / "t_dqn"), "--total-timesteps", "200", "--quiet",
              "--set", "iteration_steps=100", "--set", "buffer_size=100", "--set", "batch_size=16",
              "--set", "learning_starts=50"], "ok",
             check=file_has(str(d / "t_dqn" / "summary.json"), lambda m: m["status"] == "completed", "not completed")),
        Case("dqn buffer_size=1e11", "cli",
             ["train", "--algo", "dqn", "--set", "buffer_size=100000000000", "--run-dir", str(d / "q1")], "error",
             "buffer_size = 100000000000"),
        Case("dqn hidden_sizes=[1e9]", "cli",
             ["train", "--algo", "dqn", "--set", "hidden_sizes=[1000000000]", "--run-dir", str(d / "q2")], "error",
             "hidden_sizes"),
        Case("dqn iteration_steps overflows", "cli",
             ["train", "--algo", "dqn", "--set", "iteration_steps=9223372036854775808", "--set", "num_envs=2",
              "--run-dir", str(d / "q3")], "error", "iteration_steps"),
        Case("dqn on Box actions", "cli", ["train", "--algo", "dqn", "--env", pend, "--run-dir", str(d / "q4")],
             "error", "Discrete"),
        Case("dqn batch_size=0", "cli", ["train", "--algo", "dqn", "--set", "batch_size=0", "--run-dir",
                                         str(d / "q5")], "error", "batch_size"),
        Case("dqn tau=0", "cli", ["train", "--algo", "dqn", "--set", "tau=0", "--run-dir", str(d / "q6")], "error",
             "tau"),
        Case("dqn learning_rate=nan", "cli",
             ["train", "--algo", "dqn", "--set", "learning_rate=nan", "--run-dir", str(d / "q7")], "error", "finite"),
        Case("dqn algo=ppo in --set", "cli", ["train", "--algo", "dqn", "--set", "algo=ppo", "--run-dir",
                                              str(d / "q8")], "error", "given twice"),
        # linear TD on Baird's star
        Case("td --out /proc (before computing)", "cli", ["td", "baird", "--steps", "100000000000",
                                                          "--out", "/proc/keel/td.json"], "error", "/proc/keel",
             timeout=10),
        Case("td --alpha nan", "cli", ["td", "baird", "--alpha", "nan", "--out", str(d / "td.json")], "error",
             "alpha"),
        Case("td --alpha 1e308", "cli", ["td", "baird", "--alpha", "1e308", "--steps", "100", "--out",
                                         str(d / "td.json")], "error", "alpha"),
        Case("td --k 0", "cli", ["td", "baird", "--k", "0", "--out", str(d / "td.json")], "error", "k"),
        Case("td --momentum 1", "cli", ["td", "baird", "--momentum", "1", "--out", str(d / "td.json")], "error",
             "momentum"),
        Case("td critical --alpha -1", "cli", ["td", "critical", "--alpha", "-1"], "error", "alpha"),
        Case("td baird short run", "cli", ["td", "baird", "--steps", "50", "--out", str(d / "td_ok.json")], "ok",
             check=file_has(str(d / "td_ok.json"), lambda r: r["steps_done"] == 50, "not 50 steps")),
        # target-period stability maps
        Case("td stability --lr nan", "cli", ["td", "stability", "--lr", "nan", "--out", str(d / "st1")], "error",
             "lr"),
        Case("td stability --k 0", "cli", ["td", "stability", "--k", "0", "--lr", "0.01", "--out", str(d / "st2")],
             "error", "k"),
        Case("td stability --seeds 0", "cli", ["td", "stability", "--seeds", "0", "--lr", "0.01", "--out",
                                               str(d / "st3")], "error", "seeds"),
        Case("td stability unknown env", "cli", ["td", "stability", "--env", "keel/Nope-v0", "--lr", "0.01", "--out",
                                                 str(d / "st4")], "error", "keel/Nope-v0"),
        Case("td stability dqn on Box actions", "cli", ["td", "stability", "--env", pend, "--lr", "0.01", "--out",
                                                        str(d / "st5")], "error", "Discrete"),
        Case("td stability --out a file", "cli", ["td", "stability", "--lr", "0.01", "--out", fx.file], "error",
             "a_file"),
        Case("td stability billions of runs", "cli",
             ["td", "stability", "--k", ",".join(str(k) for k in range(1, 101)), "--lr", "0.1,0.01", "--seeds", "10000",
              "--out", str(d / "st6")], "error", "runs", timeout=10),
        Case("td stability 1e12 updates", "cli",
             ["td", "stability", "--lr", "0.1", "--seeds", "1000", "--steps", "1000000000", "--out", str(d / "st7")],
             "error", "updates", timeout=10),
        Case("td stability Ctrl-C", "cli",
             ["td", "stability", "--lr", "0.001", "--seeds", "5000", "--steps", "1000000", "--out", str(d / "st8")],
             "either", check=lambda _: None if not (d / "st8" / "runs.csv").exists() else "runs.csv written",
             interrupt=2.0),
        # sweeps and reports
        Case("sweep missing spec", "cli", ["sweep", str(d / "nope.toml"), "--out", str(d / "sw0")], "error",
             "nope.toml"),
        Case("sweep unknown algorithm", "cli", ["sweep", sw["sac"], "--out", str(d / "sw1")], "error", "sac"),
        Case("sweep unknown env", "cli", ["sweep", sw["env"], "--out", str(d / "sw2")], "error", "keel/Nope-v0"),
        Case("sweep unknown field", "cli", ["sweep", sw["field"], "--out", str(d / "sw3")], "error", "seedz"),
        Case("sweep no seeds", "cli", ["sweep", sw["no_seeds"], "--out", str(d / "sw4")], "error", "seeds"),
        Case("sweep jobs=0", "cli", ["sweep", sw["jobs0"], "--out", str(d / "sw5")], "error", "jobs"),
        Case("sweep cpus_per_run=0", "cli", ["sweep", sw["cpus0"], "--out", str(d / "sw6")], "error",
             "cpus_per_run"),
        Case("sweep empty grid axis", "cli", ["sweep", sw["grid"], "--out", str(d / "sw7")], "error", "grid"),
        Case("sweep bad env config", "cli", ["sweep", sw["env_config"], "--out", str(d / "sw8")], "error",
             "gravityy"),
        Case("sweep bad env value", "cli", ["sweep", sw["env_value"], "--out", str(d / "sw12")], "error", "tau"),
        Case("sweep --jobs -1", "cli", ["sweep", sw["ok"], "--jobs", "-1", "--out", str(d / "sw9")], "error",
             "jobs"),
        Case("sweep --out a file", "cli", ["sweep", sw["ok"], "--out", fx.file], "error", "a_file"),
        Case("sweep --ray unreachable", "cli", ["sweep", sw["ok"], "--ray", "127.0.0.1:1", "--out",
                                                str(d / "sw10")], "error", "127.0.0.1:1", timeout=120),
        Case("sweep --dry-run", "cli", ["sweep", sw["ok"], "--dry-run", "--out", str(d / "sw11")], "ok",
             check=lambda p: None if "cartpole" in p.stdout else "no run listed"),
        Case("sweep name escapes --out", "cli", ["sweep", sw["escape"], "--out", str(d / "sw13")], "error",
             "plain folder name", check=lambda _: "wrote outside --out" if (d / "x").exists() else None),
        Case("sweep name .", "cli", ["sweep", sw["dot_name"], "--out", str(d / "sw14")], "error", "plain folder name"),
        Case("sweep seeds twice", "cli", ["sweep", sw["seeds_twice"], "--out", str(d / "sw15")], "error", "twice"),
        Case("sweep algorithms twice", "cli", ["sweep", sw["algos_twice"], "--out", str(d / "sw16")], "error",
             "twice"),
        Case("sweep grid value twice", "cli", ["sweep", sw["grid_twice"], "--out", str(d / "sw17")], "error",
             "twice"),
        Case("sweep reference NaN", "cli", ["sweep", sw["reference_nan"], "--out", str(d / "sw18")], "error",
             "reference"),
        Case("sweep reference equal bounds", "cli", ["sweep", sw["reference_equal"], "--out", str(d / "sw19")],
             "error", "reference"),
        Case("sweep reference reversed", "cli", ["sweep", sw["reference_reversed"], "--out", str(d / "sw20")],
             "error", "reference"),
        Case("sweep --out not UTF-8", "cli", ["sweep", sw["ok"], "--dry-run", "--out",
                                              str(d) + os.fsdecode(b"/sw_\xff")], "error", "UTF-8"),
        Case("report a run of another env", "cli", ["report", fx.foreign_sweep, "--reps", "10",
                                                    "--baseline-episodes", "1"], "ok",
             check=lambda p: None if "keel/Pendulum-v1" in p.stderr and "1 of 2 runs" in p.stdout
             else "the foreign run was counted"),
        Case("report on a folder without runs", "cli", ["report", str(d / "empty_dir")], "error", "empty_dir"),
        Case("report on a missing folder", "cli", ["report", str(d / "nope_dir")], "error", "nope_dir"),
        Case("report on a file", "cli", ["report", fx.file], "error", "a_file"),
        Case("report --reps 0", "cli", ["report", str(d / "empty_dir"), "--reps", "0"], "error", "reps"),
        # demonstrations
        Case("demo --episodes 0", "cli", ["demo", "--run", run, "--episodes", "0", "--out", str(d / "d.safetensors")],
             "error", "episodes"),
        Case("demo --steps 0", "cli", ["demo", "--run", run, "--steps", "0", "--out", str(d / "d.safetensors")],
             "error", "steps"),
        Case("demo --steps -1", "cli", ["demo", "--run", run, "--steps", "-1", "--out", str(d / "d.safetensors")],
             "error", "steps"),
        Case("demo missing run", "cli", ["demo", "--run", str(d / "nope_run"), "--out", str(d / "d.safetensors")],
             "error", "nope_run"),
        Case("demo --out in /proc", "cli", ["demo", "--run", run, "--steps", "8", "--out", "/proc/keel/d.safetensors"],
             "error", "/proc/keel"),
        Case("demo damaged checkpoint", "cli", ["demo", "--run", dmg["nan_weights"], "--steps", "8", "--out",
                                                str(d / "d.safetensors")], "error", "actor.head.bias"),
        # the humanoid's clips and renderer
        Case("render unknown clip", "cli", ["render", "--clip", "moonwalk", "--out", str(d / "r.gif")], "error",
             "moonwalk"),
        Case("render --size 0x0", "cli", ["render", "--clip", "walk", "--size", "0x0", "--out", str(d / "r.gif")],
             "error", "size"),
        Case("render --size abc", "cli", ["render", "--clip", "walk", "--size", "abc", "--out", str(d / "r.gif")],
             "error", "abc"),
        Case("render --size huge", "cli", ["render", "--clip", "walk", "--size", "100000x100000", "--out",
                                           str(d / "r.gif")], "error", "size"),
        Case("render --fps 0", "cli", ["render", "--clip", "walk", "--fps", "0", "--out", str(d / "r.gif")], "error",
             "fps"),
        Case("render --seconds nan", "cli", ["render", "--clip", "walk", "--seconds", "nan", "--out",
                                             str(d / "r.gif")], "error", "seconds"),
        Case("render --seconds -1", "cli", ["render", "--clip", "walk", "--seconds", "-1", "--out",
                                            str(d / "r.gif")], "error", "seconds"),
        Case("render --size -5x10", "cli", ["render", "--clip", "walk", "--size", "-5x10", "--out", str(d / "r.gif")],
             "error", "16..=4096"),
        Case("render 4096x4096 for 600 s", "cli", ["render", "--clip", "walk", "--size", "4096x4096", "--seconds",
                                                   "600", "--out", str(d / "r.gif")], "error", "pixels", timeout=10),
        Case("render Ctrl-C", "cli", ["render", "--clip", "walk", "--size", "1024x1024", "--seconds", "60", "--out",
                                      str(d / "r_int.gif")], "either", check=no_partial(d, "r_int.gif"), interrupt=3.0),
        Case("render a CartPole run", "cli", ["render", "--run", run, "--out", str(d / "r.gif")], "error",
             "humanoid run"),
        Case("render --out in /proc", "cli", ["render", "--clip", "walk", "--seconds", "0.1", "--out",
                                              "/proc/keel/r.gif"], "error", "/proc/keel"),
        Case("render a short clip", "cli", ["render", "--clip", "walk", "--seconds", "0.2", "--size", "64x48",
                                            "--out", str(d / "r_ok.gif")], "ok",
             check=lambda p: None if (d / "r_ok.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a") else "not a GIF"),
        Case("clips", "cli", ["clips"], "ok", check=lambda p: None if "walk" in p.stdout else "no walk clip"),
        # the rest
        Case("unknown command", "cli", ["teleport"], "error", "teleport"),
        Case("list --json", "cli", ["list", "--json"], "ok",
             check=lambda p: None if json.loads(p.stdout) else "empty list"),
    ]
    return cases


PY_PRELUDE = """
import math, sys
import numpy as np
import gymnasium as gym
import keel, keel.sb3
"""


def py_cases() -> list[Case]:
    def py(name: str, code: str, expect: str = "error", needle: str = "") -> Case:
        return Case(name, "py", textwrap.dedent(code), expect, needle)

    return [
        py("make n_state=10**12", 'gym.make("keel/Burgers-v0", n_state=10**12)', needle="n_state"),
        py("make n_state=10**30", 'gym.make("keel/Burgers-v0", n_state=10**30)', needle="n_state"),
        py("make_vec num_envs=10**8", 'gym.make_vec("keel/CartPole-v1", num_envs=10**8)', needle="num_envs"),
        py("KeelVectorEnv 10**12", 'keel.KeelVectorEnv("keel/CartPole-v1", 10**12)', needle="num_envs"),
        py("KeelVectorEnv -3", 'keel.KeelVectorEnv("keel/CartPole-v1", -3)', needle="num_envs"),
        py("KeelVectorEnv workers=-1", 'keel.KeelVectorEnv("keel/CartPole-v1", 2, workers=-1)', needle="workers"),
        py("make gravity=nan", 'gym.make("keel/CartPole-v1", gravity=math.nan)', needle="gravity"),
        py("make gravity=inf", 'gym.make("keel/CartPole-v1", gravity=math.inf)', needle="gravity"),
        py("make gravity=None", 'gym.make("keel/CartPole-v1", gravity=None)', needle="gravity"),
        py("make gravity='x'", 'gym.make("keel/CartPole-v1", gravity="x")', needle="gravity"),
        py("make unknown field", 'gym.make("keel/CartPole-v1", gravityy=1.0)', needle="gravityy"),
        py("make unknown id", 'gym.make("keel/Nope-v0")', needle="Nope"),
        py("reset seed=2**70", 'gym.make("keel/CartPole-v1").reset(seed=2**70)', needle="seed"),
        py("reset seed=-1", 'gym.make("keel/CartPole-v1").reset(seed=-1)', needle="seed"),
        py("reset seed='7'", 'gym.make("keel/CartPole-v1").reset(seed="7")', needle="seed"),
        py("reset state nan", 'gym.make("keel/CartPole-v1").reset(options={"state": [math.nan, 0, 0, 0]})',
           needle="state"),
        py("reset state 1e300", 'gym.make("keel/CartPole-v1").reset(options={"state": [1e300, 0, 0, 0]})',
           needle="float32"),
        py("reset state short", 'gym.make("keel/CartPole-v1").reset(options={"state": [0, 0]})', needle="state"),
        py("reset unknown option", 'gym.make("keel/CartPole-v1").reset(options={"teleport": 1})', needle="teleport"),
        py("reset high=inf", 'gym.make("keel/CartPole-v1").reset(options={"high": math.inf})', needle="high"),
        py("step before reset", 'keel.KeelEnv("keel/CartPole-v1").step(0)', needle="reset"),
        py("step action 5 for Discrete(2)", """
            env = gym.make("keel/CartPole-v1"); env.reset(seed=0); env.step(5)""", needle="action"),
        py("step action nan for Pendulum", """
            env = gym.make("keel/Pendulum-v1"); env.reset(seed=0); env.step(np.array([math.nan], np.float32))""",
           needle="action"),
        py("step action of shape (2, 4) for Box(8,)", """
            env = keel.KeelEnv("keel/Burgers-v0", n_state=64); env.reset(seed=0); env.step(np.zeros((2, 4)))""",
           needle="shape"),
        py("vector step of shape (1, 3)", """
            envs = keel.KeelVectorEnv("keel/Pendulum-v1", 3); envs.reset(seed=0)
            envs.step(np.zeros((1, 3), np.float32))""", needle="shape"),
        py("error leaves the env usable", """
            env = gym.make("keel/CartPole-v1"); env.reset(seed=0)
            try:
                env.step(7)
            except keel.KeelError:
                pass
            obs, *_ = env.step(1)
            assert np.isfinite(obs).all()
            print("OK")""", expect="ok"),
        py("sensor_noise_cov=1e308", """
            env = gym.make("keel/Burgers-v0", sensor_noise_cov=1e308); obs, _ = env.reset(seed=0)
            obs2, reward, terminated, *_ = env.step(np.zeros(8))
            assert np.isfinite(obs).all() and (terminated or np.isfinite(obs2).all())
            print("OK")""", expect="either", needle="finite"),
        py("process_noise_cov=1e308", """
            env = gym.make("keel/Burgers-v0", process_noise_cov=1e308); env.reset(seed=0)
            for _ in range(5):
                obs, reward, terminated, *_ = env.step(np.zeros(8))
                assert terminated or np.isfinite(obs).all(), obs
                if terminated:
                    break
            print("OK")""", expect="either", needle="finite"),
        py("closed vector env", """
            envs = keel.KeelVectorEnv("keel/CartPole-v1", 2); envs.reset(seed=0); envs.close()
            envs.step(np.zeros(2, np.int64))""", needle="closed"),
        py("closed SB3 adapter", """
            env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=2); env.close(); env.reset()""", needle="closed"),
        py("SB3 set_attr gravity", """
            keel.sb3.make_vec("keel/CartPole-v1", n_envs=4).set_attr("gravity", 1000.0)""", needle="gravity"),
        py("SB3 set_attr num_envs", """
            keel.sb3.make_vec("keel/CartPole-v1", n_envs=4).set_attr("num_envs", 2)""", needle="num_envs"),
        py("SB3 get_attr index 10 of 4", """
            keel.sb3.make_vec("keel/CartPole-v1", n_envs=4).get_attr("high", indices=[10])""", needle="10"),
        py("SB3 seed=-1", 'keel.sb3.make_vec("keel/CartPole-v1", n_envs=2, seed=-1)', needle="seed"),
        py("SB3 n_envs=-1", 'keel.sb3.make_vec("keel/CartPole-v1", n_envs=-1)', needle="n_envs"),
        py("set_params of a missing env", """
            envs = keel.KeelVectorEnv("keel/CartPole-v1", 2); envs.set_params(indices=[5], high=0.1)""",
           needle="5"),
        py("make gravity=10**400", 'gym.make("keel/CartPole-v1", gravity=10**400)', needle="gravity"),
        py("make nested nan", 'gym.make("keel/CartPole-v1", gravity={"a": [1, {"b": math.nan}]})', needle="gravity"),
        py("params(-1)", 'keel.KeelVectorEnv("keel/CartPole-v1", 2).params(-1)', needle="out of range"),
        py("params(2**70)", 'keel.KeelVectorEnv("keel/CartPole-v1", 2).params(2**70)', needle="out of range"),
        py("state(-1)", 'keel.KeelVectorEnv("keel/CartPole-v1", 2).state(-1)', needle="out of range"),
        py("set_params indices [-1]", 'keel.KeelVectorEnv("keel/CartPole-v1", 2).set_params(indices=[-1], high=0.1)',
           needle="out of range"),
        py("render", 'gym.make("keel/CartPole-v1").unwrapped.render()', needle="does not render"),
        py("render_mode human", 'keel.KeelEnv("keel/CartPole-v1", render_mode="human")', needle="render"),
        py("autoreset_mode bogus", 'keel.KeelVectorEnv("keel/CartPole-v1", 2, autoreset_mode="bogus")',
           needle="bogus"),
        py("reset options a string", 'gym.make("keel/CartPole-v1").reset(options="x")', needle="mapping"),
        py("reset max_episode_steps=-1", 'gym.make("keel/CartPole-v1").reset(options={"max_episode_steps": -1})',
           needle="max_episode_steps"),
        py("reset mask of the wrong length", """
            envs = keel.KeelVectorEnv("keel/CartPole-v1", 2); envs.reset(seed=0)
            envs.reset(options={"reset_mask": [True]})""", needle="reset_mask"),
        py("options for too few envs", 'keel.KeelVectorEnv("keel/CartPole-v1", 2).reset(options=[{}])',
           needle="2 envs"),
        py("step_into a read-only buffer", """
            envs = keel.KeelVectorEnv("keel/CartPole-v1", 2); envs.reset(seed=0)
            obs = np.empty((2, 4), np.float32); obs.setflags(write=False)
            envs.step_into(np.ones(2, np.int64), obs, np.empty(2), np.empty(2, bool), np.empty(2, bool))""",
           needle="writeable"),
        py("step_into a float64 buffer", """
            envs = keel.KeelVectorEnv("keel/CartPole-v1", 2); envs.reset(seed=0)
            out = np.empty(2), np.empty(2, bool), np.empty(2, bool)
            envs.step_into(np.ones(2, np.int64), np.empty((2, 4)), *out)""",
           needle="float32"),
        py("step an object array", """
            envs = keel.KeelVectorEnv("keel/CartPole-v1", 2); envs.reset(seed=0)
            envs.step(np.array([object(), object()]))""", needle="object"),
        py("pickle round trip", """
            import pickle
            env = pickle.loads(pickle.dumps(gym.make("keel/CartPole-v1")))
            obs, _ = env.reset(seed=0)
            assert np.isfinite(obs).all()
            print("OK")""", expect="ok"),
        # Hangs: a step of an angle no loop can wrap, and of a huge time step.
        py("Acrobot dt=1000 step", 'env = gym.make("keel/Acrobot-v1", dt=1000.0); env.reset(seed=0); env.step(1)',
           expect="either", needle="finite"),
        py("Acrobot state 1e18 step", """
            env = gym.make("keel/Acrobot-v1"); env.reset(options={"state": [1e18, 0, 0, 0]}); env.step(1)""",
           expect="either", needle="finite"),
        # Differentiable envs: absurd or non-finite start states and start noise are named.
        py("DiffPendulum state 1e30", 'gym.make("keel/DiffPendulum-v0").reset(options={"state": [1e30, 0.0]})',
           needle="element 0"),
        py("DiffCartPole state nan", 'gym.make("keel/DiffCartPole-v0").reset(options={"state": [0, 0, math.nan, 0]})',
           needle="state[2]"),
        py("DiffCartPole noise 1e30", 'gym.make("keel/DiffCartPole-v0").reset(seed=0, options={"noise": 1e30})',
           needle="noise"),
        # Loops a value could make long: angles normalised in closed form at the largest start.
        py("Pendulum state 3e38 step", """
            env = gym.make("keel/Pendulum-v1"); env.reset(options={"state": [3e38, 0.0]})
            obs, reward, *_ = env.step(np.array([1.0], np.float32))
            assert np.isfinite(obs).all() and math.isfinite(reward)
            print("OK")""", expect="ok"),
        # Lost data: a failed step_into must not step (the next step equals a fresh env's).
        py("step_into transposed obs buffer loses no step", """
            a = keel.KeelVectorEnv("keel/CartPole-v1", 2); a.reset(seed=0)
            b = keel.KeelVectorEnv("keel/CartPole-v1", 2); b.reset(seed=0)
            out = np.empty(2), np.empty(2, bool), np.empty(2, bool)
            try:
                a.step_into(np.ones(2, np.int64), np.empty((4, 2), np.float32), *out)
            except keel.KeelError:
                pass
            assert np.array_equal(a.step(np.ones(2, np.int64))[0], b.step(np.ones(2, np.int64))[0])
            print("OK")""", expect="ok"),
        py("step_into one array for terminations and truncations", """
            envs = keel.KeelVectorEnv("keel/CartPole-v1", 2); envs.reset(seed=0)
            flags = np.empty(2, bool)
            envs.step_into(np.ones(2, np.int64), np.empty((2, 4), np.float32), np.empty(2), flags, flags)""",
           needle="memory"),
        # Views: an async copy=False batch held across the next recv does not change.
        py("async view held across recv", """
            envs = keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=2, workers=0, copy=False)
            envs.async_reset(seed=0)
            obs, *_ , info = envs.recv(); kept = obs.copy(); ids = info["env_id"]
            for _ in range(4):
                envs.send(np.ones(2, np.int64), ids); obs2, *_, info = envs.recv(); ids = info["env_id"]
            assert np.array_equal(obs, kept)
            print("OK")""", expect="ok"),
        py("async recv before reset", """
            keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=2).recv()""", needle="reset"),
        # Unclear errors, now named.
        py("reset seed=[1, None]", 'keel.KeelVectorEnv("keel/CartPole-v1", 2).reset(seed=[1, None])', needle="seed[1]"),
        py("reset options=[1, 2]", 'keel.KeelVectorEnv("keel/CartPole-v1", 2).reset(options=[1, 2])',
           needle="options[0]"),
        py("Discrete action 2**70", """
            env = gym.make("keel/CartPole-v1"); env.reset(seed=0); env.step(2**70)""", needle="1180591620717411303424"),
        py("Pendulum action 1e300", """
            env = gym.make("keel/Pendulum-v1"); env.reset(seed=0); env.step(np.array([1e300]))""",
           needle="float32"),
        # Copies carry the state or are refused.
        py("deepcopy mid-episode continues", """
            import copy
            env = gym.make("keel/Pendulum-v1"); env.reset(seed=3); env.step(np.array([0.5], np.float32))
            twin = copy.deepcopy(env)
            a = env.step(np.array([1.0], np.float32))[0]; b = twin.step(np.array([1.0], np.float32))[0]
            assert np.array_equal(a, b)
            print("OK")""", expect="ok"),
    ]


# --- running and classifying ------------------------------------------------------------------


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def execute(case: Case, keel: str, python: str, cwd: Path) -> tuple[subprocess.CompletedProcess | None, float]:
    if case.kind == "cli":
        argv = [keel, *case.command]
    else:
        wrapped = (PY_PRELUDE + "try:\n" + textwrap.indent(case.command, "    ") +
                   "\nexcept BaseException as e:\n"
                   "    clear = isinstance(e, (ValueError, LookupError, NotImplementedError, gym.error.Error)) and "
                   "not isinstance(e, UnicodeError)\n"
                   "    lines = len(str(e).strip().splitlines())\n"
                   "    print(f'EXCEPTION {int(clear)} {lines} {type(e).__name__}: {e}', file=sys.stderr)\n"
                   "    sys.exit(1)\n")
        argv = [python, "-c", wrapped]
    env = dict(os.environ, RUST_BACKTRACE="1")
    env.pop("LD_LIBRARY_PATH", None)
    if case.kind == "py":
        env["PYTHONPATH"] = str(ROOT / "python")
    start = time.perf_counter()
    if case.interrupt is not None:
        return interrupted(case, argv, env, cwd), time.perf_counter() - start
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=case.timeout, cwd=cwd,
                              env=env, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start
    return proc, time.perf_counter() - start


def interrupted(case: Case, argv: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess | None:
    """Runs the case, sends SIGINT after `case.interrupt` seconds; None if it does not stop in time."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                             cwd=cwd, env=env, preexec_fn=limit_memory)
    try:
        out, err = child.communicate(timeout=case.interrupt)
        return subprocess.CompletedProcess(argv, child.returncode, out, err)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)
    try:
        out, err = child.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return None
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


def repeated_cause(line: str) -> str | None:
    """A part of `a: b: c` said twice (a cause printed by its error and again by its context)."""
    parts = [p.strip() for p in line.split(": ") if len(p.strip()) >= 12]
    seen = set()
    for p in parts:
        if p in seen:
            return p
        seen.add(p)
    return None


DEBUG_DUMP = re.compile(r"\b[A-Z]\w+\((?:[A-Z]\w+\(|\w+ \{)|\bOs \{ code|\bkind: [A-Z]")


def classify(case: Case, proc: subprocess.CompletedProcess | None) -> tuple[str, str]:
    if proc is None:
        return "HANG", f"still running after {case.timeout:.0f} s"
    both = proc.stdout + proc.stderr
    if "panicked at" in both or "stack backtrace" in both or "PanicException" in both:
        return "PANIC", last_line(both)
    if case.interrupt is not None and proc.returncode in (130, -signal.SIGINT):
        problem = case.check(proc) if case.check else None
        return ("LOST", problem) if problem else ("ok", f"stopped by Ctrl-C (exit {proc.returncode})")
    if proc.returncode < 0 or proc.returncode in (134, 137, 139):
        return "ABORT", f"exit {proc.returncode}: {last_line(both)}"
    if proc.returncode == 0:
        if case.expect == "error":
            return "SILENT", "accepted: " + last_line(both)
        problem = case.check(proc) if case.check else None
        return ("SILENT", problem) if problem else ("ok", last_line(proc.stdout) or "exit 0")
    if case.expect == "ok":
        return "UNCLEAR", f"refused a valid input: {last_line(proc.stderr)}"
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    if case.kind == "cli":
        # Progress lines (`keel sweep: 4 runs ...`) come before the error; they are not part of it.
        lines = [l for l in lines if not l.startswith("keel ")]
        # clap's usage errors: an `error:` line, then usage and a hint.
        clap = proc.returncode == 2 and bool(lines) and lines[0].startswith("error:")
        message = " ".join(lines) if clap else (lines[0] if lines else "")
        if not clap and len(lines) != 1:
            return "UNCLEAR", f"{len(lines)} lines on stderr: {' | '.join(lines[:3])}"
        if not message.startswith("error: "):
            return "UNCLEAR", f"not an error line: {message}"
    else:
        found = [l for l in lines if l.startswith("EXCEPTION ")]
        if not found:
            return "UNCLEAR", f"no exception: {last_line(proc.stderr)}"
        _, clear, count, message = found[-1].split(" ", 3)
        if clear != "1":
            return "UNCLEAR", f"not a ValueError, LookupError, NotImplementedError or gymnasium error: {message}"
        if count != "1":
            return "UNCLEAR", f"a message of {count} lines: {message}"
    if DEBUG_DUMP.search(message):
        return "UNCLEAR", f"debug dump: {message}"
    twice = repeated_cause(message)
    if twice:
        return "UNCLEAR", f"says `{twice}` twice: {message}"
    if case.needle and case.needle.lower() not in message.lower():
        return "UNCLEAR", f"does not name `{case.needle}`: {message}"
    problem = case.check(proc) if case.check and case.expect == "error" else None
    if problem:
        return "LOST", f"{problem}: {message}"
    return "error", message


def last_line(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1][:200] if lines else ""


def find_keel() -> str:
    candidates = [ROOT / "target" / "keel"]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(Path(target) / "release" / "keel")
    candidates.append(Path.home() / ".cache" / "keel" / "target-native" / "release" / "keel")
    for c in candidates:
        if c.exists():
            return str(c)
    sys.exit("no keel binary: build it (cargo build --release --bin keel) or pass --keel")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keel", help="the keel binary (default: target/keel, else $CARGO_TARGET_DIR/release/keel)")
    parser.add_argument("--python", default=sys.executable, help="the Python with gymnasium (default: this one)")
    parser.add_argument("-k", dest="only", default="", help="run only cases whose name contains this")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case, not only the bad ones")
    args = parser.parse_args()
    keel = args.keel or find_keel()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keel-hostile-") as scratch:
        base = Path(scratch)
        fixtures = Fixtures(keel, base)
        cases = [c for c in cli_cases(fixtures) + py_cases() if args.only in c.name]
        names = [c.name for c in cases]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            sys.exit(f"duplicate case names: {sorted(duplicates)}")
        cwd = base / "cwd"
        cwd.mkdir()

        def one(case: Case) -> Outcome:
            proc, seconds = execute(case, keel, args.python, cwd)
            verdict, detail = classify(case, proc)
            return Outcome(case, verdict, seconds, detail)

        # Cases that write the same file run one after another; the rest in parallel.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(one, [c for c in cases if "out.json" not in " ".join(map(str, c.command))]))
        outcomes += [one(c) for c in cases if "out.json" in " ".join(map(str, c.command))]
        stray = sorted(p.name for p in cwd.iterdir())
    order = {c.name: i for i, c in enumerate(cases)}
    outcomes.sort(key=lambda o: order[o.case.name])
    width = max(len(o.case.name) for o in outcomes)
    print(f"{'case':<{width}}  {'kind':<4}  {'expect':<6}  {'outcome':<7}  {'s':>5}  detail")
    for o in outcomes:
        if args.verbose or o.verdict in BAD:
            print(f"{o.case.name:<{width}}  {o.case.kind:<4}  {o.case.expect:<6}  {o.verdict:<7}  "
                  f"{o.seconds:5.1f}  {o.detail[:160]}")
    counts = {v: sum(o.verdict == v for o in outcomes) for v in ("error", "ok", *BAD)}
    seconds = time.perf_counter() - start
    print()
    print(f"{len(outcomes)} hostile inputs ({sum(o.case.kind == 'cli' for o in outcomes)} command line, "
          f"{sum(o.case.kind == 'py' for o in outcomes)} Python) in {seconds:.0f} s")
    print("| outcome | count |")
    print("|---|---:|")
    for verdict, count in counts.items():
        print(f"| {verdict} | {count} |")
    if stray:
        print(f"files left in the working directory: {stray}")
    bad = sum(counts[v] for v in BAD)
    return 1 if bad or stray else 0


if __name__ == "__main__":
    sys.exit(main())
