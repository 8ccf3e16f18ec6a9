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
use crate::registry;
use crate::space::{Action, OwnedAction, Space};
use crate::vector::{AutoresetMode, Seeds, VecEnv, VecOptions};
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

/// Rows of a batch of actions, flattened.
fn flatten(actions: &[OwnedAction]) -> (Vec<i64>, Vec<f32>) {
    let (mut ints, mut floats) = (Vec::new(), Vec::new());
    for a in actions {
        match a {
            OwnedAction::Scalar(v) => ints.push(*v),
            OwnedAction::Ints(v) => ints.extend_from_slice(v),
            OwnedAction::Floats(v) => floats.extend_from_slice(v),
        }
    }
    (ints, floats)
}

/// One transition of a single env as recorded by the checks.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    obs: Vec<f32>,
    reward: f64,
    terminated: bool,
    truncated: bool,
}

/// Rolls `env` out for `steps` steps from `reset(seed)`, resetting (stream continued) whenever
/// an episode ends, as NextStep autoreset does. Returns the reset obs then one record per call.
fn rollout(env: &mut dyn Env, seed: u64, actions: &[OwnedAction]) -> Result<Vec<Record>, String> {
    let id = env.spec().id.clone();
    let mut obs = vec![0.0; env.spec().obs_len()];
    env.reset(Some(seed), &ResetOptions::default(), &mut obs).map_err(|e| format!("{id}: reset: {e}"))?;
    let mut out = vec![Record { obs: obs.clone(), reward: 0.0, terminated: false, truncated: false }];
    let mut needs_reset = false;
    for a in actions {
        if needs_reset {
            env.reset(None, &ResetOptions::default(), &mut obs).map_err(|e| format!("{id}: reset: {e}"))?;
            out.push(Record { obs: obs.clone(), reward: 0.0, terminated: false, truncated: false });
            needs_reset = false;
            continue;
        }
        let s = env.step(a.as_action(), &mut obs).map_err(|e| format!("{id}: step: {e}"))?;
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
    let mut obs = vec![0.0; a.spec().obs_len()];
    let starts: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            let seed = if k == 0 { Some(5) } else { None };
            a.reset(seed, &ResetOptions::default(), &mut obs).map(|_| obs.clone())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{id}: reset: {e}"))?;
    if starts[0] == starts[1] && starts[1] == starts[2] {
        return Err(format!("{id}: reset(None) repeats the seeded start"));
    }
    let mut other = vec![0.0; a.spec().obs_len()];
    b.reset(Some(6), &ResetOptions::default(), &mut other).map_err(|e| e.to_string())?;
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
        if !space.contains(&r.obs) {
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
        let (ints, floats) = flatten(&row);
        let action = if space.is_integer() { Action::Int(&ints) } else { Action::Float(&floats) };
        venv.step(action).map_err(|e| format!("{id}: vector step {t}: {e}"))?;
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
            let row = &b.obs[i * ol..(i + 1) * ol];
            if row != r.obs.as_slice()
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
        if !same[t].has_final_obs[0] || same[t].final_obs[..ol] != next[t].obs[..ol] {
            return Err(format!("{id}: SameStep: final_obs is not the terminal observation"));
        }
        if same[t].obs[..ol] != next[t + 1].obs[..ol] {
            return Err(format!("{id}: SameStep: the ending step does not return the reset observation"));
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
    let actions = action_sequence(&space, 9, 2);
    let (ints, floats) = flatten(&actions);
    let action = if space.is_integer() { Action::Int(&ints) } else { Action::Float(&floats) };
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
    venv.reset_with(Seeds::Continue, &ResetOptions::default(), Some(&mask)).map_err(|e| e.to_string())?;
    venv.step(action).map_err(|e| format!("{id}: Disabled: step after masked reset: {e}"))?;
    Ok(())
}

/// Bad actions (wrong length, wrong kind, NaN, out of a discrete range) are errors that leave
/// the env exactly as it was.
pub fn check_bad_actions(id: &str) -> CheckResult {
    let (mut env, mut twin) = (make_short(id)?, make_short(id)?);
    let space = env.spec().action_space.clone();
    let ol = env.spec().obs_len();
    let (mut obs, mut twin_obs) = (vec![0.0; ol], vec![0.0; ol]);
    env.reset(Some(11), &ResetOptions::default(), &mut obs).map_err(|e| e.to_string())?;
    twin.reset(Some(11), &ResetOptions::default(), &mut twin_obs).map_err(|e| e.to_string())?;
    let n = space.flat_len();
    let mut bad: Vec<(String, Vec<i64>, Vec<f32>, bool)> =
        vec![("too long".into(), vec![0; n + 1], vec![0.0; n + 1], true), ("empty".into(), vec![], vec![], true)];
    match &space {
        Space::Discrete(d) => {
            bad.push(("above range".into(), vec![d.start + d.n], vec![], true));
            bad.push(("below range".into(), vec![d.start - 1], vec![], true));
            bad.push(("float for discrete".into(), vec![], vec![0.0], false));
        }
        Space::MultiDiscrete(m) => bad.push(("above range".into(), m.nvec.clone(), vec![], true)),
        Space::Box(_) => {
            bad.push(("NaN".into(), vec![], vec![f32::NAN; n], false));
            bad.push(("infinite".into(), vec![], vec![f32::INFINITY; n], false));
            bad.push(("int for Box".into(), vec![0; n], vec![], true));
        }
    }
    for (what, ints, floats, use_ints) in &bad {
        let action = if *use_ints { Action::Int(ints) } else { Action::Float(floats) };
        if env.step(action, &mut obs).is_ok() {
            return Err(format!("{id}: {what} action accepted"));
        }
    }
    // The env is still usable and on the same trajectory as its twin.
    for (t, a) in action_sequence(&space, 4, 5).iter().enumerate() {
        let s1 = env.step(a.as_action(), &mut obs).map_err(|e| format!("{id}: after bad actions: {e}"))?;
        let s2 = twin.step(a.as_action(), &mut twin_obs).map_err(|e| e.to_string())?;
        if s1 != s2 || obs != twin_obs {
            return Err(format!("{id}: rejected actions changed the trajectory (step {t})"));
        }
    }
    // The vector engine rejects a batch with one bad row and changes nothing.
    let mut venv = VecEnv::make(id, &short_config(), 2, VecOptions::default()).map_err(|e| e.to_string())?;
    venv.reset(Some(1)).map_err(|e| e.to_string())?;
    let before = venv.batch().clone();
    let (ints, floats) = (vec![i64::MAX; 2 * n], vec![f32::NAN; 2 * n]);
    let action = if space.is_integer() { Action::Int(&ints) } else { Action::Float(&floats) };
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
    let Some(len) = env.spec().state_len else { return Ok(()) };
    let mut obs = vec![0.0; env.spec().obs_len()];
    env.reset(Some(0), &ResetOptions::default(), &mut obs).map_err(|e| e.to_string())?;
    let Some(state) = env.state() else { return Err(format!("{id}: spec has state_len but state() is None")) };
    if state.len() != len {
        return Err(format!("{id}: state() has {} values, spec says {len}", state.len()));
    }
    let mut other = make_short(id)?;
    let mut other_obs = vec![0.0; len.max(obs.len())];
    other_obs.truncate(obs.len());
    other
        .reset(Some(99), &ResetOptions::with_state(state.clone()), &mut other_obs)
        .map_err(|e| format!("{id}: reset with state: {e}"))?;
    if other.state() != Some(state.clone()) {
        return Err(format!("{id}: reset with an explicit state does not reproduce it"));
    }
    // The first observation is a function of the state and, for envs with sensor noise, of the
    // seed: the same state and seed give the same observation.
    env.reset(Some(7), &ResetOptions::with_state(state.clone()), &mut obs).map_err(|e| e.to_string())?;
    other.reset(Some(7), &ResetOptions::with_state(state.clone()), &mut other_obs).map_err(|e| e.to_string())?;
    if other_obs != obs {
        return Err(format!("{id}: the same explicit state and seed give different observations"));
    }
    let short = ResetOptions::with_state(vec![0.0; len + 1]);
    if other.reset(None, &short, &mut other_obs).is_ok() {
        return Err(format!("{id}: a state of the wrong length was accepted"));
    }
    Ok(())
}

/// A snapshot taken mid-episode and restored into a fresh env (single and vector) continues on
/// exactly the same trajectory. Envs that cannot snapshot are skipped.
pub fn check_snapshot_restore(id: &str) -> CheckResult {
    let mut env = make_short(id)?;
    let ol = env.spec().obs_len();
    let actions = action_sequence(&env.spec().action_space, 8, 12);
    let mut obs = vec![0.0; ol];
    env.reset(Some(21), &ResetOptions::default(), &mut obs).map_err(|e| e.to_string())?;
    for a in &actions[..3] {
        env.step(a.as_action(), &mut obs).map_err(|e| e.to_string())?;
    }
    let Some(snapshot) = env.snapshot() else { return Ok(()) };
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
    let batches: Vec<(Vec<i64>, Vec<f32>)> = (0..20).map(|k| flatten(&action_sequence(&space, k, 3))).collect();
    let step = |v: &mut VecEnv, k: usize| {
        let (ints, floats) = &batches[k];
        let action = if space.is_integer() { Action::Int(ints) } else { Action::Float(floats) };
        v.step(action).map(|_| v.batch().clone()).map_err(|e| e.to_string())
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
    let mut obs = vec![0.0; env.spec().obs_len()];
    let mut out = Vec::new();
    for a in actions {
        let s = env.step(a.as_action(), &mut obs).map_err(|e| e.to_string())?;
        out.push(Record { obs: obs.clone(), reward: s.reward, terminated: s.terminated, truncated: s.truncated });
        if s.terminated || s.truncated {
            env.reset(None, &ResetOptions::default(), &mut obs).map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
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
];
