//! The cache engine on a seeded tiny CogVideoX (one Pattern_0 list, CFG batched into one call
//! per step, as `CogVideoXPipeline` runs it): a never-cache threshold is bit-identical to the
//! plain loops, and a smooth input sequence gets cached after warmup; for the sin-cos (2B) and
//! the rotary 1.5 configurations.

mod harness;

use cachedit_adapters::families::cogvideox::{CogVideoXTransformer3DModel, Config};
use harness::prelude::*;

type Model = CogVideoXTransformer3DModel;
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Batched,
    lists: &[("transformer_blocks", ForwardPattern::Pattern_0)],
    threshold: 0.1,
    drive: Drive::ModelCfg,
};

fn shape() -> Shape<Model> {
    Shape::<Model> {
        frames: 2,
        height: 4,
        width: 4,
        text_len: 8,
    }
}

fn tiny() -> Result<Model> {
    seeded_with_shape(
        Config {
            num_layers: 3,
            ..Config::tiny()
        },
        shape(),
    )
}

/// 1.5: temporal patches, sliced rotary (head_dim 16), the I2V `ofs`.
fn tiny_1_5() -> Result<Model> {
    let cfg = Config {
        num_layers: 3,
        attention_head_dim: 16,
        patch_size_t: Some(2),
        ofs_embed_dim: Some(2),
        use_rotary_positional_embeddings: true,
        ..Config::tiny()
    };
    seeded_with_shape(cfg, shape())
}

#[test]
fn never_cache_threshold_is_bit_identical_to_the_plain_loops() -> Result<()> {
    CACHE.never_cache_is_bit_identical(&tiny()?)?;
    CACHE.never_cache_is_bit_identical(&tiny_1_5()?)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    CACHE.smooth_inputs_are_cached(&tiny()?)?;
    CACHE.smooth_inputs_are_cached(&tiny_1_5()?)
}
