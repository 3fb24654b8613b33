//! The cache engine on a seeded tiny HiDream (double Pattern_0 + single Pattern_3 lists behind
//! patch functors, CFG batched): a never-cache threshold is bit-identical to the plain loops,
//! and a smooth input sequence gets cached after warmup.

mod harness;

use cachedit_adapters::families::hidream::{Config, HiDreamImageTransformer2DModel};
use harness::prelude::*;

type Model = HiDreamImageTransformer2DModel;
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Batched,
    lists: &[
        ("double_stream_blocks", ForwardPattern::Pattern_0),
        ("single_stream_blocks", ForwardPattern::Pattern_3),
    ],
    threshold: 0.1,
    drive: Drive::ModelCfg,
};

fn model() -> Result<Model> {
    let cfg = Config {
        num_layers: 2,
        num_single_layers: 2,
        num_routed_experts: 4,
        llama_layers: vec![0, 1, 2, 3],
        ..Config::tiny()
    };
    let shape = Shape::<Model> {
        grid_h: 4,
        grid_w: 4,
        text_len: 3,
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
