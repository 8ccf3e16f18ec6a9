//! Engine tests that need a purpose-built env or sampler; the checks every env passes are in
//! `crate::testing`.

use std::thread::Builder;

use super::chunk::ActionRows;
use super::rows::SharedBatch;
use super::*;
use crate::obs::{ObsMut, ObsRef};
use crate::space::Space;
use crate::testing::{BytePatternConfig, register_test_envs};
use rand::SeedableRng;
use rand_pcg::Pcg32;

fn bytes_vec(num_envs: usize, workers: usize, config: Value) -> VecEnv {
    let _ = register_test_envs();
    let Value::Object(overrides) = config else { panic!("config must be an object") };
    let options = VecOptions { workers, autoreset_mode: AutoresetMode::NextStep };
    match VecEnv::make("keel-test/BytePattern-v0", &overrides, num_envs, options) {
        Ok(v) => v,
        Err(e) => panic!("make: {e}"),
    }
}

#[test]
fn byte_observations_stay_bytes_at_a_fixed_address() {
    let mut venv = bytes_vec(3, 2, serde_json::json!({}));
    assert!(venv.reset(Some(0)).is_ok());
    let ObsBuf::U8(first) = &venv.batch().obs else { panic!("not u8") };
    let address = first.as_ptr();
    assert_eq!(first.len(), 3 * 24);
    for _ in 0..12 {
        assert!(venv.step(Action::Int(&[1, 2, 3])).is_ok());
        let ObsBuf::U8(obs) = &venv.batch().obs else { panic!("not u8") };
        assert_eq!(obs.as_ptr(), address);
    }
    assert_eq!(venv.batch().extras.len(), 3);
}

#[test]
fn a_panicking_env_poisons_the_vector_and_a_full_reset_replaces_it() {
    for workers in [0, 2] {
        // A torn env panics on every later call, reset included: only a new one can go on.
        let config = serde_json::json!({"panic_on": 3, "panic_tears": true});
        let mut venv = bytes_vec(4, workers, config.clone());
        assert!(venv.reset(Some(0)).is_ok());
        let err = venv.step(Action::Int(&[0, 0, 3, 0])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("sub-env 2") && err.contains("panic"), "{err}");
        let again = venv.step(Action::Int(&[0; 4])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(again.contains("unusable until reset") && again.contains("sub-env 2"), "{again}");
        assert!(venv.reset_with(Seeds::Continue, OptionsFor::Sampler, Some(&[true, false, false, false])).is_err());
        assert!(venv.set_params(&Map::new()).is_err());
        let reset = venv.reset(Some(1));
        assert!(reset.is_ok(), "{reset:?}");
        // The vector now runs as a new one from the same seeds.
        let mut fresh = bytes_vec(4, workers, config);
        assert!(fresh.reset(Some(1)).is_ok());
        assert!(venv.batch() == fresh.batch());
        for t in 0..25 {
            let actions: Vec<i64> = (0..4).map(|i| ((t + i) % 3) as i64).collect();
            assert!(venv.step(Action::Int(&actions)).is_ok() && fresh.step(Action::Int(&actions)).is_ok());
            assert!(venv.batch() == fresh.batch(), "step {t}");
        }
    }
}

#[test]
fn a_vector_of_envs_given_by_value_cannot_replace_a_panicked_env() {
    let _ = register_test_envs();
    let Value::Object(config) = serde_json::json!({"panic_on": 3}) else { panic!() };
    let envs: Vec<Box<dyn Env>> =
        (0..2).map(|_| registry::make("keel-test/BytePattern-v0", &config).unwrap_or_else(|e| panic!("{e}"))).collect();
    let Ok(mut venv) = VecEnv::new(envs, VecOptions::default()) else { panic!("new") };
    assert!(venv.reset(Some(0)).is_ok());
    assert!(venv.step(Action::Int(&[0, 3])).is_err());
    let err = venv.reset(Some(0)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("sub-env 1") && err.contains("new vector"), "{err}");
    assert!(venv.step(Action::Int(&[0, 0])).is_err());
}

#[test]
fn a_panic_that_escapes_the_env_guard_fails_its_step_and_nothing_waits_for_it() {
    for workers in [0, 1, 2, 4] {
        let config = serde_json::json!({"panic_on": 3, "panic_escapes": true});
        let mut venv = bytes_vec(8, workers, config);
        assert!(venv.reset(Some(0)).is_ok());
        for _ in 0..3 {
            let err =
                venv.step(Action::Int(&[0, 0, 0, 0, 0, 3, 0, 0])).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("sub-env 5") && err.contains("panic"), "{workers} workers: {err}");
            // Every worker is still there: the next commands finish too.
            assert!(venv.reset(Some(1)).is_ok());
            for _ in 0..4 {
                assert!(venv.step(Action::Int(&[1; 8])).is_ok());
            }
        }
    }
}

#[test]
fn a_worker_thread_the_os_refuses_is_its_own_error() {
    // No address space holds this stack.
    let builder = Builder::new().stack_size(usize::MAX / 4);
    let err = spawn_worker(builder, 3, 8, || {}).err();
    let message = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(matches!(err, Some(EnvError::WorkerSpawn { worker: 3, workers: 8, .. })), "{err:?}");
    assert!(message.contains("worker thread 3 of 8") && message.contains("fewer workers"), "{message}");
}

#[test]
fn a_failed_restore_poisons_with_the_env_that_failed() {
    let options = VecOptions { workers: 2, autoreset_mode: AutoresetMode::NextStep };
    let Ok(mut venv) = VecEnv::make("keel/CartPole-v1", &Map::new(), 4, options) else { panic!("make") };
    assert!(venv.reset(Some(0)).is_ok());
    let Some(mut snapshot) = venv.snapshot() else { panic!("snapshot") };
    snapshot["envs"][2] = serde_json::json!({"not": "a CartPole"});
    assert!(venv.restore(&snapshot).is_err());
    assert!(matches!(venv.poisoned(), Some(EnvError::Poisoned { index: 2, .. })), "{:?}", venv.poisoned());
}

#[test]
fn action_rows_of_another_kind_hold_what_was_sent() {
    let space = Space::Discrete(crate::space::Discrete { n: 3, start: 0 });
    let mut rows = ActionRows::new(&space, 2);
    rows.fill(Action::Int(&[9, 1, 2]), 1..3);
    assert!(matches!(rows.row(1, 1), Action::Int(&[2])));
    // A kind `check_batch` refuses: the rows hold it, not the last step's integers.
    rows.fill(Action::Float(&[0.5, 1.5]), 0..2);
    assert!(matches!(rows.row(1, 1), Action::Float(&[1.5])));
}

#[test]
#[allow(unsafe_code)]
fn terminal_observations_share_the_observations_type() {
    let Ok(spec) = registry::lookup("keel/CartPole-v1").and_then(|r| r.spec_for(&Map::new())) else { panic!() };
    let Ok(mut batch) = Batch::new(2, &spec, AutoresetMode::SameStep) else { panic!("batch") };
    // A batch of mismatched buffers (`Batch::new` makes none): the pair takes the observations' type.
    batch.final_obs = ObsBuf::U8(vec![7; 8]);
    let shared = SharedBatch::new(batch, 2);
    // SAFETY: no other thread has the batch; the rows are dropped before the batch is read.
    let mut rows = unsafe { shared.rows(0, 2) };
    if let ObsMut::F32(row) = rows.obs.row(1) {
        row.copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
    }
    rows.obs.keep_final(1);
    drop(rows);
    // SAFETY: as above.
    let batch = unsafe { shared.batch() };
    assert_eq!(batch.final_obs, ObsBuf::F32(vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]));
}

/// A start-state sampler for CartPole: env `i`'s start is drawn from the sampler's own stream,
/// and the spread narrows after every failed episode (a toy curriculum).
struct StartStates {
    rng: Pcg32,
    spread: f64,
}

impl ResetSampler for StartStates {
    fn sample(&mut self, _env_index: usize) -> ResetOptions {
        use rand::RngExt;
        let spread = self.spread;
        ResetOptions::with_state((0..4).map(|_| self.rng.random_range(-spread..spread)).collect())
    }

    fn report(&mut self, episode: &EpisodeEnd<'_>) {
        assert!(episode.options.state.is_some(), "the sampler's options are reported back");
        if episode.terminated {
            self.spread *= 0.9;
        }
    }

    fn snapshot(&self) -> Value {
        serde_json::json!({"rng": self.rng, "spread": self.spread})
    }

    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        let bad = |e: serde_json::Error| EnvError::Snapshot(e.to_string());
        self.rng = serde_json::from_value(snapshot["rng"].clone()).map_err(bad)?;
        self.spread = serde_json::from_value(snapshot["spread"].clone()).map_err(bad)?;
        Ok(())
    }
}

fn sampled_run(workers: usize, mode: AutoresetMode, steps: usize) -> Vec<Batch> {
    let options = VecOptions { workers, autoreset_mode: mode };
    let Ok(mut venv) = VecEnv::make("keel/CartPole-v1", &Map::new(), 6, options) else { panic!("make") };
    let sampler = StartStates { rng: Pcg32::seed_from_u64(9), spread: 0.2 };
    assert!(venv.set_sampler(Some(Box::new(sampler))).is_ok());
    assert!(venv.reset(Some(4)).is_ok());
    let mut batches = vec![venv.batch().clone()];
    for t in 0..steps {
        let actions: Vec<i64> = (0..6).map(|i| ((t * 7 + i * 3) % 5 % 2) as i64).collect();
        assert!(venv.step(Action::Int(&actions)).is_ok());
        batches.push(venv.batch().clone());
    }
    batches
}

#[test]
fn a_start_state_sampler_gives_the_same_run_on_every_worker_count() {
    for mode in [AutoresetMode::NextStep, AutoresetMode::SameStep] {
        let serial = sampled_run(0, mode, 200);
        assert!(serial.iter().any(|b| b.episode_done.iter().any(|&d| d)), "episodes must end");
        for workers in 1..=3 {
            assert!(sampled_run(workers, mode, 200) == serial, "{workers} workers, {mode:?}");
        }
    }
}

#[test]
fn the_sampler_chooses_every_start_and_its_state_survives_a_snapshot() {
    let options = VecOptions { workers: 2, autoreset_mode: AutoresetMode::NextStep };
    let make = || {
        let Ok(mut venv) = VecEnv::make("keel/CartPole-v1", &Map::new(), 4, options) else { panic!("make") };
        let sampler = StartStates { rng: Pcg32::seed_from_u64(1), spread: 0.1 };
        assert!(venv.set_sampler(Some(Box::new(sampler))).is_ok());
        venv
    };
    let mut venv = make();
    assert!(venv.reset(Some(0)).is_ok());
    // Every start lies inside the sampler's spread, not CartPole's default ±0.05 only by chance.
    for i in 0..4 {
        let state = venv.state(i).unwrap_or_default();
        assert!(state.iter().all(|v| v.abs() < 0.1));
    }
    let step = |v: &mut VecEnv, t: usize| {
        let actions: Vec<i64> = (0..4).map(|i| ((t + i) % 3 % 2) as i64).collect();
        assert!(v.step(Action::Int(&actions)).is_ok());
        v.batch().clone()
    };
    for t in 0..60 {
        step(&mut venv, t);
    }
    let Some(snapshot) = venv.snapshot() else { panic!("snapshot") };
    let mut resumed = make();
    assert!(resumed.restore(&snapshot).is_ok());
    for t in 60..300 {
        assert!(step(&mut venv, t) == step(&mut resumed, t), "step {t}");
    }
    assert_eq!(venv.sampler().map(|s| s.snapshot()), resumed.sampler().map(|s| s.snapshot()));
    // A snapshot with a sampler state needs a sampler to restore into.
    let Ok(mut bare) = VecEnv::make("keel/CartPole-v1", &Map::new(), 4, options) else { panic!("make") };
    assert!(bare.restore(&snapshot).is_err());
}

#[test]
fn per_env_options_and_params_reach_only_their_env() {
    let Ok(mut venv) = VecEnv::make("keel/CartPole-v1", &Map::new(), 3, VecOptions::default()) else { panic!() };
    let options: Vec<ResetOptions> =
        (0..3).map(|i| ResetOptions::with_state(vec![0.01 * i as f64, 0.0, 0.0, 0.0])).collect();
    assert!(venv.reset_with(Seeds::Base(0), OptionsFor::PerEnv(&options), None).is_ok());
    for (i, o) in options.iter().enumerate() {
        assert_eq!(venv.state(i), o.state);
    }
    assert!(venv.reset_with(Seeds::Base(0), OptionsFor::PerEnv(&options[..2]), None).is_err());
    let mut params = Map::new();
    params.insert("high".into(), serde_json::json!(0.2));
    assert!(venv.set_params_of(&[1], &params).is_ok());
    assert_eq!(venv.params_of(1).ok().map(|p| p["high"].clone()), Some(serde_json::json!(0.2)));
    assert_eq!(venv.params_of(0).ok().map(|p| p["high"].clone()), Some(serde_json::json!(0.05)));
    assert!(venv.set_params_of(&[7], &params).is_err());
    assert!(venv.params_of(3).is_err());
    let _ = BytePatternConfig::default();
}

// ---- async stepping ------------------------------------------------------------------------

/// One row of a trajectory, bit for bit.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    obs: Vec<u64>,
    reward: u64,
    flags: (bool, bool, bool, bool),
    extras: Vec<u64>,
    episode: (u64, u64),
    final_obs: Vec<u64>,
}

fn bits(obs: ObsRef<'_>) -> Vec<u64> {
    obs.iter_f64().map(f64::to_bits).collect()
}

fn row_of(view: &BatchView<'_>, k: usize, obs_len: usize, e: usize) -> Row {
    let slice = |o: ObsRef<'_>, k: usize| match o {
        ObsRef::F32(v) => bits(ObsRef::F32(&v[k * obs_len..(k + 1) * obs_len])),
        ObsRef::F64(v) => bits(ObsRef::F64(&v[k * obs_len..(k + 1) * obs_len])),
        ObsRef::U8(v) => bits(ObsRef::U8(&v[k * obs_len..(k + 1) * obs_len])),
    };
    let has_final = view.has_final_obs.get(k).copied().unwrap_or(false);
    Row {
        obs: slice(view.obs, k),
        reward: view.reward[k].to_bits(),
        flags: (view.terminated[k], view.truncated[k], view.episode_done[k], has_final),
        extras: view.extras[k * e..(k + 1) * e].iter().map(|x| x.to_bits()).collect(),
        episode: (view.episode_return[k].to_bits(), view.episode_length[k]),
        final_obs: if has_final { slice(view.final_obs, k) } else { Vec::new() },
    }
}

/// The action env `i` takes at its `t`-th step (its step count since the reset).
fn scripted(id: &str, i: usize, t: usize) -> i64 {
    let a = (t * 7 + i * 3) % 5;
    if id.starts_with("keel-test") { (a % 3) as i64 } else { (a % 2) as i64 }
}

fn make_async(id: &str, n: usize, b: usize, workers: usize, mode: AutoresetMode) -> AsyncVecEnv {
    let _ = register_test_envs();
    match AsyncVecEnv::make(id, &Map::new(), n, b, VecOptions { workers, autoreset_mode: mode }) {
        Ok(v) => v,
        Err(e) => panic!("make async: {e}"),
    }
}

/// Per-env trajectories (reset row, then `steps` step rows) of sync stepping.
fn sync_trajectories(id: &str, n: usize, mode: AutoresetMode, steps: usize) -> Vec<Vec<Row>> {
    let _ = register_test_envs();
    let Ok(mut venv) = VecEnv::make(id, &Map::new(), n, VecOptions { workers: 0, autoreset_mode: mode }) else {
        panic!()
    };
    let (ol, e) = (venv.spec().obs_len(), venv.spec().extras_len());
    assert!(venv.reset(Some(11)).is_ok());
    let mut out: Vec<Vec<Row>> = (0..n).map(|i| vec![row_of(&venv.batch().view(), i, ol, e)]).collect();
    for t in 0..steps {
        let actions: Vec<i64> = (0..n).map(|i| scripted(id, i, t)).collect();
        assert!(venv.step(Action::Int(&actions)).is_ok());
        for (i, traj) in out.iter_mut().enumerate() {
            traj.push(row_of(&venv.batch().view(), i, ol, e));
        }
    }
    out
}

/// Per-env trajectories of async stepping (each env sent back as soon as it is received),
/// and the env ids of every batch.
fn async_trajectories(venv: &mut AsyncVecEnv, id: &str, steps: usize) -> (Vec<Vec<Row>>, Vec<Vec<usize>>) {
    let n = venv.num_envs();
    let (ol, e) = (venv.spec().obs_len(), venv.spec().extras_len());
    assert!(venv.async_reset(Seeds::Base(11), OptionsFor::Sampler).is_ok());
    let mut out: Vec<Vec<Row>> = vec![Vec::new(); n];
    let mut order = Vec::new();
    while out.iter().any(|t| t.len() <= steps) {
        let view = match venv.recv() {
            Ok(v) => v,
            Err(err) => panic!("recv: {err}"),
        };
        let ids = view.env_ids.to_vec();
        for (k, &i) in ids.iter().enumerate() {
            out[i].push(row_of(&view, k, ol, e));
        }
        let actions: Vec<i64> = ids.iter().map(|&i| scripted(id, i, out[i].len() - 1)).collect();
        assert!(venv.send(Action::Int(&actions), &ids).is_ok());
        order.push(ids);
    }
    for traj in &mut out {
        traj.truncate(steps + 1);
    }
    (out, order)
}

#[test]
fn async_trajectories_equal_sync_ones_on_every_worker_count() {
    let cases = [
        ("keel/CartPole-v1", AutoresetMode::NextStep),
        ("keel/CartPole-v1", AutoresetMode::SameStep),
        ("keel-test/BytePattern-v0", AutoresetMode::NextStep),
        ("keel-test/BytePattern-v0", AutoresetMode::SameStep),
    ];
    let (n, steps) = (7, 120);
    for (id, mode) in cases {
        let sync = sync_trajectories(id, n, mode, steps);
        assert!(sync.iter().flatten().any(|r| r.flags.2), "{id}: episodes must end");
        for b in [1, 3, 7] {
            for workers in [0, 1, 2, 3] {
                let mut venv = make_async(id, n, b, workers, mode);
                let (trajectories, order) = async_trajectories(&mut venv, id, steps);
                assert!(order.iter().all(|ids| ids.len() == b));
                for i in 0..n {
                    assert!(trajectories[i] == sync[i], "{id} {mode:?} b={b} workers={workers} env {i}");
                }
            }
        }
    }
}

#[test]
fn serial_async_batches_come_in_send_order() {
    let run = || {
        let mut venv = make_async("keel/CartPole-v1", 7, 3, 0, AutoresetMode::NextStep);
        async_trajectories(&mut venv, "keel/CartPole-v1", 40)
    };
    let (first, order) = run();
    // Resets come back env 0 first, then every env returns in the order it was sent.
    assert_eq!(order[0], vec![0, 1, 2]);
    assert_eq!(order[1], vec![3, 4, 5]);
    assert_eq!(order[2], vec![6, 0, 1]);
    assert!(run() == (first, order));
}

#[test]
fn a_received_batch_stays_intact_while_the_workers_step_the_others() {
    let mut venv = make_async("keel-test/BytePattern-v0", 8, 2, 2, AutoresetMode::NextStep);
    assert!(venv.async_reset(Seeds::Base(0), OptionsFor::Sampler).is_ok());
    for t in 0..100 {
        let Ok(view) = venv.recv() else { panic!("recv") };
        let (ids, kept) = (view.env_ids.to_vec(), bits(view.obs));
        // Every env goes back at once, the received ones too (their batch must survive until
        // the next recv), so all 8 are in flight while the batch is held.
        assert!(venv.send(Action::Int(&[2, 2]), &ids).is_ok());
        let idle: Vec<usize> = (0..8).filter(|&i| !venv.is_in_flight(i)).collect();
        if !idle.is_empty() {
            assert!(venv.send(Action::Int(&vec![1; idle.len()]), &idle).is_ok());
        }
        assert_eq!(venv.in_flight(), 8);
        std::thread::sleep(std::time::Duration::from_micros(200));
        let Some(again) = venv.last_batch() else { panic!("held batch") };
        assert_eq!(again.env_ids, ids.as_slice());
        assert!(bits(again.obs) == kept, "step {t}: the held batch was overwritten");
    }
}

#[test]
fn bad_async_calls_are_refused_and_leave_the_vector_usable() {
    let options = VecOptions { workers: 2, autoreset_mode: AutoresetMode::NextStep };
    let err = |r: Result<AsyncVecEnv>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let id = "keel/CartPole-v1";
    assert!(err(AsyncVecEnv::make(id, &Map::new(), 4, 0, options)).contains("batch_size"));
    assert!(err(AsyncVecEnv::make(id, &Map::new(), 4, 5, options)).contains("batch_size"));
    let disabled = VecOptions { workers: 0, autoreset_mode: AutoresetMode::Disabled };
    assert!(err(AsyncVecEnv::make(id, &Map::new(), 4, 2, disabled)).contains("autoreset_mode"));
    for workers in [0, 2] {
        let mut venv = make_async(id, 4, 2, workers, AutoresetMode::NextStep);
        let msg = |r: Result<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg(venv.send(Action::Int(&[0]), &[0])).contains("reset"));
        assert!(venv.recv().is_err());
        assert!(venv.async_reset(Seeds::Base(0), OptionsFor::Sampler).is_ok());
        // Every env is in flight after the reset.
        assert!(msg(venv.send(Action::Int(&[0]), &[1])).contains("already in flight"));
        let Ok(view) = venv.recv() else { panic!("recv") };
        let ids = view.env_ids.to_vec();
        assert!(msg(venv.send(Action::Int(&[0, 0]), &[ids[0], 9])).contains("out of range"));
        assert!(msg(venv.send(Action::Int(&[0, 0]), &[ids[0], ids[0]])).contains("twice"));
        assert!(msg(venv.send(Action::Int(&[0]), &ids)).contains("action"));
        assert!(msg(venv.send(Action::Int(&[0, 7]), &ids)).contains("action"));
        assert!(msg(venv.send(Action::Int(&[]), &[])).contains("at least one"));
        assert!(venv.in_flight() == 2 && ids.iter().all(|&i| !venv.is_in_flight(i)), "nothing was sent");
        // The other two reset results are still due, then nothing is in flight.
        assert!(venv.recv().is_ok());
        let recv_err = venv.recv().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(recv_err.contains("recv needs batch_size = 2 envs in flight, 0 are"), "{recv_err}");
        assert!(venv.send(Action::Int(&[1]), &[ids[0]]).is_ok());
        assert!(venv.recv().err().map(|e| e.to_string()).unwrap_or_default().contains("1 are"));
        assert!(venv.send(Action::Int(&[1]), &[ids[1]]).is_ok());
        let Ok(view) = venv.recv() else { panic!("usable after the errors") };
        assert_eq!(view.len(), 2);
    }
}

#[test]
fn a_failing_env_poisons_the_async_vector_until_async_reset() {
    for workers in [0, 2] {
        let _ = register_test_envs();
        let Value::Object(config) = serde_json::json!({"panic_on": 3}) else { panic!() };
        let options = VecOptions { workers, autoreset_mode: AutoresetMode::NextStep };
        let Ok(mut venv) = AsyncVecEnv::make("keel-test/BytePattern-v0", &config, 4, 2, options) else { panic!() };
        assert!(venv.async_reset(Seeds::Base(0), OptionsFor::Sampler).is_ok());
        let Ok(view) = venv.recv() else { panic!("recv") };
        let ids = view.env_ids.to_vec();
        assert!(venv.send(Action::Int(&[0, 3]), &ids).is_ok());
        let _ = venv.recv(); // the other two resets
        let err = venv.recv().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(&format!("sub-env {}", ids[1])) && err.contains("panic"), "{err}");
        let again = venv.send(Action::Int(&[0]), &[ids[0]]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(again.contains("unusable until reset"), "{again}");
        assert!(venv.async_reset(Seeds::Base(1), OptionsFor::Sampler).is_ok());
        assert!(venv.recv().is_ok() && venv.recv().is_ok());
        assert!(venv.send(Action::Int(&[1, 1]), &[0, 1]).is_ok());
        assert!(venv.recv().is_ok());
    }
}

#[test]
fn the_async_sampler_chooses_every_start_and_serial_runs_repeat() {
    let run = || {
        let mut venv = make_async("keel/CartPole-v1", 6, 2, 0, AutoresetMode::NextStep);
        let sampler = StartStates { rng: Pcg32::seed_from_u64(9), spread: 0.2 };
        assert!(venv.set_sampler(Some(Box::new(sampler))).is_ok());
        let (trajectories, _) = async_trajectories(&mut venv, "keel/CartPole-v1", 150);
        assert!(venv.episodes_completed() > 0);
        (trajectories, venv.sampler().map(|s| s.snapshot()))
    };
    let first = run();
    assert!(first.1.as_ref().is_some_and(|s| s["spread"].as_f64().is_some_and(|x| x < 0.2)), "episodes reported");
    assert!(run() == first);
    let mut same_step = make_async("keel/CartPole-v1", 6, 2, 0, AutoresetMode::SameStep);
    let sampler = StartStates { rng: Pcg32::seed_from_u64(9), spread: 0.2 };
    assert!(same_step.set_sampler(Some(Box::new(sampler))).is_err());
}
