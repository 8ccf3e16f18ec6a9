"""Keel against MuJoCo on the DeepMimic humanoid: physics steps per second on one core.

Both engines run the same model: Keel's, read from pybullet's humanoid.urdf (15 bodies, 8 ball
joints, 4 hinges, 2 fixed; 28 actuated DoF), and for MuJoCo an MJCF generated here from Keel's
reading of that URDF (`bench_physics model`): the same bodies, joint frames, capsules, spheres
and boxes, masses (inertias from the shapes in both), PD gains as joint springs with damping,
an armature of 0.01, friction 0.9, collisions between the bodies and the ground only. Both step
at 120 Hz: Keel one substep of implicit PD, MuJoCo `implicitfast` with its joint springs
(`qpos_spring`) set to the targets.

Scenarios, each `--seconds` of simulated time:
- `stand`: a PD stance of the zero pose;
- `track`: PD targets from the walk clip's frames at 30 Hz from its first frame; it falls and goes
  on tracking on the ground, so contacts keep changing.

The engines alternate, `--reps` times each; the medians are reported.

    bash scripts/bench_humanoid_setup.sh          # MuJoCo 4.0.0 in its own venv, Keel's bench binary
    ~/.cache/keel/mujoco-venv/bin/python scripts/bench_humanoid.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import mujoco
import numpy as np

CACHE = Path(os.environ.get("KEEL_CACHE", Path.home() / ".cache" / "keel"))
KEEL = Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target-native")) / "release" / "examples" / "bench_physics"
CLIP = CACHE / "pybullet-3.2.7" / "pybullet_data" / "data" / "motions" / "humanoid3d_walk.txt"
DT = 1.0 / 120.0


def fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def quat_rotate(q, v):
    """Rotates v by the unit quaternion q = (w, x, y, z)."""
    w, x, y, z = q
    u = np.array([x, y, z])
    v = np.asarray(v, dtype=float)
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def mjcf(model: dict) -> str:
    """The MJCF of Keel's model description."""
    bodies = model["bodies"]
    children: dict[int | None, list[int]] = {}
    for i, b in enumerate(bodies):
        children.setdefault(b["parent"], []).append(i)

    def geom(b) -> str:
        s, o, r = b["shape"], np.array(b["shape_origin"]), b["shape_rotation"]
        common = f'mass="{b["mass"]:.6g}" contype="1" conaffinity="0" friction="0.9 0.005 0.0001"'
        if s["type"] == "capsule":
            half = quat_rotate(r, [0.0, 0.0, s["half_length"]])
            return f'<geom type="capsule" fromto="{fmt(o - half)} {fmt(o + half)}" size="{s["radius"]:.6g}" {common}/>'
        if s["type"] == "sphere":
            return f'<geom type="sphere" pos="{fmt(o)}" size="{s["radius"]:.6g}" {common}/>'
        return f'<geom type="box" pos="{fmt(o)}" quat="{fmt(r)}" size="{fmt(s["half_extents"])}" {common}/>'

    def body(i: int, indent: str) -> str:
        b = bodies[i]
        pos = [0.0, model["standing_height"], 0.0] if b["parent"] is None else b["origin"]
        lines = [f'{indent}<body name="{b["name"]}" pos="{fmt(pos)}">']
        if b["joint"] == "free":
            lines.append(f"{indent}  <freejoint/>")
        elif b["joint"] == "ball":
            lines.append(f'{indent}  <joint name="{b["name"]}" type="ball" stiffness="{b["kp"]}" damping="{b["kd"]}" armature="0.01"/>')
        elif b["joint"] == "hinge":
            lo, hi = b["limits"]
            lines.append(
                f'{indent}  <joint name="{b["name"]}" type="hinge" axis="{fmt(b["axis"])}" range="{lo} {hi}" limited="true" '
                f'stiffness="{b["kp"]}" damping="{b["kd"]}" armature="0.01"/>'
            )
        lines.append(f"{indent}  {geom(b)}")
        for c in children.get(i, []):
            lines.append(body(c, indent + "  "))
        lines.append(f"{indent}</body>")
        return "\n".join(lines)

    root = children[None][0]
    return f"""<mujoco model="deepmimic_humanoid">
  <compiler angle="radian" inertiafromgeom="true"/>
  <option timestep="{DT!r}" integrator="implicitfast" gravity="0 -9.8 0"/>
  <worldbody>
    <geom name="ground" type="plane" size="0 0 1" quat="0.70710678 -0.70710678 0 0" contype="0" conaffinity="1" friction="0.9 0.005 0.0001"/>
{body(root, "    ")}
  </worldbody>
</mujoco>
"""


def run_mujoco(xml: str, scenario: str, seconds: float, frames: np.ndarray) -> dict:
    m = mujoco.MjModel.from_xml_string(xml)
    d = mujoco.MjData(m)
    # The zero pose (MuJoCo's qpos0 has unit quaternions): hold it.
    m.qpos_spring[:] = m.qpos0
    if scenario == "track":
        d.qpos[:] = frames[0]
        mujoco.mj_forward(m, d)
    steps = round(seconds / DT)
    start = time.perf_counter()
    for step in range(steps):
        if scenario == "track" and step % 4 == 0:
            m.qpos_spring[7:] = frames[(step // 4) % len(frames)][7:]
        mujoco.mj_step(m, d)
    elapsed = time.perf_counter() - start
    return {"engine": f"mujoco {mujoco.__version__}", "scenario": scenario, "steps": steps, "seconds": elapsed,
            "steps_per_s": steps / elapsed, "root_height": float(d.qpos[1])}


def run_keel(scenario: str, seconds: float) -> dict:
    out = subprocess.run([str(KEEL), scenario, str(seconds)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per run")
    parser.add_argument("--reps", type=int, default=3, help="runs of each engine and scenario")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not KEEL.exists():
        raise SystemExit(f"{KEEL} not found: run `bash scripts/bench_humanoid_setup.sh`")
    model = json.loads(subprocess.run([str(KEEL), "model"], check=True, capture_output=True, text=True).stdout)
    xml = mjcf(model)
    frames = np.array([row[1:] for row in json.loads(CLIP.read_text())["Frames"]])
    results = {}
    for scenario in ["stand", "track"]:
        runs = {"keel": [], "mujoco": []}
        for _ in range(args.reps):
            runs["keel"].append(run_keel(scenario, args.seconds))
            runs["mujoco"].append(run_mujoco(xml, scenario, args.seconds, frames))
        keel = statistics.median(r["steps_per_s"] for r in runs["keel"])
        mj = statistics.median(r["steps_per_s"] for r in runs["mujoco"])
        results[scenario] = {"keel_steps_per_s": keel, "mujoco_steps_per_s": mj, "ratio": keel / mj,
                             "keel_root_height": runs["keel"][-1]["root_height"],
                             "mujoco_root_height": runs["mujoco"][-1]["root_height"]}
        print(f"{scenario:6} keel {keel:9.0f} steps/s   mujoco {mj:9.0f} steps/s   keel/mujoco = 1/{mj / keel:.2f}"
              f"   root height after {args.seconds:g} s: keel {results[scenario]['keel_root_height']:.3f} m,"
              f" mujoco {results[scenario]['mujoco_root_height']:.3f} m")
    if args.json:
        args.json.write_text(json.dumps({"seconds": args.seconds, "reps": args.reps, "mujoco": mujoco.__version__,
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
