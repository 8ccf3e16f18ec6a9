//! `keel/HumanoidTrack-v1`'s observation, value by value, against its documented layout computed
//! here independently: from the clip library's forward kinematics (not rapier's), with the
//! heading frame built from basis vectors (not the env's quaternion).
#![cfg(feature = "humanoid")]
#![allow(clippy::unwrap_used)]

use keel_envs::env::ResetOptions;
use keel_envs::testing::Data;
use keel_envs::registry;
use keel_physics::glam::{DQuat, DVec3};
use keel_physics::{ClipLibrary, DataDir, HumanoidModel};
use serde_json::{Map, Value, json};

const FUTURE_FRAMES: usize = 2;
const CONTROL_DT: f64 = 1.0 / 30.0;

/// The env with two future frames, or `None` where the data is not installed (a failure under
/// `KEEL_REQUIRE_HUMANOID_DATA=1`).
fn env() -> Option<Box<dyn keel_envs::env::Env>> {
    keel_envs::humanoid::register().unwrap();
    let config: Map<String, Value> =
        [("clip".to_owned(), json!("walk")), ("future_frames".to_owned(), json!(FUTURE_FRAMES))].into_iter().collect();
    let env = registry::make("keel/HumanoidTrack-v1", &config);
    if Data::Humanoid.missing("keel/HumanoidTrack-v1", &env) { None } else { Some(env.unwrap()) }
}

fn quat(wxyz: &[f64; 4]) -> DQuat {
    DQuat::from_xyzw(wxyz[1], wxyz[2], wxyz[3], wxyz[0])
}

/// The heading frame's axes in world coordinates: forward (the root's x axis on the ground),
/// up, and their cross product.
fn heading_axes(root: DQuat) -> [DVec3; 3] {
    let facing = root * DVec3::X;
    let forward = DVec3::new(facing.x, 0.0, facing.z).normalize();
    [forward, DVec3::Y, forward.cross(DVec3::Y)]
}

fn in_frame(axes: &[DVec3; 3], v: DVec3) -> [f64; 3] {
    [axes[0].dot(v), axes[1].dot(v), axes[2].dot(v)]
}

#[test]
fn the_observation_is_the_documented_layout_of_the_state() {
    let Some(mut env) = env() else { return };
    let data = DataDir::locate().unwrap();
    let model = std::sync::Arc::new(HumanoidModel::load(&data).unwrap());
    let clips = ClipLibrary::load(&data, &model).unwrap();
    let walk = clips.get("walk").unwrap();
    let n = model.bodies().len();
    assert_eq!(env.spec().obs_len(), 1 + 15 * n + 1 + 9 * n * FUTURE_FRAMES);

    // Several clip times, so that the heading is never the identity.
    for t in [0.1, 0.47, 0.83] {
        let (pose, velocity) = (walk.pose_at(t).unwrap(), walk.velocity_at(t).unwrap());
        let state: Vec<f64> = [vec![t], pose.clone(), velocity.clone()].concat();
        let mut obs = env.spec().obs_buffer(1);
        env.reset(Some(0), &ResetOptions::with_state(state), obs.as_mut()).unwrap();
        let got = obs.as_f32().unwrap();

        let bodies = model.body_states(&pose, Some(&velocity)).unwrap();
        let root = DVec3::from(bodies[0].position);
        let axes = heading_axes(quat(&bodies[0].rotation));
        let mut want = vec![root.y];
        for b in &bodies {
            let rotation = quat(&b.rotation);
            want.extend(in_frame(&axes, DVec3::from(b.position) - root));
            want.extend(in_frame(&axes, rotation * DVec3::X));
            want.extend(in_frame(&axes, rotation * DVec3::Y));
            want.extend(in_frame(&axes, DVec3::from(b.linvel)));
            want.extend(in_frame(&axes, DVec3::from(b.angvel)));
        }
        want.push(t / walk.duration());
        for k in 1..=FUTURE_FRAMES {
            let future = model.body_states(&walk.pose_at(t + k as f64 * CONTROL_DT).unwrap(), None).unwrap();
            for b in &future {
                let rotation = quat(&b.rotation);
                want.extend(in_frame(&axes, DVec3::from(b.position) - root));
                want.extend(in_frame(&axes, rotation * DVec3::X));
                want.extend(in_frame(&axes, rotation * DVec3::Y));
            }
        }
        assert_eq!(got.len(), want.len());
        // f32 storage, rapier's f32 kinematics (1e-6 m) and velocities (1e-5 m/s) against the
        // clip's f64 forward kinematics.
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((f64::from(*g) - w).abs() < 1e-4, "t = {t}: obs[{i}] = {g}, the layout gives {w}");
        }
    }
}
