//! The humanoid and its clips against the bar of the humanoid issue: a 60 s PD stance, clip
//! frames through rapier's kinematics against the clip library's, pinned-root PD tracking of the
//! walk, all 15 clips, replay and snapshots, clear errors.
//!
//! These tests need the model and clips (`bash scripts/setup.sh` fetches them). Without them they
//! pass with a note, unless `KEEL_REQUIRE_HUMANOID_DATA=1` (as `scripts/test.sh` sets), which
//! turns a missing file into a failure.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use keel_physics::model::{BodyState, Joint};
use keel_physics::motion::CLIP_NAMES;
use keel_physics::{ClipLibrary, DataDir, Humanoid, HumanoidConfig, HumanoidModel, PhysicsError, Snapshot};

struct Data {
    model: Arc<HumanoidModel>,
    clips: ClipLibrary,
}

/// The model and clips, or `None` (with a note) when they are not installed and not required.
fn data(test: &str) -> Option<Data> {
    let required = std::env::var("KEEL_REQUIRE_HUMANOID_DATA").is_ok_and(|v| v == "1");
    match DataDir::locate() {
        Ok(dir) => {
            let model = Arc::new(HumanoidModel::load(&dir).unwrap_or_else(|e| panic!("{e}")));
            let clips = ClipLibrary::load(&dir, &model).unwrap_or_else(|e| panic!("{e}"));
            Some(Data { model, clips })
        }
        Err(e) if required => panic!("{test}: the humanoid data is required (KEEL_REQUIRE_HUMANOID_DATA=1): {e}"),
        Err(e) => {
            eprintln!("{test}: skipped: {e}");
            None
        }
    }
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}

/// The angle between two rotations (`w, x, y, z`), rad: that of `a⁻¹ b`, from its sine and
/// cosine (an arccosine of the dot product loses half the digits near zero).
fn angle(a: &[f64], b: &[f64]) -> f64 {
    let (a, b) = (glam::DQuat::from_xyzw(a[1], a[2], a[3], a[0]), glam::DQuat::from_xyzw(b[1], b[2], b[3], b[0]));
    let r = a.conjugate() * b;
    2.0 * glam::DVec3::new(r.x, r.y, r.z).length().atan2(r.w.abs())
}

/// Per joint, the angle between the joint rotations of two poses.
fn joint_errors(model: &HumanoidModel, a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut errors = Vec::new();
    for body in model.bodies() {
        let p = body.pose_offset;
        match body.joint {
            Joint::Spherical => errors.push(angle(&a[p..p + 4], &b[p..p + 4])),
            Joint::Revolute { .. } => errors.push((a[p] - b[p]).abs()),
            Joint::Free | Joint::Fixed => {}
        }
    }
    errors
}

#[test]
fn humanoids_and_clips_move_to_worker_threads() {
    fn send<T: Send + Sync>() {}
    send::<Humanoid>();
    send::<ClipLibrary>();
}

#[test]
#[allow(clippy::approx_constant)] // The URDF's knee limit is written 3.14, not π.
fn the_model_is_deepmimics_humanoid() {
    let Some(Data { model, .. }) = data("the_model_is_deepmimics_humanoid") else { return };
    let names: Vec<_> = model.bodies().iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names[..9],
        [
            "root",
            "chest",
            "neck",
            "right_hip",
            "right_knee",
            "right_ankle",
            "right_shoulder",
            "right_elbow",
            "right_wrist"
        ]
    );
    assert_eq!(names.len(), 15);
    let count = |f: fn(&Joint) -> bool| model.bodies().iter().filter(|b| f(&b.joint)).count();
    assert_eq!(count(|j| *j == Joint::Spherical), 8);
    assert_eq!(count(|j| matches!(j, Joint::Revolute { .. })), 4);
    assert_eq!(count(|j| *j == Joint::Fixed), 2);
    assert_eq!((model.pose_len(), model.velocity_len(), model.targets_len(), model.actuated_dofs()), (43, 34, 36, 28));
    assert!((model.mass() - 45.0).abs() < 1e-9, "{}", model.mass());
    // DeepMimic's gains and torque limits (kp, kd, max torque).
    let pd = |name: &str| model.bodies()[model.body_index(name).unwrap()].pd.map(|pd| (pd.kp, pd.kd, pd.max_torque));
    assert_eq!(pd("chest"), Some((1000.0, 100.0, 200.0)));
    assert_eq!(pd("neck"), Some((100.0, 10.0, 50.0)));
    assert_eq!(pd("left_hip"), Some((500.0, 50.0, 200.0)));
    assert_eq!(pd("right_knee"), Some((500.0, 50.0, 150.0)));
    assert_eq!(pd("left_ankle"), Some((400.0, 40.0, 90.0)));
    assert_eq!(pd("right_shoulder"), Some((400.0, 40.0, 100.0)));
    assert_eq!(pd("left_elbow"), Some((300.0, 30.0, 60.0)));
    assert_eq!(pd("root"), None);
    assert_eq!(pd("right_wrist"), None);
    let knee = model.bodies()[model.body_index("left_knee").unwrap()].joint;
    assert_eq!(knee, Joint::Revolute { axis: [0.0, 0.0, 1.0], limits: [-3.14, 0.0] });
    // The URDF at a quarter scale: the hip 0.339548 / 4 to the side, soles 0.88 m down.
    assert_eq!(model.bodies()[3].origin, [0.0, 0.0, 0.339548 * 0.25]);
    assert!((model.standing_height() - 0.8814).abs() < 1e-3, "{}", model.standing_height());
    assert_eq!(model.pose_coordinate(12), "neck.qx");
    assert_eq!(model.pose_coordinate(19), "right_knee");
    assert_eq!(model.velocity_coordinate(4), "root.wy");
}

#[test]
fn all_15_clips_load() {
    let Some(Data { clips, .. }) = data("all_15_clips_load") else { return };
    let names: Vec<_> = clips.clips().iter().map(|c| c.name()).collect();
    assert_eq!(names, CLIP_NAMES);
    let one_shot = ["getup_facedown", "getup_faceup", "kick", "punch"];
    for clip in clips.clips() {
        assert_eq!(clip.looping(), !one_shot.contains(&clip.name()), "{}", clip.name());
        assert!((0.75..4.5).contains(&clip.duration()), "{}: {} s", clip.name(), clip.duration());
        assert!((15.0..61.0).contains(&clip.fps()), "{}: {} fps", clip.name(), clip.fps());
        let mut t = -0.5;
        while t < clip.duration() + 0.5 {
            let (pose, velocity) = (clip.pose_at(t).unwrap(), clip.velocity_at(t).unwrap());
            assert!(pose.iter().chain(&velocity).all(|v| v.is_finite()), "{} at {t}", clip.name());
            t += 0.01;
        }
    }
    let walk = clips.get("walk").unwrap();
    assert_eq!(walk.num_frames(), 39);
    assert!(
        (walk.duration() - 1.266616).abs() < 1e-9 && (walk.fps() - 30.0).abs() < 1e-2,
        "{} s, {} fps",
        walk.duration(),
        walk.fps()
    );
    assert!((walk.cycle_offset()[0] - 1.23859).abs() < 1e-9 && walk.cycle_offset()[1] == 0.0);
}

#[test]
fn a_pd_stance_of_the_zero_pose_holds_60_s() {
    let Some(Data { model, .. }) = data("a_pd_stance_of_the_zero_pose_holds_60_s") else { return };
    let mut humanoid = Humanoid::new(Arc::clone(&model), HumanoidConfig::default()).unwrap();
    let start = humanoid.pose();
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    let steps = (60.0 / humanoid.config().dt).round() as usize;
    for _ in 0..steps {
        humanoid.step().unwrap();
        let height = humanoid.pose()[1];
        (low, high) = (low.min(height), high.max(height));
    }
    let end = humanoid.pose();
    let drift = distance([start[0], 0.0, start[2]], [end[0], 0.0, end[2]]);
    eprintln!(
        "stance: root height {:.4} m at the start, {low:.4}..{high:.4} m over 60 s, {:.4} m at the end; horizontal drift {drift:.4} m",
        start[1], end[1]
    );
    assert!(
        start[1] - low < 0.05 && high - start[1] < 0.05,
        "root height left {:.4} +- 0.05 m: {low:.4}..{high:.4}",
        start[1]
    );
    // Standing on its feet: the soles touch the ground, nothing else does.
    let touching: Vec<_> = model
        .bodies()
        .iter()
        .zip(humanoid.ground_contacts())
        .filter(|(_, c)| *c)
        .map(|(b, _)| b.name.as_str())
        .collect();
    assert_eq!(touching, ["right_ankle", "left_ankle"]);
}

#[test]
fn clip_frames_through_rapier_give_the_clip_librarys_body_states() {
    let Some(Data { model, clips }) = data("clip_frames_through_rapier_give_the_clip_librarys_body_states") else {
        return;
    };
    let mut humanoid = Humanoid::new(Arc::clone(&model), HumanoidConfig::default()).unwrap();
    let (mut position, mut rotation, mut linvel, mut angvel, mut pose_error, mut frames) =
        (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0);
    for clip in clips.clips() {
        for i in 0..clip.num_frames() {
            let t = clip.frame_time(i).unwrap();
            let (pose, velocity) = (clip.frame(i).unwrap(), clip.velocity_at(t).unwrap());
            humanoid.set_state(pose, &velocity).unwrap();
            let expected = model.body_states(pose, Some(&velocity)).unwrap();
            for (got, want) in humanoid.body_states().iter().zip(&expected) {
                position = position.max(distance(got.position, want.position));
                rotation = rotation.max(angle(&got.rotation, &want.rotation));
                linvel = linvel.max(distance(got.linvel, want.linvel));
                angvel = angvel.max(distance(got.angvel, want.angvel));
            }
            let back = humanoid.pose();
            pose_error = pose_error.max(distance([back[0], back[1], back[2]], [pose[0], pose[1], pose[2]]));
            pose_error = pose_error.max(joint_errors(&model, &back, pose).into_iter().fold(0.0, f64::max));
            frames += 1;
        }
    }
    eprintln!(
        "{frames} frames of 15 clips, rapier vs clip kinematics: position {:.2e} m, rotation {rotation:.2e} rad, \
         linear velocity {linvel:.2e} m/s, angular velocity {angvel:.2e} rad/s; pose read back {pose_error:.2e}",
        position
    );
    assert!(position < 1e-3, "key bodies {position} m away from the clip's forward kinematics");
    assert!(rotation < 1e-3 && pose_error < 1e-3, "rotations {rotation} rad, pose {pose_error}");
    assert!(linvel < 1e-2 && angvel < 1e-2, "velocities {linvel} m/s, {angvel} rad/s");
}

#[test]
fn with_the_root_pinned_pd_tracks_the_walk_within_0_1_rad() {
    let Some(Data { model, clips }) = data("with_the_root_pinned_pd_tracks_the_walk_within_0_1_rad") else { return };
    let config = HumanoidConfig { pin_root: true, ..HumanoidConfig::default() };
    let mut humanoid = Humanoid::new(Arc::clone(&model), config).unwrap();
    let walk = clips.get("walk").unwrap();
    // Lifted 1 m so that the feet swing free.
    let mut start = walk.pose_at(0.0).unwrap();
    start[1] += 1.0;
    humanoid.set_state(&start, &walk.velocity_at(0.0).unwrap()).unwrap();
    // At 30 Hz, the targets are the clip's pose and velocity at the end of the control
    // interval; the error is measured when the interval ends.
    let (control, steps_per_control) = (1.0 / 30.0, 4);
    let (mut squares, mut count, mut worst) = (0.0, 0, 0.0f64);
    for k in 1..=300 {
        let reference = walk.pose_at(k as f64 * control).unwrap();
        let velocity = walk.velocity_at(k as f64 * control).unwrap();
        humanoid.set_targets_with_velocities(&reference[7..], &velocity[6..]).unwrap();
        for _ in 0..steps_per_control {
            humanoid.step().unwrap();
        }
        for error in joint_errors(&model, &humanoid.pose(), &reference) {
            (squares, count, worst) = (squares + error * error, count + 1, worst.max(error));
        }
    }
    let rms = (squares / count as f64).sqrt();
    eprintln!("walk tracking, root pinned, 10 s at 30 Hz control: joint angle RMS {rms:.4} rad, worst {worst:.3} rad");
    assert!(rms < 0.1, "joint angle RMS {rms} rad");
}

#[test]
fn the_torque_limit_clamps_the_whole_pd_torque_so_a_knee_outruns_max_torque_over_kd() {
    let Some(Data { model, .. }) =
        data("the_torque_limit_clamps_the_whole_pd_torque_so_a_knee_outruns_max_torque_over_kd")
    else {
        return;
    };
    // Root pinned in the air, no gravity: the knee swings against its own inertia only.
    let config = HumanoidConfig { pin_root: true, gravity: 0.0, ..HumanoidConfig::default() };
    let mut humanoid = Humanoid::new(Arc::clone(&model), config).unwrap();
    let mut pose = model.zero_pose();
    pose[1] += 1.0;
    humanoid.set_state(&pose, &vec![0.0; model.velocity_len()]).unwrap();
    let knee = &model.bodies()[model.body_index("right_knee").unwrap()];
    let pd = knee.pd.unwrap();
    let (t, v) = (knee.pose_offset - 7, knee.velocity_offset - 6);
    // Each degree of freedom's limit, in the joint-velocity layout.
    let limits: Vec<f64> = model
        .bodies()
        .iter()
        .filter_map(|b| b.pd.map(|pd| (pd.max_torque, b.joint.velocity_width())))
        .flat_map(|(max, width)| std::iter::repeat_n(max, width))
        .collect();
    assert_eq!(limits.len(), model.actuated_dofs());
    let (mut targets, mut velocities) = (pose[7..].to_vec(), vec![0.0; model.actuated_dofs()]);
    let mut worst = (0.0f64, 0);
    // One step; returns the knee's speed and torque, and, where `checked`, keeps the largest
    // torque over its limit.
    let mut step = |humanoid: &mut Humanoid, targets: &[f64], velocities: &[f64], checked: bool| {
        humanoid.set_targets_with_velocities(targets, velocities).unwrap();
        humanoid.step().unwrap();
        let torques = humanoid.joint_torques();
        for (dof, (torque, limit)) in torques.iter().zip(&limits).enumerate() {
            if checked && torque.abs() / limit > worst.0 {
                worst = (torque.abs() / limit, dof);
            }
        }
        (humanoid.velocity()[knee.velocity_offset], torques[v])
    };
    // The knee at its upper limit (0), aimed 1 rad beyond it: kp·1 rad would be 500 N·m. Once
    // the limit holds the knee still, it presses with its torque limit exactly. (In the first
    // steps the limit stops the knee and the implicit damper resists that push beyond the
    // limit, by `c·|Δq̇|`: see the module docs of `humanoid`.)
    targets[t] = 1.0;
    let mut pressing = 0.0;
    for _ in 0..10 {
        pressing = step(&mut humanoid, &targets, &velocities, false).1;
    }
    assert!((pressing - pd.max_torque).abs() < 1e-3 * pd.max_torque, "pressing with {pressing} N·m");
    // A reference bending the knee at 3·max_torque/kd (9 rad/s) from 0 to -2 rad, then holding.
    let (speed, end, dt) = (3.0 * pd.max_torque / pd.kd, -2.0, humanoid.config().dt);
    let mut fastest = 0.0f64;
    for k in 1..=60 {
        let angle = (-speed * k as f64 * dt).max(end);
        targets[t] = angle;
        velocities[v] = if angle > end { -speed } else { 0.0 };
        fastest = fastest.max(step(&mut humanoid, &targets, &velocities, true).0.abs());
    }
    let bent = humanoid.pose()[knee.pose_offset];
    eprintln!(
        "knee following {speed} rad/s: fastest {fastest:.2} rad/s (max_torque/kd = {:.2}), bent to {bent:.3} rad; \
         pressing on its limit with {pressing:.2} N·m; largest |torque|/limit {:.4} (dof {})",
        pd.max_torque / pd.kd,
        worst.0,
        worst.1
    );
    // With only the spring term clamped, `kd·q̇` holds the knee below max_torque/kd.
    assert!(fastest > 2.0 * pd.max_torque / pd.kd, "the knee reached only {fastest} rad/s");
    assert!(fastest < 1.25 * speed, "the knee overshot the reference's speed: {fastest} rad/s");
    assert!((bent - end).abs() < 0.1, "the knee stopped at {bent} rad");
    // No torque, P and D together, exceeded its limit while the knee moved under its own.
    assert!(worst.0 <= 1.0 + 1e-4, "a torque of {} times its limit on dof {}", worst.0, worst.1);
}

/// The walk's targets, open loop, on the ground from frame 0: the humanoid takes a step and
/// falls after a second, so contacts come and go. Returns the steps after which a different set
/// of bodies touches the ground than before.
fn walk_on_the_ground(humanoid: &mut Humanoid, clips: &ClipLibrary, from: usize, to: usize) -> usize {
    let walk = clips.get("walk").unwrap();
    let (mut changes, mut before) = (0, humanoid.ground_contacts());
    for step in from..to {
        if step % 4 == 0 {
            humanoid.set_targets(&walk.pose_at(step as f64 / 120.0).unwrap()[7..]).unwrap();
        }
        humanoid.step().unwrap();
        let now = humanoid.ground_contacts();
        changes += usize::from(now != before);
        before = now;
    }
    changes
}

/// Asserts two bit patterns are equal, naming the first difference.
fn assert_same_bits(got: &[u64], want: &[u64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let differing = (0..got.len()).filter(|&i| got[i] != want[i]).count();
        let (a, b) = (f64::from_bits(got[i]), f64::from_bits(want[i]));
        panic!("{what}: {differing} of {} numbers differ, the first at {i}: {a} vs {b}", got.len());
    }
}

fn bits(humanoid: &Humanoid) -> Vec<u64> {
    let states = humanoid.body_states();
    let numbers = states
        .iter()
        .flat_map(|s: &BodyState| s.position.into_iter().chain(s.rotation).chain(s.linvel).chain(s.angvel));
    numbers.chain(humanoid.velocity()).map(f64::to_bits).collect()
}

#[test]
fn replay_is_bit_identical_and_a_snapshot_continues_it() {
    let Some(Data { model, clips }) = data("replay_is_bit_identical_and_a_snapshot_continues_it") else { return };
    let walk = clips.get("walk").unwrap();
    let make = || {
        let mut humanoid = Humanoid::new(Arc::clone(&model), HumanoidConfig::default()).unwrap();
        humanoid.set_state(&walk.pose_at(0.0).unwrap(), &walk.velocity_at(0.0).unwrap()).unwrap();
        humanoid
    };
    let (mut a, mut b) = (make(), make());
    let changes = walk_on_the_ground(&mut a, &clips, 0, 120);
    walk_on_the_ground(&mut b, &clips, 0, 120);
    assert_same_bits(&bits(&a), &bits(&b), "two humanoids given the same inputs");
    assert!(changes >= 2, "the walk's contacts changed after {changes} steps of 120");
    let snapshot = a.snapshot();
    walk_on_the_ground(&mut a, &clips, 120, 240);
    let end = bits(&a);
    assert_ne!(end, bits(&b), "the walk moved on");

    // Into a fresh humanoid, through JSON (as an env checkpoint holds it).
    let json = serde_json::to_string(&snapshot).unwrap();
    let mut c = Humanoid::new(Arc::clone(&model), HumanoidConfig::default()).unwrap();
    c.restore(&serde_json::from_str::<Snapshot>(&json).unwrap()).unwrap();
    assert_same_bits(&bits(&c), &bits(&b), "restored into a fresh humanoid");
    assert_eq!((c.steps(), c.targets()), (120, b.targets()));
    walk_on_the_ground(&mut c, &clips, 120, 240);
    assert_same_bits(&bits(&c), &end, "continued from the snapshot");

    // Back into the humanoid that made it, after it moved on.
    a.restore(&snapshot).unwrap();
    walk_on_the_ground(&mut a, &clips, 120, 240);
    assert_same_bits(&bits(&a), &end, "restored into the humanoid that made it");
    eprintln!("snapshot: {} bytes, {} in JSON", snapshot.as_bytes().len(), json.len());
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let Some(Data { model, clips }) = data("bad_input_is_a_clear_error_and_changes_nothing") else { return };
    let mut humanoid = Humanoid::new(Arc::clone(&model), HumanoidConfig::default()).unwrap();
    humanoid.step().unwrap();
    let (before, targets) = (bits(&humanoid), humanoid.targets().to_vec());
    let (pose, velocity) = (model.zero_pose(), vec![0.0; 34]);
    let message = |e: PhysicsError| e.to_string();

    let mut nan = pose.clone();
    nan[12] = f64::NAN;
    assert_eq!(message(humanoid.set_state(&nan, &velocity).unwrap_err()), "pose[12] (neck.qx) = NaN: not finite");
    assert_eq!(message(humanoid.set_state(&pose[..42], &velocity).unwrap_err()), "pose has 42 values, expected 43");
    let mut zero = pose.clone();
    zero[7..11].fill(0.0);
    assert_eq!(message(humanoid.set_state(&zero, &velocity).unwrap_err()), "pose[7] (chest.qw) = 0: zero quaternion");
    let mut far = pose.clone();
    far[0] = 1e5;
    assert!(message(humanoid.set_state(&far, &velocity).unwrap_err()).starts_with("pose[0] (root.x) = 100000: beyond"));
    let mut fast = velocity.clone();
    fast[15] = f64::INFINITY;
    assert_eq!(message(humanoid.set_state(&pose, &fast).unwrap_err()), "velocity[15] (right_knee) = inf: not finite");
    fast[15] = -2e3;
    assert!(
        message(humanoid.set_state(&pose, &fast).unwrap_err()).starts_with("velocity[15] (right_knee) = -2000: beyond")
    );
    let mut bad_targets = pose[7..].to_vec();
    bad_targets[12] = f64::NAN;
    assert_eq!(message(humanoid.set_targets(&bad_targets).unwrap_err()), "targets[12] (right_knee) = NaN: not finite");
    assert_eq!(message(humanoid.set_targets(&pose).unwrap_err()), "targets has 43 values, expected 36");
    assert_eq!(message(humanoid.write_pose(&mut [0.0; 3]).unwrap_err()), "pose has 3 values, expected 43");
    assert_eq!(
        message(humanoid.write_ground_contacts(&mut [false; 14]).unwrap_err()),
        "ground contacts has 14 values, expected 15"
    );
    assert_same_bits(&bits(&humanoid), &before, "after refused states and targets");
    assert_eq!(humanoid.targets(), &targets[..]);

    let walk = clips.get("walk").unwrap();
    assert_eq!(message(walk.pose_at(f64::NAN).unwrap_err()), "clip `walk`: time NaN is not finite");
    assert!(
        message(clips.get("moonwalk").unwrap_err()).starts_with("unknown clip `moonwalk`; known: backflip, cartwheel,")
    );

    // Snapshots: malformed, or from a humanoid with another config.
    let pinned =
        Humanoid::new(Arc::clone(&model), HumanoidConfig { pin_root: true, ..HumanoidConfig::default() }).unwrap();
    assert_eq!(
        message(humanoid.restore(&pinned.snapshot()).unwrap_err()),
        "snapshot: made by a humanoid with another model or config"
    );
    assert!(
        message(humanoid.restore(&Snapshot::from_bytes(vec![1, 2, 3])).unwrap_err()).starts_with("snapshot: malformed")
    );
    assert!(serde_json::from_str::<Snapshot>("\"not base64!\"").is_err());
    assert_same_bits(&bits(&humanoid), &before, "after refused snapshots");
    humanoid.step().unwrap();

    // Config values out of range.
    let config = HumanoidConfig { dt: 0.0, ..HumanoidConfig::default() };
    assert_eq!(
        message(Humanoid::new(Arc::clone(&model), config).err().unwrap()),
        "config: dt = 0: must be in (0, 0.1] s"
    );
    let config = HumanoidConfig { friction: f64::NAN, ..HumanoidConfig::default() };
    assert_eq!(
        message(Humanoid::new(Arc::clone(&model), config).err().unwrap()),
        "config: friction = NaN: must be in [0, 10]"
    );
    assert!(serde_json::from_str::<HumanoidConfig>(r#"{"dt": 0.01, "substep": 2}"#).is_err());
}

#[test]
fn the_fastest_state_allowed_steps_without_panicking_and_a_divergence_stops_the_steps() {
    let Some(Data { model, .. }) = data("the_fastest_state_allowed_steps_without_panicking") else { return };
    let still = vec![0.0; model.velocity_len()];
    for pin_root in [false, true] {
        let config = HumanoidConfig { pin_root, ..HumanoidConfig::default() };
        let mut humanoid = Humanoid::new(Arc::clone(&model), config).unwrap();
        let flail: Vec<f64> = (0..34).map(|i| if i % 2 == 0 { 1e3 } else { -1e3 }).collect();
        humanoid.set_state(&model.zero_pose(), &flail).unwrap();
        for _ in 0..200 {
            match humanoid.step() {
                Ok(()) => {}
                Err(PhysicsError::Diverged { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    // Thrown up at 1 km/s, the root leaves the world's extent (1e4 m) after about 10.5 s.
    let mut humanoid = Humanoid::new(Arc::clone(&model), HumanoidConfig::default()).unwrap();
    let mut up = still.clone();
    up[1] = 1e3;
    humanoid.set_state(&model.zero_pose(), &up).unwrap();
    let diverged = (0..1500).map(|_| humanoid.step()).find_map(Result::err).map(|e| e.to_string());
    let message = diverged.unwrap_or_default();
    assert!(message.starts_with("the simulation diverged at step 12") && message.contains("the root at"), "{message}");
    let again = humanoid.step().unwrap_err().to_string();
    assert!(again.contains("diverged earlier; set a new state to continue"), "{again}");
    humanoid.set_state(&model.zero_pose(), &still).unwrap();
    humanoid.step().unwrap();
}

#[test]
fn clips_sample_loop_and_mirror() {
    let Some(Data { model, clips }) = data("clips_sample_loop_and_mirror") else { return };
    let walk = clips.get("walk").unwrap();
    let close = |a: &[f64], b: &[f64], tolerance: f64| a.iter().zip(b).all(|(x, y)| (x - y).abs() < tolerance);

    // Frames are hit exactly; halfway, hinges average and rotations are halfway by angle.
    for i in [0, 7, 37] {
        assert!(close(&walk.pose_at(walk.frame_time(i).unwrap()).unwrap(), walk.frame(i).unwrap(), 1e-12), "frame {i}");
    }
    // The cycle ends where the next begins: on frame 0, shifted (the last frame is near it).
    let next_cycle = walk.pose_at(walk.duration()).unwrap();
    assert!(
        (next_cycle[0] - walk.cycle_offset()[0]).abs() < 1e-12
            && close(&next_cycle[1..], &walk.frame(0).unwrap()[1..], 1e-12)
    );
    let (a, b) = (walk.frame(3).unwrap(), walk.frame(4).unwrap());
    let middle = walk.pose_at(0.5 * (walk.frame_time(3).unwrap() + walk.frame_time(4).unwrap())).unwrap();
    assert!((middle[19] - 0.5 * (a[19] + b[19])).abs() < 1e-12);
    assert!((angle(&middle[15..19], &a[15..19]) - angle(&middle[15..19], &b[15..19])).abs() < 1e-9);

    // Velocities are the frame-to-frame differences.
    let dt = walk.frame_time(4).unwrap() - walk.frame_time(3).unwrap();
    let velocity = walk.velocity_at(walk.frame_time(3).unwrap() + 0.25 * dt).unwrap();
    assert!((velocity[15] - (b[19] - a[19]) / dt).abs() < 1e-9, "right knee");
    assert!(((velocity[0] - (b[0] - a[0]) / dt).abs()) < 1e-9, "root x");

    // A looping clip repeats, shifted by its cycle offset; one that does not holds its end.
    let (t, d) = (0.3, walk.duration());
    let (now, later, earlier) =
        (walk.pose_at(t).unwrap(), walk.pose_at(t + 2.0 * d).unwrap(), walk.pose_at(t - d).unwrap());
    let shift = walk.cycle_offset();
    assert!((later[0] - now[0] - 2.0 * shift[0]).abs() < 1e-9 && (earlier[0] - now[0] + shift[0]).abs() < 1e-9);
    assert!((later[1] - now[1]).abs() < 1e-12 && (later[2] - now[2] - 2.0 * shift[2]).abs() < 1e-9);
    assert!(close(&later[3..], &now[3..], 1e-9));
    let kick = clips.get("kick").unwrap();
    let end = kick.frame(kick.num_frames() - 1).unwrap();
    assert!(close(&kick.pose_at(kick.duration() + 5.0).unwrap(), end, 1e-12));
    assert!(kick.velocity_at(kick.duration() + 0.1).unwrap().iter().all(|&v| v == 0.0));

    // Mirroring: twice is the identity; the mirror's bodies are the original's reflected
    // through the sagittal plane (z -> -z), left and right swapped.
    let mirrored = walk.mirrored().unwrap();
    assert_eq!(mirrored.name(), "walk_mirrored");
    let back = mirrored.mirrored().unwrap();
    for t in [0.0, 0.37, 1.1] {
        assert!(close(&back.pose_at(t).unwrap(), &walk.pose_at(t).unwrap(), 1e-12));
        let (original, image) = (walk.body_states_at(t).unwrap(), mirrored.body_states_at(t).unwrap());
        for (i, body) in model.bodies().iter().enumerate() {
            let partner = match (body.name.strip_prefix("left_"), body.name.strip_prefix("right_")) {
                (Some(rest), _) => format!("right_{rest}"),
                (_, Some(rest)) => format!("left_{rest}"),
                _ => body.name.clone(),
            };
            let [x, y, z] = original[i].position;
            let there = image[model.body_index(&partner).unwrap()];
            assert!(distance(there.position, [x, y, -z]) < 1e-12, "{} at {t}", body.name);
            let [vx, vy, vz] = original[i].linvel;
            assert!(distance(there.linvel, [vx, vy, -vz]) < 1e-9, "{} velocity at {t}", body.name);
        }
    }
    assert_eq!(mirrored.cycle_offset(), [shift[0], 0.0, -shift[2]]);
    // The mirror's finite differences are the mirrored velocities.
    let mut image = vec![0.0; model.velocity_len()];
    model.mirror_velocity(&walk.velocity_at(0.5).unwrap(), &mut image).unwrap();
    assert!(close(&mirrored.velocity_at(0.5).unwrap(), &image, 1e-9));
}
