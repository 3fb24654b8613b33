//! AuraFlow: parity with diffusers (f32) on the fixture of `tools/reference/gen_auraflow.py`
//! (whole model, timestep embedding, first joint block, first single block), loaded through
//! the diffusers-folder loader.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod harness;

use cachedit_adapters::families::auraflow::{AuraFlowTransformer2DModel, Config};
use harness::prelude::*;

type Model = AuraFlowTransformer2DModel;
const REL: f32 = 1e-4;
const NAME: &str = "auraflow_tiny";

#[test]
fn tiny_auraflow_matches_diffusers() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    assert_eq!(p.model.config(), &Config::tiny());
    let [x, text, t] = p.ios(["hidden_states", "encoder_hidden_states", "timestep"])?;
    p.output(&p.model.forward(x, text, t)?)?;
    let temb = p.model.conditioning(t)?;
    p.check("temb", &temb, "joint0.in.temb")?;
    p.check("single temb", &temb, "single0.in.temb")?;
    Ok(())
}

/// Each block on diffusers' own block inputs, so an error is located in one block; the joint
/// block's text output is the register tokens + text.
#[test]
fn tiny_auraflow_blocks_match_diffusers() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    p.block("joint0", |m, b| {
        let block = &m.joint_transformer_blocks().blocks()[0];
        Ok(BlockOut::enc_hid(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
        )?))
    })?;
    p.block("single0", |m, b| {
        let block = &m.single_transformer_blocks().blocks()[0];
        Ok(BlockOut::single(block.forward(b.hidden()?, b.temb()?)?))
    })
}

/// What the model sees before the cached list equals what diffusers' first single block got:
/// register tokens, the joint blocks and the `[txt, img]` concatenation.
#[test]
fn tiny_auraflow_prepares_the_single_block_input() -> Result<()> {
    let p = Parity::<Model>::load(NAME, REL)?;
    let [x, text, t] = p.ios(["hidden_states", "encoder_hidden_states", "timestep"])?;
    let temb = p.model.conditioning(t)?;
    let (seq, text_len) = p.model.prepare(x, text, &temb)?;
    assert_eq!(text_len, 8 + 8, "8 register tokens + 8 text tokens");
    p.check("single0 input", &seq, "single0.in.hidden_states")?;
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
    let model = Model::new(Config::tiny(), seeded_var_builder(1, DType::F32, &Device::Cpu))?;
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 4, 34, 8), DType::F32, &dev)?;
    let text = Tensor::zeros((1, 3, 32), DType::F32, &dev)?;
    let t = Tensor::new(&[0.5f32], &dev)?;
    let err = model.forward(&x, &text, &t).unwrap_err().to_string();
    assert!(err.contains("pos_embed_max_size"), "{err}");
    Ok(())
}

/// The fixture loaded in bf16 (LayerNorms in f32, as diffusers' `FP32LayerNorm`) stays close to
/// diffusers' f32 output: a bf16 smoke test of the dtype plumbing, not a parity claim.
#[test]
fn tiny_auraflow_runs_in_bf16() -> Result<()> {
    let p = Parity::<Model>::load_as(NAME, REL, DType::BF16)?;
    let out = p.model.forward(
        &p.io("hidden_states")?.to_dtype(DType::BF16)?,
        &p.io("encoder_hidden_states")?.to_dtype(DType::BF16)?,
        p.io("timestep")?,
    )?;
    assert_eq!(out.dtype(), DType::BF16);
    p.check_within("bf16 output", &out, "output", 5e-2)?;
    Ok(())
}
