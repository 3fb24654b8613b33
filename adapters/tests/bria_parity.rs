//! Bria: parity with diffusers (f32) on the fixture of `tools/reference/gen_bria.py` (whole
//! model, conditioning vector, rotary table, one block of each list on diffusers' own inputs),
//! and the cache engine on its two Pattern_1 lists.

mod cache_support;
mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::components::rope::RotaryEmbedding;
use cachedit_adapters::families::bria::{BriaTransformer2DModel, Config, names};
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{CachedTransformer, CfgLayout, Conditioning, Denoiser, ForwardPattern};
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;
const NAME: &str = "bria_tiny";

fn load() -> Result<BriaTransformer2DModel> {
    BriaTransformer2DModel::from_pretrained(&fixture(NAME).join("transformer"), DType::F32, &Device::Cpu)
        .map_err(candle_core::Error::wrap)
}

#[test]
fn tiny_bria_matches_diffusers() -> Result<()> {
    let io = io(NAME)?;
    let model = load()?;
    let cond = Conditioning::new()
        .with(
            names::ENCODER_HIDDEN_STATES,
            get(&io, "encoder_hidden_states")?.clone(),
        )
        .with(names::IMG_IDS, get(&io, "img_ids")?.clone())
        .with(names::TXT_IDS, get(&io, "txt_ids")?.clone());
    let out = model.predict(get(&io, "hidden_states")?, get(&io, "timestep")?, &cond)?;
    assert_close("bria output", &out, get(&io, "output")?, REL)?;

    let rotary = model.rotary_embedding(get(&io, "img_ids")?, get(&io, "txt_ids")?)?;
    let (cos, sin) = rotary.full_tables()?;
    assert_close("bria rope cos", &cos, get(&io, "double0.in.rope_cos")?, 1e-6)?;
    assert_close("bria rope sin", &sin, get(&io, "double0.in.rope_sin")?, 1e-6)?;
    let temb = model.conditioning(get(&io, "timestep")?, None)?;
    assert_close("bria temb", &temb, get(&io, "double0.in.temb")?, REL)?;
    Ok(())
}

#[test]
fn tiny_bria_blocks_match_diffusers() -> Result<()> {
    let io = io(NAME)?;
    let model = load()?;
    for prefix in ["double0", "single0"] {
        let k = |s: &str| format!("{prefix}.{s}");
        let rotary = RotaryEmbedding::from_interleaved_full(
            get(&io, &k("in.rope_cos"))?,
            get(&io, &k("in.rope_sin"))?,
        )?;
        let (h, e, t) = (
            get(&io, &k("in.hidden_states"))?,
            get(&io, &k("in.encoder_hidden_states"))?,
            get(&io, &k("in.temb"))?,
        );
        let (enc, hid) = if prefix == "double0" {
            model.transformer_blocks().blocks()[0].forward(h, e, t, Some(&rotary))?
        } else {
            model.single_transformer_blocks().blocks()[0].forward(h, e, t, Some(&rotary))?
        };
        assert_close(
            &format!("bria {prefix} hidden"),
            &hid,
            get(&io, &k("out.hidden_states"))?,
            REL,
        )?;
        assert_close(
            &format!("bria {prefix} encoder"),
            &enc,
            get(&io, &k("out.encoder_hidden_states"))?,
            REL,
        )?;
    }
    Ok(())
}

fn seeded() -> Result<BriaTransformer2DModel> {
    let cfg = Config {
        num_layers: 2,
        num_single_layers: 2,
        ..Config::tiny()
    };
    BriaTransformer2DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))
}

#[test]
fn lists_are_pattern_1_with_batched_cfg() -> Result<()> {
    let m = seeded()?;
    let lists = m.cached_lists();
    let names: Vec<_> = lists.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["transformer_blocks", "single_transformer_blocks"]);
    assert!(lists.iter().all(|l| l.pattern == ForwardPattern::Pattern_1));
    assert_eq!(m.cfg_layout(), CfgLayout::Batched);
    Ok(())
}

#[test]
fn never_cache_threshold_is_bit_identical() -> Result<()> {
    cache_support::assert_never_cache_is_bit_identical(&seeded()?, &cache_support::never_cache().into(), 2)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    cache_support::assert_smooth_inputs_are_cached(&seeded()?, 0.1)
}
