//! The cache engine on a seeded tiny PixArt (4 blocks, one cached list, Pattern_3, CFG batched):
//! the cached list is cache-dit's, a never-cache threshold is bit-identical to the plain loop, a
//! cached step is exactly the Fn blocks + the stored middle residual + the Bn blocks, and smooth
//! inputs get cached through `Denoiser` with the model's batched CFG.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod harness;

use cachedit_adapters::families::pixart::{Config, PixArtTransformer2DModel, PixArtTransformerBlock, names};
use harness::prelude::*;

type Model = PixArtTransformer2DModel;
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Batched,
    lists: &[("transformer_blocks", ForwardPattern::Pattern_3)],
    threshold: 0.1,
    drive: Drive::ModelCfg,
};

/// The α layout (caption projection, micro-conditions) at tiny size with 4 blocks.
fn model() -> Result<Model> {
    let cfg = Config {
        num_layers: 4,
        num_attention_heads: 3,
        attention_head_dim: 4,
        cross_attention_dim: Some(12),
        caption_channels: Some(16),
        use_additional_conditions: Some(true),
        ..Config::tiny()
    };
    let shape = Shape::<Model> {
        grid_h: 4,
        grid_w: 6,
        text_len: 5,
    };
    seeded_with_shape(cfg, shape)
}

#[test]
fn cached_lists_are_cache_dits() -> Result<()> {
    let m = model()?;
    // cache-dit's PixArt adapter: `transformer_blocks`, Pattern_3; the pipelines batch CFG.
    CACHE.assert_lists(&m);
    assert_eq!(Model::BLOCK_LISTS, CACHE.lists);
    let lens: Vec<_> = m.cached_lists().iter().map(|l| l.len).collect();
    assert_eq!(lens, [4]);
    assert_eq!(m.latent_shape(2), vec![2, 4, 8, 12]);
    let cond = m.synthetic_conditioning(2, 1, &Device::Cpu)?;
    assert_eq!(cond.get(names::ENCODER_HIDDEN_STATES)?.dims(), &[2, 5, 16]);
    // 4 of 5 tokens kept: T5 padding.
    let mask = cond.get(names::ENCODER_ATTENTION_MASK)?.to_vec2::<f32>()?;
    assert_eq!(mask[1], vec![1.0, 1.0, 1.0, 1.0, 0.0]);
    assert_eq!(
        cond.get(names::RESOLUTION)?.to_vec2::<f32>()?[0],
        vec![64.0, 96.0]
    );
    Ok(())
}

#[test]
fn never_cache_threshold_is_bit_identical() -> Result<()> {
    CACHE.never_cache_is_bit_identical(&model()?)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    CACHE.smooth_inputs_are_cached(&model()?)
}

struct Inputs {
    x: Tensor,
    caption: Tensor,
    mask: Tensor,
    t: Tensor,
}

fn run_blocks(
    blocks: &[PixArtTransformerBlock],
    range: std::ops::Range<usize>,
    x: Tensor,
    caption: &Tensor,
    temb: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    range
        .into_iter()
        .try_fold(x, |x, i| blocks[i].forward(&x, caption, temb, Some(mask)))
}

/// Step 0 is computed and stores the residual of the middle blocks; step 1 is cached
/// (permissive threshold) and must be, bit for bit, `finish(Bn(Fn(x_1) + (Mn(Fn(x_0)) -
/// Fn(x_0))))` with the model's own embedders and blocks.
#[test]
fn cached_step_is_fn_plus_stored_residual_then_bn() -> Result<()> {
    let m = model()?;
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(2, 9, &dev)?;
    let sizes = (cond.get(names::RESOLUTION)?, cond.get(names::ASPECT_RATIO)?);
    let shape = m.latent_shape(2);
    let x0 = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let step = |x: Tensor, t: f32| -> Result<Inputs> {
        Ok(Inputs {
            x,
            caption: cond.get(names::ENCODER_HIDDEN_STATES)?.clone(),
            mask: cond.get(names::ENCODER_ATTENTION_MASK)?.clone(),
            t: Tensor::new(&[t, t], &dev)?,
        })
    };
    let s0 = step(x0.clone(), 800.0)?;
    let x1 = ((&x0 * 0.98)? + (seeded_normal(&shape, 2, DType::F32, &dev)? * 0.02)?)?;
    let s1 = step(x1, 790.0)?;
    let full = |s: &Inputs| m.forward(&s.x, &s.caption, &s.t, Some(&s.mask), Some(sizes));

    // By hand, with the model's own pieces and no cache attached.
    let blocks = m.transformer_blocks().blocks();
    let (n, fn_blocks, bn_blocks) = (blocks.len(), 1, 1);
    let prepare = |s: &Inputs| -> Result<(Tensor, Tensor, Tensor, Tensor, Tensor)> {
        let (temb, embedded) = m.conditioning(&s.t, Some(sizes))?;
        let (caption, mask) = (m.caption(&s.caption)?, m.mask_bias(&s.mask)?);
        Ok((m.embed(&s.x)?, caption, mask, temb, embedded))
    };
    let (h0, c0, k0, temb0, _) = prepare(&s0)?;
    let f0 = run_blocks(blocks, 0..fn_blocks, h0, &c0, &temb0, &k0)?;
    let mid0 = run_blocks(blocks, fn_blocks..n - bn_blocks, f0.clone(), &c0, &temb0, &k0)?;
    let residual = (&mid0 - &f0)?;
    let (h1, c1, k1, temb1, emb1) = prepare(&s1)?;
    let f1 = run_blocks(blocks, 0..fn_blocks, h1, &c1, &temb1, &k1)?;
    let tail = run_blocks(blocks, n - bn_blocks..n, (&residual + &f1)?, &c1, &temb1, &k1)?;
    let (_, _, h, w) = s1.x.dims4()?;
    let want = m.finish(&tail, &emb1, h, w)?;
    let plain0 = full(&s0)?;
    let exact1 = full(&s1)?;
    // The pieces reassemble the plain forward.
    let (hh, cc, kk, tt, ee) = prepare(&s1)?;
    let all = run_blocks(blocks, 0..n, hh, &cc, &tt, &kk)?;
    assert_bit_identical("pieces = forward", &m.finish(&all, &ee, h, w)?, &exact1)?;

    let cfg = CacheConfig {
        fn_compute_blocks: fn_blocks,
        bn_compute_blocks: bn_blocks,
        max_warmup_steps: 1,
        residual_diff_threshold: 1.0,
        ..CacheConfig::default()
    };
    enable_cache(&m, &cfg).map_err(candle_core::Error::wrap)?;
    let handle = m.transformer_blocks().cache_handle();
    assert_bit_identical("computed step 0", &full(&s0)?, &plain0)?;
    assert!(!handle.last_call().unwrap().cached, "step 0 is the warmup");
    let got = full(&s1)?;
    let record = handle.last_call().unwrap();
    assert!(record.cached, "step 1 must be cached: {record:?}");
    assert_bit_identical("cached step 1", &got, &want)?;
    let (err, _) = max_err(&got, &exact1)?;
    assert!(
        err > 0.0,
        "the cached step equals the exact one: the test proves nothing"
    );
    assert_eq!(summary(&m)[0].cached_steps, vec![1]);
    disable_cache(&m);
    assert_bit_identical("after disable", &full(&s1)?, &exact1)?;
    Ok(())
}
