//! Physics steps per second of the humanoid on one thread, for `scripts/bench_humanoid.py`.
//!
//! ```text
//! bench_physics model                  # the model as JSON (for the MJCF the bench generates)
//! bench_physics stand SECONDS          # PD stance of the zero pose
//! bench_physics track SECONDS          # PD targets from the walk clip's frames at 30 Hz
//! ```
//!
//! Both scenarios run at 120 Hz with one substep (the env's setting) and an armature of 0.01 on
//! every actuated degree of freedom (as in the MJCF); `track` starts on the walk's first frame,
//! falls within a second or two and goes on tracking on the ground, so contacts keep changing.
//! Each prints one JSON line: scenario, steps, seconds, steps/s, final root height.

use std::sync::Arc;
use std::time::Instant;

use keel_physics::model::{Joint, Shape};
use keel_physics::{ClipLibrary, DataDir, Humanoid, HumanoidConfig, HumanoidModel};
use serde_json::json;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = DataDir::locate()?;
    let model = Arc::new(HumanoidModel::load(&data)?);
    let scenario = args.get(1).map(String::as_str).unwrap_or("stand");
    if scenario == "model" {
        println!("{}", serde_json::to_string(&describe(&model))?);
        return Ok(());
    }
    let seconds: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(20.0);
    let config = HumanoidConfig { armature: 0.01, ..HumanoidConfig::default() };
    let steps = (seconds / config.dt).round() as u64;
    let mut humanoid = Humanoid::new(Arc::clone(&model), config)?;
    let clips = ClipLibrary::load(&data, &model)?;
    let walk = clips.get("walk")?;
    if scenario == "track" {
        humanoid.set_state(walk.frame(0).ok_or("walk has no frames")?, &vec![0.0; model.velocity_len()])?;
    } else if scenario != "stand" {
        return Err(format!("unknown scenario `{scenario}`: model, stand or track").into());
    }
    let start = Instant::now();
    for step in 0..steps {
        if scenario == "track" && step % 4 == 0 {
            let frame = ((step / 4) as usize) % walk.num_frames();
            humanoid.set_targets(&walk.frame(frame).ok_or("frame out of range")?[7..])?;
        }
        humanoid.step()?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let line = json!({
        "engine": "keel (rapier3d 0.36.1)",
        "scenario": scenario,
        "steps": steps,
        "seconds": elapsed,
        "steps_per_s": steps as f64 / elapsed,
        "root_height": humanoid.pose()[1],
    });
    println!("{line}");
    Ok(())
}

/// The model as Keel reads it from the URDF: bodies in pose order with their joints, shapes,
/// masses and PD gains.
fn describe(model: &HumanoidModel) -> serde_json::Value {
    let bodies: Vec<_> = model
        .bodies()
        .iter()
        .map(|b| {
            let (joint, axis, limits) = match b.joint {
                Joint::Free => ("free", None, None),
                Joint::Spherical => ("ball", None, None),
                Joint::Revolute { axis, limits } => ("hinge", Some(axis), Some(limits)),
                Joint::Fixed => ("fixed", None, None),
            };
            let shape = match b.shape {
                Shape::Sphere { radius } => json!({"type": "sphere", "radius": radius}),
                Shape::Capsule { radius, half_length } => {
                    json!({"type": "capsule", "radius": radius, "half_length": half_length})
                }
                Shape::Box { half_extents } => json!({"type": "box", "half_extents": half_extents}),
            };
            json!({
                "name": b.name,
                "parent": b.parent,
                "joint": joint,
                "axis": axis,
                "limits": limits,
                "origin": b.origin,
                "mass": b.mass,
                "shape": shape,
                "shape_origin": b.shape_origin,
                "shape_rotation": b.shape_rotation,
                "kp": b.pd.map(|pd| pd.kp),
                "kd": b.pd.map(|pd| pd.kd),
            })
        })
        .collect();
    json!({ "standing_height": model.standing_height(), "bodies": bodies })
}
