#!/usr/bin/env python3
"""Writes the static data of the performative-RL grid-world (Mandal, Triantafyllou & Radanovic,
ICML 2023) to envs/src/performative/paper_grid.json.

The 50 followers' perturbed grids come from NumPy's `default_rng(k)` streams, which Keel does not
reimplement: this script draws them exactly as the paper's code does and Keel loads the result.
It also writes the initial learner policy (epsilon-greedy on the unperturbed grid's Q*), which Keel
recomputes and checks against this file in its tests.

Usage: .venv/bin/python scripts/golden_performative.py [--check]
  --check  compare with the committed file instead of writing it (exit 1 on a difference).
"""

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "envs" / "src" / "performative" / "paper_grid.json"

SIZE = 8
GAMMA = 0.9
EPS_PERTURB = 0.3
NUM_FOLLOWERS = 50
EPS_GREEDY = 0.1
# Row 0 is the top row; a reward is paid on entering a cell.
LAYOUT = [
    "........",
    "..F.H...",
    "...H..F.",
    ".F...H.F",
    "...H..F.",
    ".HH.F.H.",
    ".H..H.H.",
    "...H.F.G",
]
CELL_REWARD = {".": -0.01, "F": -0.02, "H": -0.5, "G": 1.0}
# left, right, up, down as (row, col) steps.
MOVES = [(0, -1), (0, 1), (-1, 0), (1, 0)]
GOAL = SIZE * SIZE - 1


def base_grid():
    return np.array([[CELL_REWARD[c] for c in row] for row in LAYOUT])


def initial_cells():
    return [(0, j) for j in range(SIZE)] + [(i, 0) for i in range(1, SIZE)]


def perturbed_grid(k, grid):
    """Follower k's grid: each non-initial cell is redrawn with probability EPS_PERTURB."""
    rng = np.random.default_rng(k)
    coin = rng.random((SIZE, SIZE))
    values = sorted(set(grid.flatten()) - {CELL_REWARD["G"]})
    out = grid.copy()
    starts = set(initial_cells())
    for i in range(SIZE):
        for j in range(SIZE):
            if (i, j) in starts or coin[i, j] > EPS_PERTURB:
                continue
            out[i, j] = rng.choice(values)
    out[SIZE - 1, SIZE - 1] = CELL_REWARD["G"]
    return out


def move(s, a):
    i, j = divmod(s, SIZE)
    di, dj = MOVES[a]
    ni, nj = i + di, j + dj
    if 0 <= ni < SIZE and 0 <= nj < SIZE:
        return ni * SIZE + nj
    return s


def initial_policy(grid):
    """Epsilon-greedy on Q* of the unperturbed grid without interventions (Jacobi VI, tol 1e-5)."""
    r = grid.flatten()
    u = np.zeros(SIZE * SIZE)
    while True:
        new = np.array([0.0 if s == GOAL else max(r[move(s, a)] + GAMMA * u[move(s, a)] for a in range(4))
                        for s in range(SIZE * SIZE)])
        done = np.max(np.abs(new - u)) < 1e-5
        u = new
        if done:
            break
    policy = np.full((SIZE * SIZE, 4), EPS_GREEDY / 3)
    for s in range(SIZE * SIZE):
        # The goal is absorbing with no reward: all four values are 0 and argmax takes the first.
        q = [0.0 if s == GOAL else r[move(s, a)] + GAMMA * u[move(s, a)] for a in range(4)]
        policy[s, int(np.argmax(q))] = 1.0 - EPS_GREEDY
    return policy


def build():
    grid = base_grid()
    return {
        "description": "Static data of the ICML'23 performative-RL grid-world (Mandal, Triantafyllou & "
                       "Radanovic, arXiv 2207.00046), written by scripts/golden_performative.py with "
                       "NumPy's default_rng(k) for follower k, as the paper's code draws them.",
        "grid": grid.tolist(),
        "initial_states": [i * SIZE + j for i, j in initial_cells()],
        "gamma": GAMMA,
        "intervention_cost": -0.05,
        "perturbed_grids": [perturbed_grid(k, grid).tolist() for k in range(NUM_FOLLOWERS)],
        "initial_policy": initial_policy(grid).tolist(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    data = build()
    if args.check:
        committed = json.loads(OUT.read_text())
        if committed != data:
            print(f"{OUT} differs from what this script computes", file=sys.stderr)
            sys.exit(1)
        print(f"{OUT} is up to date")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
