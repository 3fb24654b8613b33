//! The denoising loop: drives any `Denoiser` with the call layout of its CFG mode, so the cache
//! sees exactly the call sequence cache-dit sees in diffusers (one call per step, one batched
//! call, or a conditional then an unconditional call per step).

use candle_core::{Result, Tensor};

use crate::api::{CfgLayout, refresh_context};
use crate::denoiser::{Conditioning, Denoiser};
use crate::flow_match::FlowMatchEuler;

/// Options of one generation.
#[derive(Debug, Clone)]
pub struct DenoiseOptions {
    /// Denoising steps.
    pub steps: usize,
    /// The flow-matching sampler.
    pub scheduler: FlowMatchEuler,
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
    /// exported from diffusers).
    pub sigmas: Option<Vec<f64>>,
}

impl Default for DenoiseOptions {
    fn default() -> Self {
        Self {
            steps: 28,
            scheduler: FlowMatchEuler::default(),
            cfg: CfgLayout::None,
            guidance_scale: 1.0,
            persistent: false,
            save_steps: false,
            sigmas: None,
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
    /// The sigmas used (`steps + 1`, ending in 0).
    pub sigmas: Vec<f64>,
}

/// Denoises `latents` (pure noise at sigma 1) with `model`. `uncond` is the unconditional input
/// for CFG. `progress(step, total)` is called after every step.
pub fn denoise<D: Denoiser + ?Sized>(
    model: &D,
    latents: Tensor,
    cond: &Conditioning,
    uncond: Option<&Conditioning>,
    opts: &DenoiseOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<DenoiseOutput> {
    if !opts.persistent {
        refresh_context(model);
    }
    let seq_len = latents.dims().get(1).copied().unwrap_or(1);
    let sigmas = match &opts.sigmas {
        Some(s) if s.len() == opts.steps + 1 => s.clone(),
        Some(s) => candle_core::bail!(
            "{} sigmas given for {} steps: expected steps + 1",
            s.len(),
            opts.steps
        ),
        None => opts.scheduler.sigmas(opts.steps, seq_len),
    };
    let batch = latents.dim(0)?;
    let (device, dtype) = (latents.device().clone(), latents.dtype());
    let batched_cond = match (opts.cfg, uncond) {
        (CfgLayout::Batched, Some(u)) => Some(cond.concat_batch(u)?),
        _ => None,
    };
    let mut x = latents;
    let mut step_outputs = Vec::new();
    for i in 0..opts.steps {
        let (sigma, next) = (sigmas[i], sigmas[i + 1]);
        let t = |b: usize| Tensor::full(opts.scheduler.timestep(sigma) as f32, b, &device)?.to_dtype(dtype);
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
        x = (&x + (&v * (next - sigma))?)?;
        if opts.save_steps {
            step_outputs.push(v);
        }
        progress(i + 1, opts.steps);
    }
    Ok(DenoiseOutput {
        latents: x,
        step_outputs,
        sigmas,
    })
}

fn guide(cond: &Tensor, uncond: &Tensor, scale: f64) -> Result<Tensor> {
    uncond + ((cond - uncond)? * scale)?
}
