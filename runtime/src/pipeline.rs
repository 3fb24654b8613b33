//! The denoising loop: drives any `Denoiser` with the call layout of its CFG mode, so the cache
//! sees exactly the call sequence cache-dit sees in diffusers (one call per step, one batched
//! call, or a conditional then an unconditional call per step).

use candle_core::{Result, Tensor};

use crate::api::{CfgLayout, refresh_context};
use crate::denoiser::{Conditioning, Denoiser};
use crate::scheduler::Scheduler;

/// Options of one generation.
#[derive(Debug, Clone)]
pub struct DenoiseOptions {
    /// Denoising steps.
    pub steps: usize,
    /// The sampler (flow matching or DDIM; `FlowMatchEuler` and `DdimConfig` convert with `into`).
    pub scheduler: Scheduler,
    /// How CFG is run; `None` ignores `uncond`.
    pub cfg: CfgLayout,
    /// Classifier-free guidance scale (used with an unconditional input).
    pub guidance_scale: f64,
    /// Keep the cache contexts across calls (transformer-only use). `false` re-creates them at
    /// the start, as cache-dit's pipeline mode does on every pipeline call.
    pub persistent: bool,
    /// Return every step's (guided) model output.
    pub save_steps: bool,
    /// Use these `steps + 1` sigmas as they are instead of the scheduler's (e.g. a schedule
    /// exported from diffusers; flow matching only).
    pub sigmas: Option<Vec<f64>>,
    /// Use these `steps` model timesteps as they are (DDIM: training timesteps; flow matching:
    /// `sigma · 1000`, ending at sigma 0). `sigmas` wins when both are given.
    pub timesteps: Option<Vec<f64>>,
    /// Stop with a [`DenoiseError::NonFiniteOutput`] at the first step whose model output holds
    /// NaN or infinite values (one sum per step), instead of returning an all-NaN result.
    pub check_finite: bool,
}

/// A generation that cannot start or went wrong on the way.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DenoiseError {
    /// A guidance scale that is NaN or infinite.
    #[error("the guidance scale must be a finite number, found {0}")]
    NonFiniteGuidance(f64),
    /// A step's model output holds NaN or infinite values.
    #[error(
        "step {step} (timestep {timestep}): the model output holds NaN or infinite values \
         (block lists: {lists}); check the inputs, weights and dtype"
    )]
    NonFiniteOutput {
        /// The step (0-based).
        step: usize,
        /// Its model timestep.
        timestep: f64,
        /// The model's cached block lists, comma-separated.
        lists: String,
    },
}

impl Default for DenoiseOptions {
    fn default() -> Self {
        Self {
            steps: 28,
            scheduler: Scheduler::default(),
            cfg: CfgLayout::None,
            guidance_scale: 1.0,
            persistent: false,
            save_steps: false,
            sigmas: None,
            timesteps: None,
            check_finite: true,
        }
    }
}

/// What a generation returns.
#[derive(Debug, Clone)]
pub struct DenoiseOutput {
    /// The final latents.
    pub latents: Tensor,
    /// Each step's guided model output, when asked for.
    pub step_outputs: Vec<Tensor>,
    /// The sigmas used (`steps + 1`, ending in 0; empty under DDIM).
    pub sigmas: Vec<f64>,
    /// The model timestep of every step.
    pub timesteps: Vec<f64>,
}

/// Denoises `latents` (pure noise, scaled by 1 for both schedulers) with `model`. `uncond` is the unconditional input
/// for CFG. `progress(step, total)` is called after every step.
pub fn denoise<D: Denoiser + ?Sized>(
    model: &D,
    latents: Tensor,
    cond: &Conditioning,
    uncond: Option<&Conditioning>,
    opts: &DenoiseOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<DenoiseOutput> {
    if !opts.guidance_scale.is_finite() {
        return Err(candle_core::Error::wrap(DenoiseError::NonFiniteGuidance(
            opts.guidance_scale,
        )));
    }
    if !opts.persistent {
        refresh_context(model);
    }
    let seq_len = latents.dims().get(1).copied().unwrap_or(1);
    let plan = match (&opts.sigmas, &opts.timesteps) {
        (None, Some(t)) => opts.scheduler.plan_timesteps(opts.steps, t)?,
        _ => opts.scheduler.plan(opts.steps, seq_len, opts.sigmas.as_deref())?,
    };
    let timesteps = plan.timesteps();
    let batch = latents.dim(0)?;
    let (device, dtype) = (latents.device().clone(), latents.dtype());
    let batched_cond = match (opts.cfg, uncond) {
        (CfgLayout::Batched, Some(u)) => Some(cond.concat_batch(u)?),
        _ => None,
    };
    let mut x = latents;
    let mut step_outputs = Vec::new();
    for (i, &timestep) in timesteps.iter().enumerate() {
        let t = |b: usize| Tensor::full(timestep as f32, b, &device)?.to_dtype(dtype);
        let g = opts.guidance_scale;
        let v = match (opts.cfg, uncond) {
            (CfgLayout::Separate, Some(u)) => {
                // diffusers' order: conditional call first, then unconditional.
                let c = model.predict(&x, &t(batch)?, cond)?;
                let u = model.predict(&x, &t(batch)?, u)?;
                guide(&c, &u, g)?
            }
            (CfgLayout::Batched, Some(_)) => {
                let both = Tensor::cat(&[&x, &x], 0)?;
                let bc = batched_cond.as_ref().unwrap_or(cond);
                let out = model.predict(&both, &t(2 * batch)?, bc)?;
                guide(&out.narrow(0, 0, batch)?, &out.narrow(0, batch, batch)?, g)?
            }
            _ => model.predict(&x, &t(batch)?, cond)?,
        };
        if opts.check_finite && !crate::diff::all_finite(&v)? {
            let lists: Vec<String> = model.cached_lists().into_iter().map(|l| l.name).collect();
            return Err(candle_core::Error::wrap(DenoiseError::NonFiniteOutput {
                step: i,
                timestep,
                lists: lists.join(", "),
            }));
        }
        x = plan.step(i, &v, &x)?;
        if opts.save_steps {
            step_outputs.push(v);
        }
        progress(i + 1, opts.steps);
    }
    Ok(DenoiseOutput {
        latents: x,
        step_outputs,
        sigmas: plan.sigmas().to_vec(),
        timesteps,
    })
}

fn guide(cond: &Tensor, uncond: &Tensor, scale: f64) -> Result<Tensor> {
    uncond + ((cond - uncond)? * scale)?
}
