//! The cache engine on a seeded tiny Mochi (one Pattern_0 list, CFG batched into one call per
//! step): a never-cache threshold is bit-identical to the plain loops, and a smooth input
//! sequence gets cached after warmup.

mod cache_support;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::families::mochi::{Config, MochiTransformer3DModel};
use cachedit_adapters::sample::VideoSampleShape;
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{CfgLayout, ForwardPattern};
use candle_core::{DType, Device, Result};

fn model() -> Result<MochiTransformer3DModel> {
    let cfg = Config {
        num_layers: 3,
        ..Config::tiny()
    };
    Ok(
        MochiTransformer3DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))?
            .with_sample_shape(VideoSampleShape {
                frames: 2,
                height: 4,
                width: 4,
                text_len: 6,
            }),
    )
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    let m = model()?;
    cache_support::assert_lists(
        &m,
        CfgLayout::Batched,
        &[("transformer_blocks", ForwardPattern::Pattern_0)],
    );
    let drive = cache_support::Drive::of(&m);
    cache_support::assert_never_cache_is_bit_identical_with(
        &m,
        &cache_support::never_cache().into(),
        1,
        &drive,
    )
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    let m = model()?;
    cache_support::assert_smooth_inputs_are_cached_with(&m, 0.1, &cache_support::Drive::of(&m))
}
