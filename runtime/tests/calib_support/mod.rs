//! Hand-written blocks and a one-list model for the calibrator and DBPrune tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cachedit_runtime::{
    BlockList, CacheConfig, CacheOptions, CachedBlock, CachedListInfo, CachedTransformer, CalibratorConfig,
    CallRecord, CfgLayout, ForwardPattern, Streams, enable_cache_with_options, set_tracing, take_trace,
};
use candle_core::{Device, Result, Tensor};

/// The pattern with number `p`.
pub const fn pattern(p: u8) -> ForwardPattern {
    match p {
        0 => ForwardPattern::Pattern_0,
        1 => ForwardPattern::Pattern_1,
        2 => ForwardPattern::Pattern_2,
        3 => ForwardPattern::Pattern_3,
        4 => ForwardPattern::Pattern_4,
        _ => ForwardPattern::Pattern_5,
    }
}

/// Per-call increments: block `i` adds `h[i]` to the hidden stream and `e[i]` to the encoder
/// stream (Patterns 0/1), leaves `E` alone (Pattern 2), has none (Pattern 3) or outputs `e[i]`
/// as its new `E` (Patterns 4/5, whose blocks do not take `E`).
pub struct Increments {
    pub h: Vec<Tensor>,
    pub e: Vec<Tensor>,
}

/// A block whose residual is the per-call increment: the residuals are whatever the test says.
#[derive(Clone, Copy)]
pub struct Add<const P: u8>;

impl<const P: u8> CachedBlock for Add<P> {
    const PATTERN: ForwardPattern = pattern(P);
    type Args<'a> = Increments;

    fn forward_streams(&self, s: Streams, args: &Increments, index: usize) -> Result<Streams> {
        let hidden = (s.hidden + &args.h[index])?;
        let encoder = match (P, s.encoder) {
            (0 | 1, Some(e)) => Some((e + &args.e[index])?),
            (2, e) => e,
            (3, _) => None,
            (4 | 5, _) => Some(args.e[index].clone()),
            (_, e) => e,
        };
        Ok(Streams { hidden, encoder })
    }
}

/// A block with non-trivial math, for bit-identity checks: `tanh(a·H + mix + t)` and an encoder
/// update that depends on both streams, per pattern.
pub struct Mix<const P: u8> {
    pub a: f64,
}

impl<const P: u8> CachedBlock for Mix<P> {
    const PATTERN: ForwardPattern = pattern(P);
    type Args<'a> = f64;

    fn forward_streams(&self, s: Streams, t: &f64, _index: usize) -> Result<Streams> {
        let base = s.hidden.affine(self.a, *t)?;
        match P {
            0..=2 => {
                let e = s.encoder.expect("patterns 0-2 carry E");
                let hidden = base.broadcast_add(&(e.mean_keepdim(1)? * 0.5)?)?.tanh()?;
                let encoder = if P == 2 {
                    e
                } else {
                    ((e * 0.9)?.broadcast_add(&(s.hidden.mean_keepdim(1)? * 0.1)?))?.sin()?
                };
                Ok(Streams::new(hidden, encoder))
            }
            3 => Ok(Streams::hidden(base.tanh()?)),
            _ => {
                let hidden = base.tanh()?;
                let encoder = (hidden.narrow(1, 0, 3)? * 0.5)?.cos()?;
                Ok(Streams::new(hidden, encoder))
            }
        }
    }
}

/// A model with one cached list `blocks`.
pub struct Net<B> {
    pub blocks: BlockList<B>,
    pub cfg: CfgLayout,
}

impl<B: CachedBlock> CachedTransformer for Net<B> {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        vec![CachedListInfo::of("blocks", &self.blocks)]
    }
    fn cfg_layout(&self) -> CfgLayout {
        self.cfg
    }
}

impl<B: CachedBlock> Net<B> {
    pub fn new(blocks: Vec<B>, cfg: CfgLayout) -> Self {
        Self {
            blocks: BlockList::new(blocks),
            cfg,
        }
    }

    /// Enables the cache with `config` and `calibrator`, tracing on.
    pub fn enable(&self, config: CacheConfig, calibrator: Option<CalibratorConfig>) {
        let options = CacheOptions {
            cache: config,
            calibrator,
            modifiers: Vec::new(),
        };
        enable_cache_with_options(self, &options).unwrap();
        set_tracing(self, true);
    }

    pub fn trace(&self) -> Vec<CallRecord> {
        take_trace(self)
    }

    /// Tensors and bytes the list's context holds.
    pub fn held(&self) -> (usize, usize) {
        self.blocks
            .cache_handle()
            .with_context(|c| c.held_tensors())
            .unwrap()
    }
}

/// A 1-D f32 tensor.
pub fn t(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

/// An f32 tensor of `shape` from f64 values (rounded to f32 as the Python reference does).
pub fn from_f64(v: &[f64], shape: &[usize]) -> Tensor {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

pub fn values(x: &Tensor) -> Vec<f32> {
    x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// `|a - b| <= tol · max(1, |b|)` elementwise.
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (g, w) in got.iter().zip(want) {
        let g = f64::from(*g);
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

/// The decision pattern of a trace, `C` computed and `S` cached.
pub fn pattern_of(trace: &[CallRecord]) -> String {
    trace.iter().map(|r| if r.cached { 'S' } else { 'C' }).collect()
}
