//! Parity of the Candle Chroma transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_chroma.py`: the whole model, the approximator output, the rotary table,
//! and one double and one single block on diffusers' own block inputs.

mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::components::rope::RotaryEmbedding;
use cachedit_adapters::families::chroma::ChromaTransformer2DModel;
use candle_core::{DType, Device, Result, Tensor};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn load(name: &str) -> Result<ChromaTransformer2DModel> {
    ChromaTransformer2DModel::from_pretrained(&fixture(name).join("transformer"), DType::F32, &Device::Cpu)
        .map_err(candle_core::Error::wrap)
}

/// diffusers' block-level mask: `m[:, None, None, :] * m[:, None, :, None]`.
fn pairwise(mask: Option<&Tensor>) -> Result<Option<Tensor>> {
    mask.map(|m| {
        m.unsqueeze(1)?
            .unsqueeze(1)?
            .broadcast_mul(&m.unsqueeze(1)?.unsqueeze(3)?)
    })
    .transpose()
}

fn check(name: &str) -> Result<()> {
    let io = io(name)?;
    let model = load(name)?;
    let mask = io.get("attention_mask");
    let out = model.forward(
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "timestep")?,
        get(&io, "img_ids")?,
        get(&io, "txt_ids")?,
        mask,
    )?;
    assert_close(&format!("{name} output"), &out, get(&io, "output")?, REL)?;
    let pooled = model.pooled_temb(get(&io, "timestep")?)?;
    assert_close(
        &format!("{name} pooled_temb"),
        &pooled,
        get(&io, "pooled_temb")?,
        REL,
    )?;
    let rotary = model.rotary_embedding(get(&io, "img_ids")?, get(&io, "txt_ids")?)?;
    let (cos, _) = rotary.full_tables()?;
    assert_close(
        &format!("{name} rope cos"),
        &cos,
        get(&io, "double0.in.rope_cos")?,
        1e-6,
    )?;

    let mask = pairwise(mask)?;
    let k = |p: &str, s: &str| format!("{p}.{s}");
    let rope = |p: &str| {
        RotaryEmbedding::from_interleaved_full(
            get(&io, &k(p, "in.rope_cos"))?,
            get(&io, &k(p, "in.rope_sin"))?,
        )
    };
    let (enc, hid) = model.transformer_blocks().blocks()[0].0.forward(
        get(&io, "double0.in.hidden_states")?,
        get(&io, "double0.in.encoder_hidden_states")?,
        get(&io, "double0.in.temb")?,
        Some(&rope("double0")?),
        mask.as_ref(),
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
    let hid = model.single_transformer_blocks().blocks()[0].0.forward(
        get(&io, "single0.in.hidden_states")?,
        get(&io, "single0.in.temb")?,
        Some(&rope("single0")?),
        mask.as_ref(),
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
fn tiny_chroma_matches_diffusers() -> Result<()> {
    check("chroma_tiny")
}

/// Two blocks per list (modulation offsets of block 1), two approximator layers,
/// `out_channels != in_channels`, and the pipeline's T5 padding mask.
#[test]
fn tiny_chroma_with_mask_matches_diffusers() -> Result<()> {
    check("chroma_tiny_mask")
}
