"""Golden data for `keel report`'s statistics from rliable 1.2.0 (Agarwal et al., NeurIPS 2021).

Run in rliable's own venv (pandas < 3):
    bash scripts/rliable_venv.sh scripts/golden_rliable.py [--out tests/fixtures/rliable.json]

Two methods' normalised score matrices (runs x tasks, seeded, with ties and scores above 1), their
mean, median, IQM and optimality gap with 95 % stratified-bootstrap intervals, the probability of
improvement with its interval, and run-score performance profiles. Point estimates are exact;
intervals depend on the bootstrap draws, so Keel's are compared within a tolerance.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from rliable import library as rly
from rliable import metrics

ROOT = Path(__file__).resolve().parents[1]
REPS = 2000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/rliable.json")
    args = parser.parse_args()
    rng = np.random.default_rng(2021)
    scores = {
        "ppo": np.round(rng.normal(0.6, 0.3, size=(5, 4)), 3),
        "dppo": np.round(rng.normal(0.7, 0.4, size=(5, 4)), 3),
    }
    scores["dppo"][0, 0] = scores["ppo"][1, 0]  # a tie
    names = {
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "IQM": metrics.aggregate_iqm,
        "optimality gap": metrics.aggregate_optimality_gap,
    }
    aggregates = {}
    for method, matrix in scores.items():
        aggregates[method] = {}
        for name, fn in names.items():
            points, intervals = rly.get_interval_estimates({method: matrix}, lambda m: np.array([fn(m)]), reps=REPS)
            aggregates[method][name] = {
                "point": float(points[method][0]),
                "low": float(intervals[method][0, 0]),
                "high": float(intervals[method][1, 0]),
            }
    poi_points, poi_intervals = rly.get_interval_estimates(
        {"ppo,dppo": (scores["ppo"], scores["dppo"]), "dppo,ppo": (scores["dppo"], scores["ppo"])},
        metrics.probability_of_improvement,
        reps=REPS,
    )
    taus = [float(t) for t in np.linspace(-0.5, 2.0, 26)]
    profiles = {m: [float(np.mean(matrix > t)) for t in taus] for m, matrix in scores.items()}
    out = {
        "source": "rliable 1.2.0 (scripts/golden_rliable.py)",
        "reps": REPS,
        "scores": {m: matrix.tolist() for m, matrix in scores.items()},
        "aggregates": aggregates,
        "probability_of_improvement": [
            {
                "x": pair.split(",")[0],
                "y": pair.split(",")[1],
                "point": float(np.ravel(poi_points[pair])[0]),
                "low": float(np.ravel(poi_intervals[pair])[0]),
                "high": float(np.ravel(poi_intervals[pair])[1]),
            }
            for pair in poi_points
        ],
        "taus": taus,
        "profiles": profiles,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
