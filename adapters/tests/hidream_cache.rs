//! The cache engine on a seeded tiny HiDream (double Pattern_0 + single Pattern_3 lists behind patch functors, CFG batched):
//! a never-cache threshold is bit-identical to the plain loops, and a smooth input sequence
//! gets cached after warmup.

mod common;

use cachedit_adapters::families::flux_pipeline::SampleShape;
use cachedit_adapters::families::hidream::{Config, HiDreamImageTransformer2DModel};
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{
    CacheConfig, CachedTransformer, CfgLayout, Denoiser, ForwardPattern, disable_cache, enable_cache, summary,
};
use candle_core::{DType, Device, Result, Tensor};
use common::{assert_bit_identical, max_err};

fn model() -> Result<HiDreamImageTransformer2DModel> {
    let cfg = Config {
        num_layers: 2,
        num_single_layers: 2,
        num_routed_experts: 4,
        llama_layers: vec![0, 1, 2, 3],
        ..Config::tiny()
    };
    Ok(
        HiDreamImageTransformer2DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))?
            .with_sample_shape(SampleShape {
                grid_h: 4,
                grid_w: 4,
                text_len: 3,
            }),
    )
}

/// One call per step on an input drifting slowly from noise towards the latents (a batch of
/// two, as the pipeline's batched CFG makes it).
fn run(m: &HiDreamImageTransformer2DModel, steps: usize) -> Result<Vec<Tensor>> {
    let dev = Device::Cpu;
    let shape = m.latent_shape(2);
    let latents = cachedit_runtime::seeded_normal(&shape, 1, DType::F32, &dev)?;
    let noise = cachedit_runtime::seeded_normal(&shape, 2, DType::F32, &dev)?;
    let cond = m.synthetic_conditioning(2, 3, &dev)?;
    (0..steps)
        .map(|i| {
            let t = 1.0 - 0.0001 * i as f64;
            let x = ((&noise * t)? + (&latents * (1.0 - t))?)?;
            m.predict(&x, &Tensor::new(&[(1000.0 * t) as f32; 2], &dev)?, &cond)
        })
        .collect()
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    let m = model()?;
    assert_eq!(m.cfg_layout(), CfgLayout::Batched);
    let lists: Vec<_> = m
        .cached_lists()
        .iter()
        .map(|l| (l.name.clone(), l.pattern))
        .collect();
    assert_eq!(
        lists,
        vec![
            ("double_stream_blocks".to_string(), ForwardPattern::Pattern_0),
            ("single_stream_blocks".to_string(), ForwardPattern::Pattern_3),
        ]
    );
    let plain = run(&m, 6)?;
    assert_eq!(plain[0].dims(), m.latent_shape(2).as_slice());
    let cfg = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 1,
        residual_diff_threshold: 0.0,
        max_warmup_steps: 0,
        ..CacheConfig::default()
    };
    enable_cache(&m, &cfg).map_err(candle_core::Error::wrap)?;
    let cached = run(&m, 6)?;
    for (a, b) in plain.iter().zip(&cached) {
        assert_bit_identical("hidream never-cache", a, b)?;
    }
    assert!(summary(&m).iter().all(|s| s.cached_steps.is_empty()));
    disable_cache(&m);
    assert_bit_identical("after disable", &run(&m, 1)?[0], &plain[0])?;
    Ok(())
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    let m = model()?;
    let steps = 10;
    let plain = run(&m, steps)?;
    let warmup = 3;
    let cfg = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        residual_diff_threshold: 0.1,
        max_warmup_steps: warmup,
        ..CacheConfig::default()
    };
    enable_cache(&m, &cfg).map_err(candle_core::Error::wrap)?;
    let cached = run(&m, steps)?;
    let stats = summary(&m);
    for s in &stats {
        println!(
            "{}: cached steps {:?}, diffs {:?}",
            s.list, s.cached_steps, s.residual_diffs
        );
    }
    assert!(!stats[0].cached_steps.is_empty(), "nothing was cached");
    assert!(stats.iter().all(|s| s.cached_steps.iter().all(|&i| i >= warmup)));
    for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
        let (err, scale) = max_err(b, a)?;
        if i < warmup {
            assert_eq!(err, 0.0, "warmup step {i} must be computed exactly");
        }
        assert!(
            err <= 0.25 * scale,
            "step {i}: cached output too far ({err} vs {scale})"
        );
    }
    Ok(())
}
