#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Parity of the Candle QwenImage transformer with diffusers (f32) on the fixture written by
//! `tools/reference/gen_qwen_image.py`: the whole model (text padding mask, odd row count for the
//! centred rotary positions), `temb`, the image and text rotary tables, the first block on
//! diffusers' own block inputs, and an Edit-style two-image sequence.

mod common;

use cachedit_adapters::families::qwen_image::{
    QwenImageTransformer2DModel, joint_attention_mask, joint_rotary,
};
use cachedit_adapters::registry::FamilyModel;
use candle_core::{DType, Device, Result, Tensor};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn shapes(t: &Tensor) -> Result<Vec<(usize, usize, usize)>> {
    Ok(t.to_vec2::<f32>()?
        .iter()
        .map(|r| (r[0] as usize, r[1] as usize, r[2] as usize))
        .collect())
}

/// The fixture's checkpoint through our loader, in `dtype`.
fn load(dtype: DType) -> Result<QwenImageTransformer2DModel> {
    QwenImageTransformer2DModel::from_pretrained(
        &fixture("qwen_image_tiny").join("transformer"),
        dtype,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)
}

#[test]
fn tiny_qwen_image_matches_diffusers() -> Result<()> {
    let io = io("qwen_image_tiny")?;
    let model = load(DType::F32)?;
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
    let model = load(DType::F32)?;
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

/// The published Qwen-Image `transformer/config.json` (with its stray `pooled_projection_dim`,
/// which diffusers ignores) parses to `Config::qwen_image()`; Edit-2511's `zero_cond_t` and a
/// rotary split that does not sum to the head width are rejected with the key's name.
#[test]
fn published_configs_parse_and_validate() {
    use cachedit_adapters::families::qwen_image::Config;
    use cachedit_adapters::loader::parse_config;
    let path = std::path::Path::new("Qwen-Image/transformer/config.json");
    let qwen_image = r#"{
      "_class_name": "QwenImageTransformer2DModel", "_diffusers_version": "0.34.0.dev0",
      "attention_head_dim": 128, "axes_dims_rope": [16, 56, 56], "guidance_embeds": false,
      "in_channels": 64, "joint_attention_dim": 3584, "num_attention_heads": 24,
      "num_layers": 60, "out_channels": 16, "patch_size": 2, "pooled_projection_dim": 768
    }"#;
    let cfg: Config = parse_config(qwen_image, path).unwrap();
    assert_eq!(
        cfg,
        Config {
            pooled_projection_dim: Some(768),
            ..Config::qwen_image()
        }
    );
    assert_eq!(cfg.inner_dim(), 3072);
    assert_eq!(cfg.out_token_channels(), cfg.in_channels);

    let edit_2511 = qwen_image.replace("\"patch_size\": 2", "\"patch_size\": 2, \"zero_cond_t\": true");
    let err = parse_config::<Config>(&edit_2511, path).unwrap_err().to_string();
    assert!(err.contains("zero_cond_t"), "{err}");
    let bad_axes = qwen_image.replace("[16, 56, 56]", "[16, 56, 54]");
    let err = parse_config::<Config>(&bad_axes, path).unwrap_err().to_string();
    assert!(err.contains("axes_dims_rope"), "{err}");
    let unknown = qwen_image.replace("\"patch_size\": 2", "\"patch_size\": 2, \"num_single_layers\": 1");
    let err = parse_config::<Config>(&unknown, path).unwrap_err().to_string();
    assert!(err.contains("num_single_layers"), "{err}");
}

/// The same checkpoint in bf16 runs end to end (mask, rotary tables and timestep embedding in
/// the model dtype) and stays near diffusers' bf16 output: both cast the timestep to bf16 before
/// the sinusoids (0.3 becomes 0.30078), so the f32 output is not the reference here.
#[test]
fn bf16_model_runs_near_diffusers_bf16() -> Result<()> {
    let io = io("qwen_image_tiny")?;
    let model = load(DType::BF16)?;
    let out = model.forward(
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        Some(get(&io, "encoder_hidden_states_mask")?),
        get(&io, "timestep")?,
        &shapes(get(&io, "img_shapes")?)?,
    )?;
    assert_eq!(out.dtype(), DType::BF16);
    assert_close("qwen_image bf16 output", &out, get(&io, "output_bf16")?, 3e-2)?;
    Ok(())
}
