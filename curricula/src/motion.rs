//! The motion-tracking sampler: SkillMimic-V2's start-state curricula for
//! `keel/HumanoidTrack-v1`, composed.
//!
//! Every reset draws a (clip, start frame) from the clip set: uniformly, or from
//! [adaptive trajectory sampling](crate::ats) with `ats`. Then, in this order,
//! 1. with `stg` and probability `switch_prob`, if the graph has an edge out of that frame: the
//!    episode starts from the clip's state and tracks the edge's clip from the edge's frame
//!    ([`crate::stg`]);
//! 2. else with `stf` and probability `perturb_prob`: the state is perturbed and re-anchored to
//!    the most similar frame of the same clip ([`crate::stf`]);
//! 3. else: the clip's reference state at that frame (reference state initialisation).
//!
//! Cases 1 and 2 give the env an exact start (`state`), `align_reference` and `masked_steps`.
//! The sampler remembers each env's (clip, frame) until its episode ends and folds the episode's
//! mean reward into the ATS table. Draws come from the sampler's own PCG stream in the engine's
//! call order, so they do not depend on the worker count; the stream, the table and the pending
//! starts are saved in checkpoints.

use std::path::Path;
use std::sync::Arc;

use keel_physics::{ClipLibrary, DataDir, HumanoidModel};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use keel_envs::config::FieldError;
use keel_envs::{EnvError, EnvSpec, EpisodeEnd, ResetOptions, ResetSampler};

use crate::CurriculumError;
use crate::ats::{Ats, AtsConfig};
use crate::similarity::ClipFrames;
use crate::stf::{StfConfig, perturb_and_anchor};
use crate::stg::{Stg, StgConfig};

/// The env this sampler drives.
pub const ENV_ID: &str = "keel/HumanoidTrack-v1";

/// Settings of [`MotionTracking`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MotionTrackingConfig {
    /// The clip set (names from `keel clips`; default `["walk"]`), in the order of the
    /// trajectory graph's.
    pub clips: Vec<String>,
    /// The clips episodes start in (default: all of `clips`); the others are reached only
    /// through the trajectory graph.
    pub start_clips: Option<Vec<String>>,
    /// Seed of the sampler's random stream (default: derived from the training run's seed).
    pub seed: Option<u64>,
    /// The folder of the humanoid data (default: the Keel cache, as the env's `data_dir`).
    pub data_dir: Option<String>,
    /// Perturbed, re-anchored starts (default: none).
    pub stf: Option<StfConfig>,
    /// Adaptive choice of clip and start frame (default: uniform).
    pub ats: Option<AtsConfig>,
    /// Stitched references from a trajectory graph (default: none).
    pub stg: Option<StgConfig>,
}

impl Default for MotionTrackingConfig {
    fn default() -> Self {
        Self {
            clips: vec!["walk".into()],
            start_clips: None,
            seed: None,
            data_dir: None,
            stf: None,
            ats: None,
            stg: None,
        }
    }
}

impl MotionTrackingConfig {
    /// Checks the settings; the error names the field. Clip names and the graph file are
    /// checked when the sampler is built (they need the data).
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.clips.is_empty() {
            return Err(FieldError::new("clips", "must name at least one clip (`keel clips` lists them)"));
        }
        for (i, c) in self.clips.iter().enumerate() {
            if self.clips[..i].contains(c) {
                return Err(FieldError::new("clips", format!("`{c}` is named twice")));
            }
        }
        if let Some(starts) = &self.start_clips {
            if starts.is_empty() {
                return Err(FieldError::new("start_clips", "must name at least one clip"));
            }
            if let Some(other) = starts.iter().find(|s| !self.clips.contains(s)) {
                return Err(FieldError::new("start_clips", format!("`{other}` is not in `clips`")));
            }
        }
        if let Some(stf) = &self.stf {
            stf.validate()?;
        }
        if let Some(ats) = &self.ats {
            ats.validate()?;
        }
        if let Some(stg) = &self.stg {
            stg.validate()?;
            if self.clips.len() < 2 {
                return Err(FieldError::new("stg", "a trajectory graph needs at least two clips in `clips`"));
            }
        }
        Ok(())
    }
}

/// The loaded clips of a sampler.
struct Clips {
    library: ClipLibrary,
    /// Index into the library of each clip of the set.
    index: Vec<usize>,
    frames: Vec<ClipFrames>,
    /// The clips of the set that episodes start in.
    starts: Vec<usize>,
}

/// What [`MotionTracking::snapshot`] holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    rng: Pcg32,
    ats: Option<Ats>,
    pending: Vec<Option<(usize, usize)>>,
    counts: [u64; 3],
}

/// The motion-tracking sampler (see the module docs).
pub struct MotionTracking {
    config: MotionTrackingConfig,
    clips: Arc<Clips>,
    stg: Option<Arc<Stg>>,
    rng: Pcg32,
    ats: Option<Ats>,
    /// The (clip, frame) each env's episode started from.
    pending: Vec<Option<(usize, usize)>>,
    /// Resets so far that were stitched, perturbed, plain.
    counts: [u64; 3],
}

impl MotionTracking {
    /// Loads the clips (and the graph) of `config` and seeds the stream with `config.seed` or
    /// else `default_seed`. Unknown clips, missing data and a graph built for another clip set
    /// are errors.
    pub fn new(config: MotionTrackingConfig, default_seed: u64) -> Result<Self, CurriculumError> {
        config.validate().map_err(|e| CurriculumError::Field { field: e.field.into(), message: e.message })?;
        let data = match &config.data_dir {
            Some(dir) => DataDir::at(dir),
            None => DataDir::locate(),
        }
        .map_err(|e| CurriculumError::Data(e.to_string()))?;
        let model = Arc::new(HumanoidModel::load(&data).map_err(|e| CurriculumError::Data(e.to_string()))?);
        let library = ClipLibrary::load(&data, &model).map_err(|e| CurriculumError::Data(e.to_string()))?;
        let mut index = Vec::new();
        let mut frames = Vec::new();
        for name in &config.clips {
            let clip = library
                .get(name)
                .map_err(|e| CurriculumError::Field { field: "clips".into(), message: e.to_string() })?;
            index.push(library.clips().iter().position(|c| c.name() == name).unwrap_or(0));
            frames.push(ClipFrames::new(clip).map_err(|e| CurriculumError::Data(e.to_string()))?);
        }
        let counts: Vec<usize> = frames.iter().map(ClipFrames::len).collect();
        let stg = match &config.stg {
            Some(s) => {
                let graph = Stg::load(Path::new(&s.file))?;
                graph.check_fits(&config.clips, &counts, &s.file)?;
                Some(Arc::new(graph))
            }
            None => None,
        };
        let starts: Vec<usize> = (0..config.clips.len())
            .filter(|&c| config.start_clips.as_ref().is_none_or(|s| s.contains(&config.clips[c])))
            .collect();
        let start_mask: Vec<bool> = (0..config.clips.len()).map(|c| starts.contains(&c)).collect();
        let ats = config.ats.clone().map(|a| Ats::with_starts(a, &counts, &start_mask));
        let rng = Pcg32::seed_from_u64(config.seed.unwrap_or(default_seed));
        Ok(Self {
            config,
            clips: Arc::new(Clips { library, index, frames, starts }),
            stg,
            rng,
            ats,
            pending: Vec::new(),
            counts: [0; 3],
        })
    }

    /// Resets so far that were stitched (STG), perturbed (STF) and plain.
    pub fn counts(&self) -> [u64; 3] {
        self.counts
    }

    /// The ATS table, if any.
    pub fn ats(&self) -> Option<&Ats> {
        self.ats.as_ref()
    }

    /// The (clip, frame) of the next start.
    fn draw_start(&mut self) -> (usize, usize) {
        let (u, v): (f64, f64) = (self.rng.random(), self.rng.random());
        match &self.ats {
            Some(ats) => ats.draw(u, v),
            None => {
                let starts = &self.clips.starts;
                let c = starts[((u * starts.len() as f64) as usize).min(starts.len() - 1)];
                let n = self.clips.frames[c].len();
                (c, ((v * n as f64) as usize).min(n - 1))
            }
        }
    }

    /// The options of one reset (see the module docs).
    fn options(&mut self, c: usize, f: usize) -> keel_physics::Result<ResetOptions> {
        let clips = Arc::clone(&self.clips);
        let clip = &clips.library.clips()[clips.index[c]];
        let mut params = Map::new();
        let mut exact = |state_clip: &str, time: f64, pose: &[f64], velocity: &[f64], masked: u32| {
            params.insert("clip".into(), state_clip.into());
            params.insert("align_reference".into(), true.into());
            params.insert("masked_steps".into(), masked.into());
            let mut state = Vec::with_capacity(1 + pose.len() + velocity.len());
            state.push(time);
            state.extend_from_slice(pose);
            state.extend_from_slice(velocity);
            ResetOptions { state: Some(state), params: std::mem::take(&mut params) }
        };
        if let (Some(stg), Some(s)) = (&self.stg, &self.config.stg) {
            let switch = self.rng.random::<f64>() < s.switch_prob;
            let edges = stg.edges(c, f);
            if switch && !edges.is_empty() {
                let e = edges[((self.rng.random::<f64>() * edges.len() as f64) as usize).min(edges.len() - 1)];
                let t = clips.frames[c].times[f];
                let (pose, velocity) = (clip.pose_at(t)?, clip.velocity_at(t)?);
                let target = &clips.frames[e.clip];
                self.counts[0] += 1;
                let masked = crate::similarity::masked_steps(e.similarity);
                return Ok(exact(&target.name, target.times[e.frame], &pose, &velocity, masked));
            }
        }
        if let Some(stf) = &self.config.stf {
            if self.rng.random::<f64>() < stf.perturb_prob {
                let rng = &mut self.rng;
                let a = perturb_and_anchor(clip, &clips.frames[c], f, &stf.perturbation, &stf.weights, &mut || {
                    rng.random()
                })?;
                self.counts[1] += 1;
                let t = clips.frames[c].times[a.frame];
                return Ok(exact(clip.name(), t, &a.pose, &a.velocity, a.masked_steps));
            }
        }
        self.counts[2] += 1;
        let mut params = Map::new();
        params.insert("clip".into(), clip.name().into());
        params.insert("start_time".into(), clips.frames[c].times[f].into());
        params.insert("align_reference".into(), false.into());
        params.insert("masked_steps".into(), 0.into());
        Ok(ResetOptions { state: None, params })
    }
}

impl ResetSampler for MotionTracking {
    fn attach(&mut self, spec: &EnvSpec, num_envs: usize) -> keel_envs::Result<()> {
        if spec.id != ENV_ID {
            return Err(EnvError::InvalidField {
                context: "motion_tracking sampler".into(),
                field: "kind".into(),
                message: format!("drives {ENV_ID}, not {}", spec.id),
            });
        }
        self.pending = vec![None; num_envs];
        Ok(())
    }

    fn sample(&mut self, env_index: usize) -> ResetOptions {
        let (c, f) = self.draw_start();
        if env_index >= self.pending.len() {
            self.pending.resize(env_index + 1, None);
        }
        self.pending[env_index] = Some((c, f));
        // The clips were read and checked when the sampler was built; a failure here would be
        // a bug, and the plain start is the safe answer.
        self.options(c, f).unwrap_or_else(|_| {
            let mut params = Map::new();
            params.insert("clip".into(), self.config.clips[c].clone().into());
            ResetOptions { state: None, params }
        })
    }

    fn report(&mut self, episode: &EpisodeEnd<'_>) {
        let Some(Some((c, f))) = self.pending.get_mut(episode.env_index).map(Option::take) else { return };
        if let Some(ats) = &mut self.ats {
            let mean = episode.episode_return / episode.length.max(1) as f64;
            ats.record(c, f, mean, episode.length);
        }
    }

    fn snapshot(&self) -> Value {
        let saved = Saved { rng: self.rng.clone(), ats: self.ats.clone(), pending: self.pending.clone(), counts: self.counts };
        serde_json::to_value(saved).unwrap_or(Value::Null)
    }

    fn restore(&mut self, snapshot: &Value) -> keel_envs::Result<()> {
        let bad = |why: String| EnvError::Snapshot(format!("motion_tracking sampler: {why}"));
        let saved: Saved = serde_json::from_value(snapshot.clone()).map_err(|e| bad(e.to_string()))?;
        let frames: Vec<usize> = self.clips.frames.iter().map(ClipFrames::len).collect();
        match (&saved.ats, &self.ats) {
            (Some(a), Some(_)) if !a.fits(&frames) => return Err(bad("its ATS table is for other clips".into())),
            (Some(_), None) | (None, Some(_)) => return Err(bad("ATS on one side only".into())),
            _ => {}
        }
        if saved.pending.iter().flatten().any(|&(c, f)| c >= frames.len() || f >= frames[c]) {
            return Err(bad("a pending start outside the clips".into()));
        }
        self.rng = saved.rng;
        self.ats = saved.ats;
        self.pending = saved.pending;
        self.counts = saved.counts;
        Ok(())
    }

    fn distribution(&self) -> Option<Value> {
        let mut value = match &self.ats {
            Some(ats) => ats.distribution(&self.config.clips),
            None => json!({"clips": self.config.clips, "uniform": true}),
        };
        value["resets"] = json!({"stitched": self.counts[0], "perturbed": self.counts[1], "plain": self.counts[2]});
        Some(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use keel_envs::{Action, VecEnv, VecOptions};

    use crate::similarity::tests::library;

    fn full(graph: Option<String>) -> MotionTrackingConfig {
        MotionTrackingConfig {
            clips: vec!["walk".into(), "run".into()],
            stf: Some(StfConfig { perturb_prob: 0.4, ..StfConfig::default() }),
            ats: Some(AtsConfig { update_steps: Some(50), ..AtsConfig::default() }),
            stg: graph.map(|file| StgConfig { file, switch_prob: 0.3 }),
            ..MotionTrackingConfig::default()
        }
    }

    fn graph_file(name: &str) -> Option<String> {
        let (_, library) = library()?;
        let clips: Vec<ClipFrames> =
            ["walk", "run"].iter().map(|n| ClipFrames::new(library.get(n).unwrap()).unwrap()).collect();
        let dir = std::env::temp_dir().join(format!("keel-motion-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("walk_run.json");
        Stg::build(&clips, crate::similarity::SimilarityWeights::graph()).save(&path).unwrap();
        Some(path.display().to_string())
    }

    fn make(workers: usize, n: usize) -> Option<VecEnv> {
        keel_envs::humanoid::register().unwrap();
        let mut config = Map::new();
        config.insert("residual_actions".into(), true.into());
        config.insert("episode_seconds".into(), 1.0.into());
        let options = VecOptions { workers, ..VecOptions::default() };
        match VecEnv::make(ENV_ID, &config, n, options) {
            Ok(v) => Some(v),
            Err(EnvError::DataMissing(_)) => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// Runs `steps` steps with a fixed action pattern; returns every env's state and the
    /// sampler's snapshot.
    fn run(venv: &mut VecEnv, steps: usize) -> (Vec<Vec<f64>>, Value) {
        let n = venv.num_envs();
        let actions: Vec<f32> = (0..n * 28).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        for _ in 0..steps {
            venv.step(Action::Float(&actions)).unwrap();
        }
        ((0..n).map(|i| venv.state(i).unwrap_or_default()).collect(), venv.sampler().unwrap().snapshot())
    }

    #[test]
    fn every_kind_of_start_happens_and_the_run_is_the_same_on_every_worker_count() {
        let Some(file) = graph_file("workers") else { return };
        let mut results = Vec::new();
        for workers in [0, 1, 3] {
            let Some(mut venv) = make(workers, 6) else { return };
            venv.set_sampler(Some(Box::new(MotionTracking::new(full(Some(file.clone())), 11).unwrap()))).unwrap();
            venv.reset(Some(0)).unwrap();
            results.push(run(&mut venv, 120));
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        let saved: Saved = serde_json::from_value(results[0].1.clone()).unwrap();
        assert!(saved.counts.iter().all(|c| *c > 0), "stitched, perturbed and plain starts: {:?}", saved.counts);
        assert!(saved.ats.is_some_and(|a| a.updates() > 0));
    }

    #[test]
    fn a_restored_vector_continues_exactly() {
        let Some(file) = graph_file("resume") else { return };
        let Some(mut a) = make(0, 4) else { return };
        a.set_sampler(Some(Box::new(MotionTracking::new(full(Some(file.clone())), 5).unwrap()))).unwrap();
        a.reset(Some(1)).unwrap();
        run(&mut a, 40);
        let snapshot = a.snapshot().unwrap();
        let Some(mut b) = make(2, 4) else { return };
        b.set_sampler(Some(Box::new(MotionTracking::new(full(Some(file)), 999).unwrap()))).unwrap();
        b.restore(&snapshot).unwrap();
        assert_eq!(run(&mut a, 80), run(&mut b, 80));
    }

    #[test]
    fn bad_settings_are_clear_errors_before_any_training() {
        let err = |c: MotionTrackingConfig| MotionTracking::new(c, 0).err().map(|e| e.to_string()).unwrap_or_default();
        let Some(file) = graph_file("bad") else { return };
        // A graph built for another clip set.
        let other = MotionTrackingConfig { clips: vec!["walk".into(), "jump".into()], ..full(Some(file.clone())) };
        let e = err(other);
        assert!(e.contains("[walk, run]") && e.contains("[walk, jump]"), "{e}");
        let e = err(MotionTrackingConfig { clips: vec!["moonwalk".into()], ..MotionTrackingConfig::default() });
        assert!(e.contains("moonwalk"), "{e}");
        let mut c = full(Some(file));
        c.ats.as_mut().unwrap().alpha = 1.5;
        assert!(err(c.clone()).contains("ats.alpha"), "{}", err(c));
        let mut c = full(None);
        c.stf.as_mut().unwrap().perturb_prob = 2.0;
        assert!(c.validate().err().is_some_and(|e| e.field == "stf.perturb_prob"));
        // A sampler for another env is refused at installation.
        let sampler = MotionTracking::new(MotionTrackingConfig::default(), 0).unwrap();
        let mut cartpole = VecEnv::make("keel/CartPole-v1", &Map::new(), 2, VecOptions::default()).unwrap();
        let e = cartpole.set_sampler(Some(Box::new(sampler))).err().unwrap().to_string();
        assert!(e.contains("CartPole"), "{e}");
    }
}
