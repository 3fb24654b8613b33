//! Cached-vs-uncached checks shared by the family tests, driven through `Denoiser` so they
//! exercise each family's latent shape, synthetic conditioning and `predict`, with the call
//! layout of the family's CFG mode (one call, a batch of two, or two calls per step).
#![allow(dead_code)]

use cachedit_runtime::{
    CacheConfig, CacheOptions, CachedTransformer, CfgLayout, Denoiser, ForwardPattern, disable_cache,
    enable_cache, seeded_normal, summary,
};
use candle_core::{DType, Device, Result, Tensor};

/// How a test drives a model: how fast the input drifts per step and the CFG call layout.
#[derive(Debug, Clone, Copy)]
pub struct Drive {
    /// How much of the way from noise to target the input moves per step (and how much the
    /// timestep, in `σ`, decreases).
    pub drift: f64,
    /// One call per step, a batched call, or a conditional then an unconditional call.
    pub cfg: CfgLayout,
}

impl Default for Drive {
    fn default() -> Self {
        Self {
            drift: 0.001,
            cfg: CfgLayout::None,
        }
    }
}

impl Drive {
    /// The model's own CFG layout, with a slow drift (`1e-4` per step: the tiny configs'
    /// timestep embedders have few frequencies, so the conditioning must move in small steps).
    pub fn of<M: CachedTransformer + ?Sized>(m: &M) -> Self {
        Self {
            drift: 1e-4,
            cfg: m.cfg_layout(),
        }
    }

    /// Model calls per denoising step.
    pub fn calls_per_step(&self) -> usize {
        if self.cfg == CfgLayout::Separate { 2 } else { 1 }
    }
}

/// One `predict` per step on a smooth sequence: the latents drift slowly from noise towards a
/// target and the timestep (scheduler scale, `σ · 1000`) decreases a little each step.
pub fn smooth_run<M: Denoiser>(m: &M, steps: usize) -> Result<Vec<Tensor>> {
    smooth_run_with(m, steps, &Drive::default())
}

/// [`smooth_run`] with `drive`'s drift and CFG layout: every call's output, in call order
/// (batched calls return both halves).
pub fn smooth_run_with<M: Denoiser>(m: &M, steps: usize, drive: &Drive) -> Result<Vec<Tensor>> {
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(1, 5, &dev)?;
    let uncond = m.synthetic_conditioning(1, 6, &dev)?;
    let batched = cond.concat_batch(&uncond)?;
    let shape = m.latent_shape(1);
    let noise = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let target = seeded_normal(&shape, 2, DType::F32, &dev)?;
    let mut out = Vec::new();
    for i in 0..steps {
        let s = 1.0 - drive.drift * i as f64;
        let x = ((&noise * s)? + (&target * (1.0 - s))?)?;
        let t = |b: usize| Tensor::full((s * 1000.0) as f32, b, &dev);
        match drive.cfg {
            CfgLayout::None => out.push(m.predict(&x, &t(1)?, &cond)?),
            CfgLayout::Batched => out.push(m.predict(&Tensor::cat(&[&x, &x], 0)?, &t(2)?, &batched)?),
            CfgLayout::Separate => {
                out.push(m.predict(&x, &t(1)?, &cond)?);
                out.push(m.predict(&x, &t(1)?, &uncond)?);
            }
        }
    }
    Ok(out)
}

/// A config that never reuses a cached value (threshold 0, no warmup).
pub fn never_cache() -> CacheConfig {
    CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 1,
        residual_diff_threshold: 0.0,
        max_warmup_steps: 0,
        ..CacheConfig::default()
    }
}

/// Bitwise equality.
pub fn bit_identical(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "{what}: outputs differ"
    );
    Ok(())
}

/// The model reports `cfg` and exactly `lists` (name, pattern) as its cached lists.
pub fn assert_lists<M: CachedTransformer>(m: &M, cfg: CfgLayout, lists: &[(&str, ForwardPattern)]) {
    assert_eq!(m.cfg_layout(), cfg, "CFG layout");
    let got: Vec<(String, ForwardPattern)> = m
        .cached_lists()
        .iter()
        .map(|l| (l.name.clone(), l.pattern))
        .collect();
    let want: Vec<(String, ForwardPattern)> = lists.iter().map(|(n, p)| (n.to_string(), *p)).collect();
    assert_eq!(got, want, "cached lists");
}

/// With `config` (a never-cache one), the cached model is bit-identical to the plain loops,
/// nothing is cached, and `lists` lists have a context; disabling restores the plain model.
pub fn assert_never_cache_is_bit_identical<M: Denoiser>(
    m: &M,
    options: &CacheOptions,
    lists: usize,
) -> Result<()> {
    assert_never_cache_is_bit_identical_with(m, options, lists, &Drive::default())
}

/// [`assert_never_cache_is_bit_identical`] driven by `drive`.
pub fn assert_never_cache_is_bit_identical_with<M: Denoiser>(
    m: &M,
    options: &CacheOptions,
    lists: usize,
    drive: &Drive,
) -> Result<()> {
    let plain = smooth_run_with(m, 5, drive)?;
    let latent = m.latent_shape(if drive.cfg == CfgLayout::Batched { 2 } else { 1 });
    assert_eq!(plain[0].dims(), latent.as_slice(), "output shape");
    cachedit_runtime::enable_cache_with_options(m, options).map_err(candle_core::Error::wrap)?;
    let cached = smooth_run_with(m, 5, drive)?;
    for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
        bit_identical(&format!("call {i}"), a, b)?;
    }
    let stats = summary(m);
    assert_eq!(stats.len(), lists, "cached lists");
    assert!(stats.iter().all(|s| s.cached_steps.is_empty()));
    disable_cache(m);
    bit_identical("after disable", &smooth_run_with(m, 1, drive)?[0], &plain[0])?;
    Ok(())
}

/// With a permissive threshold (Fn 1, Bn 0), every list caches some step after the warmup,
/// warmup steps are exact, and cached outputs stay close to the plain ones.
pub fn assert_smooth_inputs_are_cached<M: Denoiser>(m: &M, threshold: f64) -> Result<()> {
    assert_smooth_inputs_are_cached_with(m, threshold, &Drive::default())
}

/// [`assert_smooth_inputs_are_cached`] driven by `drive`.
pub fn assert_smooth_inputs_are_cached_with<M: Denoiser>(m: &M, threshold: f64, drive: &Drive) -> Result<()> {
    let steps = 10;
    let warmup = 3;
    let plain = smooth_run_with(m, steps, drive)?;
    let cfg = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        residual_diff_threshold: threshold,
        max_warmup_steps: warmup,
        ..CacheConfig::default()
    };
    enable_cache(m, &cfg).map_err(candle_core::Error::wrap)?;
    let cached = smooth_run_with(m, steps, drive)?;
    for s in summary(m) {
        println!(
            "{}: cached steps {:?}, diffs {:?}",
            s.list, s.cached_steps, s.residual_diffs
        );
        assert!(!s.cached_steps.is_empty(), "{}: nothing was cached", s.list);
        assert!(s.cached_steps.iter().all(|&i| i >= warmup));
    }
    for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
        let err = (b - a)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let scale = a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        if i / drive.calls_per_step() < warmup {
            assert_eq!(err, 0.0, "warmup call {i} must be computed exactly");
        }
        assert!(
            err <= 0.25 * scale.max(1.0),
            "call {i}: cached output too far ({err} vs {scale})"
        );
    }
    disable_cache(m);
    Ok(())
}
