//! The cache engine on a seeded tiny Mochi (one Pattern_0 list, CFG batched into one call per
//! step): a never-cache threshold is bit-identical to the plain loops, and a smooth input
//! sequence gets cached after warmup.

mod harness;

use cachedit_adapters::families::mochi::{Config, MochiTransformer3DModel};
use harness::prelude::*;

type Model = MochiTransformer3DModel;
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Batched,
    lists: &[("transformer_blocks", ForwardPattern::Pattern_0)],
    threshold: 0.1,
    drive: Drive::ModelCfg,
};

fn model() -> Result<Model> {
    let cfg = Config {
        num_layers: 3,
        ..Config::tiny()
    };
    let shape = Shape::<Model> {
        frames: 2,
        height: 4,
        width: 4,
        text_len: 6,
    };
    seeded_with_shape(cfg, shape)
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    CACHE.never_cache_is_bit_identical(&model()?)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    CACHE.smooth_inputs_are_cached(&model()?)
}
