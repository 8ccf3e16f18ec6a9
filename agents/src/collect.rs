//! The training envs as an algorithm sees them: a vector of envs stepped with network outputs,
//! observations already on the device, and the bookkeeping every algorithm needs (env steps,
//! finished episodes, per-step extras).
//!
//! The vector runs in `SameStep` autoreset mode: after a step, an env whose episode ended already
//! shows its next episode's first observation, and [`Transition::final_obs`] holds the terminal
//! one (what a truncated episode bootstraps from, and a replay buffer's next observation).

use serde::{Deserialize, Serialize};
use tch::Tensor;

use keel_envs::{EnvSpec, ObsBuf, VecEnv};

use crate::encode::{ActionDecoder, ObsEncoder};
use crate::error::Result;

/// How many of the latest finished episodes the training envs keep (and a checkpoint holds):
/// what the summary's final return averages over. Every episode is in the run's `metrics.csv`
/// (per iteration) and counted by [`Envs::episode_count`].
pub const RECENT_EPISODES: usize = 100;

/// A finished training episode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Global step at which it ended.
    pub global_step: u64,
    /// Undiscounted, unnormalised return.
    pub episode_return: f64,
    /// Length in steps.
    pub length: u64,
}

/// The finished episodes the training envs keep.
#[derive(Default)]
struct EpisodeLog {
    /// The latest: at most `2 * RECENT_EPISODES`, trimmed to the last `RECENT_EPISODES` when
    /// full (amortised, so neither memory nor a checkpoint grows with the run).
    latest: Vec<Episode>,
    /// Episodes finished since the start of the run.
    count: u64,
    /// Episodes finished since the last [`Envs::take_iteration_episodes`].
    this_iteration: Vec<Episode>,
}

impl EpisodeLog {
    fn push(&mut self, episode: Episode) {
        if self.latest.len() >= 2 * RECENT_EPISODES {
            self.latest.drain(..self.latest.len() - RECENT_EPISODES);
        }
        self.latest.push(episode);
        self.this_iteration.push(episode);
        self.count += 1;
    }

    fn recent(&self) -> &[Episode] {
        &self.latest[self.latest.len().saturating_sub(RECENT_EPISODES)..]
    }
}

/// What one vector step did.
pub struct Transition {
    /// Rewards, as the envs gave them.
    pub reward: Vec<f64>,
    /// Terminated flags.
    pub terminated: Vec<bool>,
    /// Truncated flags.
    pub truncated: Vec<bool>,
    /// The observations after the step, stored form `[N, width]` (for an env whose episode
    /// ended: the next episode's first). The observation statistics were updated with them.
    pub obs: Tensor,
    /// The envs whose episode ended at this step, in order.
    pub ended: Vec<usize>,
    /// Their terminal observations, stored form `[ended.len(), width]` (with the statistics as
    /// they were before this step's update).
    pub final_obs: Tensor,
}

/// The training envs (see the module docs).
pub struct Envs {
    venv: VecEnv,
    encoder: ObsEncoder,
    decoder: ActionDecoder,
    /// Which env's episode ended at the last step (so its current observation starts one).
    done: Vec<bool>,
    global_step: u64,
    episodes: EpisodeLog,
    /// Sums of each per-step extra over the steps of the current iteration, and their count.
    extras_sum: Vec<f64>,
    extras_steps: u64,
}

impl Envs {
    /// Training envs over a vector that has been reset, with its first observations counted in
    /// the encoder's statistics.
    pub(crate) fn new(venv: VecEnv, encoder: ObsEncoder) -> Self {
        let spec = venv.spec();
        let decoder = ActionDecoder::new(&spec.action_space);
        let extras = spec.extras_len();
        Self {
            done: vec![false; venv.num_envs()],
            venv,
            encoder,
            decoder,
            global_step: 0,
            episodes: EpisodeLog::default(),
            extras_sum: vec![0.0; extras],
            extras_steps: 0,
        }
    }

    /// Number of envs.
    pub fn num_envs(&self) -> usize {
        self.venv.num_envs()
    }

    /// The spec of each env.
    pub fn spec(&self) -> &EnvSpec {
        self.venv.spec()
    }

    /// The observation encoder (for network input from stored observations).
    pub fn encoder(&self) -> &ObsEncoder {
        &self.encoder
    }

    /// The vector itself (its batch, its sampler).
    pub fn vector(&self) -> &VecEnv {
        &self.venv
    }

    pub(crate) fn vector_mut(&mut self) -> &mut VecEnv {
        &mut self.venv
    }

    pub(crate) fn encoder_mut(&mut self) -> &mut ObsEncoder {
        &mut self.encoder
    }

    /// Env steps taken so far, over all envs.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// The latest finished training episodes, oldest first: the last [`RECENT_EPISODES`] (or
    /// fewer, early in a run).
    pub fn episodes(&self) -> &[Episode] {
        self.episodes.recent()
    }

    /// Training episodes finished since the start of the run.
    pub fn episode_count(&self) -> u64 {
        self.episodes.count
    }

    /// The episodes finished since the last call; starts a new list.
    pub(crate) fn take_iteration_episodes(&mut self) -> Vec<Episode> {
        std::mem::take(&mut self.episodes.this_iteration)
    }

    /// For each env, whether its current observation begins a new episode because the last step
    /// ended one.
    pub fn dones(&self) -> &[bool] {
        &self.done
    }

    /// The current observations, stored form `[N, width]` (current statistics, not updated).
    pub fn observe(&self) -> Tensor {
        self.encoder.store(self.venv.batch().obs.as_ref())
    }

    /// Steps every env with its row of `actions` (network outputs: `[N]` integers or `[N, dim]`
    /// reals, converted to the action space's type).
    pub fn step(&mut self, actions: &Tensor) -> Result<Transition> {
        let n = self.num_envs();
        self.global_step += n as u64;
        let action = self.decoder.decode(actions)?;
        self.venv.step(action.as_action())?;
        let batch = self.venv.batch();
        let (width, extras) = (self.venv.spec().obs_len(), self.extras_sum.len());
        let mut ended = Vec::new();
        for i in 0..n {
            if batch.episode_done[i] {
                self.episodes.push(Episode {
                    global_step: self.global_step,
                    episode_return: batch.episode_return[i],
                    length: batch.episode_length[i],
                });
            }
            if batch.has_final_obs[i] {
                ended.push(i);
            }
            // An env reset at this step shows the reset's extras; the step's are kept aside.
            let row = i * extras..(i + 1) * extras;
            let values = if batch.has_final_obs[i] { &batch.final_extras[row] } else { &batch.extras[row] };
            self.extras_sum.iter_mut().zip(values).for_each(|(s, v)| *s += v);
        }
        self.extras_steps += n as u64;
        let mut finals = ObsBuf::zeros(batch.obs.dtype(), ended.len() * width);
        for (row, &i) in ended.iter().enumerate() {
            finals.copy_row(row, &batch.final_obs, i, width);
        }
        let final_obs = self.encoder.store(finals.as_ref());
        self.encoder.update(batch.obs.as_ref());
        let obs = self.encoder.store(batch.obs.as_ref());
        self.done = (0..n).map(|i| batch.terminated[i] || batch.truncated[i]).collect();
        Ok(Transition {
            reward: batch.reward.clone(),
            terminated: batch.terminated.clone(),
            truncated: batch.truncated.clone(),
            obs,
            ended,
            final_obs,
        })
    }

    /// The mean of each per-step extra over the steps since the last call (NaN if none), in
    /// `spec.extras` order; starts a new count.
    pub(crate) fn take_extras_means(&mut self) -> Vec<f64> {
        let steps = self.extras_steps as f64;
        let means = self.extras_sum.iter().map(|s| if steps > 0.0 { s / steps } else { f64::NAN }).collect();
        self.extras_sum.iter_mut().for_each(|s| *s = 0.0);
        self.extras_steps = 0;
        means
    }

    /// What a checkpoint keeps of the bookkeeping: env steps, dones, the latest episodes and
    /// the episode count.
    pub(crate) fn counters(&self) -> (u64, &[bool], &[Episode], u64) {
        (self.global_step, &self.done, self.episodes.recent(), self.episodes.count)
    }

    /// Restores the bookkeeping of a checkpoint (of its episodes, the latest
    /// [`RECENT_EPISODES`] are kept).
    pub(crate) fn restore_counters(
        &mut self,
        global_step: u64,
        done: Vec<bool>,
        mut episodes: Vec<Episode>,
        count: u64,
    ) {
        self.global_step = global_step;
        self.done = done;
        episodes.drain(..episodes.len().saturating_sub(RECENT_EPISODES));
        self.episodes = EpisodeLog { latest: episodes, count, this_iteration: Vec::new() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many episodes end, the log holds at most twice the window, and shows the window.
    #[test]
    fn the_episode_log_stays_bounded() {
        let mut log = EpisodeLog::default();
        for k in 0..1000u64 {
            log.push(Episode { global_step: k, episode_return: k as f64, length: 1 });
            assert!(log.latest.len() <= 2 * RECENT_EPISODES, "{} kept after {k}", log.latest.len());
        }
        assert_eq!((log.count, log.recent().len(), log.this_iteration.len()), (1000, RECENT_EPISODES, 1000));
        assert_eq!(log.recent().first().map(|e| e.global_step), Some(900));
    }
}
