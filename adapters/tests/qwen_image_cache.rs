#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! The cache engine on a seeded tiny QwenImage (one Pattern_1 list, separate CFG calls): the
//! cached lists are cache-dit's, a never-cache threshold is bit-identical to the plain loop, a
//! cached call equals Fn blocks + the stored middle residual + Bn blocks computed by hand, and a
//! smooth input sequence gets cached after warmup.

mod cache_support;
mod common;

use cachedit_adapters::families::qwen_image::{
    Config, QwenImageTransformer2DModel, joint_attention_mask, joint_rotary,
};
use cachedit_adapters::families::qwen_image_pipeline::names;
use cachedit_adapters::registry::FamilyModel;
use cachedit_adapters::sample::SampleShape;
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{
    CacheConfig, CacheOptions, CachedTransformer, CfgLayout, Denoiser, ForwardPattern, StaticBlockLists,
    Streams, enable_cache, seeded_normal, summary,
};
use candle_core::{DType, Device, Result, Tensor};
use common::{assert_bit_identical, max_err};

const LAYERS: usize = 4;
const SHAPE: SampleShape = SampleShape {
    grid_h: 3,
    grid_w: 4,
    text_len: 6,
};

fn model() -> Result<QwenImageTransformer2DModel> {
    let cfg = Config {
        num_layers: LAYERS,
        ..Config::tiny()
    };
    Ok(
        QwenImageTransformer2DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))?
            .with_sample_shape(SHAPE),
    )
}

#[test]
fn cached_lists_are_cache_dits() -> Result<()> {
    let m = model()?;
    assert_eq!(m.cfg_layout(), CfgLayout::Separate);
    let lists: Vec<_> = m
        .cached_lists()
        .iter()
        .map(|l| (l.name.clone(), l.pattern, l.len))
        .collect();
    assert_eq!(
        lists,
        vec![(
            "transformer_blocks".to_string(),
            ForwardPattern::Pattern_1,
            LAYERS
        )]
    );
    assert_eq!(
        QwenImageTransformer2DModel::BLOCK_LISTS,
        &[("transformer_blocks", ForwardPattern::Pattern_1)]
    );
    Ok(())
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loop() -> Result<()> {
    let m = model()?;
    let options = CacheOptions::from(cache_support::never_cache());
    cache_support::assert_never_cache_is_bit_identical(&m, &options, 1)
}

/// The block inputs and the per-call arguments of one call, computed outside the model.
struct Prepared {
    streams: Streams,
    temb: Tensor,
    mask: Tensor,
    rotary: cachedit_adapters::components::rope::RotaryEmbedding,
}

fn prepare(
    m: &QwenImageTransformer2DModel,
    x: &Tensor,
    text: &Tensor,
    mask: &Tensor,
    t: f32,
) -> Result<Prepared> {
    // The same tensor op as `predict` (Candle divides by multiplying with the reciprocal).
    let ts = (Tensor::new(&[t], &Device::Cpu)? / 1000.0)?;
    let (h, e, temb) = m.embed(x, text, &ts)?;
    let (img, txt) = m.rotary_embeddings(&[(1, SHAPE.grid_h, SHAPE.grid_w)], SHAPE.text_len, &Device::Cpu)?;
    Ok(Prepared {
        mask: joint_attention_mask(mask, h.dim(1)?, DType::F32)?,
        rotary: joint_rotary(&img, &txt)?,
        streams: Streams::new(h, e),
        temb,
    })
}

/// Runs blocks `range` of the list on `s` by hand (Pattern_1: blocks return `(enc, hidden)`).
fn run_blocks(
    m: &QwenImageTransformer2DModel,
    range: std::ops::Range<usize>,
    s: Streams,
    p: &Prepared,
) -> Result<Streams> {
    let (mut h, mut e) = (s.hidden, s.encoder.expect("QwenImage has a text stream"));
    for block in &m.transformer_blocks().blocks()[range] {
        let (e2, h2) = block.forward(&h, &e, Some(&p.mask), &p.temb, Some(&p.rotary))?;
        (h, e) = (h2, e2);
    }
    Ok(Streams::new(h, e))
}

/// Fn 1, Bn 1, one warmup step and a threshold of 1 (every later call is cached): the
/// conditional call of step 1 must equal block 0 on its own inputs, plus the middle residual
/// (blocks 1..3) of step 0's conditional call on both streams, then block 3 and the head.
#[test]
fn cached_call_is_fn_plus_stored_residual_plus_bn() -> Result<()> {
    let m = model()?;
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(1, 5, &dev)?;
    let uncond = m.synthetic_conditioning(1, 6, &dev)?;
    let (text, mask) = (
        cond.get(names::ENCODER_HIDDEN_STATES)?,
        cond.get(names::ENCODER_HIDDEN_STATES_MASK)?,
    );
    let shape = m.latent_shape(1);
    let x0 = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let x1 = (&x0 * 0.9)?.add(&(seeded_normal(&shape, 2, DType::F32, &dev)? * 0.1)?)?;
    let (t0, t1) = (1000f32, 950f32);
    let plain1 = m.predict(&x1, &Tensor::new(&[t1], &dev)?, &cond)?;

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

    let p0 = prepare(&m, &x0, text, mask, t0)?;
    let fn0 = run_blocks(&m, 0..1, p0.streams.clone(), &p0)?;
    let mid0 = run_blocks(&m, 1..LAYERS - 1, fn0.clone(), &p0)?;
    let enc = |s: &Streams| s.encoder.clone().expect("text stream");
    let r_h = (&mid0.hidden - &fn0.hidden)?;
    let r_e = (enc(&mid0) - enc(&fn0))?;
    let p1 = prepare(&m, &x1, text, mask, t1)?;
    let fn1 = run_blocks(&m, 0..1, p1.streams.clone(), &p1)?;
    let approx = Streams::new((&fn1.hidden + &r_h)?, (enc(&fn1) + &r_e)?);
    let out = run_blocks(&m, LAYERS - 1..LAYERS, approx, &p1)?;
    let want = m.head(&out.hidden, &p1.temb)?;

    assert_bit_identical("cached step 1 (cond)", &got[2], &want)?;
    let (moved, _) = max_err(&got[2], &plain1)?;
    assert!(
        moved > 1e-4,
        "the cached call should differ from the computed one ({moved})"
    );
    Ok(())
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    // Seeded (untrained) weights make the timestep embedding move fast, so the diffs of this
    // sequence sit around 0.2; a trained model's are far smaller.
    cache_support::assert_smooth_inputs_are_cached(&model()?, 0.3)
}

/// `registry.yaml`'s entry: QwenImage pipelines (Edit variants included) find it by prefix, it
/// declares separate CFG and the model's list, and builds from its tiny config.
#[test]
fn registry_entry_builds_the_tiny_model() -> Result<()> {
    use cachedit_runtime::registry::{BuildRequest, lookup};
    let entry = lookup("QwenImageEditPlusPipeline").map_err(candle_core::Error::wrap)?;
    assert_eq!(entry.name, "QwenImage");
    assert_eq!(entry.cfg, CfgLayout::Separate);
    assert_eq!(entry.configs, &["Qwen-Image", "Qwen-Image-Edit"]);
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
