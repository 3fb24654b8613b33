//! Bria: parity with diffusers (f32) on the fixture of `tools/reference/gen_bria.py` (whole
//! model, conditioning vector, rotary table, one block of each list on diffusers' own inputs),
//! and the cache engine on its two Pattern_1 lists.

mod harness;

use cachedit_adapters::families::bria::{BriaTransformer2DModel, Config};
use harness::prelude::*;

type Model = BriaTransformer2DModel;
const REL: f32 = 1e-4;
const NAME: &str = "bria_tiny";
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Batched,
    lists: &[
        ("transformer_blocks", ForwardPattern::Pattern_1),
        ("single_transformer_blocks", ForwardPattern::Pattern_1),
    ],
    threshold: 0.1,
    drive: Drive::Plain,
};

#[test]
fn tiny_bria_matches_diffusers() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    p.output(&p.predict(&["encoder_hidden_states", "img_ids", "txt_ids"], 1.0)?)?;

    let [t, img_ids, txt_ids] = p.ios(["timestep", "img_ids", "txt_ids"])?;
    let (cos, sin) = p.model.rotary_embedding(img_ids, txt_ids)?.full_tables()?;
    p.check_within("rope cos", &cos, "double0.in.rope_cos", 1e-6)?;
    p.check_within("rope sin", &sin, "double0.in.rope_sin", 1e-6)?;
    p.check("temb", &p.model.conditioning(t, None)?, "double0.in.temb")?;
    Ok(())
}

#[test]
fn tiny_bria_blocks_match_diffusers() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    p.block("double0", |m, b| {
        let block = &m.transformer_blocks().blocks()[0];
        Ok(BlockOut::enc_hid(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
            Some(&b.rope()?),
        )?))
    })?;
    p.block("single0", |m, b| {
        let block = &m.single_transformer_blocks().blocks()[0];
        Ok(BlockOut::enc_hid(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
            Some(&b.rope()?),
        )?))
    })
}

fn model() -> Result<Model> {
    seeded(Config {
        num_layers: 2,
        num_single_layers: 2,
        ..Config::tiny()
    })
}

#[test]
fn lists_are_pattern_1_with_batched_cfg() -> Result<()> {
    CACHE.assert_lists(&model()?);
    Ok(())
}

#[test]
fn never_cache_threshold_is_bit_identical() -> Result<()> {
    CACHE.never_cache_is_bit_identical(&model()?)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    CACHE.smooth_inputs_are_cached(&model()?)
}
