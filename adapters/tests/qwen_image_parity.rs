#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Parity of the Candle QwenImage transformer with diffusers (f32) on the fixture written by
//! `tools/reference/gen_qwen_image.py`: the whole model (text padding mask, odd row count for the
//! centred rotary positions), `temb`, the image and text rotary tables, the first block on
//! diffusers' own block inputs, and an Edit-style two-image sequence.

mod harness;

use cachedit_adapters::families::qwen_image::{
    Config, QwenImageTransformer2DModel, joint_attention_mask, joint_rotary,
};
use cachedit_adapters::loader::parse_config;
use harness::prelude::*;

type Model = QwenImageTransformer2DModel;
const REL: f32 = 1e-4;
const NAME: &str = "qwen_image_tiny";
const INPUTS: [&str; 4] = [
    "hidden_states",
    "encoder_hidden_states",
    "encoder_hidden_states_mask",
    "timestep",
];

/// `img_shapes` rows `(frames, rows, cols)` stored as f32.
fn shapes(t: &Tensor) -> Result<Vec<(usize, usize, usize)>> {
    Ok(t.to_vec2::<f32>()?
        .iter()
        .map(|r| (r[0] as usize, r[1] as usize, r[2] as usize))
        .collect())
}

#[test]
fn tiny_qwen_image_matches_diffusers() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    let [x, text, mask, t] = p.ios(INPUTS)?;
    let img_shapes = shapes(p.io("img_shapes")?)?;
    p.output(&p.model.forward(x, text, Some(mask), t, &img_shapes)?)?;
    p.check("temb", &p.model.conditioning(t)?, "temb")?;

    let (img, txt) = p
        .model
        .rotary_embeddings(&img_shapes, text.dim(1)?, &Device::Cpu)?;
    for (what, table) in [("img", &img), ("txt", &txt)] {
        let (cos, sin) = table.tables();
        p.check_within(
            &format!("rope {what} cos"),
            cos,
            &format!("rope.{what}_cos"),
            1e-6,
        )?;
        p.check_within(
            &format!("rope {what} sin"),
            sin,
            &format!("rope.{what}_sin"),
            1e-6,
        )?;
    }

    let rotary = joint_rotary(&img, &txt)?;
    p.block("block0", |m, b| {
        let hidden = b.hidden()?;
        let mask = joint_attention_mask(b.input("encoder_hidden_states_mask")?, hidden.dim(1)?, DType::F32)?;
        let block = &m.transformer_blocks().blocks()[0];
        let out = block.forward(hidden, b.encoder()?, Some(&mask), b.temb()?, Some(&rotary))?;
        Ok(BlockOut::enc_hid(out))
    })?;

    let edit_shapes = shapes(p.io("edit.img_shapes")?)?;
    let edit = p
        .model
        .forward(p.io("edit.hidden_states")?, text, None, t, &edit_shapes)?;
    p.check("edit output", &edit, "edit.output")?;
    Ok(())
}

/// A mask of the wrong shape and `img_shapes` that do not cover the latents are errors that
/// name the argument, not a panic or a silent broadcast.
#[test]
fn mismatched_mask_and_img_shapes_are_errors() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    let [x, text, mask, t] = p.ios(INPUTS)?;
    let err = p
        .model
        .forward(x, text, Some(&mask.narrow(1, 0, 3)?), t, &[(1, 3, 4)])
        .unwrap_err();
    assert!(err.to_string().contains("encoder_hidden_states_mask"), "{err}");
    let err = p.model.forward(x, text, Some(mask), t, &[(1, 4, 4)]).unwrap_err();
    assert!(err.to_string().contains("img_shapes"), "{err}");
    Ok(())
}

/// The published Qwen-Image `transformer/config.json` (with its stray `pooled_projection_dim`,
/// which diffusers ignores) parses to `Config::qwen_image()`; Edit-2511's `zero_cond_t` and a
/// rotary split that does not sum to the head width are rejected with the key's name.
#[test]
fn published_configs_parse_and_validate() {
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
    let p = Parity::<Model>::load_as(NAME, REL, DType::BF16)?;
    let [x, text, mask, t] = p.ios(INPUTS)?;
    let out = p
        .model
        .forward(x, text, Some(mask), t, &shapes(p.io("img_shapes")?)?)?;
    assert_eq!(out.dtype(), DType::BF16);
    p.check_within("bf16 output", &out, "output_bf16", 3e-2)?;
    Ok(())
}
