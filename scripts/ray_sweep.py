"""Runs the trials of a `keel sweep` on a Ray cluster through Ray Tune.

`keel sweep SPEC.toml --out DIR --ray auto|ADDRESS` writes DIR/sweep.json and DIR/ray/trials.json
(each trial's `keel train` arguments) and runs this script with the Ray venv's Python
(scripts/ray_venv.sh). Every trial is one Tune trial that asks for `cpus_per_run` CPUs, runs
`keel train` on whichever node Tune places it, and reports each new row of its metrics.csv
(`training_iteration`, `global_step`, `episodic_return`) as it is written, so Tune's schedulers
(ASHA with `scheduler = "asha"` in the spec) can stop weak trials early. Run folders land in
DIR/runs as in a local sweep, so DIR must be on a file system every node sees (one machine, or a
shared mount). A finished run is skipped, a checkpointed one resumed. DIR/ray/nodes/<run>.json
records the node each trial ran on.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def fail(message):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def resolve(address):
    """The cluster's GCS address; a clear error (no hang) when nothing answers there."""
    given = address
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if not address and current.exists():
            address = current.read_text().strip()
        if not address:
            fail("--ray auto: no Ray cluster runs on this machine (RAY_ADDRESS is not set and no cluster was "
                 "started here); start one with `ray start --head` or give its address, --ray HOST:PORT")
    address = address.removeprefix("ray://")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--ray {given}: expected auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        fail(f"--ray {given}: no Ray cluster answers at {address} ({e.strerror or e}); start one with "
             "`ray start --head` or check the address")
    return address


def state_of(run):
    try:
        status = json.loads((run / "summary.json").read_text()).get("status")
    except (OSError, ValueError):
        status = None
    if status in ("completed", "diverged"):
        return "done"
    latest = run / "checkpoints" / "latest"
    return "partial" if latest.exists() else "new"


def rows(path):
    """Complete rows of a metrics.csv as dicts."""
    try:
        text = path.read_text()
    except OSError:
        return []
    lines = text.split("\n")
    if len(lines) < 2:
        return []
    header = lines[0].split(",")
    out = []
    for line in lines[1:-1]:  # the last piece is unfinished (or empty)
        values = line.split(",")
        if len(values) == len(header):
            out.append(dict(zip(header, (float(v) for v in values))))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--keel", required=True)
    parser.add_argument("--address", required=True)
    args = parser.parse_args()
    out = args.out.resolve()
    plan = json.loads((out / "ray" / "trials.json").read_text())
    address = resolve(args.address)

    import ray
    from ray import tune

    # A GCS that accepts the connection but never answers must not hang the command either.
    signal.signal(signal.SIGALRM, lambda *_: fail(f"--ray {args.address}: the cluster at {address} did not answer in 60 s"))
    signal.alarm(60)
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    signal.alarm(0)
    cpus = plan["cpus_per_run"]
    keel = args.keel
    (out / "ray" / "nodes").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)

    def trainable(config):
        trial = config["trial"]
        run = out / "runs" / trial["name"]
        node = ray.get_runtime_context().get_node_id()
        state = state_of(run)
        (out / "ray" / "nodes" / f"{trial['name']}.json").write_text(json.dumps({"node_id": node, "state": state}))
        if state == "done":
            summary = json.loads((run / "summary.json").read_text())
            tune.report({"episodic_return": summary["final_return_mean"], "global_step": summary["global_step"],
                         "node_id": node, "skipped": True})
            return
        if state == "partial":
            command = [keel, *trial["resume_args"]]
        else:
            shutil.rmtree(run, ignore_errors=True)
            command = [keel, *trial["args"]]
        log = open(out / "logs" / f"{trial['name']}.log", "a")
        env = dict(os.environ, KEEL_TORCH_THREADS=str(cpus))
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        seen = 0
        try:
            while True:
                finished = proc.poll() is not None
                got = rows(run / "metrics.csv")
                for row in got[seen:]:
                    tune.report({"episodic_return": row.get("episodic_return", float("nan")),
                                 "global_step": row.get("global_step", 0.0), "node_id": node})
                seen = max(seen, len(got))
                if finished:
                    break
                time.sleep(0.2)
        finally:
            if proc.poll() is None:  # stopped by a scheduler, or the driver went away
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()
        status = None
        try:
            status = json.loads((run / "summary.json").read_text()).get("status")
        except (OSError, ValueError):
            pass
        if proc.returncode != 0 and status != "diverged":
            tail = (out / "logs" / f"{trial['name']}.log").read_text().strip().splitlines()[-1:]
            raise RuntimeError(f"keel train exited with {proc.returncode}: {' '.join(tail)}")
        if seen == 0:
            summary = json.loads((run / "summary.json").read_text())
            tune.report({"episodic_return": summary["final_return_mean"], "global_step": summary["global_step"],
                         "node_id": node})

    scheduler = None
    if plan.get("scheduler") == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=plan.get("grace_period", 1))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus}),
        param_space={"trial": tune.grid_search(plan["trials"])},
        tune_config=tune.TuneConfig(
            metric="episodic_return",
            mode="max",
            scheduler=scheduler,
            max_concurrent_trials=plan.get("jobs"),
            trial_name_creator=lambda t: t.config["trial"]["name"],
            trial_dirname_creator=lambda t: t.config["trial"]["name"],
        ),
        run_config=tune.RunConfig(storage_path=str(out / "ray"), name="tune", verbose=1),
    )
    results = tuner.fit()
    nodes = {json.loads(p.read_text())["node_id"] for p in (out / "ray" / "nodes").glob("*.json")}
    ray.shutdown()
    if results.errors:
        for error in results.errors:
            print(f"error: {error}", file=sys.stderr)
        fail(f"{len(results.errors)} of {len(plan['trials'])} trials failed (logs in {out / 'logs'})")
    print(f"keel sweep: {len(plan['trials'])} trials on {len(nodes)} Ray node(s), run folders in {out / 'runs'}", flush=True)


if __name__ == "__main__":
    main()
