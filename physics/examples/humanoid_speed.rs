//! Physics steps per second of one humanoid on one core: standing (a PD stance of the zero
//! pose) and tracking (the walk clip's targets, open loop, on the ground: it steps, falls and
//! keeps flailing, so contacts keep changing). Run in release:
//!
//! ```text
//! cargo run --release -p keel-physics --example humanoid_speed
//! ```

use std::sync::Arc;
use std::time::Instant;

use keel_physics::{ClipLibrary, DataDir, Humanoid, HumanoidConfig, HumanoidModel, Result};

/// Simulated seconds per measurement.
const SECONDS: f64 = 20.0;

fn main() -> Result<()> {
    let data = DataDir::locate()?;
    let model = Arc::new(HumanoidModel::load(&data)?);
    let clips = ClipLibrary::load(&data, &model)?;
    let walk = clips.get("walk")?;
    let config = HumanoidConfig::default();
    let steps = (SECONDS / config.dt).round() as usize;
    println!(
        "one humanoid, one thread, {SECONDS} s simulated at {:.0} Hz ({steps} steps), best of 3:",
        1.0 / config.dt
    );

    let mut stand = 0.0f64;
    let mut track = 0.0f64;
    for _ in 0..3 {
        let mut humanoid = Humanoid::new(Arc::clone(&model), config.clone())?;
        let start = Instant::now();
        for _ in 0..steps {
            humanoid.step()?;
        }
        stand = stand.max(steps as f64 / start.elapsed().as_secs_f64());

        let mut humanoid = Humanoid::new(Arc::clone(&model), config.clone())?;
        humanoid.set_state(&walk.pose_at(0.0)?, &walk.velocity_at(0.0)?)?;
        let start = Instant::now();
        for step in 0..steps {
            if step % 4 == 0 {
                humanoid.set_targets(&walk.pose_at(step as f64 * config.dt)?[7..])?;
            }
            humanoid.step()?;
        }
        track = track.max(steps as f64 / start.elapsed().as_secs_f64());
    }
    println!("  standing: {stand:.0} steps/s");
    println!("  tracking: {track:.0} steps/s");
    Ok(())
}
