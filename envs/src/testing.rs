//! Conformance checks that every registered env must pass (run over the whole registry by
//! `envs/tests/conformance.rs`; downstream crates can run them on their own envs too).
//!
//! Each check returns `Err(description)` instead of panicking, so a test can report every
//! failing env at once. Episodes are kept short with a `max_episode_steps` override so that
//! episode ends and autoresets are exercised on every env.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde_json::{Map, Value};

use crate::env::{Env, ResetOptions};
use crate::error::EnvError;
use crate::obs::{ObsBuf, ObsMut};
use crate::registry;
use crate::space::{Action, DType, OwnedAction, Space};
use crate::vector::{AutoresetMode, OptionsFor, Seeds, VecEnv, VecOptions};
use crate::wrappers::MAX_EPISODE_STEPS;

/// Outcome of a check.
pub type CheckResult = std::result::Result<(), String>;

/// A check run on the env registered under the given id.
pub type Check = fn(&str) -> CheckResult;

/// Episode cap used by the checks, so episodes end within a short rollout.
pub const SHORT_EPISODE: u64 = 7;

fn short_config() -> Map<String, Value> {
    let mut overrides = Map::new();
    overrides.insert(MAX_EPISODE_STEPS.into(), SHORT_EPISODE.into());
    overrides
}

fn make_short(id: &str) -> Result<Box<dyn Env>, String> {
    registry::make(id, &short_config()).map_err(|e| format!("{id}: make failed: {e}"))
}

/// A seeded sequence of valid actions for `space`.
pub fn action_sequence(space: &Space, seed: u64, len: usize) -> Vec<OwnedAction> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..len).map(|_| space.sample(&mut rng)).collect()
}

/// A batch of actions, flattened row by row in the space's type.
pub struct ActionBatch {
    ints: Vec<i64>,
    floats: Vec<f32>,
    doubles: Vec<f64>,
}

impl ActionBatch {
    /// Rows `actions`, one per env.
    pub fn new(actions: &[OwnedAction]) -> Self {
        let mut batch = Self { ints: Vec::new(), floats: Vec::new(), doubles: Vec::new() };
        for a in actions {
            match a {
                OwnedAction::Scalar(v) => batch.ints.push(*v),
                OwnedAction::Ints(v) => batch.ints.extend_from_slice(v),
                OwnedAction::Floats(v) => batch.floats.extend_from_slice(v),
                OwnedAction::Floats64(v) => batch.doubles.extend_from_slice(v),
            }
        }
        batch
    }

    /// The batch as an [`Action`] of `space`'s kind.
    pub fn action(&self, space: &Space) -> Action<'_> {
        match space.box_dtype() {
            None => Action::Int(&self.ints),
            Some(DType::Float64) => Action::Float64(&self.doubles),
            Some(_) => Action::Float(&self.floats),
        }
    }
}

/// One transition of a single env as recorded by the checks.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    obs: ObsBuf,
    reward: f64,
    terminated: bool,
    truncated: bool,
}

/// Rolls `env` out for `steps` steps from `reset(seed)`, resetting (stream continued) whenever
/// an episode ends, as NextStep autoreset does. Returns the reset obs then one record per call.
fn rollout(env: &mut dyn Env, seed: u64, actions: &[OwnedAction]) -> Result<Vec<Record>, String> {
    let id = env.spec().id.clone();
    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(seed), &ResetOptions::default(), obs.as_mut()).map_err(|e| format!("{id}: reset: {e}"))?;
    let mut out = vec![Record { obs: obs.clone(), reward: 0.0, terminated: false, truncated: false }];
    let mut needs_reset = false;
    for a in actions {
        if needs_reset {
            env.reset(None, &ResetOptions::default(), obs.as_mut()).map_err(|e| format!("{id}: reset: {e}"))?;
            out.push(Record { obs: obs.clone(), reward: 0.0, terminated: false, truncated: false });
            needs_reset = false;
            continue;
        }
        let s = env.step(a.as_action(), obs.as_mut()).map_err(|e| format!("{id}: step: {e}"))?;
        needs_reset = s.terminated || s.truncated;
        out.push(Record { obs: obs.clone(), reward: s.reward, terminated: s.terminated, truncated: s.truncated });
    }
    Ok(out)
}

/// Same seed and actions give bit-identical rollouts; another seed gives another start.
pub fn check_seed_determinism(id: &str) -> CheckResult {
    let (mut a, mut b) = (make_short(id)?, make_short(id)?);
    let actions = action_sequence(&a.spec().action_space, 1, 60);
    let (ra, rb) = (rollout(a.as_mut(), 123, &actions)?, rollout(b.as_mut(), 123, &actions)?);
    if ra != rb {
        return Err(format!("{id}: two rollouts with seed 123 differ"));
    }
    // reset(None) continues the stream: the second episode differs from the first.
    let mut obs = a.spec().obs_buffer(1);
    let starts: Vec<ObsBuf> = (0..3)
        .map(|k| {
            let seed = if k == 0 { Some(5) } else { None };
            a.reset(seed, &ResetOptions::default(), obs.as_mut()).map(|_| obs.clone())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{id}: reset: {e}"))?;
    if starts[0] == starts[1] && starts[1] == starts[2] {
        return Err(format!("{id}: reset(None) repeats the seeded start"));
    }
    let mut other = b.spec().obs_buffer(1);
    b.reset(Some(6), &ResetOptions::default(), other.as_mut()).map_err(|e| e.to_string())?;
    if other == starts[0] {
        return Err(format!("{id}: seeds 5 and 6 give the same start"));
    }
    Ok(())
}

/// Every observation of a long random rollout lies in the observation space.
pub fn check_observations_in_space(id: &str) -> CheckResult {
    let mut env = make_short(id)?;
    let actions = action_sequence(&env.spec().action_space, 2, 300);
    let space = env.spec().observation_space.clone();
    for (t, r) in rollout(env.as_mut(), 7, &actions)?.iter().enumerate() {
        if !space.contains(r.obs.as_ref()) || r.obs.dtype() != crate::obs::obs_dtype(&space) {
            return Err(format!("{id}: observation {t} {:?} is outside {}", r.obs, space.describe()));
        }
        if !r.reward.is_finite() {
            return Err(format!("{id}: reward {t} is {}", r.reward));
        }
    }
    Ok(())
}

fn vec_rollout(id: &str, num_envs: usize, options: VecOptions, steps: usize) -> Result<Vec<crate::Batch>, String> {
    let mut venv = VecEnv::make(id, &short_config(), num_envs, options).map_err(|e| format!("{id}: {e}"))?;
    let space = venv.spec().action_space.clone();
    venv.reset(Some(100)).map_err(|e| format!("{id}: vector reset: {e}"))?;
    let mut out = vec![venv.batch().clone()];
    let per_env: Vec<Vec<OwnedAction>> = (0..num_envs).map(|i| action_sequence(&space, 50 + i as u64, steps)).collect();
    for t in 0..steps {
        let row: Vec<OwnedAction> = per_env.iter().map(|a| a[t].clone()).collect();
        let actions = ActionBatch::new(&row);
        venv.step(actions.action(&space)).map_err(|e| format!("{id}: vector step {t}: {e}"))?;
        out.push(venv.batch().clone());
    }
    Ok(out)
}

/// A vector of N envs seeded `s` equals N single envs seeded `s + i` stepped with NextStep
/// autoreset by hand.
pub fn check_vector_matches_single(id: &str) -> CheckResult {
    let (n, steps) = (3, 40);
    let batches = vec_rollout(id, n, VecOptions::default(), steps)?;
    for i in 0..n {
        let mut env = make_short(id)?;
        let actions = action_sequence(&env.spec().action_space, 50 + i as u64, steps);
        let ol = env.spec().obs_len();
        let single = rollout(env.as_mut(), 100 + i as u64, &actions)?;
        for (t, (b, r)) in batches.iter().zip(&single).enumerate() {
            if b.obs.row(i, ol) != r.obs.as_ref()
                || b.reward[i] != r.reward
                || b.terminated[i] != r.terminated
                || b.truncated[i] != r.truncated
            {
                return Err(format!("{id}: vector env {i} differs from the single env at step {t}"));
            }
        }
    }
    Ok(())
}

/// Serial and 1, 2 and 3 workers give bit-identical batches.
pub fn check_worker_counts(id: &str) -> CheckResult {
    for mode in [AutoresetMode::NextStep, AutoresetMode::SameStep] {
        let serial = vec_rollout(id, 5, VecOptions { workers: 0, autoreset_mode: mode }, 30)?;
        for workers in 1..=3 {
            let pooled = vec_rollout(id, 5, VecOptions { workers, autoreset_mode: mode }, 30)?;
            if pooled != serial {
                return Err(format!("{id}: {workers} workers differ from serial ({mode:?})"));
            }
        }
    }
    Ok(())
}

/// Each autoreset mode behaves as documented at episode ends (forced by the short cap).
pub fn check_autoreset_modes(id: &str) -> CheckResult {
    let steps = 3 * SHORT_EPISODE as usize;
    let ol = make_short(id)?.spec().obs_len();

    // NextStep: after an ending step comes a reset step with reward 0 and no flags, whose obs
    // is the env's next start; then normal steps.
    let next = vec_rollout(id, 2, VecOptions { workers: 0, autoreset_mode: AutoresetMode::NextStep }, steps)?;
    let mut saw_end = false;
    for t in 1..next.len() - 1 {
        for i in 0..2 {
            if next[t].terminated[i] || next[t].truncated[i] {
                saw_end = true;
                let after = &next[t + 1];
                if after.reward[i] != 0.0 || after.terminated[i] || after.truncated[i] || after.episode_done[i] {
                    return Err(format!("{id}: NextStep: step after an episode end is not a clean reset"));
                }
                if !next[t].episode_done[i] {
                    return Err(format!("{id}: NextStep: no episode statistics at the ending step"));
                }
            }
        }
    }
    if !saw_end {
        return Err(format!("{id}: NextStep: no episode ended within {steps} steps"));
    }

    // SameStep: the ending step returns the next start and keeps the terminal obs aside; the
    // terminal obs equals what NextStep returned at that step.
    let same = vec_rollout(id, 2, VecOptions { workers: 0, autoreset_mode: AutoresetMode::SameStep }, steps)?;
    let first_end = (1..next.len()).find(|&t| next[t].terminated[0] || next[t].truncated[0]);
    if let Some(t) = first_end {
        if !same[t].has_final_obs[0] || same[t].final_obs.row(0, ol) != next[t].obs.row(0, ol) {
            return Err(format!("{id}: SameStep: final_obs is not the terminal observation"));
        }
        if same[t].obs.row(0, ol) != next[t + 1].obs.row(0, ol) {
            return Err(format!("{id}: SameStep: the ending step does not return the reset observation"));
        }
        let flags = |b: &crate::Batch| (b.reward[0], b.terminated[0], b.truncated[0]);
        if flags(&same[t]) != flags(&next[t]) {
            return Err(format!("{id}: SameStep: the ending step's reward or flags differ from NextStep's"));
        }
        if same[t].episode_return[0] != next[t].episode_return[0] || !same[t].episode_done[0] {
            return Err(format!("{id}: SameStep: episode statistics differ from NextStep"));
        }
    }

    // Disabled: stepping a finished env is an error that changes nothing; a masked reset
    // revives it.
    let mut venv =
        VecEnv::make(id, &short_config(), 2, VecOptions { workers: 0, autoreset_mode: AutoresetMode::Disabled })
            .map_err(|e| e.to_string())?;
    let space = venv.spec().action_space.clone();
    venv.reset(Some(3)).map_err(|e| e.to_string())?;
    let actions = ActionBatch::new(&action_sequence(&space, 9, 2));
    let action = actions.action(&space);
    let mut ended = false;
    for _ in 0..SHORT_EPISODE {
        venv.step(action).map_err(|e| format!("{id}: Disabled: {e}"))?;
        if venv.batch().terminated[0] || venv.batch().truncated[0] {
            ended = true;
            break;
        }
    }
    if !ended {
        return Err(format!("{id}: Disabled: env 0 did not end within the cap"));
    }
    let before = venv.batch().clone();
    match venv.step(action) {
        Err(EnvError::StepAfterDone { index: 0 }) => {}
        other => return Err(format!("{id}: Disabled: stepping a finished env gave {other:?}")),
    }
    if venv.batch() != &before {
        return Err(format!("{id}: Disabled: a rejected step changed the batch"));
    }
    let mask = [true, venv.batch().terminated[1] || venv.batch().truncated[1]];
    venv.reset_with(Seeds::Continue, OptionsFor::Sampler, Some(&mask)).map_err(|e| e.to_string())?;
    venv.step(action).map_err(|e| format!("{id}: Disabled: step after masked reset: {e}"))?;
    Ok(())
}

/// Bad actions (wrong length, wrong kind, NaN, out of a discrete range) are errors that leave
/// the env exactly as it was.
pub fn check_bad_actions(id: &str) -> CheckResult {
    let (mut env, mut twin) = (make_short(id)?, make_short(id)?);
    let space = env.spec().action_space.clone();
    let (mut obs, mut twin_obs) = (env.spec().obs_buffer(1), env.spec().obs_buffer(1));
    env.reset(Some(11), &ResetOptions::default(), obs.as_mut()).map_err(|e| e.to_string())?;
    twin.reset(Some(11), &ResetOptions::default(), twin_obs.as_mut()).map_err(|e| e.to_string())?;
    let n = space.flat_len();
    let nan_f32 = vec![f32::NAN; n];
    let (nan_f64, inf_f64) = (vec![f64::NAN; n], vec![f64::INFINITY; n]);
    let (long_ints, long_floats, ints) = (vec![0; n + 1], vec![0.0; n + 1], vec![0; n]);
    let mut bad: Vec<(&str, Action<'_>)> = vec![
        ("too long", Action::Int(&long_ints)),
        ("too long", Action::Float(&long_floats)),
        ("empty", Action::Int(&[])),
    ];
    let (above, below);
    match &space {
        Space::Discrete(d) => {
            (above, below) = ([d.start + d.n], [d.start - 1]);
            bad.push(("above range", Action::Int(&above)));
            bad.push(("below range", Action::Int(&below)));
            bad.push(("float for discrete", Action::Float(&[0.0])));
        }
        Space::MultiDiscrete(m) => bad.push(("above range", Action::Int(&m.nvec))),
        Space::Box(b) => {
            bad.push(("NaN", Action::Float(&nan_f32)));
            bad.push(("int for Box", Action::Int(&ints)));
            if b.dtype == DType::Float64 {
                bad.push(("NaN float64", Action::Float64(&nan_f64)));
                bad.push(("infinite float64", Action::Float64(&inf_f64)));
            } else {
                bad.push(("float64 for a float32 Box", Action::Float64(&ZEROS[..n.min(ZEROS.len())])));
            }
        }
    }
    for (what, action) in &bad {
        if env.step(*action, obs.as_mut()).is_ok() {
            return Err(format!("{id}: {what} action accepted"));
        }
    }
    // Observation buffers of the wrong length or type are errors too, not panics.
    let mut short = vec![0.0f32; env.spec().obs_len().saturating_sub(1)];
    let mut long_u8 = vec![0u8; env.spec().obs_len() + 1];
    let valid = action_sequence(&space, 3, 1);
    for (what, buffer) in [("short", ObsMut::F32(&mut short)), ("uint8", ObsMut::U8(&mut long_u8))] {
        if env.step(valid[0].as_action(), buffer).is_ok() {
            return Err(format!("{id}: a {what} observation buffer was accepted"));
        }
    }
    if env.reset(Some(1), &ResetOptions::default(), ObsMut::F32(&mut short)).is_ok() {
        return Err(format!("{id}: reset into a short observation buffer was accepted"));
    }
    // The env is still usable and on the same trajectory as its twin.
    for (t, a) in action_sequence(&space, 4, 5).iter().enumerate() {
        let s1 = env.step(a.as_action(), obs.as_mut()).map_err(|e| format!("{id}: after bad actions: {e}"))?;
        let s2 = twin.step(a.as_action(), twin_obs.as_mut()).map_err(|e| e.to_string())?;
        if s1 != s2 || obs != twin_obs {
            return Err(format!("{id}: rejected actions changed the trajectory (step {t})"));
        }
    }
    // The vector engine rejects a batch with one bad row and changes nothing.
    let mut venv = VecEnv::make(id, &short_config(), 2, VecOptions::default()).map_err(|e| e.to_string())?;
    venv.reset(Some(1)).map_err(|e| e.to_string())?;
    let before = venv.batch().clone();
    let (ints, floats, doubles) = (vec![i64::MAX; 2 * n], vec![f32::NAN; 2 * n], vec![f64::NAN; 2 * n]);
    let action = match space.box_dtype() {
        None => Action::Int(&ints),
        Some(DType::Float64) => Action::Float64(&doubles),
        Some(_) => Action::Float(&floats),
    };
    if venv.step(action).is_ok() || venv.batch() != &before {
        return Err(format!("{id}: vector env accepted a bad batch or changed on rejecting it"));
    }
    Ok(())
}

/// An explicit initial state passed as the `state` reset option is the state the env reports,
/// the same state and seed give the same first observation, and a state of the wrong length is
/// rejected.
pub fn check_explicit_state(id: &str) -> CheckResult {
    let mut env = make_short(id)?;
    let Some(len) = env.spec().state_len else {
        return Err(format!("{id}: the spec has no state_len: every Keel env exposes its state"));
    };
    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(0), &ResetOptions::default(), obs.as_mut()).map_err(|e| e.to_string())?;
    let Some(state) = env.state() else { return Err(format!("{id}: spec has state_len but state() is None")) };
    if state.len() != len {
        return Err(format!("{id}: state() has {} values, spec says {len}", state.len()));
    }
    let mut other = make_short(id)?;
    let mut other_obs = other.spec().obs_buffer(1);
    other
        .reset(Some(99), &ResetOptions::with_state(state.clone()), other_obs.as_mut())
        .map_err(|e| format!("{id}: reset with state: {e}"))?;
    if other.state() != Some(state.clone()) {
        return Err(format!("{id}: reset with an explicit state does not reproduce it"));
    }
    // The first observation is a function of the state and, for envs with sensor noise, of the
    // seed: the same state and seed give the same observation.
    env.reset(Some(7), &ResetOptions::with_state(state.clone()), obs.as_mut()).map_err(|e| e.to_string())?;
    other.reset(Some(7), &ResetOptions::with_state(state.clone()), other_obs.as_mut()).map_err(|e| e.to_string())?;
    if other_obs != obs {
        return Err(format!("{id}: the same explicit state and seed give different observations"));
    }
    let short = ResetOptions::with_state(vec![0.0; len + 1]);
    if other.reset(None, &short, other_obs.as_mut()).is_ok() {
        return Err(format!("{id}: a state of the wrong length was accepted"));
    }
    Ok(())
}

/// A snapshot taken mid-episode and restored into a fresh env (single and vector) continues on
/// exactly the same trajectory. Envs that cannot snapshot are skipped.
pub fn check_snapshot_restore(id: &str) -> CheckResult {
    let mut env = make_short(id)?;
    let actions = action_sequence(&env.spec().action_space, 8, 12);
    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(21), &ResetOptions::default(), obs.as_mut()).map_err(|e| e.to_string())?;
    for a in &actions[..3] {
        env.step(a.as_action(), obs.as_mut()).map_err(|e| e.to_string())?;
    }
    let Some(snapshot) = env.snapshot() else {
        return Err(format!("{id}: cannot snapshot: every Keel env must, for checkpoints"));
    };
    let mut clone = make_short(id)?;
    clone.restore(&snapshot).map_err(|e| format!("{id}: restore: {e}"))?;
    let (a, b) = (rollout_from(env.as_mut(), &actions[3..])?, rollout_from(clone.as_mut(), &actions[3..])?);
    if a != b {
        return Err(format!("{id}: the restored env left the original trajectory"));
    }
    if clone.restore(&serde_json::json!({"nonsense": 1})).is_ok() {
        return Err(format!("{id}: a malformed snapshot was accepted"));
    }
    let options = VecOptions { workers: 2, autoreset_mode: AutoresetMode::NextStep };
    let mut venv = VecEnv::make(id, &short_config(), 3, options).map_err(|e| e.to_string())?;
    venv.reset(Some(5)).map_err(|e| e.to_string())?;
    let space = venv.spec().action_space.clone();
    let batches: Vec<ActionBatch> = (0..20).map(|k| ActionBatch::new(&action_sequence(&space, k, 3))).collect();
    let step = |v: &mut VecEnv, k: usize| {
        v.step(batches[k].action(&space)).map(|_| v.batch().clone()).map_err(|e| e.to_string())
    };
    for k in 0..10 {
        step(&mut venv, k)?;
    }
    let Some(snapshot) = venv.snapshot() else { return Err(format!("{id}: env snapshots but vector does not")) };
    let mut other = VecEnv::make(id, &short_config(), 3, VecOptions::default()).map_err(|e| e.to_string())?;
    other.restore(&snapshot).map_err(|e| format!("{id}: vector restore: {e}"))?;
    for k in 10..20 {
        if step(&mut venv, k)? != step(&mut other, k)? {
            return Err(format!("{id}: restored vector differs at step {k}"));
        }
    }
    Ok(())
}

fn rollout_from(env: &mut dyn Env, actions: &[OwnedAction]) -> Result<Vec<Record>, String> {
    let mut obs = env.spec().obs_buffer(1);
    let mut out = Vec::new();
    for a in actions {
        let s = env.step(a.as_action(), obs.as_mut()).map_err(|e| e.to_string())?;
        out.push(Record { obs: obs.clone(), reward: s.reward, terminated: s.terminated, truncated: s.truncated });
        if s.terminated || s.truncated {
            env.reset(None, &ResetOptions::default(), obs.as_mut()).map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// A masked reset resets the selected envs and leaves every other row of the batch as it was,
/// identically on the serial executor and on 1 and 2 workers.
pub fn check_masked_reset(id: &str) -> CheckResult {
    let mut results = Vec::new();
    for workers in 0..=2 {
        let options = VecOptions { workers, autoreset_mode: AutoresetMode::NextStep };
        let mut venv = VecEnv::make(id, &short_config(), 4, options).map_err(|e| e.to_string())?;
        let space = venv.spec().action_space.clone();
        venv.reset(Some(40)).map_err(|e| e.to_string())?;
        venv.step(ActionBatch::new(&action_sequence(&space, 1, 4)).action(&space)).map_err(|e| e.to_string())?;
        let before = venv.batch().clone();
        let mask = [true, false, false, false];
        venv.reset_with(Seeds::Continue, OptionsFor::Sampler, Some(&mask)).map_err(|e| e.to_string())?;
        let after = venv.batch().clone();
        let ol = venv.spec().obs_len();
        for i in 1..4 {
            if after.obs.row(i, ol) != before.obs.row(i, ol) || after.reward[i] != before.reward[i] {
                return Err(format!(
                    "{id}: a masked reset changed row {i}, which it did not reset ({workers} workers)"
                ));
            }
        }
        let obs_space = &venv.spec().observation_space;
        if !obs_space.contains(after.obs.row(0, ol)) || after.reward[0] != 0.0 {
            return Err(format!("{id}: the reset row is not a fresh start ({workers} workers)"));
        }
        results.push(after);
    }
    if results.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("{id}: masked resets differ between worker counts"));
    }
    Ok(())
}

/// The per-step extras the spec declares reach the batch, equal the single env's, and are finite.
pub fn check_extras(id: &str) -> CheckResult {
    let mut env = make_short(id)?;
    let e = env.spec().extras_len();
    let space = env.spec().action_space.clone();
    let actions = action_sequence(&space, 12, 5);
    let mut venv = VecEnv::make(id, &short_config(), 1, VecOptions::default()).map_err(|e| e.to_string())?;
    venv.reset(Some(3)).map_err(|e| e.to_string())?;
    let mut obs = env.spec().obs_buffer(1);
    env.reset(Some(3), &ResetOptions::default(), obs.as_mut()).map_err(|e| e.to_string())?;
    let mut single = vec![0.0; e];
    for (t, a) in actions.iter().enumerate() {
        let step = env.step(a.as_action(), obs.as_mut()).map_err(|e| e.to_string())?;
        venv.step(a.as_action()).map_err(|e| e.to_string())?;
        env.write_extras(&mut single);
        let batch = venv.batch();
        if batch.extras.len() != e || batch.extras != single {
            return Err(format!("{id}: the vector's extras differ from the single env's at step {t}"));
        }
        if single.iter().any(|x| !x.is_finite()) {
            return Err(format!("{id}: non-finite extras {single:?} at step {t}"));
        }
        if step.terminated || step.truncated {
            break;
        }
    }
    Ok(())
}

/// Finite float64 values for the dtype check.
const ZEROS: [f64; 64] = [0.0; 64];

/// Config of [`BytePattern`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BytePatternConfig {
    /// Observation shape (default `[2, 3, 4]`).
    pub shape: Vec<usize>,
    /// Steps until the episode terminates (default 10).
    pub episode_length: u64,
    /// An action that makes `step` panic (default none): a stand-in for a buggy env.
    pub panic_on: Option<i64>,
    /// After that panic, every later `reset` and `step` panics too (default false): a state a
    /// panic tore mid-step, which a reset cannot repair.
    pub panic_tears: bool,
    /// That panic's payload panics again when dropped (default false): a panic that escapes
    /// the engine's `catch_unwind`.
    pub panic_escapes: bool,
    /// Milliseconds each construction sleeps (default 0): a stand-in for an env that is slow to
    /// make (an emulator loading its game), for tests that stop a long vector construction.
    pub make_delay_ms: u64,
}

impl Default for BytePatternConfig {
    fn default() -> Self {
        Self {
            shape: vec![2, 3, 4],
            episode_length: 10,
            panic_on: None,
            panic_tears: false,
            panic_escapes: false,
            make_delay_ms: 0,
        }
    }
}

impl crate::config::Validate for BytePatternConfig {
    fn validate(&self) -> Result<(), crate::config::FieldError> {
        let len = self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if self.shape.is_empty() || !len.is_some_and(|l| (1..=1 << 24).contains(&l)) {
            return Err(crate::config::FieldError::new("shape", "needs 1 to 2^24 elements"));
        }
        if self.episode_length == 0 {
            return Err(crate::config::FieldError::new("episode_length", "must be at least 1"));
        }
        Ok(())
    }
}

/// A `uint8` image env for tests of the byte path (engine, Python, trainers): the observation
/// is a pattern of the step count, the start offset drawn at reset and the last action
/// (`Discrete(4)`); the reward is the action; one extra, `step`. Registered by
/// [`register_test_envs`] as `keel-test/BytePattern-v0`, never by default.
pub struct BytePattern {
    config: BytePatternConfig,
    spec: crate::env::EnvSpec,
    rng: crate::rng::EnvRng,
    offset: u8,
    steps: u64,
    started: bool,
    /// Set by a `panic_tears` panic.
    torn: bool,
}

/// The payload of a `panic_escapes` panic: dropping it panics.
struct EscapingPanic;

impl Drop for EscapingPanic {
    fn drop(&mut self) {
        panic!("BytePattern's panic payload panicked when dropped");
    }
}

impl crate::env::Registered for BytePattern {
    const ID: &'static str = "keel-test/BytePattern-v0";
    const DESCRIPTION: &'static str = "Test env: uint8 image observations of a step pattern";
    const MAX_EPISODE_STEPS: Option<u64> = None;
    type Config = BytePatternConfig;

    fn spec(config: &BytePatternConfig) -> crate::Result<crate::env::EnvSpec> {
        let space = crate::space::BoxSpace::uniform(0.0, 255.0, config.shape.clone(), DType::Uint8);
        Ok(crate::env::EnvSpec {
            id: Self::ID.into(),
            observation_space: Space::Box(space),
            action_space: Space::Discrete(crate::space::Discrete { n: 4, start: 0 }),
            max_episode_steps: None,
            reward_threshold: None,
            state_len: Some(2),
            extras: vec!["step".into()],
        })
    }

    fn new(config: BytePatternConfig) -> crate::Result<Self> {
        std::thread::sleep(std::time::Duration::from_millis(config.make_delay_ms));
        let spec = <Self as crate::env::Registered>::spec(&config)?;
        Ok(Self { config, spec, rng: crate::rng::EnvRng::default(), offset: 0, steps: 0, started: false, torn: false })
    }
}

impl BytePattern {
    fn write(&self, obs: &mut [u8], action: i64) {
        for (i, o) in obs.iter_mut().enumerate() {
            *o = (i as u64 + self.steps * 7 + u64::from(self.offset) + action as u64) as u8;
        }
    }
}

impl Env for BytePattern {
    fn spec(&self) -> &crate::env::EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> crate::Result<()> {
        let obs = obs.u8(self.spec.obs_len())?;
        if self.torn {
            panic!("BytePattern reset after its panic tore it");
        }
        let state = match &options.state {
            Some(s) if s.len() == 2 && s.iter().all(|v| v.is_finite()) => Some((s[0] as u8, s[1] as u64)),
            Some(s) => return Err(EnvError::InvalidState(format!("expected 2 finite values, got {s:?}"))),
            None => None,
        };
        if let Some(key) = options.params.keys().next() {
            return Err(EnvError::UnknownField {
                context: Self::ID_CONTEXT.into(),
                field: key.clone(),
                known: "(none)".into(),
            });
        }
        self.rng.reseed(seed);
        (self.offset, self.steps) = state.unwrap_or_else(|| (self.rng.uniform(0.0, 255.0) as u8, 0));
        self.started = true;
        self.write(obs, 0);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> crate::Result<crate::env::Step> {
        let obs = obs.u8(self.spec.obs_len())?;
        let a = self.spec.action_space.discrete_action(action)?;
        if !self.started {
            return Err(EnvError::ResetNeeded);
        }
        if self.torn {
            panic!("BytePattern stepped after its panic tore it");
        }
        if self.config.panic_on == Some(a) {
            self.torn = self.config.panic_tears;
            if self.config.panic_escapes {
                std::panic::panic_any(EscapingPanic);
            }
            panic!("BytePattern asked to panic on action {a}");
        }
        self.steps += 1;
        self.write(obs, a);
        Ok(crate::env::Step {
            reward: a as f64,
            terminated: self.steps >= self.config.episode_length,
            truncated: false,
        })
    }

    fn write_extras(&self, out: &mut [f64]) {
        out[0] = self.steps as f64;
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.started.then(|| vec![f64::from(self.offset), self.steps as f64])
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> crate::Result<()> {
        match params.keys().next() {
            None => Ok(()),
            Some(key) => Err(EnvError::UnknownField {
                context: Self::ID_CONTEXT.into(),
                field: key.clone(),
                known: "(none)".into(),
            }),
        }
    }

    fn params(&self) -> Value {
        Value::Object(Map::new())
    }

    crate::snapshot::snapshot_fields!(rng, offset, steps, started);
}

impl BytePattern {
    const ID_CONTEXT: &'static str = "keel-test/BytePattern-v0 reset options";
}

/// Registers the test envs ([`BytePattern`]); tests and the Python test suite call it.
pub fn register_test_envs() -> crate::Result<()> {
    registry::register(registry::entry::<BytePattern>())
}

/// Every conformance check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("seed_determinism", check_seed_determinism),
    ("observations_in_space", check_observations_in_space),
    ("vector_matches_single", check_vector_matches_single),
    ("worker_counts", check_worker_counts),
    ("autoreset_modes", check_autoreset_modes),
    ("bad_actions", check_bad_actions),
    ("explicit_state", check_explicit_state),
    ("snapshot_restore", check_snapshot_restore),
    ("masked_reset", check_masked_reset),
    ("extras", check_extras),
];

/// Data that `scripts/setup.sh` installs outside the repository and some envs need. Tests that
/// need it skip where it is absent, unless the test command requires it (`scripts/test.sh` sets
/// [`Data::variable`] to `1`), where absence is a failure: one rule for every test of the
/// workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    /// controlgym's COMPleib matrices (the linear systems).
    Controlgym,
    /// The humanoid model and its motion clips (from pybullet's wheel).
    Humanoid,
}

impl Data {
    /// The variable that, set to `1`, makes missing data a failure.
    pub fn variable(self) -> &'static str {
        match self {
            Data::Controlgym => "KEEL_REQUIRE_CONTROLGYM_DATA",
            Data::Humanoid => "KEEL_REQUIRE_HUMANOID_DATA",
        }
    }

    /// Whether the test command requires this data.
    pub fn required(self) -> bool {
        std::env::var(self.variable()).is_ok_and(|v| v == "1")
    }

    /// A test's skip for want of this data (`why` says what is missing): a note naming `what`,
    /// or a panic where the data is required.
    pub fn skip(self, what: &str, why: impl std::fmt::Display) {
        assert!(!self.required(), "{what}: {why} (required here: {}=1)", self.variable());
        eprintln!("{what}: skipped, {why}");
    }

    /// Whether `result` says this data is missing ([`EnvError::DataMissing`]); if so the test
    /// skips ([`Data::skip`]). Any other result, good or bad, is `false`: the test goes on and
    /// judges it.
    pub fn missing<T>(self, what: &str, result: &Result<T, EnvError>) -> bool {
        match result {
            Err(EnvError::DataMissing(why)) => {
                self.skip(what, why);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod data_tests {
    use super::*;

    /// A data error skips unless required, where it fails; other results are the test's to judge.
    #[test]
    fn missing_data_skips_or_fails_as_the_test_command_asks() {
        let missing: Result<(), EnvError> = Err(EnvError::DataMissing("no clips".into()));
        let other: Result<(), EnvError> = Err(EnvError::InvalidAction("bad".into()));
        // The variable is the process's: decide by what is set, and check both branches' shapes.
        if Data::Humanoid.required() {
            assert!(std::panic::catch_unwind(|| Data::Humanoid.missing("t", &missing)).is_err());
        } else {
            assert!(Data::Humanoid.missing("t", &missing));
        }
        assert!(!Data::Humanoid.missing("t", &other));
        assert!(!Data::Controlgym.missing("t", &Ok::<(), EnvError>(())));
    }
}
