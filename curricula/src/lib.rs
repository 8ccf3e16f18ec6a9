//! # keel-curricula
//!
//! Curricula that augment and schedule demonstrations for training skills: stitched trajectory
//! graphs, state transition fields, adaptive trajectory sampling. A curriculum acts only through
//! an environment's per-reset parameters and reset options (`keel_envs::ResetOptions`), never
//! through its construction config, so one vector of environments can be retargeted between
//! episodes without being rebuilt.
//!
//! Nothing lives here yet: the humanoid curricula issue fills it.
