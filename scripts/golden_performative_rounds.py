#!/usr/bin/env python3
"""Writes agents/tests/fixtures/performative_paper_rounds.json: the first rounds of repeated
retraining as the code of *Performative Reinforcement Learning* (Mandal, Triantafyllou & Radanovic,
ICML 2023) computes them, for agents/tests/performative_golden.rs.

The reference is the paper's own code, unmodified: the repository
gradanovic/icml2023-performative-rl-paper-code at commit 278db45 (Apache-2.0), whose
`Gridworld` and `Performative_Prediction` classes this script imports and runs exactly as its
`execute_performative_prediction` does (epsilon 0.3, gamma 0.9, 50 followers, L2 regulariser, cvxpy
with SCS at eps 1e-5, exact models, no sampling). Two runs:
  - RPO, lambda 1, beta 10 (Fig. 2a/2b): the relative occupancy change of each round;
  - RGA, eta 1, lambda 1, beta 5 (Fig. 2c/2d): the same, and the suboptimality gap.

Its dependencies come from PyPI into their own venv, pinned (numpy, cvxpy, SCS); the script makes
it on first use and re-runs itself inside it. The paper's code is cloned from its repository
(git) into the cache, or taken from --code DIR (a checkout of that commit). The original code is
slow (about 25 s of CPU per follower response): 5 rounds of both runs take about 5 minutes.

Usage: python3 scripts/golden_performative_rounds.py [--code DIR] [--rounds N] [--check]
  --check  compare with the committed fixture instead of writing it (exit 1 on a difference).
Environment: KEEL_CACHE (default ~/.cache/keel): the venv is $KEEL_CACHE/performative-venv, the
clone $KEEL_CACHE/icml2023-performative-rl-paper-code.
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "agents" / "tests" / "fixtures" / "performative_paper_rounds.json"
CACHE = pathlib.Path(os.environ.get("KEEL_CACHE", pathlib.Path.home() / ".cache" / "keel"))
VENV = CACHE / "performative-venv"
CLONE = CACHE / "icml2023-performative-rl-paper-code"
REPOSITORY = "https://github.com/gradanovic/icml2023-performative-rl-paper-code"
COMMIT = "278db4500710824347927a50fe081e1fea814e30"
# The versions the research notes validated the original against.
PINS = ["numpy==2.4.6", "cvxpy==1.9.3", "scs==3.3.1"]
# The paper's fixed settings (run_experiment.py defaults).
EPS, GAMMA, FOLLOWERS = 0.3, 0.9, 50
RUNS = [
    {"method": "rpo", "lambda": 1.0, "beta": 10.0},
    {"method": "rga", "eta": 1.0, "lambda": 1.0, "beta": 5.0},
]
# Relative tolerance of --check: SCS stops at eps 1e-5, and its iterates depend on the BLAS.
CHECK_TOLERANCE = 1e-4


def in_venv():
    return pathlib.Path(sys.prefix).resolve() == VENV.resolve()


def enter_venv():
    """Makes the venv if needed and re-runs this script with its Python."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"performative venv: creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    os.execve(str(python), [str(python), __file__, *sys.argv[1:]], env)


def paper_code(path):
    """A checkout of the paper's code at COMMIT: `path`, or a clone in the cache."""
    if path is None:
        path = CLONE
        if not (path / ".git").exists():
            subprocess.run(["git", "clone", "-q", REPOSITORY, str(path)], check=True)
        subprocess.run(["git", "-C", str(path), "checkout", "-q", COMMIT], check=True)
    path = pathlib.Path(path).resolve()
    if (path / ".git").exists():
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        if head.strip() != COMMIT:
            sys.exit(f"{path} is at {head.strip()}, not {COMMIT}")
    if not (path / "src" / "performative_prediction.py").exists():
        sys.exit(f"{path} does not hold the paper's code (src/performative_prediction.py)")
    return path


def run(code, spec, rounds):
    """One run of the paper's code, as its execute_performative_prediction makes it."""
    sys.path.insert(0, str(code))
    from src.envs.gridworld import Gridworld
    from src.performative_prediction import Performative_Prediction

    gradient = spec["method"] == "rga"
    # The code writes pictures of the environments into ./limiting_envs: give it a scratch folder.
    os.chdir(tempfile.mkdtemp(prefix="performative-"))
    os.mkdir("limiting_envs")
    env = Gridworld(spec["beta"], EPS, GAMMA, FOLLOWERS, False, None, 1)
    # Arguments: env, max_iterations, lamda, reg, gradient, eta, sampling, n_sample,
    # policy_gradient, nu, unregularized_obj, lagrangian, N, delta, B (the last three unused here).
    algorithm = Performative_Prediction(
        env, rounds, spec["lambda"], "L2", gradient, spec.get("eta"), False, None, False, None, False, False, 10, 0.1, 10
    )
    algorithm.execute()
    out = dict(spec)
    out["distance"] = [float(x) for x in algorithm.d_diff]
    if gradient:
        out["gap"] = [float(x) for x in algorithm.sub_gap]
    return out


def versions():
    from importlib.metadata import version

    return {"python": platform.python_version(), **{p.split("==")[0]: version(p.split("==")[0]) for p in PINS}}


def check(fixture, written):
    ok = True
    for old, new in zip(fixture["runs"], written["runs"]):
        for key in ("distance", "gap"):
            for t, (a, b) in enumerate(zip(old.get(key, []), new.get(key, []))):
                if abs(a - b) > CHECK_TOLERANCE * max(abs(a), 1e-6):
                    print(f"{old['method']} {key}[{t}]: committed {a:e}, now {b:e}")
                    ok = False
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=pathlib.Path, help="a checkout of the paper's code at " + COMMIT[:7])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per run (default 5)")
    parser.add_argument("--check", action="store_true", help="compare with the committed fixture")
    args = parser.parse_args()
    if not in_venv():
        enter_venv()
    code = paper_code(args.code)
    written = {
        "source": f"gradanovic/icml2023-performative-rl-paper-code at {COMMIT}, unmodified",
        "command": "python3 scripts/golden_performative_rounds.py",
        "versions": versions(),
        "settings": {"eps": EPS, "gamma": GAMMA, "followers": FOLLOWERS, "regulariser": "L2", "solver": "SCS eps 1e-5"},
        "runs": [],
    }
    for spec in RUNS:
        print(f"running the paper's code: {spec}", file=sys.stderr)
        result = run(code, spec, args.rounds)
        print(f"  distance {['%.6e' % x for x in result['distance']]}", file=sys.stderr)
        written["runs"].append(result)
    if args.check:
        if not check(json.loads(OUT.read_text()), written):
            sys.exit(1)
        print(f"{OUT} is up to date")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(written, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
