use super::*;

/// The env with its data, or `None` (a note, or a failure under
/// `KEEL_REQUIRE_HUMANOID_DATA=1`) where the data is not installed.
fn env(overrides: &[(&str, Value)]) -> Option<Box<dyn Env>> {
    register().unwrap();
    let map: Map<String, Value> = overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let env = registry::make(HumanoidTrack::ID, &map);
    if crate::testing::Data::Humanoid.missing(HumanoidTrack::ID, &env) { None } else { Some(env.unwrap()) }
}

#[test]
fn the_reward_is_1_with_every_term_1_when_the_state_equals_the_reference() {
    let Ok(assets) = assets(None) else { return };
    let model = &assets.model;
    let layout = Layout::new(model, &["right_ankle".into(), "left_ankle".into()]).unwrap();
    for (name, form) in
        [("walk", RewardForm::Deepmimic), ("run", RewardForm::Pybullet), ("backflip", RewardForm::Deepmimic)]
    {
        let clip = assets.clips.get(name).unwrap();
        let mut reference = Side::new(model);
        let t = 0.37 * clip.duration();
        clip.write_pose_at(t, &mut reference.pose).unwrap();
        clip.write_velocity_at(t, &mut reference.velocity).unwrap();
        model.write_body_states(&reference.pose, Some(&reference.velocity), &mut reference.bodies).unwrap();
        // Exactly the reference.
        let (terms, distance) = tracking_terms(model, &layout, form, &reference, &reference);
        assert_eq!(terms, [1.0; 5], "{name}");
        assert_eq!(distance, 0.0);
        // The reference written into rapier and read back (f32 inside rapier).
        let mut humanoid = Humanoid::new(Arc::clone(model), HumanoidConfig::default()).unwrap();
        humanoid.set_state(&reference.pose, &reference.velocity).unwrap();
        let mut sim = Side::new(model);
        humanoid.write_pose(&mut sim.pose).unwrap();
        humanoid.write_velocity(&mut sim.velocity).unwrap();
        humanoid.write_body_states(&mut sim.bodies).unwrap();
        let (terms, distance) = tracking_terms(model, &layout, form, &sim, &reference);
        for (term, value) in TERMS.iter().zip(terms) {
            assert!((1.0 - value) < 1e-5, "{name}: {term} = {value}");
        }
        assert!(distance < 1e-5, "{name}: {distance}");
        // A state off the reference scores below 1 in every term it touches.
        sim.pose[8] += 0.3; // the chest's x
        sim.velocity[3] += 1.0; // the root's angular velocity
        model.write_body_states(&sim.pose, Some(&sim.velocity), &mut sim.bodies).unwrap();
        let (terms, _) = tracking_terms(model, &layout, form, &sim, &reference);
        assert!(terms.iter().all(|t| *t < 0.9999), "{name}: {terms:?}");
    }
}

/// DeepMimic's end-effector term reads the limbs relative to the root in its heading frame:
/// the same pose turned and moved on the ground scores 1 there, while pybullet's world
/// positions do not.
#[test]
fn the_deepmimic_end_effector_term_ignores_where_the_character_stands_and_faces() {
    let Ok(assets) = assets(None) else { return };
    let model = &assets.model;
    let layout = Layout::new(model, &["right_ankle".into(), "left_ankle".into()]).unwrap();
    let clip = assets.clips.get("walk").unwrap();
    let mut reference = Side::new(model);
    clip.write_pose_at(0.4, &mut reference.pose).unwrap();
    clip.write_velocity_at(0.4, &mut reference.velocity).unwrap();
    model.write_body_states(&reference.pose, Some(&reference.velocity), &mut reference.bodies).unwrap();
    let mut moved = Side::new(model);
    moved.pose.copy_from_slice(&reference.pose);
    moved.velocity.copy_from_slice(&reference.velocity);
    let turn = Align { yaw: 0.8, from: [reference.pose[0], 0.0, reference.pose[2]], to: [1.5, 0.0, -2.0] };
    turn.pose(&mut moved.pose);
    turn.velocity(&mut moved.velocity);
    model.write_body_states(&moved.pose, Some(&moved.velocity), &mut moved.bodies).unwrap();
    let end = |form| tracking_terms(model, &layout, form, &moved, &reference).0[2];
    assert!((1.0 - end(RewardForm::Deepmimic)).abs() < 1e-9, "{}", end(RewardForm::Deepmimic));
    assert!(end(RewardForm::Pybullet) < 0.01, "{}", end(RewardForm::Pybullet));
    // Its centre-of-mass term reads velocities: the same velocity turned differs.
    let com = tracking_terms(model, &layout, RewardForm::Deepmimic, &moved, &reference).0[4];
    assert!(com < 1.0 - 1e-6, "{com}");
}

/// With `sync_root_each_cycle` the reference's root is put on the character's at the step a
/// new cycle begins; without it the reference keeps the distance the character lost.
#[test]
fn at_a_new_cycle_the_reference_root_moves_onto_the_character() {
    if env(&[]).is_none() {
        return;
    }
    for sync in [true, false] {
        let config = HumanoidTrackConfig {
            residual_actions: true,
            sync_root_each_cycle: sync,
            ..HumanoidTrackConfig::default()
        };
        let mut env = HumanoidTrack::new(config).unwrap();
        let mut obs = env.spec().obs_buffer(1);
        let duration = env.clip().duration();
        let mut options = ResetOptions::default();
        options.params.insert("start_time".into(), (duration - 10.0 / 30.0).into());
        env.reset(Some(3), &options, obs.as_mut()).unwrap();
        let zeros = vec![0.0f32; env.spec().action_space.flat_len()];
        let mut gap_at_new_cycle = None;
        for _ in 0..12 {
            let cycle = env.episode.cycle;
            let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
            assert!(!step.terminated, "fell before the cycle ended");
            let gap = (env.sim.pose[0] - env.reference.pose[0]).hypot(env.sim.pose[2] - env.reference.pose[2]);
            if sync && env.episode.cycle != cycle || !sync && cycle_index(env.clip(), env.episode.time) == 1 {
                gap_at_new_cycle.get_or_insert(gap);
            }
        }
        let gap = gap_at_new_cycle.unwrap_or_else(|| panic!("no new cycle (sync {sync})"));
        if sync {
            assert!(gap < 1e-12, "{gap}");
        } else {
            assert!(gap > 1e-4, "{gap}");
        }
    }
}

/// `termination_distance` ends the episode on the step the bodies stray beyond it, keeping
/// that step's reward; no fall is reported.
#[test]
fn the_pose_termination_ends_an_episode_that_strays_from_the_reference() {
    for (distance, ends) in [(Value::from(1e-9), true), (Value::Null, false)] {
        let Some(mut env) = env(&[("residual_actions", true.into()), ("termination_distance", distance)]) else {
            return;
        };
        let mut obs = env.spec().obs_buffer(1);
        env.reset(Some(0), &ResetOptions::default(), obs.as_mut()).unwrap();
        let zeros = vec![0.0f32; env.spec().action_space.flat_len()];
        let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
        assert_eq!(step.terminated, ends);
        assert!(step.reward > 0.1, "{}", step.reward);
        let mut extras = vec![0.0; env.spec().extras_len()];
        env.write_extras(&mut extras);
        let fell = env.spec().extras.iter().position(|e| e == "fell").unwrap();
        assert_eq!(extras[fell], 0.0);
    }
}

#[test]
fn a_reset_on_the_reference_scores_1_and_reports_every_term() {
    let Some(mut env) = env(&[("clip", "walk".into())]) else { return };
    let mut obs = env.spec().obs_buffer(1);
    let mut options = ResetOptions::default();
    options.params.insert("start_time".into(), 0.5.into());
    env.reset(Some(1), &options, obs.as_mut()).unwrap();
    let mut extras = vec![0.0; env.spec().extras_len()];
    env.write_extras(&mut extras);
    assert_eq!(
        env.spec().extras[..6],
        ["reward_pose", "reward_velocity", "reward_end_effector", "reward_root", "reward_com", "tracking_error"]
    );
    for (name, value) in env.spec().extras.iter().zip(&extras).take(5) {
        assert!((1.0 - value).abs() < 1e-5, "{name} = {value}");
    }
    assert!(extras[5] < 1e-5 && (extras[6] - 0.5).abs() < 1e-12, "{extras:?}");
    // Observation: the root height, the root at the origin of the heading frame, the phase.
    let o = obs.as_f32().unwrap();
    assert_eq!(o.len(), 227);
    assert!((0.6..1.0).contains(&o[0]), "root height {}", o[0]);
    assert_eq!(&o[1..4], &[0.0, 0.0, 0.0]);
    let walk_duration = o[226];
    assert!(walk_duration > 0.0 && walk_duration < 1.0);
}

#[test]
fn holding_the_reference_pose_tracks_it_and_a_fall_terminates_with_reward_0() {
    let Some(mut env) = env(&[("clip", "walk".into()), ("residual_actions", true.into())]) else { return };
    let mut obs = env.spec().obs_buffer(1);
    let mut options = ResetOptions::default();
    options.params.insert("start_time".into(), 0.0.into());
    env.reset(Some(2), &options, obs.as_mut()).unwrap();
    let zeros = vec![0.0f32; 28];
    // Zero residuals: PD towards the clip. It tracks for a few steps with a high reward.
    let mut rewards = Vec::new();
    for _ in 0..6 {
        let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
        assert!(!step.terminated);
        rewards.push(step.reward);
    }
    assert!(rewards.iter().all(|r| *r > 0.5), "{rewards:?}");
    // Full-range flailing brings the humanoid down: terminated, reward 0, `fell` = 1.
    let flail: Vec<f32> = (0..28).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let mut ended = None;
    for t in 0..300 {
        let step = env.step(Action::Float(&flail), obs.as_mut()).unwrap();
        if step.terminated {
            ended = Some((t, step));
            break;
        }
    }
    let (_, step) = ended.expect("flailing never fell");
    assert_eq!(step.reward, 0.0);
    let mut extras = vec![0.0; env.spec().extras_len()];
    env.write_extras(&mut extras);
    assert_eq!(extras[7], 1.0);
}

#[test]
fn a_seeded_reset_repeats_its_episode_whatever_came_before() {
    let (Some(mut a), Some(mut b)) = (env(&[]), env(&[])) else { return };
    let (mut oa, mut ob) = (a.spec().obs_buffer(1), b.spec().obs_buffer(1));
    a.reset(Some(9), &ResetOptions::default(), oa.as_mut()).unwrap();
    for _ in 0..20 {
        a.step(Action::Float(&[0.3; 28]), oa.as_mut()).unwrap();
    }
    a.reset(Some(7), &ResetOptions::default(), oa.as_mut()).unwrap();
    b.reset(Some(7), &ResetOptions::default(), ob.as_mut()).unwrap();
    for t in 0..5 {
        let (sa, sb) = (
            a.step(Action::Float(&[0.1; 28]), oa.as_mut()).unwrap(),
            b.step(Action::Float(&[0.1; 28]), ob.as_mut()).unwrap(),
        );
        assert_eq!((sa, &oa), (sb, &ob), "step {t}");
    }
}

#[test]
fn a_clip_that_does_not_loop_truncates_at_its_end() {
    let Some(mut env) = env(&[
        ("clip", "getup_faceup".into()),
        (
            "contact_bodies",
            serde_json::json!([
                "root",
                "chest",
                "neck",
                "right_hip",
                "right_knee",
                "right_ankle",
                "right_shoulder",
                "right_elbow",
                "right_wrist",
                "left_hip",
                "left_knee",
                "left_ankle",
                "left_shoulder",
                "left_elbow",
                "left_wrist"
            ]),
        ),
        ("residual_actions", true.into()),
    ]) else {
        return;
    };
    let mut obs = env.spec().obs_buffer(1);
    let mut options = ResetOptions::default();
    options.params.insert("start_time".into(), 0.0.into());
    env.reset(Some(3), &options, obs.as_mut()).unwrap();
    let zeros = vec![0.0f32; 28];
    let mut steps = 0;
    loop {
        let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
        steps += 1;
        assert!(!step.terminated);
        if step.truncated {
            break;
        }
        assert!(steps < 10_000);
    }
    let mut extras = vec![0.0; env.spec().extras_len()];
    env.write_extras(&mut extras);
    let duration = extras[6];
    assert!((steps as f64 / 30.0 - duration).abs() < 1e-9, "{steps} steps, clip time {duration}");
}

#[test]
fn bad_input_is_a_clear_error_naming_the_value_and_the_env_stays_usable() {
    let Some(mut env) = env(&[]) else { return };
    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(4), &ResetOptions::default(), obs.as_mut()).unwrap();
    let before = (env.state(), obs.clone());
    // An unknown clip, as a reset option, a parameter and a config value.
    let mut options = ResetOptions::default();
    options.params.insert("clip".into(), "moonwalk".into());
    let err = env.reset(None, &options, obs.as_mut()).unwrap_err().to_string();
    assert!(err.contains("`moonwalk`") && err.contains("walk") && err.contains("clip"), "{err}");
    let mut params = Map::new();
    params.insert("clip".into(), "moonwalk".into());
    assert!(env.set_params(&params).unwrap_err().to_string().contains("moonwalk"));
    let err = registry::make(HumanoidTrack::ID, &params).err().unwrap().to_string();
    assert!(err.contains("moonwalk"), "{err}");
    // NaN actions.
    let mut nan = vec![0.0f32; 28];
    nan[5] = f32::NAN;
    let err = env.step(Action::Float(&nan), obs.as_mut()).unwrap_err().to_string();
    assert!(err.contains("NaN") || err.contains("nan") || err.contains("finite"), "{err}");
    // A start pose of the wrong length, and one with a NaN inside.
    let mut state = before.0.clone().unwrap();
    state.pop();
    let err = env.reset(None, &ResetOptions::with_state(state), obs.as_mut()).unwrap_err().to_string();
    assert!(err.contains("expected 78") && err.contains("got 77"), "{err}");
    let mut state = before.0.clone().unwrap();
    state[1 + 9] = f64::NAN;
    let err = env.reset(None, &ResetOptions::with_state(state), obs.as_mut()).unwrap_err().to_string();
    assert!(err.contains("NaN") && err.contains("chest"), "{err}");
    // Bad parameters name the field.
    let mut options = ResetOptions::default();
    options.params.insert("pose_noise".into(), (-1.0).into());
    assert!(env.reset(None, &options, obs.as_mut()).unwrap_err().to_string().contains("pose_noise"));
    // Nothing changed, and the env steps on.
    assert_eq!((env.state(), obs.clone()), before);
    env.step(Action::Float(&[0.0; 28]), obs.as_mut()).unwrap();
}

#[test]
fn bad_configs_name_the_field() {
    for (key, value) in [
        ("control_hz", serde_json::json!(50.0)),
        ("physics_hz", serde_json::json!(-1.0)),
        ("ball_range", serde_json::json!(0.0)),
        ("contact_bodies", serde_json::json!(["tail"])),
        ("render_size", serde_json::json!([1, 1])),
        ("history_len", serde_json::json!(121)),
        ("history_stride", serde_json::json!(0)),
        ("history_stride", serde_json::json!(31)),
        ("termination_distance", serde_json::json!(-1.0)),
        ("termination_distance", serde_json::json!(0.0)),
        ("reward_form", serde_json::json!("mujoco")),
    ] {
        let mut overrides = Map::new();
        overrides.insert(key.into(), value);
        register().unwrap();
        match registry::make(HumanoidTrack::ID, &overrides) {
            Err(EnvError::DataMissing(_)) => return,
            Err(e) => assert!(e.to_string().contains(key), "{key}: {e}"),
            Ok(_) => panic!("{key} accepted"),
        }
    }
}

/// The start state at 0.2 s of the clip for seed 5, clean and then with `noise` added to the
/// reset params; returns both and the options with the noise in them.
fn clean_and_noisy_starts(env: &mut dyn Env, noise: &[(&str, Value)]) -> (Vec<f64>, Vec<f64>, ResetOptions) {
    let mut obs = env.spec().obs_buffer(1);
    let mut options = ResetOptions::default();
    options.params.insert("start_time".into(), 0.2.into());
    env.reset(Some(5), &options, obs.as_mut()).unwrap();
    let clean = env.state().unwrap();
    for (key, value) in noise {
        options.params.insert((*key).into(), value.clone());
    }
    env.reset(Some(5), &options, obs.as_mut()).unwrap();
    (clean, env.state().unwrap(), options)
}

#[test]
fn the_perturbation_hook_moves_the_start_state() {
    let Some(mut env) = env(&[]) else { return };
    let noise = [("pose_noise", 0.1.into()), ("velocity_noise", 0.5.into())];
    let (clean, noisy, _) = clean_and_noisy_starts(env.as_mut(), &noise);
    assert_eq!(clean[0], noisy[0]);
    assert!(clean[8..].iter().zip(&noisy[8..]).filter(|(a, b)| a != b).count() > 50);
    let mut extras = vec![0.0; env.spec().extras_len()];
    env.write_extras(&mut extras);
    assert!(extras[0] < 0.99, "pose term {}", extras[0]);
}

#[test]
fn masked_steps_pay_the_substitute_and_report_it() {
    let Some(mut env) = env(&[("residual_actions", true.into())]) else { return };
    let mut obs = env.spec().obs_buffer(1);
    let zeros = [0.0f32; 28];
    let names = env.spec().extras.clone();
    let at = |n: &str| names.iter().position(|e| e == n).unwrap();
    let mut extras = vec![0.0; env.spec().extras_len()];
    // An unmasked episode teaches the env what `walk` pays.
    let mut options = ResetOptions::default();
    options.params.insert("start_time".into(), 0.1.into());
    env.reset(Some(1), &options, obs.as_mut()).unwrap();
    let mut paid = Vec::new();
    for _ in 0..4 {
        paid.push(env.step(Action::Float(&zeros), obs.as_mut()).unwrap().reward);
        env.write_extras(&mut extras);
        assert_eq!(extras[at("masked")], 0.0);
        assert_eq!(extras[at("tracking_reward")], *paid.last().unwrap());
    }
    // A masked episode from a state far off the reference: the first 3 steps pay the
    // running mean of the unmasked ones, not their own tracking reward; then the env pays
    // its tracking reward again.
    let mut expected = paid[0];
    for r in &paid[1..] {
        expected = 0.95 * expected + 0.05 * r;
    }
    options.params.insert("start_time".into(), 0.6.into());
    options.params.insert("masked_steps".into(), 3.into());
    options.params.insert("pose_noise".into(), 0.4.into());
    env.reset(Some(2), &options, obs.as_mut()).unwrap();
    for k in 0..5 {
        let step = env.step(Action::Float(&zeros), obs.as_mut()).unwrap();
        env.write_extras(&mut extras);
        if k < 3 {
            assert_eq!(extras[at("masked")], 1.0, "step {k}");
            assert!((step.reward - expected).abs() < 1e-12, "step {k}: {} vs {expected}", step.reward);
            assert_ne!(step.reward, extras[at("tracking_reward")]);
        } else {
            assert_eq!(extras[at("masked")], 0.0, "step {k}");
            assert_eq!(step.reward, extras[at("tracking_reward")]);
        }
    }
    options.params.insert("masked_steps".into(), 101.into());
    assert!(env.reset(None, &options, obs.as_mut()).unwrap_err().to_string().contains("masked_steps"));
}

#[test]
fn an_aligned_reference_follows_a_start_turned_and_moved_off_the_clip() {
    let Some(mut env) = env(&[]) else { return };
    let mut obs = env.spec().obs_buffer(1);
    let mut options = ResetOptions::default();
    options.params.insert("start_time".into(), 0.3.into());
    env.reset(Some(1), &options, obs.as_mut()).unwrap();
    let mut state = env.state().unwrap();
    // The start turned by 1 rad about the vertical and moved 2 m on the ground.
    let r = DQuat::from_rotation_y(1.0);
    let root = r * DVec3::new(state[1], state[2], state[3]);
    (state[1], state[2], state[3]) = (root.x + 2.0, root.y, root.z - 1.0);
    let q = wxyz(r * quat(&state[4..8]));
    state[4..8].copy_from_slice(&q);
    for k in [1 + 43, 1 + 43 + 3] {
        let v = r * DVec3::from_slice(&state[k..k + 3]);
        state[k..k + 3].copy_from_slice(&v.to_array());
    }
    let mut extras = vec![0.0; env.spec().extras_len()];
    let mut moved = ResetOptions::with_state(state);
    env.reset(Some(1), &moved, obs.as_mut()).unwrap();
    env.write_extras(&mut extras);
    assert!(extras[3] < 0.5 && extras[5] > 1.0, "off the reference without alignment: {extras:?}");
    moved.params.insert("align_reference".into(), true.into());
    env.reset(Some(1), &moved, obs.as_mut()).unwrap();
    env.write_extras(&mut extras);
    for (name, value) in env.spec().extras.iter().zip(&extras).take(5) {
        assert!((1.0 - value).abs() < 1e-5, "{name} = {value}");
    }
    assert!(extras[5] < 1e-5, "tracking error {}", extras[5]);
}

#[test]
fn the_uniform_perturbation_moves_the_start_within_its_magnitudes() {
    let Some(mut env) = env(&[]) else { return };
    let noise = [("perturbation", serde_json::to_value(Perturbation::skillmimic()).unwrap())];
    let (clean, noisy, mut options) = clean_and_noisy_starts(env.as_mut(), &noise);
    let mut obs = env.spec().obs_buffer(1);
    let lift = noisy[2] - clean[2];
    assert!((0.0..=0.1).contains(&lift), "root lifted by {lift}");
    let dv: Vec<f64> = clean[44..].iter().zip(&noisy[44..]).map(|(a, b)| (a - b).abs()).collect();
    assert!(dv.iter().all(|d| *d <= 0.1 + 1e-12) && dv.iter().any(|d| *d > 0.0), "{dv:?}");
    let bad = serde_json::json!({"joint_position": -0.1});
    options.params.insert("perturbation".into(), bad);
    assert!(env.reset(None, &options, obs.as_mut()).unwrap_err().to_string().contains("joint_position"));
}

#[test]
fn the_official_perturbation_draws_the_codes_normal_noise() {
    let Some(mut env) = env(&[]) else { return };
    let mut obs = env.spec().obs_buffer(1);
    let mut options = ResetOptions::default();
    options.params.insert("start_time".into(), 0.2.into());
    env.reset(Some(1), &options, obs.as_mut()).unwrap();
    let clean = env.state().unwrap();
    let noise = Perturbation { joint_velocity: 0.1, ..Perturbation::skillmimic_official().scaled(0.0) };
    options.params.insert("perturbation".into(), serde_json::to_value(noise).unwrap());
    let mut deltas = Vec::new();
    for seed in 0..200 {
        env.reset(Some(seed), &options, obs.as_mut()).unwrap();
        let noisy = env.state().unwrap();
        deltas.extend(clean[50..].iter().zip(&noisy[50..]).map(|(a, b)| b - a));
        let moved = clean[..50].iter().zip(&noisy[..50]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved < 1e-12, "only the joint velocities move, not the rest by {moved}");
    }
    let n = deltas.len() as f64;
    let mean = deltas.iter().sum::<f64>() / n;
    let std = (deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    // `(randn·2 − 1)·0.1`: mean −0.1, std 0.2 (5600 draws: standard errors 0.003 and 0.002).
    assert!((mean + 0.1).abs() < 0.015 && (std - 0.2).abs() < 0.01, "mean {mean}, std {std}");
    let bad = serde_json::json!({"noise": "gaussian"});
    options.params.insert("perturbation".into(), bad);
    let e = env.reset(None, &options, obs.as_mut()).unwrap_err().to_string();
    assert!(e.contains("perturbation") && e.contains("unknown variant `gaussian`"), "{e}");
}

#[test]
fn a_start_under_the_ground_is_lifted_onto_it_and_one_above_is_left_as_it_is() {
    let (Ok(assets), Some(mut env)) = (assets(None), env(&[])) else { return };
    let model = &assets.model;
    let mut obs = env.spec().obs_buffer(1);
    let mut bodies = vec![BodyState::default(); model.bodies().len()];
    let (mut lifted, mut deepest) = (0, ("", 0.0f64));
    for clip in assets.clips.clips() {
        let (before, mut clip_deepest) = (lifted, 0.0f64);
        for i in 0..clip.num_frames() {
            let t = clip.frame_time(i).unwrap();
            let mut options = ResetOptions::default();
            options.params.insert("clip".into(), clip.name().into());
            options.params.insert("start_time".into(), t.into());
            env.reset(Some(1), &options, obs.as_mut()).unwrap();
            let start = env.state().unwrap();
            let pose = clip.pose_at(t).unwrap();
            model.write_body_states(&pose, None, &mut bodies).unwrap();
            let under = model.lowest_point(&bodies);
            model.write_body_states(&start[1..44], None, &mut bodies).unwrap();
            let lowest = model.lowest_point(&bodies);
            if under < -GROUND_SLOP {
                // Lifted straight up until its lowest point is on the ground.
                assert!(lowest.abs() < 1e-9, "{} at {t}: lowest point {lowest} m", clip.name());
                assert!((start[2] - pose[1] + under).abs() < 1e-12, "{} at {t}", clip.name());
                assert_eq!((start[1], &start[3..44]), (pose[0], &pose[2..]), "{} at {t}", clip.name());
                lifted += 1;
                clip_deepest = clip_deepest.min(under);
                if under < deepest.1 {
                    deepest = (clip.name(), under);
                }
            } else {
                assert_eq!(start[1..44], pose[..], "{} at {t}", clip.name());
            }
        }
        let frames = clip.num_frames();
        eprintln!("{}: {} of {frames} frames lifted, by up to {:.4} m", clip.name(), lifted - before, -clip_deepest);
    }
    eprintln!("{lifted} clip frames lifted; the deepest {:.4} m under the ground ({})", deepest.1, deepest.0);
    // The `run` puts a foot centimetres under the ground.
    assert!(deepest.1 < -0.01, "{deepest:?}");
    // A start given as a state is lifted too; one within the slop restarts exactly.
    let run = assets.clips.get("run").unwrap();
    let worst = (0..run.num_frames())
        .map(|i| run.frame_time(i).unwrap())
        .map(|t| {
            model.write_body_states(&run.pose_at(t).unwrap(), None, &mut bodies).unwrap();
            (t, model.lowest_point(&bodies))
        })
        .fold((0.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    let mut state = vec![worst.0];
    state.extend(run.pose_at(worst.0).unwrap());
    state.extend(run.velocity_at(worst.0).unwrap());
    let mut options = ResetOptions::with_state(state.clone());
    options.params.insert("clip".into(), "run".into());
    env.reset(Some(1), &options, obs.as_mut()).unwrap();
    let start = env.state().unwrap();
    assert!((start[2] - state[2] + worst.1).abs() < 1e-12, "{} vs {}", start[2], state[2]);
    state[2] -= worst.1 + 0.5 * GROUND_SLOP;
    env.reset(Some(1), &ResetOptions { state: Some(state.clone()), params: options.params }, obs.as_mut()).unwrap();
    assert_eq!(env.state().unwrap(), state);
}

#[test]
fn the_history_block_holds_the_previous_frames_at_the_stride() {
    let (len, stride) = (3usize, 2usize);
    let overrides = [("history_len", len.into()), ("history_stride", stride.into()), ("residual_actions", true.into())];
    let Some(mut env) = env(&overrides) else { return };
    let d = history_frame_len(15);
    let base = 227;
    assert_eq!(env.spec().obs_len(), base + len * d);
    let mut obs = env.spec().obs_buffer(1);
    // Small random offsets from the clip, so that the episode runs long enough to test.
    let actions: Vec<Vec<f32>> = crate::testing::action_sequence(&env.spec().action_space, 3, 40)
        .into_iter()
        .map(|a| match a {
            crate::space::OwnedAction::Floats(v) => v.into_iter().map(|x| 0.2 * x).collect(),
            other => panic!("{other:?}"),
        })
        .collect();
    for episode in 0..2 {
        env.reset(Some(11 + episode), &ResetOptions::default(), obs.as_mut()).unwrap();
        // heads[t]: the proprioceptive head of the observation t steps into the episode.
        let mut heads: Vec<Vec<f32>> = Vec::new();
        for (t, action) in actions.iter().enumerate() {
            let o = obs.as_f32().unwrap();
            heads.push(o[..d].to_vec());
            for j in 0..len {
                // Frame (len - j)·stride steps back, the reset's frame before the start.
                let back = t.saturating_sub((len - j) * stride);
                let block = &o[base + j * d..base + (j + 1) * d];
                assert_eq!(block, heads[back].as_slice(), "episode {episode}, step {t}, slot {j}");
            }
            let step = env.step(Action::Float(action), obs.as_mut()).unwrap();
            if step.terminated || step.truncated {
                break;
            }
        }
        assert!(heads.len() > 2 * len * stride, "the episode was too short to test: {}", heads.len());
        // The frames differ from one another: the block is not one frame repeated.
        assert_ne!(heads[0], heads[len * stride]);
    }
}

/// HumanoidTrack with a strided history on by default: the conformance suite's fixture.
struct WithHistory(HumanoidTrack);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct WithHistoryConfig(HumanoidTrackConfig);

impl Default for WithHistoryConfig {
    fn default() -> Self {
        Self(HumanoidTrackConfig { history_len: 3, history_stride: 2, ..HumanoidTrackConfig::default() })
    }
}

impl Validate for WithHistoryConfig {
    fn validate(&self) -> Result<(), FieldError> {
        self.0.validate()
    }
}

impl Registered for WithHistory {
    const ID: &'static str = "keel-test/HumanoidTrackHistory-v0";
    const DESCRIPTION: &'static str = "HumanoidTrack-v1 with history_len 3, history_stride 2 (tests)";
    const MAX_EPISODE_STEPS: Option<u64> = HumanoidTrack::MAX_EPISODE_STEPS;
    type Config = WithHistoryConfig;
    fn spec(config: &WithHistoryConfig) -> Result<EnvSpec> {
        <HumanoidTrack as Registered>::spec(&config.0)
    }
    fn new(config: WithHistoryConfig) -> Result<Self> {
        HumanoidTrack::new(config.0).map(Self)
    }
    fn episode_cap(config: &WithHistoryConfig) -> Option<u64> {
        HumanoidTrack::episode_cap(&config.0)
    }
}

impl Env for WithHistory {
    fn spec(&self) -> &EnvSpec {
        Env::spec(&self.0)
    }
    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        self.0.reset(seed, options, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        self.0.step(action, obs)
    }
    fn write_extras(&self, out: &mut [f64]) {
        self.0.write_extras(out);
    }
    fn state(&self) -> Option<Vec<f64>> {
        self.0.state()
    }
    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        self.0.set_params(params)
    }
    fn params(&self) -> Value {
        self.0.params()
    }
    fn snapshot(&self) -> Option<Value> {
        self.0.snapshot()
    }
    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        self.0.restore(snapshot)
    }
}

#[test]
fn the_conformance_suite_passes_with_the_history_on() {
    if env(&[]).is_none() {
        return;
    }
    registry::register(registry::entry::<WithHistory>()).unwrap();
    let failures: Vec<String> = crate::testing::CHECKS
        .iter()
        .filter_map(|(name, check)| check(WithHistory::ID).err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A snapshot of the env without history does not restore into one with it.
    let (Some(plain), Some(mut with)) = (env(&[]), env(&[("history_len", 2.into())])) else { return };
    let mut obs = with.spec().obs_buffer(1);
    with.reset(Some(1), &ResetOptions::default(), obs.as_mut()).unwrap();
    let mut plain = plain;
    let mut plain_obs = plain.spec().obs_buffer(1);
    plain.reset(Some(1), &ResetOptions::default(), plain_obs.as_mut()).unwrap();
    let err = with.restore(&plain.snapshot().unwrap()).unwrap_err().to_string();
    assert!(err.contains("history"), "{err}");
}

#[test]
fn renders_the_humanoid_and_its_ghost() {
    let Some(mut env) = env(&[]) else { return };
    let mut obs = env.spec().obs_buffer(1);
    assert!(matches!(env.render(), Err(EnvError::ResetNeeded)));
    env.reset(Some(6), &ResetOptions::default(), obs.as_mut()).unwrap();
    let frame = env.render().unwrap().unwrap();
    assert_eq!((frame.width, frame.height, frame.rgb.len()), (320, 240, 320 * 240 * 3));
    let distinct: std::collections::HashSet<&[u8]> = frame.rgb.chunks(3).collect();
    assert!(distinct.len() > 8, "{} colours", distinct.len());
}
