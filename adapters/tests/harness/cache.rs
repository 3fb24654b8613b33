//! The caching harness: cached vs plain runs of a seeded tiny family model.
//!
//! The runs go through `Denoiser` ([`smooth_run`]), so they exercise each family's latent
//! shape, synthetic conditioning and `predict`, with the call layout of the family's CFG mode
//! (one call, a batch of two, or two calls per step). A [`CacheCase`] holds a family's settings;
//! its methods are the checks every family runs. The `*_by` functions take any run (a family
//! that drives `forward` itself).

use cachedit_runtime::{
    CacheConfig, CacheOptions, CachedTransformer, CfgLayout, Denoiser, ForwardPattern, disable_cache,
    enable_cache, enable_cache_with_options, seeded_normal, summary,
};
use candle_core::{DType, Device, Result, Tensor};

use super::assert_bit_identical;

/// A family's caching settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheCase {
    /// The CFG layout the model declares.
    pub cfg: CfgLayout,
    /// The cached lists the model reports, in order: name and pattern.
    pub lists: &'static [(&'static str, ForwardPattern)],
    /// The residual-diff threshold at which the smooth sequence gets cached (seeded, untrained
    /// weights move more per step than a trained model's, so some families need more than 0.1).
    pub threshold: f64,
    /// How the sequence is driven.
    pub drive: Drive,
}

/// How a run drives the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drive {
    /// One conditional call per step, the input moving 1e-3 of the way per step.
    Plain,
    /// The model's own CFG layout, the input moving 1e-4 per step (the tiny configs' timestep
    /// embedders have few frequencies, so the conditioning must move in small steps).
    ModelCfg,
}

/// The drift per step and call layout of one run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// How much of the way from noise to target the input moves per step (and how much the
    /// timestep, in `σ`, decreases).
    pub drift: f64,
    /// One call per step, a batched call, or a conditional then an unconditional call.
    pub cfg: CfgLayout,
}

impl Run {
    /// The run `drive` means for `m`.
    pub fn of<M: CachedTransformer + ?Sized>(drive: Drive, m: &M) -> Self {
        match drive {
            Drive::Plain => Self {
                drift: 0.001,
                cfg: CfgLayout::None,
            },
            Drive::ModelCfg => Self {
                drift: 1e-4,
                cfg: m.cfg_layout(),
            },
        }
    }

    /// Model calls per denoising step.
    pub fn calls_per_step(&self) -> usize {
        if self.cfg == CfgLayout::Separate { 2 } else { 1 }
    }
}

/// The settings of the "smooth inputs are cached after warmup" check.
#[derive(Debug, Clone, Copy)]
pub struct Smooth {
    /// Residual-diff threshold (Fn 1, Bn 0).
    pub threshold: f64,
    /// Denoising steps run.
    pub steps: usize,
    /// Warmup steps (computed exactly).
    pub warmup: usize,
    /// Model calls per step (2 with separate CFG calls).
    pub calls_per_step: usize,
    /// A cached output may differ from the plain one by `0.25 · max(max |plain|, scale_floor)`.
    pub scale_floor: f32,
}

impl Smooth {
    /// 10 steps, 3 warmup, one call per step, bound `0.25 · max(scale, 1)`.
    pub fn new(threshold: f64) -> Self {
        Self {
            threshold,
            steps: 10,
            warmup: 3,
            calls_per_step: 1,
            scale_floor: 1.0,
        }
    }
}

impl CacheCase {
    /// The model reports `cfg` and exactly `lists` (name, pattern) as its cached lists.
    pub fn assert_lists<M: CachedTransformer + ?Sized>(&self, m: &M) {
        assert_eq!(m.cfg_layout(), self.cfg, "CFG layout");
        let got: Vec<(String, ForwardPattern)> = m
            .cached_lists()
            .iter()
            .map(|l| (l.name.clone(), l.pattern))
            .collect();
        let want: Vec<(String, ForwardPattern)> =
            self.lists.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(got, want, "cached lists");
    }

    /// The lists, then [`assert_never_cache_is_bit_identical`] with the case's drive.
    pub fn never_cache_is_bit_identical<M: Denoiser + ?Sized>(&self, m: &M) -> Result<()> {
        self.assert_lists(m);
        assert_never_cache_is_bit_identical(m, &never_cache().into(), self.lists.len(), self.drive)
    }

    /// [`assert_smooth_inputs_are_cached`] at the case's threshold and drive.
    pub fn smooth_inputs_are_cached<M: Denoiser + ?Sized>(&self, m: &M) -> Result<()> {
        assert_smooth_inputs_are_cached(m, self.threshold, self.drive)
    }
}

/// One `predict` per step (per call of the CFG layout) on a smooth sequence: the latents drift
/// slowly from noise towards a target and the timestep (scheduler scale, `σ · 1000`) decreases
/// a little each step. Every call's output, in call order (batched calls return both halves).
pub fn smooth_run<M: Denoiser + ?Sized>(m: &M, steps: usize, run: Run) -> Result<Vec<Tensor>> {
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(1, 5, &dev)?;
    let uncond = m.synthetic_conditioning(1, 6, &dev)?;
    let batched = cond.concat_batch(&uncond)?;
    let shape = m.latent_shape(1);
    let noise = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let target = seeded_normal(&shape, 2, DType::F32, &dev)?;
    let mut out = Vec::new();
    for i in 0..steps {
        let s = 1.0 - run.drift * i as f64;
        let x = ((&noise * s)? + (&target * (1.0 - s))?)?;
        let t = |b: usize| Tensor::full((s * 1000.0) as f32, b, &dev);
        match run.cfg {
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

/// With `options` (a never-cache config), 5 cached steps are bit-identical to the plain loops,
/// the output has the latent shape, nothing is cached, `lists` lists have a context, and
/// disabling restores the plain model.
pub fn assert_never_cache_is_bit_identical<M: Denoiser + ?Sized>(
    m: &M,
    options: &CacheOptions,
    lists: usize,
    drive: Drive,
) -> Result<()> {
    let run = Run::of(drive, m);
    let latent = m.latent_shape(if run.cfg == CfgLayout::Batched { 2 } else { 1 });
    assert_never_cache_is_bit_identical_by(m, options, lists, 5, |m, n| {
        let out = smooth_run(m, n, run)?;
        assert_eq!(out[0].dims(), latent.as_slice(), "output shape");
        Ok(out)
    })
}

/// [`assert_never_cache_is_bit_identical`] over any run: `run(m, steps)` returns every call's
/// output. Compares `steps` steps plain and cached, call by call.
pub fn assert_never_cache_is_bit_identical_by<M, F>(
    m: &M,
    options: &CacheOptions,
    lists: usize,
    steps: usize,
    run: F,
) -> Result<()>
where
    M: CachedTransformer + ?Sized,
    F: Fn(&M, usize) -> Result<Vec<Tensor>>,
{
    let plain = run(m, steps)?;
    enable_cache_with_options(m, options).map_err(candle_core::Error::wrap)?;
    let cached = run(m, steps)?;
    assert_eq!(plain.len(), cached.len(), "calls");
    for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
        assert_bit_identical(&format!("call {i}"), a, b)?;
    }
    let stats = summary(m);
    assert_eq!(stats.len(), lists, "cached lists");
    assert!(stats.iter().all(|s| s.cached_steps.is_empty()));
    disable_cache(m);
    assert_bit_identical("after disable", &run(m, 1)?[0], &plain[0])?;
    Ok(())
}

/// With a permissive threshold (Fn 1, Bn 0), every list caches some step after the warmup,
/// warmup steps are exact, and cached outputs stay close to the plain ones.
pub fn assert_smooth_inputs_are_cached<M: Denoiser + ?Sized>(
    m: &M,
    threshold: f64,
    drive: Drive,
) -> Result<()> {
    let run = Run::of(drive, m);
    let smooth = Smooth {
        calls_per_step: run.calls_per_step(),
        ..Smooth::new(threshold)
    };
    assert_smooth_inputs_are_cached_by(m, &smooth, |m, n| smooth_run(m, n, run))
}

/// [`assert_smooth_inputs_are_cached`] over any run, with `s`'s settings.
pub fn assert_smooth_inputs_are_cached_by<M, F>(m: &M, s: &Smooth, run: F) -> Result<()>
where
    M: CachedTransformer + ?Sized,
    F: Fn(&M, usize) -> Result<Vec<Tensor>>,
{
    let plain = run(m, s.steps)?;
    let cfg = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        residual_diff_threshold: s.threshold,
        max_warmup_steps: s.warmup,
        ..CacheConfig::default()
    };
    enable_cache(m, &cfg).map_err(candle_core::Error::wrap)?;
    let cached = run(m, s.steps)?;
    for stats in summary(m) {
        println!(
            "{}: cached steps {:?}, diffs {:?}",
            stats.list, stats.cached_steps, stats.residual_diffs
        );
        assert!(
            !stats.cached_steps.is_empty(),
            "{}: nothing was cached",
            stats.list
        );
        assert!(stats.cached_steps.iter().all(|&i| i >= s.warmup));
    }
    for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
        let err = (b - a)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        let scale = a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        if i / s.calls_per_step < s.warmup {
            assert_eq!(err, 0.0, "warmup call {i} must be computed exactly");
        }
        assert!(
            err <= 0.25 * scale.max(s.scale_floor),
            "call {i}: cached output too far ({err} vs {scale})"
        );
    }
    disable_cache(m);
    Ok(())
}
