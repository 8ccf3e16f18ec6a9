//! # The differentiable-physics family (`keel/Diff*-v0`, cargo feature `diff`)
//!
//! The six smooth systems of [`keel_physics::diff`] as ordinary Keel envs: the float64,
//! non-differentiable path of the very equations that keel-physics also runs on batched libtorch
//! tensors for differentiable rollouts (imitation via differentiable physics, `keel train --algo
//! ild`). A test in keel-physics holds the two paths equal to 1e-6.
//!
//! | id | state | obs | action | reward |
//! |---|---|---|---|---|
//! | `keel/DiffPendulum-v0` | θ, θ̇ (θ = 0 up) | cos θ, sin θ, θ̇ | torque | `−(2(1−cos θ) + 0.1θ̇² + 0.001u²)` |
//! | `keel/DiffCartPole-v0` | x, ẋ, θ, θ̇ | x, ẋ, cos θ, sin θ, θ̇ | force | `cos θ − 0.01x² − 0.001a²` |
//! | `keel/DiffReacher-v0` | q1, q2, q̇1, q̇2, goal | cos, sin, q̇, goal, tip − goal | 2 torques | `−‖tip − goal‖ − 0.01‖a‖²` |
//! | `keel/DiffPointMass-v0` | x, y, vx, vy | the state | 2 forces | `−‖x‖ − 0.01‖a‖²` |
//! | `keel/DiffAcrobot-v0` | θ1, θ2, θ̇1, θ̇2 | cos, sin, speeds | torque | tip height `−cos θ1 − cos(θ1+θ2)` |
//! | `keel/DiffHopper-v0` | body and foot x, z, velocities | all but the body's x | leg length, swing | body's forward speed `− 0.01‖a‖²` |
//!
//! Actions are `Box(-1, 1)`, clamped by the env (non-finite ones are rejected). Every episode
//! starts near the system's nominal state with uniform noise (`noise` per-reset parameter
//! scales it; default 1), or at an exact state via the `state` reset option (either way each
//! component finite and at most [`MAX_START_MAGNITUDE`] in magnitude), and is truncated
//! after 128 steps, the horizon of the differentiable rollouts. Configs: the systems' own
//! structs (e.g. [`keel_physics::diff::Pendulum`]); every field must be finite and positive.

use serde::{Deserialize, Serialize};

use keel_physics::diff::{Acrobot, CartPole, Hopper, Pendulum, PointMass, Reacher, System};

use crate::config::{FieldError, Validate, finite};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::error::{EnvError, Result};
use crate::obs::ObsMut;
use crate::registry;
use crate::rng::EnvRng;
use crate::snapshot::snapshot_fields;
use crate::space::{Action, BoxSpace, Space};

/// Episode length of every env of the family.
pub const HORIZON: u64 = 128;

/// Largest magnitude of a start state's component, explicit or drawn. The systems are planar
/// bodies measured in metres and radians that never come near it in an episode; beyond it their
/// squared terms (rewards, the cart-pole's θ̇²) leave float32 and the angles lose every digit
/// of float32 precision, so such a state is a typo, never an experiment.
pub const MAX_START_MAGNITUDE: f64 = 1e6;

/// Why [`MAX_START_MAGNITUDE`] bounds a start state, for its error.
const START_LIMIT_REASON: &str = "the largest start state of the differentiable systems";

/// A system of [`keel_physics::diff`] with its registered id.
pub trait DiffSystem: System {
    /// Versioned id.
    const ID: &'static str;
    /// One line for `keel list`.
    const DESCRIPTION: &'static str;
}

macro_rules! diff_system {
    ($system:ty, $id:literal, $description:literal) => {
        impl DiffSystem for $system {
            const ID: &'static str = $id;
            const DESCRIPTION: &'static str = $description;
        }

        impl Validate for $system {
            fn validate(&self) -> Result<(), FieldError> {
                match self.invalid_field() {
                    Some((field, message)) => Err(FieldError::new(field, message)),
                    None => Ok(()),
                }
            }
        }
    };
}

diff_system!(
    Pendulum,
    "keel/DiffPendulum-v0",
    "Pendulum swing-up from hanging down, smooth reward (differentiable physics)"
);
diff_system!(
    CartPole,
    "keel/DiffCartPole-v0",
    "Cart-pole balancing with a continuous force, no termination (differentiable physics)"
);
diff_system!(Reacher, "keel/DiffReacher-v0", "2-link planar arm reaching a goal (differentiable physics)");
diff_system!(PointMass, "keel/DiffPointMass-v0", "Damped 2-D point mass driven to the origin (differentiable physics)");
diff_system!(Acrobot, "keel/DiffAcrobot-v0", "Continuous-torque acrobot swinging its tip up (differentiable physics)");
diff_system!(
    Hopper,
    "keel/DiffHopper-v0",
    "Planar two-mass hopper with smooth penalty contacts, moving forward (differentiable physics)"
);

/// Registers the six envs (idempotent). The command line and the Python module call it.
pub fn register() -> Result<()> {
    registry::register(registry::entry::<DiffEnv<Pendulum>>())?;
    registry::register(registry::entry::<DiffEnv<CartPole>>())?;
    registry::register(registry::entry::<DiffEnv<Reacher>>())?;
    registry::register(registry::entry::<DiffEnv<PointMass>>())?;
    registry::register(registry::entry::<DiffEnv<Acrobot>>())?;
    registry::register(registry::entry::<DiffEnv<Hopper>>())
}

/// Every id of the family.
pub const IDS: [&str; 6] = [Pendulum::ID, CartPole::ID, Reacher::ID, PointMass::ID, Acrobot::ID, Hopper::ID];

/// Per-reset parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffStart {
    /// Scale of the start noise around the nominal state (default 1; 0: always the nominal);
    /// refused where it would draw a state beyond [`MAX_START_MAGNITUDE`].
    pub noise: f64,
}

impl Default for DiffStart {
    fn default() -> Self {
        Self { noise: 1.0 }
    }
}

impl Validate for DiffStart {
    fn validate(&self) -> Result<(), FieldError> {
        finite("noise", self.noise)?;
        if self.noise < 0.0 {
            return Err(FieldError::new("noise", format!("must be >= 0, got {}", self.noise)));
        }
        Ok(())
    }
}

/// A system of [`keel_physics::diff`] as a Keel env (see the module docs).
pub struct DiffEnv<S: DiffSystem> {
    system: S,
    params: DiffStart,
    spec: EnvSpec,
    rng: EnvRng,
    /// `None` before the first reset.
    state: Option<Vec<f64>>,
}

impl<S: DiffSystem + Validate> Registered for DiffEnv<S> {
    const ID: &'static str = S::ID;
    const DESCRIPTION: &'static str = S::DESCRIPTION;
    const MAX_EPISODE_STEPS: Option<u64> = Some(HORIZON);
    type Config = S;

    fn spec(_config: &S) -> Result<EnvSpec> {
        Ok(EnvSpec {
            id: S::ID.into(),
            observation_space: Space::Box(BoxSpace::symmetric(&vec![f64::INFINITY; S::OBS])),
            action_space: Space::Box(BoxSpace::symmetric(&vec![1.0; S::ACTION])),
            max_episode_steps: Some(HORIZON),
            reward_threshold: None,
            extras: Vec::new(),
            state_len: Some(S::STATE),
        })
    }

    fn new(system: S) -> Result<Self> {
        let spec = <Self as Registered>::spec(&system)?;
        Ok(Self { system, params: DiffStart::default(), spec, rng: EnvRng::default(), state: None })
    }
}

impl<S: DiffSystem> DiffEnv<S> {
    fn write_obs(&self, state: &[f64], obs: &mut [f32]) {
        for (o, v) in obs.iter_mut().zip(self.system.observe(state)) {
            *o = v as f32;
        }
    }

    /// Refuses a `noise` scale that would draw start states beyond [`MAX_START_MAGNITUDE`],
    /// naming the field and the start it would give.
    fn check_noise(&self, params: &DiffStart, context: &str) -> Result<()> {
        let nominal = self.system.nominal();
        let reach = nominal.iter().zip(self.system.start_noise()).map(|(x, w)| x.abs() + w * params.noise);
        match reach.fold(0.0, f64::max) {
            farthest if farthest > MAX_START_MAGNITUDE => Err(EnvError::InvalidField {
                context: context.into(),
                field: "noise".into(),
                message: format!(
                    "{:e} draws start states up to {farthest:.1e}, beyond {MAX_START_MAGNITUDE:e}",
                    params.noise
                ),
            }),
            _ => Ok(()),
        }
    }

    fn check_state(&self, state: &Option<Vec<f64>>) -> Result<()> {
        match state {
            Some(s) if s.len() != S::STATE => {
                Err(EnvError::InvalidState(format!("expected {} values, got {}", S::STATE, s.len())))
            }
            _ => Ok(()),
        }
    }
}

impl<S: DiffSystem + Validate> Env for DiffEnv<S> {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(S::OBS)?;
        let context = format!("{} reset options", S::ID);
        let params = crate::config::overlay(&self.params, &options.params, &context)?;
        self.check_noise(&params, &context)?;
        let explicit = options.checked_state(S::STATE, MAX_START_MAGNITUDE, START_LIMIT_REASON)?;
        self.rng.reseed(seed);
        let state = match explicit {
            Some(explicit) => explicit.to_vec(),
            None => {
                let u: Vec<f64> = (0..S::STATE).map(|_| self.rng.uniform(-1.0, 1.0) * params.noise).collect();
                self.system.start(&u)
            }
        };
        self.write_obs(&state, obs);
        self.state = Some(state);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(S::OBS)?;
        let mut a = vec![0.0; S::ACTION];
        self.spec.action_space.box_action_f64(action, &mut a)?;
        let state = self.state.as_ref().ok_or(EnvError::ResetNeeded)?;
        let reward = self.system.reward(state, &a);
        let next = self.system.step(state, &a);
        self.write_obs(&next, obs);
        self.state = Some(next);
        Ok(Step { reward, terminated: false, truncated: false })
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.state.clone()
    }

    fn set_params(&mut self, params: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let context = format!("{} reset parameters", S::ID);
        let params = crate::config::overlay(&self.params, params, &context)?.into_owned();
        self.check_noise(&params, &context)?;
        self.params = params;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or(serde_json::Value::Null)
    }

    snapshot_fields!(state, rng, params; check(state) = Self::check_state);
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::obs::ObsBuf;

    fn map(v: serde_json::Value) -> Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn every_env_registers_and_plays_a_full_episode() {
        register().unwrap_or_else(|e| panic!("{e}"));
        register().unwrap_or_else(|e| panic!("registering twice: {e}"));
        for id in IDS {
            let mut env = crate::make(id, &Map::new()).unwrap_or_else(|e| panic!("{id}: {e}"));
            let mut obs: ObsBuf = env.spec().obs_buffer(1);
            env.reset(Some(1), &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
            let width = env.spec().action_len();
            let action = crate::space::OwnedAction::Floats(vec![0.5f32; width]);
            let mut steps = 0;
            loop {
                let step = env.step(action.as_action(), obs.as_mut()).unwrap_or_else(|e| panic!("{id}: {e}"));
                steps += 1;
                assert!(step.reward.is_finite(), "{id}");
                if step.truncated || step.terminated {
                    assert!(!step.terminated, "{id}");
                    break;
                }
            }
            assert_eq!(steps, HORIZON, "{id}");
        }
    }

    #[test]
    fn env_steps_are_the_system_steps() {
        register().unwrap_or_else(|e| panic!("{e}"));
        let system = Hopper::default();
        let mut env = crate::make(Hopper::ID, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
        let mut obs: ObsBuf = env.spec().obs_buffer(1);
        let start = vec![0.0, 0.51, 0.01, 0.0, 0.1, 0.0, 0.0, 0.0];
        env.reset(Some(3), &ResetOptions::with_state(start.clone()), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        let step = env
            .step(crate::space::OwnedAction::Floats(vec![0.25f32, -2.0]).as_action(), obs.as_mut())
            .unwrap_or_else(|e| panic!("{e}"));
        // The action is float32 on the way in; -2 is clamped to -1 by the system.
        let a = [f64::from(0.25f32), -2.0];
        assert_eq!(step.reward, system.reward(&start, &a));
        assert_eq!(env.state(), Some(system.step(&start, &a)));
    }

    #[test]
    fn bad_configs_states_and_params_are_named() {
        register().unwrap_or_else(|e| panic!("{e}"));
        let err = crate::make(Pendulum::ID, &map(json!({"dt": 0.0}))).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("dt"), "{err}");
        let err = crate::make(Hopper::ID, &map(json!({"wings": 2}))).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("wings"), "{err}");
        let mut env = crate::make(CartPole::ID, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
        let mut obs: ObsBuf = env.spec().obs_buffer(1);
        assert!(env.reset(None, &ResetOptions::with_state(vec![0.0; 3]), obs.as_mut()).is_err());
        assert!(env.set_params(&map(json!({"noise": -1.0}))).is_err());
        assert!(env.step(crate::space::OwnedAction::Floats(vec![0.0]).as_action(), obs.as_mut()).is_err());
        env.set_params(&map(json!({"noise": 0.0}))).unwrap_or_else(|e| panic!("{e}"));
        env.reset(Some(9), &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.state(), Some(vec![0.0; 4]));
    }

    fn error_of(result: Result<()>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn absurd_or_non_finite_start_states_are_refused_naming_the_element() {
        register().unwrap_or_else(|e| panic!("{e}"));
        for id in IDS {
            let mut env = crate::make(id, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
            let len = env.spec().state_len.unwrap_or_default();
            let mut obs: ObsBuf = env.spec().obs_buffer(1);
            for (bad, shown) in [(1e30, "1e30"), (-2e6, "-2e6"), (f64::INFINITY, "inf"), (f64::NAN, "NaN")] {
                let mut state = vec![0.0; len];
                state[len - 1] = bad;
                let err = error_of(env.reset(Some(1), &ResetOptions::with_state(state), obs.as_mut()));
                let element = format!("element {}", len - 1);
                assert!(err.contains("initial state") && err.contains(&element) && err.contains(shown), "{id}: {err}");
            }
            let mut edge = vec![0.0; len];
            edge[0] = -MAX_START_MAGNITUDE;
            env.reset(Some(1), &ResetOptions::with_state(edge.clone()), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(env.state(), Some(edge), "{id}");
        }
    }

    #[test]
    fn a_refused_start_state_leaves_the_env_and_its_random_stream_as_they_were() {
        register().unwrap_or_else(|e| panic!("{e}"));
        let fresh = || crate::make(Pendulum::ID, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
        let (mut env, mut twin) = (fresh(), fresh());
        let mut obs: ObsBuf = env.spec().obs_buffer(1);
        env.reset(Some(1), &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        twin.reset(Some(1), &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        let before = env.state();
        assert!(env.reset(Some(5), &ResetOptions::with_state(vec![1e30, 0.0]), obs.as_mut()).is_err());
        assert_eq!(env.state(), before);
        env.reset(None, &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        twin.reset(None, &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(env.state(), twin.state(), "the refused reset reseeded the stream");
    }

    #[test]
    fn a_noise_scale_that_draws_absurd_starts_is_refused_naming_noise() {
        register().unwrap_or_else(|e| panic!("{e}"));
        let mut env = crate::make(CartPole::ID, &Map::new()).unwrap_or_else(|e| panic!("{e}"));
        let mut obs: ObsBuf = env.spec().obs_buffer(1);
        let err = error_of(env.set_params(&map(json!({"noise": 1e30}))));
        assert!(err.contains("`noise`") && err.contains("1e30") && err.contains("reset parameters"), "{err}");
        assert_eq!(env.params()["noise"], json!(1.0), "a refused noise was kept");
        let mut options = ResetOptions::default();
        options.params.insert("noise".into(), json!(1e9));
        let err = error_of(env.reset(Some(0), &options, obs.as_mut()));
        assert!(err.contains("`noise`") && err.contains("1e9") && err.contains("reset options"), "{err}");
        // A wide but sane start: the cart-pole's 0.05 half-widths times 1000.
        env.set_params(&map(json!({"noise": 1000.0}))).unwrap_or_else(|e| panic!("{e}"));
        env.reset(Some(0), &ResetOptions::default(), obs.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        let state = env.state().unwrap_or_default();
        assert!(state.iter().all(|v| v.abs() <= 50.0) && state.iter().any(|v| v.abs() > 0.05), "{state:?}");
    }
}
