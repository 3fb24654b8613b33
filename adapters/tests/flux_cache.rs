//! The cache engine on a seeded tiny Flux: a never-cache threshold is bit-identical to the
//! plain loops (both list layouts), and a smooth input sequence gets cached after warmup.

mod common;

use cachedit_adapters::families::flux::{Config, FluxTransformer2DModel};
use cachedit_adapters::{ListLayout, seeded_var_builder};
use cachedit_runtime::{CacheConfig, disable_cache, enable_cache, summary};
use candle_core::{DType, Device, Result, Tensor};
use common::{assert_bit_identical, max_err};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const IMG: usize = 16;
const TXT: usize = 8;

fn model(layout: ListLayout) -> Result<FluxTransformer2DModel> {
    let cfg = Config {
        num_layers: 2,
        num_single_layers: 2,
        ..Config::tiny()
    }
    .with_list_layout(layout);
    FluxTransformer2DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))
}

fn randn(rng: &mut StdRng, shape: &[usize]) -> Result<Tensor> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

struct Inputs {
    latents: Tensor,
    noise: Tensor,
    text: Tensor,
    pooled: Tensor,
    img_ids: Tensor,
    txt_ids: Tensor,
}

fn inputs(cfg: &Config) -> Result<Inputs> {
    let mut rng = StdRng::seed_from_u64(3);
    Ok(Inputs {
        latents: randn(&mut rng, &[1, IMG, cfg.in_channels])?,
        noise: randn(&mut rng, &[1, IMG, cfg.in_channels])?,
        text: randn(&mut rng, &[1, TXT, cfg.joint_attention_dim])?,
        pooled: randn(&mut rng, &[1, cfg.pooled_projection_dim])?,
        img_ids: cachedit_adapters::components::patchify::image_ids(4, 4, 0.0, &Device::Cpu)?,
        txt_ids: cachedit_adapters::components::patchify::text_ids(TXT, &Device::Cpu)?,
    })
}

/// One denoising-like call per step: the input drifts slowly from noise towards the latents
/// and the timestep decreases, so consecutive calls differ a little.
fn run(model: &FluxTransformer2DModel, x: &Inputs, steps: usize) -> Result<Vec<Tensor>> {
    (0..steps)
        .map(|i| {
            let t = 1.0 - 0.001 * i as f64;
            let h = ((&x.noise * t)? + (&x.latents * (1.0 - t))?)?;
            let ts = Tensor::new(&[t as f32], &Device::Cpu)?;
            model.forward(&h, &x.text, &x.pooled, &ts, &x.img_ids, &x.txt_ids, None)
        })
        .collect()
}

fn never_cache() -> CacheConfig {
    CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 1,
        residual_diff_threshold: 0.0,
        max_warmup_steps: 0,
        ..CacheConfig::default()
    }
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    for layout in [ListLayout::Chained, ListLayout::Separate] {
        let m = model(layout)?;
        let x = inputs(m.config())?;
        let plain = run(&m, &x, 6)?;
        enable_cache(&m, &never_cache()).map_err(candle_core::Error::wrap)?;
        let cached = run(&m, &x, 6)?;
        for (a, b) in plain.iter().zip(&cached) {
            assert_bit_identical(&format!("{layout:?}"), a, b)?;
        }
        let stats = summary(&m);
        assert_eq!(stats.len(), if layout == ListLayout::Chained { 1 } else { 2 });
        assert!(stats.iter().all(|s| s.cached_steps.is_empty()));
        disable_cache(&m);
        assert_bit_identical("after disable", &run(&m, &x, 1)?[0], &plain[0])?;
    }
    Ok(())
}

#[test]
fn chained_lists_form_one_cached_list_across_both_fields() -> Result<()> {
    let m = model(ListLayout::Chained)?;
    // Fn + Bn = 4 spans the double and the single blocks: only possible as one list.
    let cfg = CacheConfig {
        fn_compute_blocks: 3,
        bn_compute_blocks: 1,
        ..never_cache()
    };
    enable_cache(&m, &cfg).map_err(candle_core::Error::wrap)?;
    let stats = summary(&m);
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].list, "transformer_blocks");
    let separate = model(ListLayout::Separate)?;
    assert!(
        enable_cache(&separate, &cfg).is_err(),
        "Fn 3 exceeds a 2-block list"
    );
    Ok(())
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    let m = model(ListLayout::Chained)?;
    let x = inputs(m.config())?;
    let steps = 10;
    let plain = run(&m, &x, steps)?;
    let warmup = 3;
    let cfg = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        residual_diff_threshold: 0.1,
        max_warmup_steps: warmup,
        ..CacheConfig::default()
    };
    enable_cache(&m, &cfg).map_err(candle_core::Error::wrap)?;
    let cached = run(&m, &x, steps)?;
    let stats = summary(&m);
    println!(
        "cached steps {:?}, diffs {:?}",
        stats[0].cached_steps, stats[0].residual_diffs
    );
    assert!(!stats[0].cached_steps.is_empty(), "nothing was cached");
    assert!(stats[0].cached_steps.iter().all(|&s| s >= warmup));
    for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
        let (err, scale) = max_err(b, a)?;
        if i < warmup {
            assert_eq!(err, 0.0, "warmup step {i} must be computed exactly");
        }
        assert!(
            err <= 0.25 * scale,
            "step {i}: cached output too far from the plain one ({err} vs {scale})"
        );
    }
    Ok(())
}
