//! Small Candle blocks whose residuals the tests control, one per forward pattern, and a model
//! that exposes one or two block lists. The `CachedBlock` impls are written by hand here (the
//! way `#[block_adapter]` generates them) so the runtime is tested on its own.
#![allow(dead_code, clippy::expect_used)]

use cachedit_runtime::{
    BlockList, CacheConfig, CachedBlock, CachedListInfo, CachedTransformer, CfgLayout, ForwardPattern,
    Streams,
};
use candle_core::{DType, Device, Result, Tensor};

/// Per-call additive inputs: block `i` adds `h[i]` to the hidden stream and `e[i]` to the
/// encoder stream (broadcast), so every residual is under the test's control.
pub struct Adds {
    pub h: Vec<Tensor>,
    pub e: Vec<Tensor>,
}

pub fn scalar(x: f32) -> Tensor {
    Tensor::new(&[x], &Device::Cpu).expect("scalar tensor")
}

impl Adds {
    /// Block 0 adds `fn_residual`; the other blocks add `rest` (scalars), encoder adds `e`.
    pub fn first(n: usize, fn_residual: Tensor, rest: f32) -> Self {
        let mut h = vec![fn_residual];
        h.extend((1..n).map(|i| scalar(rest + i as f32)));
        let e = (0..n).map(|i| scalar(0.5 + 0.25 * i as f32)).collect();
        Self { h, e }
    }
}

fn add(x: &Tensor, a: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_add(&a.to_dtype(x.dtype())?)
}

macro_rules! test_block {
    ($name:ident, $pattern:ident, |$h:ident, $e:ident, $a:ident, $i:ident| $body:block) => {
        /// A test block of this pattern.
        pub struct $name;
        impl CachedBlock for $name {
            const PATTERN: ForwardPattern = ForwardPattern::$pattern;
            type Args<'a> = Adds;
            fn forward_streams(&self, s: Streams, $a: &Adds, $i: usize) -> candle_core::Result<Streams> {
                let $h = s.hidden;
                let $e = s.encoder;
                $body
            }
        }
    };
}

// Patterns 0/1: both streams updated and fed on; nonlinear so reuse differs from recomputing.
// The streams meet through their means, so H and E may have different shapes (as H and the
// text stream do).
test_block!(P0Block, Pattern_0, |h, e, a, i| {
    let e = e.ok_or_else(|| candle_core::Error::Msg("Pattern_0 needs E".into()))?;
    let h2 = add(&h.broadcast_add(&(e.tanh()?.mean_all()? * 0.25)?)?, &a.h[i])?;
    let e2 = add(&(e * 0.9)?, &a.e[i])?;
    Ok(Streams::new(h2, e2))
});
test_block!(P1Block, Pattern_1, |h, e, a, i| {
    let e = e.ok_or_else(|| candle_core::Error::Msg("Pattern_1 needs E".into()))?;
    let h2 = add(&h.broadcast_add(&(e.tanh()?.mean_all()? * 0.5)?)?, &a.h[i])?;
    let e2 = add(
        &(e * 0.8)?.broadcast_add(&(h.tanh()?.mean_all()? * 0.1)?)?,
        &a.e[i],
    )?;
    Ok(Streams::new(h2, e2))
});
// Pattern 2: E is read but passed through unchanged.
test_block!(P2Block, Pattern_2, |h, e, a, i| {
    let e = e.ok_or_else(|| candle_core::Error::Msg("Pattern_2 needs E".into()))?;
    let h2 = add(&h.broadcast_add(&(e.tanh()?.mean_all()? * 0.25)?)?, &a.h[i])?;
    Ok(Streams::new(h2, e))
});
// Patterns 3/4/5: H only; 4/5 return a new E that is not fed to the next block.
test_block!(P3Block, Pattern_3, |h, _e, a, i| {
    let h2 = add(&((&h * 0.9)? + (h.tanh()? * 0.1)?)?, &a.h[i])?;
    Ok(Streams::hidden(h2))
});
test_block!(P4Block, Pattern_4, |h, _e, a, i| {
    let h2 = add(&(&h + (h.tanh()? * 0.1)?)?, &a.h[i])?;
    let e2 = add(&(&h2 * 0.5)?, &a.e[i])?;
    Ok(Streams::new(h2, e2))
});
test_block!(P5Block, Pattern_5, |h, _e, a, i| {
    let h2 = add(&((&h * 1.1)? - (h.tanh()? * 0.2)?)?, &a.h[i])?;
    let e2 = add(&(h2.sin()? * 0.5)?, &a.e[i])?;
    Ok(Streams::new(h2, e2))
});

/// A model with one cached list.
pub struct Model<B> {
    pub blocks: BlockList<B>,
    pub cfg: CfgLayout,
}

impl<B: CachedBlock> Model<B> {
    pub fn new(blocks: Vec<B>) -> Self {
        Self {
            blocks: BlockList::new(blocks),
            cfg: CfgLayout::None,
        }
    }
}

impl<B: CachedBlock> CachedTransformer for Model<B> {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        vec![CachedListInfo::of("transformer_blocks", &self.blocks)]
    }
    fn cfg_layout(&self) -> CfgLayout {
        self.cfg
    }
}

/// Runs the model on a sequence of scalar Fn residuals (hidden input 0, so the residual is the
/// value itself) and returns the decision string (`C`/`S` per call).
pub fn run_scalar_sequence(model: &Model<P3Block>, residuals: &[f32]) -> Result<String> {
    run_shaped_sequence(model, &residuals.iter().map(|&r| scalar(r)).collect::<Vec<_>>())
}

/// Like `run_scalar_sequence` with full residual tensors (any shape, any dtype).
pub fn run_shaped_sequence(model: &Model<P3Block>, residuals: &[Tensor]) -> Result<String> {
    let n = model.blocks.len();
    let mut out = String::new();
    for r in residuals {
        let h = r.zeros_like()?;
        let adds = Adds::first(n, r.clone(), 10.0);
        model.blocks.forward(Streams::hidden(h), &adds)?;
        let last = model
            .blocks
            .cache_handle()
            .last_call()
            .ok_or_else(|| candle_core::Error::Msg("no record".into()))?;
        out.push(if last.cached { 'S' } else { 'C' });
    }
    Ok(out)
}

/// A three-block Pattern_3 model with `config` attached.
pub fn scalar_model(config: CacheConfig) -> Model<P3Block> {
    let model = Model::new(vec![P3Block, P3Block, P3Block]);
    cachedit_runtime::enable_cache(&model, &config).expect("valid test config");
    model
}

/// F1 B0 with the given warmup and threshold (the defaults of the vectors of docs/algorithm.md §14).
pub fn vector_config(warmup: usize, threshold: f64) -> CacheConfig {
    CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        max_warmup_steps: warmup,
        residual_diff_threshold: threshold,
        ..Default::default()
    }
}

pub fn f32_tensor(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).expect("tensor")
}

pub fn to_dtype(t: &Tensor, d: DType) -> Tensor {
    t.to_dtype(d).expect("dtype")
}
