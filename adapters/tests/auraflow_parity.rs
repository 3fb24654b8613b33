//! AuraFlow: parity with diffusers (f32) on the fixture of `tools/reference/gen_auraflow.py`
//! (whole model, timestep embedding, first joint block, first single block), loaded through
//! the diffusers-folder loader.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use cachedit_adapters::families::auraflow::{AuraFlowTransformer2DModel, Config};
use cachedit_adapters::loader::DiffusersConfig;
use cachedit_adapters::registry::FamilyModel;
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn load(name: &str) -> Result<AuraFlowTransformer2DModel> {
    AuraFlowTransformer2DModel::from_pretrained(&fixture(name).join("transformer"), DType::F32, &Device::Cpu)
        .map_err(candle_core::Error::wrap)
}

#[test]
fn tiny_auraflow_matches_diffusers() -> Result<()> {
    let name = "auraflow_tiny";
    let io = io(name)?;
    let model = load(name)?;
    assert_eq!(model.config(), &Config::tiny());
    let out = model.forward(
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "timestep")?,
    )?;
    assert_close("auraflow output", &out, get(&io, "output")?, REL)?;
    let temb = model.conditioning(get(&io, "timestep")?)?;
    assert_close("auraflow temb", &temb, get(&io, "joint0.in.temb")?, REL)?;
    assert_close("auraflow single temb", &temb, get(&io, "single0.in.temb")?, REL)?;
    Ok(())
}

/// Each block on diffusers' own block inputs, so an error is located in one block.
#[test]
fn tiny_auraflow_blocks_match_diffusers() -> Result<()> {
    let name = "auraflow_tiny";
    let io = io(name)?;
    let model = load(name)?;
    let joint = &model.joint_transformer_blocks().blocks()[0];
    let (enc, hid) = joint.forward(
        get(&io, "joint0.in.hidden_states")?,
        get(&io, "joint0.in.encoder_hidden_states")?,
        get(&io, "joint0.in.temb")?,
    )?;
    assert_close("joint0 hidden", &hid, get(&io, "joint0.out.hidden_states")?, REL)?;
    assert_close(
        "joint0 encoder (register tokens + text)",
        &enc,
        get(&io, "joint0.out.encoder_hidden_states")?,
        REL,
    )?;
    let single = &model.single_transformer_blocks().blocks()[0];
    let seq = single.forward(
        get(&io, "single0.in.hidden_states")?,
        get(&io, "single0.in.temb")?,
    )?;
    assert_close(
        "single0 [txt, img]",
        &seq,
        get(&io, "single0.out.hidden_states")?,
        REL,
    )?;
    Ok(())
}

/// What the model sees before the cached list equals what diffusers' first single block got:
/// register tokens, the joint blocks and the `[txt, img]` concatenation.
#[test]
fn tiny_auraflow_prepares_the_single_block_input() -> Result<()> {
    let name = "auraflow_tiny";
    let io = io(name)?;
    let model = load(name)?;
    let temb = model.conditioning(get(&io, "timestep")?)?;
    let (seq, text_len) = model.prepare(
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        &temb,
    )?;
    assert_eq!(text_len, 8 + 8, "8 register tokens + 8 text tokens");
    assert_close("single0 input", &seq, get(&io, "single0.in.hidden_states")?, REL)?;
    Ok(())
}

#[test]
fn published_and_invalid_configs() {
    assert!(Config::v0_1().validate().is_ok());
    assert!(Config::tiny().validate().is_ok());
    let wrong_caption = Config {
        caption_projection_dim: 64,
        ..Config::tiny()
    };
    assert!(
        wrong_caption
            .validate()
            .unwrap_err()
            .contains("caption_projection_dim")
    );
    let not_square = Config {
        pos_embed_max_size: 200,
        ..Config::tiny()
    };
    assert!(not_square.validate().unwrap_err().contains("pos_embed_max_size"));
}

/// A latent whose patch grid exceeds the learned position grid is an error naming it.
#[test]
fn too_large_latent_is_an_error() -> Result<()> {
    let model = AuraFlowTransformer2DModel::new(
        Config::tiny(),
        cachedit_adapters::seeded_var_builder(1, DType::F32, &Device::Cpu),
    )?;
    let dev = Device::Cpu;
    let x = candle_core::Tensor::zeros((1, 4, 34, 8), DType::F32, &dev)?;
    let text = candle_core::Tensor::zeros((1, 3, 32), DType::F32, &dev)?;
    let t = candle_core::Tensor::new(&[0.5f32], &dev)?;
    let err = model.forward(&x, &text, &t).unwrap_err().to_string();
    assert!(err.contains("pos_embed_max_size"), "{err}");
    Ok(())
}

/// The fixture loaded in bf16 (LayerNorms in f32, as diffusers' `FP32LayerNorm`) stays close to
/// diffusers' f32 output: a bf16 smoke test of the dtype plumbing, not a parity claim.
#[test]
fn tiny_auraflow_runs_in_bf16() -> Result<()> {
    let name = "auraflow_tiny";
    let io = io(name)?;
    let model = AuraFlowTransformer2DModel::from_pretrained(
        &fixture(name).join("transformer"),
        DType::BF16,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)?;
    let out = model.forward(
        &get(&io, "hidden_states")?.to_dtype(DType::BF16)?,
        &get(&io, "encoder_hidden_states")?.to_dtype(DType::BF16)?,
        get(&io, "timestep")?,
    )?;
    assert_eq!(out.dtype(), DType::BF16);
    assert_close("auraflow bf16 output", &out, get(&io, "output")?, 5e-2)?;
    Ok(())
}
