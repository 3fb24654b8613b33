//! The cache engine on a seeded tiny Chroma (two lists: double P1 + single P3, separate CFG):
//! a never-cache threshold is bit-identical to the plain loops, and a smooth input sequence
//! gets cached after warmup, on both the conditional and the unconditional calls.

mod common;

use cachedit_adapters::families::chroma::{ChromaTransformer2DModel, Config};
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{CacheConfig, CachedTransformer, CfgLayout, disable_cache, enable_cache, summary};
use candle_core::{DType, Device, Result, Tensor};
use common::{assert_bit_identical, max_err};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TXT: usize = 8;

fn model() -> Result<ChromaTransformer2DModel> {
    let cfg = Config {
        num_layers: 2,
        num_single_layers: 2,
        ..Config::tiny()
    };
    ChromaTransformer2DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))
}

fn randn(rng: &mut StdRng, shape: &[usize]) -> Result<Tensor> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// Each step makes the conditional call, then the unconditional one (separate CFG), on an
/// input that drifts slowly from noise towards the latents. The tiny approximator has a single
/// sinusoidal frequency (1 per unit of `1000·t`), so the timestep moves in small steps too.
fn run(m: &ChromaTransformer2DModel, steps: usize) -> Result<Vec<Tensor>> {
    let mut rng = StdRng::seed_from_u64(3);
    let cfg = m.config();
    let latents = randn(&mut rng, &[1, 16, cfg.in_channels])?;
    let noise = randn(&mut rng, &[1, 16, cfg.in_channels])?;
    let cond = randn(&mut rng, &[1, TXT, cfg.joint_attention_dim])?;
    let uncond = randn(&mut rng, &[1, TXT, cfg.joint_attention_dim])?;
    let img_ids = cachedit_adapters::components::patchify::image_ids(4, 4, 0.0, &Device::Cpu)?;
    let txt_ids = cachedit_adapters::components::patchify::text_ids(TXT, &Device::Cpu)?;
    let mut out = Vec::new();
    for i in 0..steps {
        let t = 1.0 - 0.0001 * i as f64;
        let h = ((&noise * t)? + (&latents * (1.0 - t))?)?;
        let ts = Tensor::new(&[t as f32], &Device::Cpu)?;
        for text in [&cond, &uncond] {
            out.push(m.forward(&h, text, &ts, &img_ids, &txt_ids, None)?);
        }
    }
    Ok(out)
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    let m = model()?;
    assert_eq!(m.cfg_layout(), CfgLayout::Separate);
    let names: Vec<_> = m
        .cached_lists()
        .iter()
        .map(|l| (l.name.clone(), l.pattern))
        .collect();
    assert_eq!(names.len(), 2);
    assert_eq!(names[0].0, "transformer_blocks");
    assert_eq!(names[1].0, "single_transformer_blocks");
    let plain = run(&m, 6)?;
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
        assert_bit_identical("chroma never-cache", a, b)?;
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
        if i < 2 * warmup {
            assert_eq!(err, 0.0, "warmup call {i} must be computed exactly");
        }
        assert!(
            err <= 0.25 * scale,
            "call {i}: cached output too far ({err} vs {scale})"
        );
    }
    Ok(())
}

#[test]
fn denoiser_predicts_the_latent_shape() -> Result<()> {
    use cachedit_adapters::families::flux_pipeline::SampleShape;
    use cachedit_runtime::Denoiser;
    let m = model()?.with_sample_shape(SampleShape {
        grid_h: 2,
        grid_w: 3,
        text_len: 4,
    });
    let shape = m.latent_shape(2);
    assert_eq!(shape, vec![2, 6, 4]);
    let cond = m.synthetic_conditioning(2, 7, &Device::Cpu)?;
    let x = Tensor::ones(shape.as_slice(), DType::F32, &Device::Cpu)?;
    let y = m.predict(&x, &Tensor::new(&[900f32, 900.0], &Device::Cpu)?, &cond)?;
    assert_eq!(y.dims(), shape.as_slice());
    Ok(())
}
