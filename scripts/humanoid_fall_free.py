"""Fall-free rate and tracking error of a humanoid run's checkpoints, for learning curves.

For every `--every`-th checkpoint of RUN (and its latest), plays `--episodes` deterministic
episodes of `--seconds` from random start phases on held-out seeds (`keel eval --seed`, far
from the training seeds) and records how many reach the cap without a fall, the mean
tracking error over every step, and the wall time the run had trained for when the checkpoint
was written (from metrics.csv: steps over SPS, for a run trained in one process).

    python scripts/humanoid_fall_free.py runs/walk_s1 --every 50 --out docs/data/walk_s1_fall_free.csv

Needs only the `keel` binary (`--keel`, default target/keel).
"""
import argparse, csv, json, pathlib, shutil, subprocess, sys, tempfile

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("run", type=pathlib.Path)
parser.add_argument("--every", type=int, default=50, help="every N-th iteration's checkpoint")
parser.add_argument("--episodes", type=int, default=50)
parser.add_argument("--seconds", type=float, default=5.0, help="episode length at 30 Hz control")
parser.add_argument("--seed", type=int, default=5_000_000, help="seed of the first episode")
parser.add_argument("--keel", default="target/keel")
parser.add_argument("--out", type=pathlib.Path, required=True)
args = parser.parse_args()

checkpoints = args.run / "checkpoints"
iterations = sorted(int(p.stem.split("_")[1]) for p in checkpoints.glob("iter_*.safetensors"))
if not iterations:
    sys.exit(f"{args.run}: no checkpoints")
chosen = [i for i in iterations if i % args.every == 0]
if iterations[-1] not in chosen:
    chosen.append(iterations[-1])
metrics = {int(r["iteration"]): r for r in csv.DictReader(open(args.run / "metrics.csv"))}
cap = round(args.seconds * 30)
rows = []
for it in chosen:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        shutil.copy(args.run / "config.toml", tmp / "config.toml")
        (tmp / "checkpoints").mkdir()
        for ext in ("safetensors", "json"):
            shutil.copy(checkpoints / f"iter_{it:06d}.{ext}", tmp / "checkpoints" / f"iter_{it:06d}.{ext}")
        (tmp / "checkpoints" / "latest").write_text(f"iter_{it:06d}")
        subprocess.run([args.keel, "eval", "--run", str(tmp), "--episodes", str(args.episodes), "--deterministic",
                        "--max-episode-steps", str(cap), "--seed", str(args.seed)], check=True, capture_output=True)
        report = json.loads((tmp / "eval.json").read_text())
    m = metrics.get(it, {})
    steps = int(m.get("global_step", 0) or 0)
    sps = float(m.get("sps", "nan") or "nan")
    row = {
        "iteration": it,
        "global_step": steps,
        "wall_minutes": round(steps / sps / 60, 2) if sps == sps and sps > 0 else "",
        "fall_free": report["truncated"] / report["episodes"],
        "tracking_error": report["extras_mean"].get("tracking_error", float("nan")),
        "return_mean": report["return_mean"],
    }
    rows.append(row)
    print(", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
args.out.parent.mkdir(parents=True, exist_ok=True)
with open(args.out, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
