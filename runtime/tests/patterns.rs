//! The engine on all six forward patterns: a never-cache threshold is bit-identical to the plain
//! loop, and a cached call equals Fn output + stored middle residual, then the Bn blocks, for
//! both streams.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use cachedit_runtime::{CacheConfig, CachedBlock, Streams, disable_cache, enable_cache};
use candle_core::{Device, Result, Tensor};
use common::*;

const N: usize = 5;

fn input(step: usize) -> Result<(Tensor, Tensor)> {
    let h = Tensor::arange(0f32, 12.0, &Device::Cpu)?.reshape((1, 3, 4))?;
    let h = ((h * 0.1)? + 0.05 * step as f64)?;
    let e = ((h.cos()? * 0.7)? - 0.01 * step as f64)?;
    Ok((h, e))
}

fn streams<B: CachedBlock>(step: usize) -> Result<Streams> {
    let (h, e) = input(step)?;
    Ok(if B::PATTERN.takes_encoder() {
        Streams::new(h, e)
    } else {
        Streams::hidden(h)
    })
}

fn adds(step: usize) -> Adds {
    Adds {
        h: (0..N).map(|i| scalar(0.01 * (i + step) as f32)).collect(),
        e: (0..N).map(|i| scalar(-0.02 * (i * step) as f32)).collect(),
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32")
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

fn same(a: &Streams, b: &Streams) {
    assert_eq!(bits(&a.hidden), bits(&b.hidden));
    assert_eq!(a.encoder.as_ref().map(bits), b.encoder.as_ref().map(bits));
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("diff")
}

fn run_range<B: CachedBlock<Args<'static> = Adds>>(
    blocks: &[B],
    range: std::ops::Range<usize>,
    mut s: Streams,
    a: &Adds,
) -> Result<Streams> {
    for i in range {
        s = blocks[i].forward_streams(s, a, i)?;
    }
    Ok(s)
}

fn never_cache_is_bit_identical<B: CachedBlock<Args<'static> = Adds>>(make: fn() -> B) -> Result<()> {
    let plain = Model::new((0..N).map(|_| make()).collect());
    let cached = Model::new((0..N).map(|_| make()).collect());
    // Threshold 0: dynamic caching off; warmup 0 so every call goes through the decision.
    let c = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 1,
        max_warmup_steps: 0,
        residual_diff_threshold: 0.0,
        ..Default::default()
    };
    enable_cache(&cached, &c).map_err(candle_core::Error::wrap)?;
    for step in 0..4 {
        let a = plain.blocks.forward(streams::<B>(step)?, &adds(step))?;
        let b = cached.blocks.forward(streams::<B>(step)?, &adds(step))?;
        same(&a, &b);
        assert!(!cached.blocks.cache_handle().last_call().is_some_and(|r| r.cached));
    }
    Ok(())
}

/// Step 0 is computed and stores the middle residuals; step 1 is cached (threshold >= 1) and
/// must equal Bn(Fn_out(1) + stored residual) on both streams.
fn forced_cache_reuses_the_middle_residual<B: CachedBlock<Args<'static> = Adds>>(
    make: fn() -> B,
) -> Result<()> {
    let blocks: Vec<B> = (0..N).map(|_| make()).collect();
    let model = Model::new((0..N).map(|_| make()).collect());
    let c = CacheConfig {
        fn_compute_blocks: 2,
        bn_compute_blocks: 1,
        max_warmup_steps: 1,
        residual_diff_threshold: 1.0,
        ..Default::default()
    };
    enable_cache(&model, &c).map_err(candle_core::Error::wrap)?;

    // Expected, by hand: the middle residual of step 0 ...
    let a0 = adds(0);
    let fn0 = run_range(&blocks, 0..2, streams::<B>(0)?, &a0)?;
    let mid0 = run_range(&blocks, 2..N - 1, fn0.clone(), &a0)?;
    let r_h = (&mid0.hidden - &fn0.hidden)?;
    let r_e = match (&mid0.encoder, &fn0.encoder) {
        (Some(e), Some(e0)) => Some((e - e0)?),
        _ => None,
    };
    // ... added to step 1's Fn output, then the Bn block.
    let a1 = adds(1);
    let fn1 = run_range(&blocks, 0..2, streams::<B>(1)?, &a1)?;
    let approx = Streams {
        hidden: (&r_h + &fn1.hidden)?,
        encoder: match (&r_e, &fn1.encoder) {
            (Some(r), Some(e)) => Some((r + e)?),
            (None, e) => e.clone(),
            (Some(_), None) => None,
        },
    };
    let want = run_range(&blocks, N - 1..N, approx, &a1)?;

    let step0 = model.blocks.forward(streams::<B>(0)?, &a0)?;
    same(&step0, &run_range(&blocks, 0..N, streams::<B>(0)?, &a0)?);
    let got = model.blocks.forward(streams::<B>(1)?, &a1)?;
    assert!(
        model.blocks.cache_handle().last_call().is_some_and(|r| r.cached),
        "{:?}",
        B::PATTERN
    );
    same(&got, &want);
    assert_eq!(
        got.encoder.is_some(),
        B::PATTERN != cachedit_runtime::ForwardPattern::Pattern_3
    );
    // The cached output really differs from recomputing (the blocks are nonlinear).
    let exact = run_range(&blocks, 0..N, streams::<B>(1)?, &a1)?;
    assert!(max_abs(&got.hidden, &exact.hidden) > 0.0);

    disable_cache(&model);
    same(&model.blocks.forward(streams::<B>(1)?, &a1)?, &exact);
    Ok(())
}

macro_rules! pattern_tests {
    ($($name:ident => $block:ident),*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn never_cache_threshold_is_bit_identical_to_the_plain_loop() -> Result<()> {
                never_cache_is_bit_identical(|| $block)
            }
            #[test]
            fn cached_call_is_fn_output_plus_stored_residual_then_bn() -> Result<()> {
                forced_cache_reuses_the_middle_residual(|| $block)
            }
        }
    )*};
}

pattern_tests!(pattern_0 => P0Block, pattern_1 => P1Block, pattern_2 => P2Block,
               pattern_3 => P3Block, pattern_4 => P4Block, pattern_5 => P5Block);
