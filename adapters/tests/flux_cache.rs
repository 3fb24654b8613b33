//! The cache engine on a seeded tiny Flux: a never-cache threshold is bit-identical to the
//! plain loops (both list layouts), and a smooth input sequence gets cached after warmup. Flux
//! drives `forward` on its own random inputs (the harness's `*_by` checks), not `Denoiser`.

mod harness;

use cachedit_adapters::families::flux::{Config, FluxTransformer2DModel};
use harness::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Model = FluxTransformer2DModel;
const IMG: usize = 16;
const TXT: usize = 8;

fn model(layout: ListLayout) -> Result<Model> {
    seeded(
        Config {
            num_layers: 2,
            num_single_layers: 2,
            ..Config::tiny()
        }
        .with_list_layout(layout),
    )
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
fn run(model: &Model, x: &Inputs, steps: usize) -> Result<Vec<Tensor>> {
    (0..steps)
        .map(|i| {
            let t = 1.0 - 0.001 * i as f64;
            let h = ((&x.noise * t)? + (&x.latents * (1.0 - t))?)?;
            let ts = Tensor::new(&[t as f32], &Device::Cpu)?;
            model.forward(&h, &x.text, &x.pooled, &ts, &x.img_ids, &x.txt_ids, None)
        })
        .collect()
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    for (layout, lists) in [(ListLayout::Chained, 1), (ListLayout::Separate, 2)] {
        let m = model(layout)?;
        let x = inputs(m.config())?;
        let options = cache::never_cache().into();
        cache::assert_never_cache_is_bit_identical_by(&m, &options, lists, 6, |m, n| run(m, &x, n))?;
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
        ..cache::never_cache()
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

/// Cached calls within `0.25 · max |plain|` (no floor at 1: the bound this test has always had).
#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    let m = model(ListLayout::Chained)?;
    let x = inputs(m.config())?;
    let smooth = Smooth {
        scale_floor: 0.0,
        ..Smooth::new(0.1)
    };
    cache::assert_smooth_inputs_are_cached_by(&m, &smooth, |m, n| run(m, &x, n))
}
