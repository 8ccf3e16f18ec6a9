"""Records `torch.optim.Adam` (with `clip_grad_norm_`) over many steps, as golden data for
Keel's own Adam (`agents/src/adam.rs`, test `agents/tests/adam_golden.rs`).

Each case starts from fixed float32 parameters, feeds a fixed sequence of gradients and learning
rates, and records the parameters after every step, the gradient norm `clip_grad_norm_` returns
(when the case clips), and the optimiser's final state (step count, `exp_avg`, `exp_avg_sq`).
Parameters and gradients come from a seeded NumPy generator; gradient scales span several
orders of magnitude so that some steps are clipped and some are small enough for `eps` to
matter. The learning rate changes during a case, as PPO's annealing changes it between
iterations.

Keel's Adam supports what PPO uses: betas (0.9, 0.999), a given `eps`, a learning rate per step,
and global gradient-norm clipping; no weight decay, amsgrad or maximize, so none is recorded.

Usage (Keel's environment, torch 2.11.0):
    .venv/bin/python scripts/golden_adam.py [--out agents/tests/fixtures/adam_torch.json]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"weight": (3, 4), "bias": (4,), "kernel": (2, 2, 2), "scalar": (1,)}


def exact(t):
    """The float32 values of a tensor as a flat list of doubles (each one exactly a float32)."""
    return [float(x) for x in t.detach().numpy().astype(np.float32).ravel()]


def run_case(name, seed, steps, eps, max_grad_norm, lr_schedule):
    rng = np.random.default_rng(seed)
    initial = {k: rng.normal(0.0, 1.0, shape).astype(np.float32) for k, shape in SHAPES.items()}
    params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in initial.items()}
    optimizer = torch.optim.Adam(params.values(), lr=lr_schedule(0), betas=(0.9, 0.999), eps=eps)
    # Per-step gradient scales from 1e-4 to 10: with max_grad_norm 0.5 the large ones are clipped.
    scales = 10.0 ** rng.uniform(-4.0, 1.0, steps)
    records = []
    for k in range(steps):
        grads = {n: (scales[k] * rng.normal(0.0, 1.0, shape)).astype(np.float32) for n, shape in SHAPES.items()}
        lr = lr_schedule(k)
        optimizer.param_groups[0]["lr"] = lr
        optimizer.zero_grad()
        for n, p in params.items():
            p.grad = torch.from_numpy(grads[n].copy())
        record = {"lr": lr, "grads": {n: exact(torch.from_numpy(g)) for n, g in grads.items()}}
        if max_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(params.values(), max_grad_norm)
            record["grad_norm"] = float(norm)
        optimizer.step()
        record["params"] = {n: exact(p) for n, p in params.items()}
        records.append(record)
    state = []
    for n, p in params.items():
        s = optimizer.state[p]
        state.append({"name": n, "exp_avg": exact(s["exp_avg"]), "exp_avg_sq": exact(s["exp_avg_sq"])})
    return {
        "name": name,
        "eps": eps,
        "max_grad_norm": max_grad_norm,
        "initial": {n: exact(torch.from_numpy(v)) for n, v in initial.items()},
        "shapes": {n: list(s) for n, s in SHAPES.items()},
        "steps": records,
        "final_step": int(optimizer.state[params["weight"]]["step"]),
        "final_state": state,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "agents/tests/fixtures/adam_torch.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = 50
    cases = [
        # PPO's use: eps 1e-5, clipping at 0.5, lr annealed linearly, changed every 4 steps (one
        # "iteration" of 4 minibatches); a larger base lr than PPO's 2.5e-4 so parameters move
        # far from their start within 50 steps.
        run_case("ppo", 1, steps, 1e-5, 0.5, lambda k: 1e-2 * (1.0 - (k // 4) / (steps // 4 + 1))),
        # PyTorch's default eps, no clipping, constant lr: small gradients meet a smaller eps.
        run_case("plain", 2, steps, 1e-8, None, lambda k: 3e-3),
    ]
    fixture = {
        "generator": "scripts/golden_adam.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "betas": [0.9, 0.999],
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(cases)} cases of {steps} steps)")


if __name__ == "__main__":
    main()
