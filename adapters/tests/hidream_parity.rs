//! Parity of the Candle HiDream-I1 transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_hidream.py`: the whole model, and the first double and the first single
//! `HiDreamBlock` on diffusers' own block inputs.

mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::families::hidream::HiDreamImageTransformer2DModel;
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn check(name: &str) -> Result<()> {
    let io = io(name)?;
    let model = HiDreamImageTransformer2DModel::from_pretrained(
        &fixture(name).join("transformer"),
        DType::F32,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)?;
    let x = get(&io, "hidden_states")?;
    let out = model.forward(
        x,
        get(&io, "timesteps")?,
        get(&io, "encoder_hidden_states_t5")?,
        get(&io, "encoder_hidden_states_llama3")?,
        get(&io, "pooled_embeds")?,
    )?;
    assert_close(&format!("{name} output"), &out, get(&io, "output")?, REL)?;

    // The blocks on diffusers' inputs; the rotary table is the model's own (ids are not
    // captured), for the padded image length and the joint text length.
    let (_, _, h, w) = x.dims4()?;
    let p = model.config().patch_size;
    let hd = get(&io, "double0.in.hidden_states")?;
    let ed = get(&io, "double0.in.encoder_hidden_states")?;
    let rotary = model.rotary(h / p, w / p, hd.dim(1)?, ed.dim(1)?, &Device::Cpu)?;
    let (hid, enc) = model.double_stream_blocks().blocks()[0].0.forward(
        hd,
        io.get("double0.in.hidden_states_masks"),
        ed,
        get(&io, "double0.in.temb")?,
        Some(&rotary),
    )?;
    assert_close(
        &format!("{name} double0 hidden"),
        &hid,
        get(&io, "double0.out.hidden_states")?,
        REL,
    )?;
    assert_close(
        &format!("{name} double0 encoder"),
        &enc,
        get(&io, "double0.out.encoder_hidden_states")?,
        REL,
    )?;
    let hid = model.single_stream_blocks().blocks()[0].0.forward(
        get(&io, "single0.in.hidden_states")?,
        io.get("single0.in.hidden_states_masks"),
        get(&io, "single0.in.temb")?,
        Some(&rotary),
    )?;
    assert_close(
        &format!("{name} single0 hidden"),
        &hid,
        get(&io, "single0.out.hidden_states")?,
        REL,
    )?;
    Ok(())
}

#[test]
fn tiny_hidream_matches_diffusers() -> Result<()> {
    check("hidream_tiny")
}

/// Top-2 of 4 routed experts, two blocks per list, Llama layers picked out of order, and a
/// non-square latent (padded to `max_seq` with an image mask).
#[test]
fn tiny_hidream_moe_non_square_matches_diffusers() -> Result<()> {
    check("hidream_tiny_moe")
}
