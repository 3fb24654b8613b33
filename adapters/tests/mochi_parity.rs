//! Parity of the Candle Mochi transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_mochi.py`: the whole model, `temb` and the projected caption, the
//! rotary tables, the first block and the last (`context_pre_only`) block on diffusers' own
//! block inputs.

mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::families::mochi::MochiRotary;
use cachedit_adapters::families::mochi::MochiTransformer3DModel;
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn check(name: &str) -> Result<()> {
    let io = io(name)?;
    let model = MochiTransformer3DModel::from_pretrained(
        &fixture(name).join("transformer"),
        DType::F32,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)?;
    let (x, text, t, mask) = (
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "timestep")?,
        get(&io, "encoder_attention_mask")?,
    );
    let out = model.forward(x, text, t, mask)?;
    assert_close(&format!("{name} output"), &out, get(&io, "output")?, REL)?;
    let (temb, caption) = model.time_embed(t, text, mask)?;
    assert_close(&format!("{name} temb"), &temb, get(&io, "temb")?, REL)?;
    assert_close(
        &format!("{name} caption"),
        &caption,
        get(&io, "caption_proj")?,
        REL,
    )?;
    let (_, _, f, h, w) = x.dims5()?;
    let p = model.config().patch_size;
    let rotary = model.rotary(f, h / p, w / p)?;
    assert_close(
        &format!("{name} rope cos"),
        &rotary.cos,
        get(&io, "first.in.rope_cos")?,
        1e-5,
    )?;
    assert_close(
        &format!("{name} rope sin"),
        &rotary.sin,
        get(&io, "first.in.rope_sin")?,
        1e-5,
    )?;

    let blocks = model.transformer_blocks().blocks();
    for (prefix, block) in [("first", &blocks[0]), ("last", &blocks[blocks.len() - 1])] {
        let k = |s: &str| format!("{prefix}.{s}");
        let rotary = MochiRotary {
            cos: get(&io, &k("in.rope_cos"))?.clone(),
            sin: get(&io, &k("in.rope_sin"))?.clone(),
        };
        let (hid, enc) = block.forward(
            get(&io, &k("in.hidden_states"))?,
            get(&io, &k("in.encoder_hidden_states"))?,
            get(&io, &k("in.temb"))?,
            Some(mask),
            Some(&rotary),
        )?;
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
fn tiny_mochi_matches_diffusers() -> Result<()> {
    check("mochi_tiny")
}

/// Asymmetric streams (image 16, text 24), three blocks, `out_channels != in_channels`; both
/// fixtures pad the prompt of sample 0.
#[test]
fn tiny_mochi_asymmetric_matches_diffusers() -> Result<()> {
    check("mochi_tiny_asym")
}
