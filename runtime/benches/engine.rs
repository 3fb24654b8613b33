//! Micro-benchmarks of the engine's own work, on the hidden/encoder stream sizes of the
//! benchmark models (`cachedit bench`): the default (256 image tokens × 256 channels) and the
//! large one (1024 image + 512 text tokens × 1024 channels). Run with
//! `cargo bench -p cachedit-runtime`; what a cached call costs beyond its Fn/Bn blocks is the
//! diff (two reductions), the residual add, and for calibrators one update per computed call
//! and one forecast per cached call.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use cachedit_runtime::calibrators::TaylorSeer;
use cachedit_runtime::diff::{mean_abs, relative_l1_and_mean};
use cachedit_runtime::store::MiddleStore;
use cachedit_runtime::{CacheConfig, CacheContext, CalibratorTiming, Streams, seeded_normal};
use candle_core::{DType, Device, Tensor};
use divan::Bencher;

fn main() {
    divan::main();
}

/// `(image tokens, text tokens, channels)` of the default and the large benchmark model.
const SIZES: &[(usize, usize, usize)] = &[(256, 32, 256), (1024, 512, 1024)];

fn normal(shape: &[usize], seed: u64) -> Tensor {
    seeded_normal(shape, seed, DType::F32, &Device::Cpu).unwrap()
}

fn label((s, t, c): (usize, usize, usize)) -> String {
    format!("{s}+{t}x{c}")
}

/// The probe diff of one decision as the engine runs it: `mean|prev - cur| / mean|prev|` over
/// the Fn residual `(1, S, C)` together with `mean|cur|` (the next reference's), with `mean|prev|`
/// computed first (the first diff against a buffer) or already known (every later one).
#[divan::bench(args = SIZES.iter().map(|&s| label(s)))]
fn diff(bencher: Bencher, size: &str) {
    let &(s, _, c) = SIZES.iter().find(|&&z| label(z) == size).unwrap();
    let (prev, cur) = (normal(&[1, s, c], 1), normal(&[1, s, c], 2));
    bencher.bench(|| relative_l1_and_mean(&prev, &cur, mean_abs(&prev).unwrap()).unwrap());
}

#[divan::bench(args = SIZES.iter().map(|&s| label(s)))]
fn diff_known_mean(bencher: Bencher, size: &str) {
    let &(s, _, c) = SIZES.iter().find(|&&z| label(z) == size).unwrap();
    let (prev, cur) = (normal(&[1, s, c], 1), normal(&[1, s, c], 2));
    let m = mean_abs(&prev).unwrap();
    bencher.bench(|| relative_l1_and_mean(&prev, &cur, m).unwrap());
}

fn streams((s, t, c): (usize, usize, usize), seed: u64) -> Streams {
    Streams::new(normal(&[1, s, c], seed), normal(&[1, t, c], seed + 100))
}

/// A cached call's reuse: the stored residuals of both streams added to the Fn outputs.
#[divan::bench(args = SIZES.iter().map(|&s| label(s)))]
fn apply_cache(bencher: Bencher, size: &str) {
    let &z = SIZES.iter().find(|&&z| label(z) == size).unwrap();
    let cfg = CacheConfig {
        enable_separate_cfg: Some(false),
        ..Default::default()
    };
    let mut ctx = CacheContext::new("bench", cfg);
    ctx.set_middle(&streams(z, 1), &streams(z, 2)).unwrap();
    let fn_out = streams(z, 3);
    bencher.bench_local(|| ctx.apply_cache(fn_out.clone()).unwrap());
}

/// TaylorSeer (cache-dit timing) on the hidden stream: one update per computed step.
#[divan::bench(args = [1, 2], consts = [0, 1])]
fn taylorseer_update<const SIZE: usize>(bencher: Bencher, order: usize) {
    let (s, _, c) = SIZES[SIZE];
    let values: Vec<Tensor> = (0..4).map(|i| normal(&[1, s, c], 10 + i)).collect();
    let mut ts = TaylorSeer::new(order, CalibratorTiming::CacheDit);
    for v in &values[..3] {
        ts.mark_step_begin();
        ts.update(v.clone()).unwrap();
    }
    bencher.bench_local(|| {
        ts.mark_step_begin();
        ts.update(values[3].clone()).unwrap();
    });
}

/// TaylorSeer forecast for a cached step, with a full derivative ladder.
#[divan::bench(args = [1, 2], consts = [0, 1])]
fn taylorseer_forecast<const SIZE: usize>(bencher: Bencher, order: usize) {
    let (s, _, c) = SIZES[SIZE];
    let mut ts = TaylorSeer::new(order, CalibratorTiming::CacheDit);
    for i in 0..4 {
        ts.mark_step_begin();
        ts.update(normal(&[1, s, c], 20 + i)).unwrap();
    }
    ts.mark_step_begin();
    bencher.bench_local(|| ts.approximate().unwrap().unwrap());
}
