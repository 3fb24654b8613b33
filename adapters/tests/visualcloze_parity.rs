//! VisualCloze: parity with diffusers (f32) on the fixture of `tools/reference/gen_visualcloze.py`
//! (whole model through `Denoiser::predict`, and one block of each list on diffusers' own block
//! inputs), and the cache engine on its two separately cached lists.

mod harness;

use cachedit_adapters::families::visualcloze::{self, VisualClozeTransformer2DModel, names};
use harness::prelude::*;

type Model = VisualClozeTransformer2DModel;
const REL: f32 = 1e-4;
const NAME: &str = "visualcloze_tiny";
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::None,
    lists: &[
        ("transformer_blocks", ForwardPattern::Pattern_1),
        ("single_transformer_blocks", ForwardPattern::Pattern_1),
    ],
    threshold: 0.1,
    drive: Drive::Plain,
};

#[test]
fn tiny_visualcloze_matches_diffusers() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    assert_eq!(p.model.cached_lists().len(), 2, "VisualCloze caches two lists");
    let hidden = p.io("hidden_states")?;
    let out_ch = p.model.config().out_channels();
    let latents = hidden.narrow(2, 0, out_ch)?;
    let condition = hidden.narrow(2, out_ch, p.model.condition_channels())?;
    let cond = Conditioning::new()
        .with(names::CONDITION_LATENTS, condition)
        .with(
            names::ENCODER_HIDDEN_STATES,
            p.io("encoder_hidden_states")?.clone(),
        )
        .with(names::POOLED_PROJECTIONS, p.io("pooled_projections")?.clone())
        .with(names::IMG_IDS, p.io("img_ids")?.clone())
        .with(names::TXT_IDS, p.io("txt_ids")?.clone())
        .with(names::GUIDANCE, p.io("guidance")?.clone());
    let t = (p.io("timestep")? * 1000.0)?;
    p.output(&p.model.predict(&latents, &t, &cond)?)?;
    Ok(())
}

#[test]
fn tiny_visualcloze_blocks_match_diffusers() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    p.block("double0", |m, b| {
        let block = &m.flux().transformer_blocks().blocks()[0];
        Ok(BlockOut::enc_hid(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
            Some(&b.rope()?),
        )?))
    })?;
    p.block("single0", |m, b| {
        let block = &m.flux().single_transformer_blocks().blocks()[0];
        Ok(BlockOut::enc_hid(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
            Some(&b.rope()?),
        )?))
    })
}

fn model() -> Result<Model> {
    seeded(visualcloze::Config {
        num_layers: 2,
        num_single_layers: 2,
        ..visualcloze::tiny_fill()
    })
}

#[test]
fn never_cache_threshold_is_bit_identical() -> Result<()> {
    CACHE.never_cache_is_bit_identical(&model()?)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    CACHE.smooth_inputs_are_cached(&model()?)
}

#[test]
fn configs_are_consistent() {
    for cfg in [
        visualcloze::config(),
        visualcloze::tiny(),
        visualcloze::tiny_fill(),
    ] {
        assert!(cfg.validate().is_ok(), "{cfg:?}");
    }
    assert_eq!(visualcloze::config().in_channels, 384);
    assert_eq!(visualcloze::config().out_channels(), 64);
}
