#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Parity of the Candle QwenImage transformer with diffusers (f32) on the fixture written by
//! `tools/reference/gen_qwen_image.py`: the whole model (text padding mask, odd row count for the
//! centred rotary positions), `temb`, the image and text rotary tables, the first block on
//! diffusers' own block inputs, and an Edit-style two-image sequence.

mod common;

use cachedit_adapters::families::qwen_image::{
    QwenImageTransformer2DModel, joint_attention_mask, joint_rotary,
};
use candle_core::{DType, Device, Result, Tensor};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn shapes(t: &Tensor) -> Result<Vec<(usize, usize, usize)>> {
    Ok(t.to_vec2::<f32>()?
        .iter()
        .map(|r| (r[0] as usize, r[1] as usize, r[2] as usize))
        .collect())
}

#[test]
fn tiny_qwen_image_matches_diffusers() -> Result<()> {
    let io = io("qwen_image_tiny")?;
    let model = QwenImageTransformer2DModel::from_pretrained(
        &fixture("qwen_image_tiny").join("transformer"),
        DType::F32,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)?;
    let (x, text, mask, t) = (
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "encoder_hidden_states_mask")?,
        get(&io, "timestep")?,
    );
    let img_shapes = shapes(get(&io, "img_shapes")?)?;
    let out = model.forward(x, text, Some(mask), t, &img_shapes)?;
    assert_close("qwen_image output", &out, get(&io, "output")?, REL)?;
    let temb = model.conditioning(t)?;
    assert_close("qwen_image temb", &temb, get(&io, "temb")?, REL)?;

    let (img, txt) = model.rotary_embeddings(&img_shapes, text.dim(1)?, &Device::Cpu)?;
    for (what, table) in [("img", &img), ("txt", &txt)] {
        let (cos, sin) = table.tables();
        assert_close(
            &format!("rope {what} cos"),
            cos,
            get(&io, &format!("rope.{what}_cos"))?,
            1e-6,
        )?;
        assert_close(
            &format!("rope {what} sin"),
            sin,
            get(&io, &format!("rope.{what}_sin"))?,
            1e-6,
        )?;
    }

    let k = |s: &str| format!("block0.{s}");
    let (hs, enc) = (
        get(&io, &k("in.hidden_states"))?,
        get(&io, &k("in.encoder_hidden_states"))?,
    );
    let joint_mask = joint_attention_mask(
        get(&io, &k("in.encoder_hidden_states_mask"))?,
        hs.dim(1)?,
        DType::F32,
    )?;
    let rotary = joint_rotary(&img, &txt)?;
    let (e, h) = model.transformer_blocks().blocks()[0].forward(
        hs,
        enc,
        Some(&joint_mask),
        get(&io, &k("in.temb"))?,
        Some(&rotary),
    )?;
    assert_close("block0 hidden", &h, get(&io, &k("out.hidden_states"))?, REL)?;
    assert_close(
        "block0 encoder",
        &e,
        get(&io, &k("out.encoder_hidden_states"))?,
        REL,
    )?;

    let edit = model.forward(
        get(&io, "edit.hidden_states")?,
        text,
        None,
        t,
        &shapes(get(&io, "edit.img_shapes")?)?,
    )?;
    assert_close("qwen_image edit output", &edit, get(&io, "edit.output")?, REL)?;
    Ok(())
}

/// A mask of the wrong shape and `img_shapes` that do not cover the latents are errors that
/// name the argument, not a panic or a silent broadcast.
#[test]
fn mismatched_mask_and_img_shapes_are_errors() -> Result<()> {
    let io = io("qwen_image_tiny")?;
    let model = QwenImageTransformer2DModel::from_pretrained(
        &fixture("qwen_image_tiny").join("transformer"),
        DType::F32,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)?;
    let (x, text, mask, t) = (
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "encoder_hidden_states_mask")?,
        get(&io, "timestep")?,
    );
    let err = model
        .forward(x, text, Some(&mask.narrow(1, 0, 3)?), t, &[(1, 3, 4)])
        .unwrap_err();
    assert!(err.to_string().contains("encoder_hidden_states_mask"), "{err}");
    let err = model.forward(x, text, Some(mask), t, &[(1, 4, 4)]).unwrap_err();
    assert!(err.to_string().contains("img_shapes"), "{err}");
    Ok(())
}
