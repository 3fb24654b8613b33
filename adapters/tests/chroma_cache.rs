//! The cache engine on a seeded tiny Chroma (two lists: double P1 + single P3, separate CFG):
//! a never-cache threshold is bit-identical to the plain loops, and a smooth input sequence
//! gets cached after warmup, on both the conditional and the unconditional calls.

mod harness;

use cachedit_adapters::families::chroma::{ChromaTransformer2DModel, Config};
use harness::prelude::*;

type Model = ChromaTransformer2DModel;
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Separate,
    lists: &[
        ("transformer_blocks", ForwardPattern::Pattern_1),
        ("single_transformer_blocks", ForwardPattern::Pattern_3),
    ],
    threshold: 0.1,
    drive: Drive::ModelCfg,
};

fn model() -> Result<Model> {
    let cfg = Config {
        num_layers: 2,
        num_single_layers: 2,
        ..Config::tiny()
    };
    let shape = Shape::<Model> {
        grid_h: 4,
        grid_w: 4,
        text_len: 8,
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
