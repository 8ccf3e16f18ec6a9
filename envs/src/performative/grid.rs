//! [`PerformativeGrid`]: the env, its config, and `deploy`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::TabularModel;
use super::response::{Population, Response};
use super::world::{
    GOAL, GridWorld, NO_INTERVENTION, NUM_ACTIONS, NUM_STATES, PAPER_FOLLOWERS, check_policy, sample_index,
};
use crate::config::{FieldError, Validate, finite, overlay};
use crate::env::{Env, EnvSpec, Registered, ResetOptions, Step};
use crate::obs::ObsMut;
use crate::error::{EnvError, Result};
use crate::rng::EnvRng;
use crate::space::{Action, Discrete, Space};

/// Construction config of [`PerformativeGrid`]; defaults are the paper's (Fig. 2(a)'s β = 10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerformativeGridConfig {
    /// Inverse temperature β of A2's softmax response: 0 is uniform, large is a best response
    /// (default 10; the paper sweeps 0.1 to 200).
    pub beta: f64,
    /// Discount γ of the followers' values and of occupancy measures, in (0, 1) (default 0.9).
    pub gamma: f64,
    /// Cost C a follower adds to its reward when it intervenes, <= 0 (default -0.05).
    pub intervention_cost: f64,
    /// Number of responding followers, the first ones of the paper's 50 (default 50).
    pub followers: usize,
    /// Value-iteration tolerance of each follower's best response and of occupancy measures
    /// (default 1e-5, as the paper's code).
    pub tolerance: f64,
}

impl Default for PerformativeGridConfig {
    fn default() -> Self {
        Self { beta: 10.0, gamma: 0.9, intervention_cost: -0.05, followers: PAPER_FOLLOWERS, tolerance: 1e-5 }
    }
}

impl Validate for PerformativeGridConfig {
    fn validate(&self) -> Result<(), FieldError> {
        finite("beta", self.beta)?;
        if self.beta < 0.0 {
            return Err(FieldError::new("beta", format!("must be >= 0, got {}", self.beta)));
        }
        if !(self.gamma > 0.0 && self.gamma < 1.0) {
            return Err(FieldError::new("gamma", format!("must be in (0, 1), got {}", self.gamma)));
        }
        finite("intervention_cost", self.intervention_cost)?;
        if self.intervention_cost > 0.0 {
            return Err(FieldError::new("intervention_cost", format!("must be <= 0, got {}", self.intervention_cost)));
        }
        if !(1..=PAPER_FOLLOWERS).contains(&self.followers) {
            return Err(FieldError::new(
                "followers",
                format!("must be in 1..={PAPER_FOLLOWERS}, got {}", self.followers),
            ));
        }
        if !(self.tolerance > 0.0 && self.tolerance < 1.0) {
            return Err(FieldError::new("tolerance", format!("must be in (0, 1), got {}", self.tolerance)));
        }
        Ok(())
    }
}

/// Persistent parameters: the deployed learner policy (set with [`Env::set_params`] or
/// [`PerformativeGrid::deploy`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerformativeGridParams {
    /// The learner policy A2 responds to, `64` rows of `4` action probabilities; `null`: the
    /// paper's initial ε-greedy policy.
    pub learner_policy: Option<Vec<[f64; NUM_ACTIONS]>>,
}

impl Validate for PerformativeGridParams {
    fn validate(&self) -> Result<(), FieldError> {
        match &self.learner_policy {
            Some(rows) => check_policy(&rows.concat()).map_err(|e| FieldError::new("learner_policy", e.to_string())),
            None => Ok(()),
        }
    }
}

/// The performative grid-world (see the [module docs](super)).
pub struct PerformativeGrid {
    config: PerformativeGridConfig,
    world: &'static GridWorld,
    spec: EnvSpec,
    rng: EnvRng,
    params: PerformativeGridParams,
    /// The deployed learner policy, row-major `64 x 4`.
    policy: Vec<f64>,
    /// A2's response to `policy`.
    response: Response,
    /// The model `policy` induces through `response`.
    model: TabularModel,
    /// The current cell; `None` before the first reset.
    cell: Option<usize>,
}

impl Registered for PerformativeGrid {
    const ID: &'static str = "keel/PerformativeGrid-v0";
    const DESCRIPTION: &'static str =
        "8x8 grid whose rewards and transitions respond to the deployed policy (performative RL, ICML'23)";
    const MAX_EPISODE_STEPS: Option<u64> = Some(100);
    type Config = PerformativeGridConfig;

    fn spec(_config: &PerformativeGridConfig) -> Result<EnvSpec> {
        Ok(EnvSpec {
            id: Self::ID.into(),
            observation_space: Space::Discrete(Discrete { n: NUM_STATES as i64, start: 0 }),
            action_space: Space::Discrete(Discrete { n: NUM_ACTIONS as i64, start: 0 }),
            max_episode_steps: Self::MAX_EPISODE_STEPS,
            reward_threshold: None,
            extras: Vec::new(),
            state_len: Some(1),
        })
    }

    fn new(config: PerformativeGridConfig) -> Result<Self> {
        let world = GridWorld::paper()?;
        let spec = <Self as Registered>::spec(&config)?;
        let policy = world.initial_policy(config.gamma, config.tolerance);
        let response = population(world, &config).respond(&policy, config.beta);
        let model = TabularModel::induced(world, &response);
        Ok(Self {
            config,
            world,
            spec,
            rng: EnvRng::default(),
            params: PerformativeGridParams::default(),
            policy,
            response,
            model,
            cell: None,
        })
    }
}

fn population<'w>(world: &'w GridWorld, config: &PerformativeGridConfig) -> Population<'w> {
    Population::new(world, config.followers, config.gamma, config.intervention_cost, config.tolerance)
}

impl PerformativeGrid {
    /// Deploys the learner policy `policy` (row-major `64 x 4` action probabilities): A2
    /// recomputes its response, which changes the rewards and transitions of every later step.
    /// A policy that is not a distribution is an error that changes nothing.
    pub fn deploy(&mut self, policy: &[f64]) -> Result<()> {
        check_policy(policy)?;
        self.install(policy.to_vec());
        self.params.learner_policy = Some(policy.chunks_exact(NUM_ACTIONS).map(|r| [r[0], r[1], r[2], r[3]]).collect());
        Ok(())
    }

    fn install(&mut self, policy: Vec<f64>) {
        self.response = population(self.world, &self.config).respond(&policy, self.config.beta);
        self.model = TabularModel::induced(self.world, &self.response);
        self.policy = policy;
    }

    /// The construction config.
    pub fn config(&self) -> &PerformativeGridConfig {
        &self.config
    }

    /// The static world (grids, start distribution, moves).
    pub fn world(&self) -> &'static GridWorld {
        self.world
    }

    /// The deployed learner policy, row-major `64 x 4`.
    pub fn deployed_policy(&self) -> &[f64] {
        &self.policy
    }

    /// A2's current response `π2(a2 | s)` (a2 = 4: no intervention).
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The exact reward and transition model induced by the current response.
    pub fn model(&self) -> &TabularModel {
        &self.model
    }

    /// The occupancy measure of `policy` in the current exact model (see
    /// [`TabularModel::occupancy`]), with the config's γ and tolerance.
    pub fn occupancy(&self, policy: &[f64]) -> Result<Vec<f64>> {
        check_policy(policy)?;
        Ok(self.model.occupancy(policy, &self.world.start, self.config.gamma, self.config.tolerance))
    }

    /// Draws a start cell from ρ.
    fn draw_start(&mut self) -> usize {
        let u = self.rng.uniform(0.0, 1.0);
        sample_index(&self.world.start, u).unwrap_or(0)
    }
}

fn explicit_cell(options: &ResetOptions) -> Result<Option<usize>> {
    let Some(state) = &options.state else { return Ok(None) };
    let &[cell] = state.as_slice() else {
        return Err(EnvError::InvalidState(format!("expected 1 value (the cell), got {}", state.len())));
    };
    if cell.fract() != 0.0 || !(0.0..GOAL as f64).contains(&cell) {
        return Err(EnvError::InvalidState(format!(
            "the cell must be an integer in 0..{GOAL} (not the goal), got {cell}"
        )));
    }
    Ok(Some(cell as usize))
}

impl Env for PerformativeGrid {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>, options: &ResetOptions, obs: ObsMut<'_>) -> Result<()> {
        let obs = obs.f32(1)?;
        if !options.params.is_empty() {
            return Err(EnvError::InvalidField {
                context: format!("{} reset options", Self::ID),
                field: options.params.keys().next().cloned().unwrap_or_default(),
                message: "a deployment changes every later episode: use set_params or deploy".into(),
            });
        }
        let explicit = explicit_cell(options)?;
        self.rng.reseed(seed);
        let cell = match explicit {
            Some(cell) => cell,
            None => self.draw_start(),
        };
        self.cell = Some(cell);
        obs[0] = cell as f32;
        Ok(())
    }

    #[inline]
    fn step(&mut self, action: Action<'_>, obs: ObsMut<'_>) -> Result<Step> {
        let obs = obs.f32(1)?;
        let action = self.spec.action_space.discrete_action(action)?;
        let cell = self.cell.ok_or(EnvError::ResetNeeded)?;
        if cell == GOAL {
            // Absorbing: no reward, no move.
            obs[0] = GOAL as f32;
            return Ok(Step { reward: 0.0, terminated: true, truncated: false });
        }
        let u = self.rng.uniform(0.0, 1.0);
        let a2 = sample_index(&self.response[cell], u).unwrap_or(NO_INTERVENTION);
        let mover = if a2 == NO_INTERVENTION { action as usize } else { a2 };
        let next = self.world.next[cell][mover];
        self.cell = Some(next);
        obs[0] = next as f32;
        Ok(Step { reward: self.world.cell_reward[next], terminated: next == GOAL, truncated: false })
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.cell.map(|c| vec![c as f64])
    }

    fn set_params(&mut self, params: &Map<String, Value>) -> Result<()> {
        let context = format!("{} parameters", Self::ID);
        let updated = overlay(&self.params, params, &context)?.into_owned();
        let policy = match &updated.learner_policy {
            Some(rows) => rows.concat(),
            None => self.world.initial_policy(self.config.gamma, self.config.tolerance),
        };
        if policy != self.policy {
            self.install(policy);
        }
        self.params = updated;
        Ok(())
    }

    fn params(&self) -> Value {
        serde_json::to_value(&self.params).unwrap_or(Value::Null)
    }

    fn snapshot(&self) -> Option<Value> {
        Some(serde_json::json!({
            "policy": self.policy,
            "cell": self.cell,
            "rng": serde_json::to_value(&self.rng).ok()?,
            "params": serde_json::to_value(&self.params).ok()?,
        }))
    }

    /// Restores the deployed policy (recomputing the response and model it induces), the cell,
    /// the random stream and the parameters.
    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        fn field<T: serde::de::DeserializeOwned>(s: &Value, key: &str) -> Result<T> {
            let value = s
                .get(key)
                .cloned()
                .ok_or_else(|| EnvError::Snapshot(format!("{}: no `{key}`", PerformativeGrid::ID)))?;
            serde_json::from_value(value)
                .map_err(|e| EnvError::Snapshot(format!("{}: `{key}`: {e}", PerformativeGrid::ID)))
        }
        let policy: Vec<f64> = field(snapshot, "policy")?;
        check_policy(&policy).map_err(|e| EnvError::Snapshot(e.to_string()))?;
        let (cell, rng, params) = (field(snapshot, "cell")?, field(snapshot, "rng")?, field(snapshot, "params")?);
        if policy != self.policy {
            self.install(policy);
        }
        self.cell = cell;
        self.rng = rng;
        self.params = params;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fresh(config: PerformativeGridConfig) -> PerformativeGrid {
        PerformativeGrid::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn starts_in_the_top_row_or_left_column() {
        let mut env = fresh(PerformativeGridConfig::default());
        let mut obs = [0.0];
        for seed in 0..50 {
            env.reset(Some(seed), &ResetOptions::default(), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
            let cell = obs[0] as usize;
            assert!(cell < 8 || cell % 8 == 0, "start cell {cell}");
        }
    }

    #[test]
    fn empirical_transitions_follow_the_exact_model() {
        let mut env = fresh(PerformativeGridConfig { beta: 1.0, ..Default::default() });
        let (cell, action, draws) = (27usize, 3i64, 20_000);
        let mut counts = [0usize; NUM_STATES];
        let mut obs = [0.0];
        env.reset(Some(1), &ResetOptions::default(), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..draws {
            env.reset(None, &ResetOptions::with_state(vec![cell as f64]), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
            env.step(Action::Int(&[action]), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
            counts[obs[0] as usize] += 1;
        }
        let row = (cell * NUM_ACTIONS + action as usize) * NUM_STATES;
        for (next, &n) in counts.iter().enumerate() {
            let p = env.model().transition[row + next];
            let freq = n as f64 / draws as f64;
            // Five standard deviations of a binomial frequency.
            assert!((freq - p).abs() < 5.0 * (p * (1.0 - p) / draws as f64).sqrt() + 1e-9, "{next}: {freq} vs {p}");
        }
    }

    #[test]
    fn deploying_changes_the_response_and_bad_policies_change_nothing() {
        let mut env = fresh(PerformativeGridConfig::default());
        let before = *env.response();
        let uniform = vec![0.25; NUM_STATES * NUM_ACTIONS];
        env.deploy(&uniform).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(env.response(), &before);
        assert_eq!(env.deployed_policy(), uniform.as_slice());
        assert_eq!(env.params()["learner_policy"][0], json!([0.25, 0.25, 0.25, 0.25]));
        let after = *env.response();
        let mut bad = uniform.clone();
        bad[0] = 0.9;
        assert!(matches!(env.deploy(&bad), Err(EnvError::InvalidPolicy(m)) if m.contains("state 0")));
        assert_eq!(env.response(), &after);
        // The same deployment through set_params, and back to the paper's initial policy.
        let mut other = fresh(PerformativeGridConfig::default());
        let mut params = Map::new();
        params.insert("learner_policy".into(), json!(vec![[0.25; 4]; NUM_STATES]));
        other.set_params(&params).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.response(), &after);
        params.insert("learner_policy".into(), Value::Null);
        other.set_params(&params).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.response(), &before);
        params.insert("learner_policy".into(), json!(vec![[0.5; 4]; NUM_STATES]));
        let err = other.set_params(&params).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("learner_policy") && err.contains("sum to 2"), "{err}");
    }

    #[test]
    fn bad_config_and_options_are_named() {
        let err =
            crate::make("keel/PerformativeGrid-v0", &serde_json::from_value(json!({"beta": -1.0})).unwrap_or_default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(err.contains("beta") && err.contains(">= 0"), "{err}");
        let mut env = fresh(PerformativeGridConfig::default());
        let mut obs = [0.0];
        assert!(env.reset(None, &ResetOptions::with_state(vec![63.0]), ObsMut::F32(&mut obs)).is_err());
        assert!(env.reset(None, &ResetOptions::with_state(vec![2.5]), ObsMut::F32(&mut obs)).is_err());
        let mut options = ResetOptions::default();
        options.params.insert("learner_policy".into(), Value::Null);
        assert!(matches!(env.reset(None, &options, ObsMut::F32(&mut obs)), Err(EnvError::InvalidField { .. })));
    }

    #[test]
    fn the_goal_terminates_and_absorbs() {
        let mut env = fresh(PerformativeGridConfig { beta: 0.0, ..Default::default() });
        let mut obs = [0.0];
        env.reset(Some(0), &ResetOptions::with_state(vec![(GOAL - 1) as f64]), ObsMut::F32(&mut obs))
            .unwrap_or_else(|e| panic!("{e}"));
        // With β = 0 A2 moves at random four times in five: keep pushing right until the goal.
        let mut reached = None;
        for _ in 0..10_000 {
            let step = env.step(Action::Int(&[1]), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
            if step.terminated {
                reached = Some(step.reward);
                break;
            }
        }
        assert_eq!(reached, Some(1.0));
        let after = env.step(Action::Int(&[0]), ObsMut::F32(&mut obs)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((after.reward, after.terminated, obs[0]), (0.0, true, GOAL as f32));
    }
}
