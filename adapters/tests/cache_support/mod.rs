//! Cached-vs-uncached checks shared by the family tests, driven through `Denoiser` so they
//! exercise each family's latent shape, synthetic conditioning and `predict`.
#![allow(dead_code)]

use cachedit_runtime::{
    CacheConfig, CacheOptions, Denoiser, disable_cache, enable_cache, seeded_normal, summary,
};
use candle_core::{DType, Device, Result, Tensor};

/// One `predict` per step on a smooth sequence: the latents drift slowly from noise towards a
/// target and the timestep (scheduler scale, `σ · 1000`) decreases a little each step.
pub fn smooth_run<M: Denoiser>(m: &M, steps: usize) -> Result<Vec<Tensor>> {
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(1, 5, &dev)?;
    let shape = m.latent_shape(1);
    let noise = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let target = seeded_normal(&shape, 2, DType::F32, &dev)?;
    (0..steps)
        .map(|i| {
            let s = 1.0 - 0.001 * i as f64;
            let x = ((&noise * s)? + (&target * (1.0 - s))?)?;
            let t = Tensor::new(&[(s * 1000.0) as f32], &dev)?;
            m.predict(&x, &t, &cond)
        })
        .collect()
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

/// With `config` (a never-cache one), the cached model is bit-identical to the plain loops,
/// nothing is cached, and `lists` lists have a context; disabling restores the plain model.
pub fn assert_never_cache_is_bit_identical<M: Denoiser>(
    m: &M,
    options: &CacheOptions,
    lists: usize,
) -> Result<()> {
    let plain = smooth_run(m, 5)?;
    cachedit_runtime::enable_cache_with_options(m, options).map_err(candle_core::Error::wrap)?;
    let cached = smooth_run(m, 5)?;
    for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
        bit_identical(&format!("step {i}"), a, b)?;
    }
    let stats = summary(m);
    assert_eq!(stats.len(), lists, "cached lists");
    assert!(stats.iter().all(|s| s.cached_steps.is_empty()));
    disable_cache(m);
    bit_identical("after disable", &smooth_run(m, 1)?[0], &plain[0])?;
    Ok(())
}

/// With a permissive threshold (Fn 1, Bn 0), every list caches some step after the warmup,
/// warmup steps are exact, and cached outputs stay close to the plain ones.
pub fn assert_smooth_inputs_are_cached<M: Denoiser>(m: &M, threshold: f64) -> Result<()> {
    let steps = 10;
    let warmup = 3;
    let plain = smooth_run(m, steps)?;
    let cfg = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        residual_diff_threshold: threshold,
        max_warmup_steps: warmup,
        ..CacheConfig::default()
    };
    enable_cache(m, &cfg).map_err(candle_core::Error::wrap)?;
    let cached = smooth_run(m, steps)?;
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
        if i < warmup {
            assert_eq!(err, 0.0, "warmup step {i} must be computed exactly");
        }
        assert!(
            err <= 0.25 * scale.max(1.0),
            "step {i}: cached output too far ({err} vs {scale})"
        );
    }
    disable_cache(m);
    Ok(())
}
