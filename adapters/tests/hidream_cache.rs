//! The cache engine on a seeded tiny HiDream (double Pattern_0 + single Pattern_3 lists behind
//! patch functors, CFG batched): a never-cache threshold is bit-identical to the plain loops,
//! and a smooth input sequence gets cached after warmup.

mod cache_support;

use cache_support::Drive;
use cachedit_adapters::FamilyModel;
use cachedit_adapters::families::hidream::{Config, HiDreamImageTransformer2DModel};
use cachedit_adapters::sample::SampleShape;
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{CfgLayout, ForwardPattern};
use candle_core::{DType, Device, Result};

fn model() -> Result<HiDreamImageTransformer2DModel> {
    let cfg = Config {
        num_layers: 2,
        num_single_layers: 2,
        num_routed_experts: 4,
        llama_layers: vec![0, 1, 2, 3],
        ..Config::tiny()
    };
    Ok(
        HiDreamImageTransformer2DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))?
            .with_sample_shape(SampleShape {
                grid_h: 4,
                grid_w: 4,
                text_len: 3,
            }),
    )
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    let m = model()?;
    cache_support::assert_lists(
        &m,
        CfgLayout::Batched,
        &[
            ("double_stream_blocks", ForwardPattern::Pattern_0),
            ("single_stream_blocks", ForwardPattern::Pattern_3),
        ],
    );
    cache_support::assert_never_cache_is_bit_identical_with(
        &m,
        &cache_support::never_cache().into(),
        2,
        &Drive::of(&m),
    )
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    let m = model()?;
    cache_support::assert_smooth_inputs_are_cached_with(&m, 0.1, &Drive::of(&m))
}
