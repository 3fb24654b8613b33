//! Parity of the Candle Flux transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_flux.py`: the whole model, the conditioning vector, the rotary table,
//! and one double and one single block on diffusers' own block inputs.

mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::ListLayout;
use cachedit_adapters::components::rope::RotaryEmbedding;
use cachedit_adapters::families::flux::FluxTransformer2DModel;
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn load(name: &str) -> Result<FluxTransformer2DModel> {
    FluxTransformer2DModel::from_pretrained(&fixture(name).join("transformer"), DType::F32, &Device::Cpu)
        .map_err(candle_core::Error::wrap)
}

fn check_model(name: &str) -> Result<()> {
    let io = io(name)?;
    let model = load(name)?;
    let run = |m: &FluxTransformer2DModel| {
        m.forward(
            get(&io, "hidden_states")?,
            get(&io, "encoder_hidden_states")?,
            get(&io, "pooled_projections")?,
            get(&io, "timestep")?,
            get(&io, "img_ids")?,
            get(&io, "txt_ids")?,
            io.get("guidance"),
        )
    };
    let out = run(&model)?;
    assert_close(&format!("{name} output"), &out, get(&io, "output")?, REL)?;

    // The rotary table and the conditioning vector, against the values diffusers fed block 0.
    let rotary = model.rotary_embedding(get(&io, "img_ids")?, get(&io, "txt_ids")?)?;
    let (cos, sin) = rotary.full_tables()?;
    assert_close(
        &format!("{name} rope cos"),
        &cos,
        get(&io, "double0.in.rope_cos")?,
        1e-6,
    )?;
    assert_close(
        &format!("{name} rope sin"),
        &sin,
        get(&io, "double0.in.rope_sin")?,
        1e-6,
    )?;
    let temb = model.conditioning(
        get(&io, "timestep")?,
        io.get("guidance"),
        get(&io, "pooled_projections")?,
    )?;
    assert_close(&format!("{name} temb"), &temb, get(&io, "double0.in.temb")?, REL)?;

    // The two-list layout computes the same function.
    let cfg = model.config().clone().with_list_layout(ListLayout::Separate);
    let ckpt =
        cachedit_adapters::Checkpoint::from_dir(&fixture(name).join("transformer"), DType::F32, &Device::Cpu)
            .map_err(candle_core::Error::wrap)?;
    let separate = FluxTransformer2DModel::from_checkpoint(cfg, ckpt, DType::F32, &Device::Cpu)
        .map_err(candle_core::Error::wrap)?;
    common::assert_bit_identical(&format!("{name} separate vs chained"), &run(&separate)?, &out)?;
    Ok(())
}

fn check_blocks(name: &str) -> Result<()> {
    let io = io(name)?;
    let model = load(name)?;
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
            &format!("{name} {prefix} hidden"),
            &hid,
            get(&io, &k("out.hidden_states"))?,
            REL,
        )?;
        assert_close(
            &format!("{name} {prefix} encoder"),
            &enc,
            get(&io, &k("out.encoder_hidden_states"))?,
            REL,
        )?;
    }
    Ok(())
}

#[test]
fn tiny_flux_matches_diffusers() -> Result<()> {
    check_model("flux_tiny")
}

#[test]
fn tiny_flux_blocks_match_diffusers() -> Result<()> {
    check_blocks("flux_tiny")
}

/// Guidance embedder (dev-like), `in_channels != out_channels` (Fill-like), two blocks per list.
#[test]
fn tiny_flux_with_guidance_and_fill_channels_matches_diffusers() -> Result<()> {
    check_model("flux_tiny_guidance")?;
    check_blocks("flux_tiny_guidance")
}
