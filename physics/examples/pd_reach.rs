//! How much of a clip's joint speed the PD reaches under its torque limits. Per joint, over the
//! control intervals of tracking the clip with the root pinned 1 m up (targets: the clip's pose
//! and velocity at 30 Hz, physics at 120 Hz, 10 s): the share of intervals whose reference speed
//! about some axis exceeds `max_torque / kd`; of those, the share in which the simulated joint
//! also moves faster than that about the same axis, and the simulated speed along the
//! reference's as a fraction of the reference's (mean); and the joint-angle RMS error over all
//! intervals. Run in release:
//!
//! ```text
//! cargo run --release -p keel-physics --example pd_reach [clip ...]   # default: walk run
//! ```

use std::sync::Arc;

use keel_physics::glam::DQuat;
use keel_physics::model::Joint;
use keel_physics::{ClipLibrary, DataDir, Humanoid, HumanoidConfig, HumanoidModel, Result};

/// Simulated seconds per clip.
const SECONDS: f64 = 10.0;
/// Control rate, Hz.
const CONTROL_HZ: f64 = 30.0;

/// Per joint: intervals, fast intervals, fast ones the simulation also took fast, the sum of
/// speed fractions, the sum of squared angle errors.
#[derive(Clone, Copy, Default)]
struct Tally {
    intervals: usize,
    fast: usize,
    reached: usize,
    fraction: f64,
    squares: f64,
}

fn main() -> Result<()> {
    let data = DataDir::locate()?;
    let model = Arc::new(HumanoidModel::load(&data)?);
    let clips = ClipLibrary::load(&data, &model)?;
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        names = vec!["walk".into(), "run".into()];
    }
    let config = HumanoidConfig { pin_root: true, ..HumanoidConfig::default() };
    let substeps = (1.0 / (CONTROL_HZ * config.dt)).round() as usize;
    for name in &names {
        let clip = clips.get(name)?;
        let mut humanoid = Humanoid::new(Arc::clone(&model), config.clone())?;
        let mut start = clip.pose_at(0.0)?;
        start[1] += 1.0;
        humanoid.set_state(&start, &clip.velocity_at(0.0)?)?;
        let mut tallies = vec![Tally::default(); model.bodies().len()];
        for k in 1..=(SECONDS * CONTROL_HZ).round() as usize {
            let t = k as f64 / CONTROL_HZ;
            let (pose, velocity) = (clip.pose_at(t)?, clip.velocity_at(t)?);
            humanoid.set_targets_with_velocities(&pose[7..], &velocity[6..])?;
            for _ in 0..substeps {
                humanoid.step()?;
            }
            let (sim_pose, sim_velocity) = (humanoid.pose(), humanoid.velocity());
            for (body, tally) in model.bodies().iter().zip(tallies.iter_mut()) {
                let Some(pd) = body.pd else { continue };
                let (p, o, width) = (body.pose_offset, body.velocity_offset, body.joint.velocity_width());
                let cap = pd.max_torque / pd.kd;
                tally.intervals += 1;
                tally.squares += match body.joint {
                    Joint::Spherical => angle(&pose[p..p + 4], &sim_pose[p..p + 4]).powi(2),
                    _ => (pose[p] - sim_pose[p]).powi(2),
                };
                let reference = &velocity[o..o + width];
                let sim = &sim_velocity[o..o + width];
                let fast: Vec<usize> = (0..width).filter(|&a| reference[a].abs() > cap).collect();
                if fast.is_empty() {
                    continue;
                }
                tally.fast += 1;
                tally.reached += usize::from(fast.iter().any(|&a| sim[a].abs() > cap && sim[a] * reference[a] > 0.0));
                let along: f64 = (0..width).map(|a| reference[a] * sim[a]).sum();
                let norm: f64 = reference.iter().map(|v| v * v).sum();
                tally.fraction += along / norm;
            }
        }
        println!("{name}: root pinned, {SECONDS} s at {CONTROL_HZ} Hz control; speeds against max_torque/kd");
        println!("  joint           cap rad/s  fast intervals  sim beyond cap  sim/ref speed  RMS error rad");
        for (body, tally) in model.bodies().iter().zip(&tallies) {
            let Some(pd) = body.pd else { continue };
            let share = |n: usize, of: usize| if of == 0 { 0.0 } else { 100.0 * n as f64 / of as f64 };
            let fraction = if tally.fast == 0 { f64::NAN } else { tally.fraction / tally.fast as f64 };
            println!(
                "  {:<15} {:>9.2}  {:>13.1}%  {:>13.1}%  {:>13.2}  {:>13.3}",
                body.name,
                pd.max_torque / pd.kd,
                share(tally.fast, tally.intervals),
                share(tally.reached, tally.fast),
                fraction,
                (tally.squares / tally.intervals as f64).sqrt()
            );
        }
    }
    Ok(())
}

/// The angle between two rotations (`w, x, y, z`), rad.
fn angle(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = (DQuat::from_xyzw(a[1], a[2], a[3], a[0]), DQuat::from_xyzw(b[1], b[2], b[3], b[0]));
    let r = a.conjugate() * b;
    2.0 * r.xyz().length().atan2(r.w.abs())
}
