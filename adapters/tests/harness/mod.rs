//! Scaffolding shared by the adapters' integration tests. A family's tests are configurations of
//! two harnesses:
//!
//! - [`parity`]: a fixture written by `tools/reference/gen_<family>.py` (`refgen`) is loaded
//!   (the transformer through the family's `FamilyModel::from_pretrained`, `io.safetensors` for
//!   inputs and references); the test runs the model and blocks on the fixture's inputs and
//!   [`Parity`](parity::Parity) asserts each result within the family's tolerance, printing every
//!   error it measures;
//! - [`cache`]: a seeded tiny model driven through `Denoiser` on a smooth input sequence, plain
//!   and cached; a [`CacheCase`](cache::CacheCase) (CFG layout, cached lists, threshold, drive)
//!   asserts the lists, bit-identity at a never-cache threshold, and caching after warmup.
//!
//! A test file declares `mod harness;` and `use harness::prelude::*;`, which brings the types
//! both harnesses take (so a path moved in `cachedit_runtime` or `cachedit_adapters` is fixed
//! here, not in every test file). A new family's parity test, after `gen_foo.py` wrote
//! `fixtures/foo_tiny/`:
//!
//! ```ignore
//! #[test]
//! fn tiny_foo_matches_diffusers() -> Result<()> {
//!     let p = Parity::<FooTransformer2DModel>::load("foo_tiny", 1e-4)?;
//!     p.output(&p.predict(&["encoder_hidden_states", "pooled_projections"], 1.0)?)?;
//!     p.block("double0", |m, b| {
//!         let block = &m.transformer_blocks().blocks()[0];
//!         let out = block.forward(b.hidden()?, b.encoder()?, b.temb()?, Some(&b.rope()?))?;
//!         Ok(BlockOut::enc_hid(out))
//!     })
//! }
//! ```
//!
//! and its caching test:
//!
//! ```ignore
//! const CACHE: CacheCase = CacheCase {
//!     cfg: CfgLayout::Batched,
//!     lists: &[("transformer_blocks", ForwardPattern::Pattern_1)],
//!     threshold: 0.1,
//!     drive: Drive::ModelCfg,
//! };
//! fn model() -> Result<FooTransformer2DModel> {
//!     seeded(Config { num_layers: 2, ..Config::tiny() })
//! }
//! #[test]
//! fn never_cache_threshold_is_bit_identical() -> Result<()> {
//!     CACHE.never_cache_is_bit_identical(&model()?)
//! }
//! #[test]
//! fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
//!     CACHE.smooth_inputs_are_cached(&model()?)
//! }
//! ```
#![allow(dead_code, unused_imports)]

pub mod cache;
pub mod parity;

use std::collections::HashMap;
use std::path::PathBuf;

use cachedit_adapters::{FamilyModel, seeded_var_builder};
use candle_core::{DType, Device, Result, Tensor};

/// What the family tests use: the harnesses, the comparisons, and the Candle/cachedit types
/// their configurations name.
pub mod prelude {
    pub use super::cache::{self, CacheCase, Drive, Smooth};
    pub use super::parity::{BlockIo, BlockOut, Parity};
    pub use super::{Shape, assert_bit_identical, assert_close, fixture, max_err, seeded, seeded_with_shape};
    pub use cachedit_adapters::components::rope::RotaryEmbedding;
    pub use cachedit_adapters::loader::DiffusersConfig;
    pub use cachedit_adapters::{FamilyModel, ListLayout, seeded_var_builder};
    pub use cachedit_runtime::{
        CacheConfig, CacheOptions, CachedTransformer, CalibratorConfig, CfgLayout, Conditioning, Denoiser,
        ForwardPattern, StaticBlockLists, Streams, disable_cache, enable_cache, enable_cache_with_options,
        seeded_normal, summary,
    };
    pub use candle_core::{DType, Device, Result, Tensor};
}

/// The generation size type of family `M` (`SampleShape`, `VideoSampleShape`, ...), named
/// through the model so that tests do not depend on the module it lives in.
pub type Shape<M> = <M as FamilyModel>::SampleShape;

/// `adapters/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The tensors of fixture `name` (`io.safetensors`, written by `tools/reference/refgen.py`).
pub fn io(name: &str) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(fixture(name).join("io.safetensors"), &Device::Cpu)
}

/// Tensor `key` of fixture tensors `io` (an error naming it if absent).
pub fn get<'a>(io: &'a HashMap<String, Tensor>, key: &str) -> Result<&'a Tensor> {
    io.get(key)
        .ok_or_else(|| candle_core::Error::msg(format!("fixture has no `{key}`")))
}

/// Family `M` at `cfg` with the tests' seeded weights (seed 42, f32, CPU).
pub fn seeded<M: FamilyModel>(cfg: M::Config) -> Result<M> {
    M::build(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))
}

/// [`seeded`] with generation size `shape` (what `Denoiser` draws latents and text for).
pub fn seeded_with_shape<M: FamilyModel>(cfg: M::Config, shape: M::SampleShape) -> Result<M> {
    Ok(seeded::<M>(cfg)?.with_sample_shape(shape))
}

/// `(max |a - b|, max |b|)`.
pub fn max_err(a: &Tensor, b: &Tensor) -> Result<(f32, f32)> {
    if a.shape() != b.shape() {
        candle_core::bail!("shape {:?} vs reference {:?}", a.shape(), b.shape());
    }
    let a = a.to_dtype(DType::F32)?;
    let b = b.to_dtype(DType::F32)?;
    let err = (&a - &b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((err, scale))
}

/// Asserts `max |a - b| <= rel · max(max |b|, 1)` and prints the error.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, rel: f32) -> Result<f32> {
    let (err, scale) = max_err(a, b)?;
    println!(
        "{what}: max abs err {err:.3e} (reference scale {scale:.3}, relative {:.3e}, tolerance {rel:.0e})",
        err / scale.max(1.0)
    );
    assert!(
        err <= rel * scale.max(1.0),
        "{what}: max abs err {err:e} exceeds {rel:e} x scale {scale}"
    );
    Ok(err)
}

/// Bitwise equality of two f32 tensors.
pub fn assert_bit_identical(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(same, "{what}: outputs differ");
    Ok(())
}
