//! The cache engine on a seeded tiny DiT (4 blocks, one cached list, Pattern_3, CFG batched):
//! the cached list is cache-dit's, a never-cache threshold is bit-identical to the plain loop, a
//! cached step is exactly the Fn blocks + the stored middle residual + the Bn blocks (the final
//! layer's conditioning computed outside the list), and smooth inputs get cached.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod harness;

use cachedit_adapters::families::dit::{Config, DiTTransformer2DModel, DiTTransformerBlock, names};
use harness::prelude::*;

type Model = DiTTransformer2DModel;
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Batched,
    lists: &[("transformer_blocks", ForwardPattern::Pattern_3)],
    threshold: 0.1,
    drive: Drive::ModelCfg,
};

fn model() -> Result<Model> {
    seeded_with_shape(
        Config {
            num_layers: 4,
            ..Config::tiny()
        },
        8,
    )
}

#[test]
fn cached_lists_are_cache_dits() -> Result<()> {
    let m = model()?;
    CACHE.assert_lists(&m);
    assert_eq!(Model::BLOCK_LISTS, CACHE.lists);
    let lens: Vec<_> = m.cached_lists().iter().map(|l| l.len).collect();
    assert_eq!(lens, [4]);
    assert_eq!(m.latent_shape(2), vec![2, 4, 8, 8]);
    let labels = m.synthetic_conditioning(3, 1, &Device::Cpu)?;
    let labels = labels.get(names::CLASS_LABELS)?.to_vec1::<u32>()?;
    assert!(labels.iter().all(|&l| l < 8), "{labels:?}");
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

fn run_blocks(
    blocks: &[DiTTransformerBlock],
    range: std::ops::Range<usize>,
    x: Tensor,
    t: &Tensor,
    labels: &Tensor,
) -> Result<Tensor> {
    range
        .into_iter()
        .try_fold(x, |x, i| blocks[i].forward(&x, t, labels))
}

/// Step 0 is computed and stores the residual of the middle blocks; step 1 is cached
/// (permissive threshold) and must be, bit for bit, `finish(Bn(Fn(x_1) + (Mn(Fn(x_0)) -
/// Fn(x_0))))` with block 0's conditioning for the final layer.
#[test]
fn cached_step_is_fn_plus_stored_residual_then_bn() -> Result<()> {
    let m = model()?;
    let dev = Device::Cpu;
    let labels = Tensor::new(&[2u32, 8], &dev)?;
    let shape = m.latent_shape(2);
    let x0 = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let x1 = ((&x0 * 0.98)? + (seeded_normal(&shape, 2, DType::F32, &dev)? * 0.02)?)?;
    let t0 = Tensor::new(&[800f32, 800.0], &dev)?;
    let t1 = Tensor::new(&[790f32, 790.0], &dev)?;

    let blocks = m.transformer_blocks().blocks();
    let (n, fn_blocks, bn_blocks) = (blocks.len(), 1, 1);
    let f0 = run_blocks(blocks, 0..fn_blocks, m.embed(&x0)?, &t0, &labels)?;
    let mid0 = run_blocks(blocks, fn_blocks..n - bn_blocks, f0.clone(), &t0, &labels)?;
    let residual = (&mid0 - &f0)?;
    let f1 = run_blocks(blocks, 0..fn_blocks, m.embed(&x1)?, &t1, &labels)?;
    let tail = run_blocks(blocks, n - bn_blocks..n, (&residual + &f1)?, &t1, &labels)?;
    let want = m.finish(&tail, &m.conditioning(&t1, &labels)?, 8, 8)?;
    let plain0 = m.forward(&x0, &t0, &labels)?;
    let exact1 = m.forward(&x1, &t1, &labels)?;

    let cfg = CacheConfig {
        fn_compute_blocks: fn_blocks,
        bn_compute_blocks: bn_blocks,
        max_warmup_steps: 1,
        residual_diff_threshold: 1.0,
        ..CacheConfig::default()
    };
    enable_cache(&m, &cfg).map_err(candle_core::Error::wrap)?;
    let handle = m.transformer_blocks().cache_handle();
    assert_bit_identical("computed step 0", &m.forward(&x0, &t0, &labels)?, &plain0)?;
    assert!(!handle.last_call().unwrap().cached, "step 0 is the warmup");
    let got = m.forward(&x1, &t1, &labels)?;
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
    assert_bit_identical("after disable", &m.forward(&x1, &t1, &labels)?, &exact1)?;
    Ok(())
}
