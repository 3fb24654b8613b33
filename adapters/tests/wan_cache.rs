#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! The cache engine on a seeded tiny Wan 2.1 (one Pattern_2 list `blocks`, separate CFG calls):
//! the cached list is cache-dit's, a never-cache threshold is bit-identical to the plain loop
//! with both CFG calls per step, a cached call equals Fn blocks + the stored residual + Bn blocks
//! computed by hand on each CFG branch from that branch's own stored residual, and a smooth input sequence gets
//! cached after warmup.

mod harness;

use cachedit_adapters::families::wan::{Config, WanTransformer3DModel};
use cachedit_adapters::families::wan_pipeline::names;
use cachedit_runtime::registry::{BuildRequest, lookup};
use harness::prelude::*;

type Model = WanTransformer3DModel;
const LAYERS: usize = 4;
const SHAPE: Shape<Model> = Shape::<Model> {
    frames: 2,
    height: 4,
    width: 6,
    text_len: 6,
};
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Separate,
    lists: &[("blocks", ForwardPattern::Pattern_2)],
    threshold: 0.1,
    drive: Drive::ModelCfg,
};

fn model() -> Result<Model> {
    let cfg = Config {
        num_layers: LAYERS,
        ..Config::tiny()
    };
    seeded_with_shape(cfg, SHAPE)
}

#[test]
fn cached_lists_are_cache_dits() -> Result<()> {
    let m = model()?;
    CACHE.assert_lists(&m);
    let lens: Vec<_> = m.cached_lists().iter().map(|l| l.len).collect();
    assert_eq!(lens, [LAYERS]);
    assert_eq!(Model::BLOCK_LISTS, CACHE.lists);
    Ok(())
}

/// Two calls per step (conditional, then unconditional), bit-identical to the plain calls.
#[test]
fn never_cache_threshold_is_bit_identical_with_separate_cfg() -> Result<()> {
    CACHE.never_cache_is_bit_identical(&model()?)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    CACHE.smooth_inputs_are_cached(&model()?)
}

/// Runs blocks `range` by hand (Pattern_2: the blocks return the video stream only).
fn run_blocks(
    m: &Model,
    range: std::ops::Range<usize>,
    mut h: Tensor,
    x: &Tensor,
    t: f32,
    cond: &Conditioning,
) -> Result<Tensor> {
    let text = cond.get(names::ENCODER_HIDDEN_STATES)?;
    let c = m.conditioning(&Tensor::new(&[t], &Device::Cpu)?, text, None)?;
    let (_, _, f, hh, ww) = x.dims5()?;
    let rope = m.rotary(f, hh / 2, ww / 2, &Device::Cpu)?;
    for block in &m.blocks().blocks()[range] {
        h = block.forward(&h, &c.context, &c.timestep_proj, Some(&rope))?;
    }
    Ok(h)
}

/// Fn 1, Bn 1, one warmup step, threshold 1 (every later call is cached): step 1's conditional
/// call equals block 0 on its own inputs plus the middle residual (blocks 1..3) of step 0's
/// conditional call, then block 3 and the head; the unconditional call of step 1 uses the
/// unconditional branch's residual, not the conditional one's.
#[test]
fn cached_call_is_fn_plus_stored_residual_plus_bn_per_branch() -> Result<()> {
    let m = model()?;
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(1, 5, &dev)?;
    let uncond = m.synthetic_conditioning(1, 6, &dev)?;
    let shape = m.latent_shape(1);
    let x0 = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let x1 = (&x0 * 0.9)?.add(&(seeded_normal(&shape, 2, DType::F32, &dev)? * 0.1)?)?;
    let (t0, t1) = (1000f32, 950f32);

    enable_cache(
        &m,
        &CacheConfig {
            fn_compute_blocks: 1,
            bn_compute_blocks: 1,
            max_warmup_steps: 1,
            residual_diff_threshold: 1.0,
            ..CacheConfig::default()
        },
    )
    .map_err(candle_core::Error::wrap)?;
    let mut got = Vec::new();
    for (x, t) in [(&x0, t0), (&x1, t1)] {
        for c in [&cond, &uncond] {
            got.push(m.predict(x, &Tensor::new(&[t], &dev)?, c)?);
        }
    }
    let stats = summary(&m);
    assert_eq!(stats[0].cached_steps, vec![1], "conditional branch");
    assert_eq!(stats[0].cfg_cached_steps, vec![1], "unconditional branch");

    for (branch, c, out) in [("cond", &cond, &got[2]), ("uncond", &uncond, &got[3])] {
        let h0 = m.embed_patches(&x0)?;
        let fn0 = run_blocks(&m, 0..1, h0, &x0, t0, c)?;
        let mid0 = run_blocks(&m, 1..LAYERS - 1, fn0.clone(), &x0, t0, c)?;
        let residual = (&mid0 - &fn0)?;
        let fn1 = run_blocks(&m, 0..1, m.embed_patches(&x1)?, &x1, t1, c)?;
        let h = run_blocks(&m, LAYERS - 1..LAYERS, (fn1 + residual)?, &x1, t1, c)?;
        let text = c.get(names::ENCODER_HIDDEN_STATES)?;
        let temb = m.conditioning(&Tensor::new(&[t1], &dev)?, text, None)?.temb;
        let want = m.unpatchify(&m.head(&h, &temb)?, x1.dims())?;
        assert_bit_identical(&format!("cached step 1 ({branch})"), out, &want)?;
    }
    let plain1 = {
        disable_cache(&m);
        m.predict(&x1, &Tensor::new(&[t1], &dev)?, &cond)?
    };
    let (moved, _) = max_err(&got[2], &plain1)?;
    assert!(
        moved > 1e-4,
        "the cached call should differ from the computed one ({moved})"
    );
    Ok(())
}

/// `registry.yaml`'s entry: Wan pipelines find it by prefix, it declares separate CFG and the
/// model's list, and builds from its tiny config.
#[test]
fn registry_entry_builds_the_tiny_model() -> Result<()> {
    for class in ["WanPipeline", "WanImageToVideoPipeline", "WanTransformer3DModel"] {
        let entry = lookup(class).map_err(candle_core::Error::wrap)?;
        assert_eq!(entry.name, "Wan", "{class}");
    }
    let entry = lookup("WanPipeline").map_err(candle_core::Error::wrap)?;
    assert_eq!(entry.cfg, CfgLayout::Separate);
    assert_eq!(
        entry.configs,
        &["Wan2.1-I2V-14B", "Wan2.1-T2V-1.3B", "Wan2.1-T2V-14B"]
    );
    let model = entry
        .build(&BuildRequest::tiny(3))
        .map_err(candle_core::Error::wrap)?;
    assert_eq!(model.cfg_layout(), CfgLayout::Separate);
    assert_eq!(model.cached_lists().len(), 1);
    let out = model.predict(
        &seeded_normal(&model.latent_shape(1), 1, DType::F32, &Device::Cpu)?,
        &Tensor::new(&[500f32], &Device::Cpu)?,
        &model.synthetic_conditioning(1, 2, &Device::Cpu)?,
    )?;
    assert_eq!(out.dims(), model.latent_shape(1).as_slice());
    Ok(())
}

/// An I2V model steps latents of `out_channels` channels and concatenates the
/// `condition` channels before the transformer, as `WanImageToVideoPipeline` does.
#[test]
fn i2v_predict_concatenates_the_condition() -> Result<()> {
    let cfg = Config {
        in_channels: 6,
        out_channels: Some(4),
        image_dim: Some(8),
        added_kv_proj_dim: Some(24),
        ..Config::tiny()
    };
    // diffusers' I2V attention takes the last 512 context tokens as the text.
    let shape = Shape::<Model> {
        text_len: 512,
        ..SHAPE
    };
    let m: Model = seeded_with_shape(cfg, shape)?;
    assert_eq!(m.latent_shape(1), [1, 4, 2, 4, 6]);
    let cond = m.synthetic_conditioning(1, 2, &Device::Cpu)?;
    assert_eq!(cond.get(names::CONDITION)?.dims(), [1, 2, 2, 4, 6]);
    let x = seeded_normal(&m.latent_shape(1), 1, DType::F32, &Device::Cpu)?;
    let t = Tensor::new(&[500f32], &Device::Cpu)?;
    let out = m.predict(&x, &t, &cond)?;
    let full = Tensor::cat(&[&x, cond.get(names::CONDITION)?], 1)?;
    let want = m.forward(
        &full,
        &t,
        cond.get(names::ENCODER_HIDDEN_STATES)?,
        cond.get_opt(names::ENCODER_HIDDEN_STATES_IMAGE),
    )?;
    assert_bit_identical("I2V predict", &out, &want)?;
    Ok(())
}
