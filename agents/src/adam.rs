//! Adam (Kingma & Ba 2015) exactly as PyTorch's `torch.optim.Adam` computes it, with global
//! gradient-norm clipping. Written here rather than taken from tch because its state (moments
//! and step count) must go into checkpoints, and tch's optimiser does not expose it.
//!
//! Every optimiser has a name, and its state is saved under it (`<name>.steps`,
//! `<name>.exp_avg.<k>`, `<name>.exp_avg_sq.<k>`), so an algorithm with two optimisers (an actor's
//! and a critic's, say) checkpoints both side by side.

use tch::{Kind, Tensor, nn};

use crate::error::{AgentError, Result};

/// Adam over a set of parameters, with a name for its checkpointed state.
pub struct Adam {
    name: String,
    params: Vec<Tensor>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    steps: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    /// Adam named `adam` over every trainable variable of `vs`, with betas (0.9, 0.999) and the
    /// given eps (CleanRL's PPO: 1e-5).
    pub fn new(vs: &nn::VarStore, eps: f64) -> Self {
        Self::over("adam", vs.trainable_variables(), eps)
    }

    /// Adam named `name` over `params`, with betas (0.9, 0.999) and the given eps.
    pub fn over(name: &str, params: Vec<Tensor>, eps: f64) -> Self {
        let zeros = |p: &Tensor| p.zeros_like();
        Self {
            name: name.to_string(),
            exp_avg: params.iter().map(zeros).collect(),
            exp_avg_sq: params.iter().map(zeros).collect(),
            params,
            steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps,
        }
    }

    /// Clears the gradients.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// The parameters, in the order their state is saved.
    pub fn parameters(&self) -> &[Tensor] {
        &self.params
    }

    /// Scales all gradients so that their global L2 norm is at most `max_norm` (PyTorch's
    /// `clip_grad_norm_`, including its 1e-6). Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        self.clip_grad_norm_of(max_norm, |_| true)
    }

    /// [`Adam::clip_grad_norm`] over the parameters whose index `select` accepts (a group
    /// clipped on its own, such as a critic's); the others are left as they are.
    pub fn clip_grad_norm_of(&mut self, max_norm: f64, select: impl Fn(usize) -> bool) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = (self.params.iter().enumerate())
                .filter(|&(k, _)| select(k))
                .map(|(_, p)| p.grad())
                .filter(Tensor::defined)
                .collect();
            if grads.is_empty() {
                return 0.0;
            }
            let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
            let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
            let coef = max_norm / (total + 1e-6);
            if coef < 1.0 {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coef);
                }
            }
            total
        })
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        tch::no_grad(|| {
            for ((p, m), v) in self.params.iter_mut().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                // PyTorch's single-tensor Adam, operation for operation, in place.
                let _ = m.lerp_(&g, 1.0 - b1);
                let _ = v.g_mul_scalar_(b2);
                let _ = v.addcmul_(&g, &(&g * (1.0 - b2)));
                let mut denom = v.sqrt();
                let _ = denom.g_div_scalar_(bias2.sqrt());
                let _ = denom.g_add_scalar_(self.eps);
                let _ = p.addcdiv_(&(&*m * (-lr / bias1)), &denom);
            }
        });
    }

    /// The name its state is saved under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moments and step count, as tensors named `<name>.steps`, `<name>.exp_avg.<k>` and
    /// `<name>.exp_avg_sq.<k>` (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let name = &self.name;
        let mut out = vec![(format!("{name}.steps"), Tensor::from_slice(&[self.steps as i64]))];
        for (k, (m, v)) in self.exp_avg.iter().zip(&self.exp_avg_sq).enumerate() {
            out.push((format!("{name}.exp_avg.{k}"), m.shallow_clone()));
            out.push((format!("{name}.exp_avg_sq.{k}"), v.shallow_clone()));
        }
        out
    }

    /// Restores what [`Adam::state`] saved under this optimiser's name; a missing, mis-shaped or
    /// mistyped tensor (a step count that is not one non-negative int64, moments of another shape
    /// or type, a negative second moment) is an error naming it, and changes nothing.
    pub fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        let name = &self.name;
        let find =
            |key: String| {
                named.iter().find(|(n, _)| *n == key).map(|(_, t)| t).ok_or_else(|| {
                    AgentError::Checkpoint(format!("it lacks `{key}` (state of the optimiser `{name}`)"))
                })
            };
        let steps = find(format!("{name}.steps"))?;
        if steps.kind() != Kind::Int64 || steps.numel() != 1 {
            return Err(AgentError::Checkpoint(format!(
                "`{name}.steps` should be one int64 step count, and is {:?} of shape {:?}",
                steps.kind(),
                steps.size()
            )));
        }
        let steps = steps.int64_value(&[0]);
        let steps =
            u64::try_from(steps).map_err(|_| AgentError::Checkpoint(format!("`{name}.steps` is negative: {steps}")))?;
        let mut moments = Vec::with_capacity(self.exp_avg.len());
        for (k, (m, v)) in self.exp_avg.iter().zip(&self.exp_avg_sq).enumerate() {
            let (sm, sv) = (find(format!("{name}.exp_avg.{k}"))?, find(format!("{name}.exp_avg_sq.{k}"))?);
            if sm.size() != m.size() || sv.size() != v.size() || sm.kind() != m.kind() || sv.kind() != v.kind() {
                return Err(AgentError::Checkpoint(format!(
                    "the optimiser `{name}`'s moments {k} have another shape or type than this config's parameters"
                )));
            }
            if sv.numel() > 0 && sv.min().double_value(&[]) < 0.0 {
                return Err(AgentError::Checkpoint(format!("`{name}.exp_avg_sq.{k}` holds negative values")));
            }
            moments.push((sm, sv));
        }
        for ((m, v), (sm, sv)) in self.exp_avg.iter_mut().zip(&mut self.exp_avg_sq).zip(moments) {
            tch::no_grad(|| {
                m.copy_(&sm.to_device(m.device()));
                v.copy_(&sv.to_device(v.device()));
            });
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// One Adam step from zero moments moves each parameter by about `lr` against its gradient's
    /// sign (m̂ / sqrt(v̂) = g / |g|).
    #[test]
    fn first_step_moves_by_lr() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut adam = Adam::new(&vs, 1e-8);
        let loss = (&w * Tensor::from_slice(&[3.0f32, -0.5])).sum(Kind::Float);
        adam.zero_grad();
        loss.backward();
        adam.step(0.1);
        let after: Vec<f32> = Vec::try_from(&w.detach()).unwrap_or_default();
        assert!((after[0] - 0.9).abs() < 1e-5 && (after[1] - (-1.9)).abs() < 1e-5, "{after:?}");
    }

    /// Two optimisers save their state under their own names and restore only their own.
    #[test]
    fn state_is_keyed_by_the_optimiser_name() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var_copy("a", &Tensor::from_slice(&[1.0f32]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[2.0f32, 3.0]));
        let mut actor = Adam::over("actor_adam", vec![a.shallow_clone()], 1e-8);
        let mut critic = Adam::over("critic_adam", vec![b.shallow_clone()], 1e-8);
        (&a * 2.0).sum(Kind::Float).backward();
        actor.step(0.1);
        let mut saved = actor.state();
        saved.extend(critic.state());
        let names: Vec<&str> = saved.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"actor_adam.exp_avg.0") && names.contains(&"critic_adam.steps"), "{names:?}");
        let mut again = Adam::over("actor_adam", vec![a.shallow_clone()], 1e-8);
        again.load_state(&saved).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.state().iter().zip(actor.state()).all(|((_, x), (_, y))| x.equal(&y)));
        assert!(critic.load_state(&saved).is_ok());
        let err = Adam::over("other", vec![a], 1e-8).load_state(&saved).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("other.steps"));
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[0.0f32, 0.0]));
        let mut adam = Adam::new(&vs, 1e-5);
        let loss = (&w * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float);
        loss.backward();
        let before = adam.clip_grad_norm(0.5);
        assert!((before - 5.0).abs() < 1e-5);
        let after = w.grad().norm().double_value(&[]);
        assert!((after - 0.5).abs() < 1e-4, "{after}");
    }

    /// A group clipped on its own is bounded by its own norm and leaves the others alone.
    #[test]
    fn clipping_a_group_leaves_the_other_parameters_alone() {
        crate::threads::configure();
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var_copy("a", &Tensor::from_slice(&[0.0f32, 0.0]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[0.0f32]));
        let mut adam = Adam::over("adam", vec![a.shallow_clone(), b.shallow_clone()], 1e-5);
        let loss = (&a * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float) + (&b * 12.0).sum(Kind::Float);
        loss.backward();
        let before = adam.clip_grad_norm_of(1.0, |k| k == 1);
        assert!((before - 12.0).abs() < 1e-5, "{before}");
        assert!((b.grad().norm().double_value(&[]) - 1.0).abs() < 1e-5);
        assert!((a.grad().norm().double_value(&[]) - 5.0).abs() < 1e-5);
    }
}
