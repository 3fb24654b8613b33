#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Parity of the Candle Wan 2.1 transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_wan.py`: the whole model on a non-square grid, the condition embedder,
//! the 3-D rotary tables, the first block on diffusers' own block inputs, per-token timesteps
//! (Wan 2.2 TI2V's layout) and the I2V image branch.

mod harness;

use cachedit_adapters::families::wan::{Config, WanTransformer3DModel};
use cachedit_adapters::families::wan_pipeline::names;
use cachedit_adapters::loader::parse_config;
use harness::prelude::*;

type Model = WanTransformer3DModel;
const REL: f32 = 1e-4;

/// The whole model, the embedder, the rotary tables and block 0 of fixture `name`.
fn check_fixture(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, t, text] = p.ios(["hidden_states", "timestep", "encoder_hidden_states"])?;
    let image = p.opt("encoder_hidden_states_image");
    p.output(&p.model.forward(x, t, text, image)?)?;

    let cond = p.model.conditioning(t, text, image)?;
    p.check("temb", &cond.temb, "temb")?;
    // diffusers' embedder returns it flat (`(B, [S,] 6·D)`); the model unflattens it after.
    let flat_proj = cond.timestep_proj.flatten_from(cond.timestep_proj.rank() - 2)?;
    p.check("timestep_proj", &flat_proj, "timestep_proj")?;
    let context = match image {
        // diffusers' embedder returns the projected text alone; the image tokens go first.
        Some(i) => cond.context.narrow(1, i.dim(1)?, text.dim(1)?)?,
        None => cond.context.clone(),
    };
    p.check("encoder_proj", &context, "encoder_proj")?;

    let (_, _, f, h, w) = x.dims5()?;
    let rotary = p.model.rotary(f, h / 2, w / 2, &Device::Cpu)?;
    let (cos, sin) = rotary.full_tables()?;
    let s = cos.dim(0)?;
    let flat = |k: &str| -> Result<Tensor> { p.io(k)?.reshape((s, ())) };
    assert_close("rope cos", &cos, &flat("rope_cos")?, 1e-6)?;
    assert_close("rope sin", &sin, &flat("rope_sin")?, 1e-6)?;

    p.block("block0", |m, b| {
        let (cos, sin) = (b.input("rope_cos")?, b.input("rope_sin")?);
        let rope = RotaryEmbedding::from_interleaved_full(&cos.reshape((s, ()))?, &sin.reshape((s, ()))?)?;
        let block = &m.blocks().blocks()[0];
        Ok(BlockOut::single(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
            Some(&rope),
        )?))
    })
}

/// diffusers' unit-test config: `(B, 6, D)` modulation, `norm2` before the cross-attention.
#[test]
fn tiny_wan_matches_diffusers() -> Result<()> {
    check_fixture("wan_tiny")
}

/// Per-token timesteps `(B, S)` (first frame at 0): `(B, S, 6, D)` block modulation and a
/// per-token output adaLN; no `norm2`, three blocks, odd frame count, `out_channels` 3.
#[test]
fn per_token_timesteps_match_diffusers() -> Result<()> {
    check_fixture("wan_tiny_ti2v")
}

/// I2V: CLIP tokens through `image_embedder`, attended through `add_k_proj`/`add_v_proj` next to
/// the 512 text tokens.
#[test]
fn i2v_image_context_matches_diffusers() -> Result<()> {
    check_fixture("wan_tiny_i2v")
}

/// `predict` (what the denoising loop calls) is `forward` with diffusers' argument names as
/// conditioning names.
#[test]
fn predict_reads_diffusers_argument_names() -> Result<()> {
    let p = Parity::<Model>::load("wan_tiny_i2v", REL)?;
    let out = p.predict(
        &[names::ENCODER_HIDDEN_STATES, names::ENCODER_HIDDEN_STATES_IMAGE],
        1.0,
    )?;
    p.output(&out)?;
    let err = p
        .predict(&[names::ENCODER_HIDDEN_STATES], 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("encoder_hidden_states_image"), "{err}");
    Ok(())
}

/// The published `transformer/config.json`s parse to the named constructors; inconsistent I2V
/// keys are rejected with their names.
#[test]
fn published_configs_parse_and_validate() {
    let path = std::path::Path::new("Wan2.1-T2V-1.3B-Diffusers/transformer/config.json");
    let t2v = r#"{
      "_class_name": "WanTransformer3DModel", "_diffusers_version": "0.33.0.dev0",
      "added_kv_proj_dim": null, "attention_head_dim": 128, "cross_attn_norm": true,
      "eps": 1e-06, "ffn_dim": 8960, "freq_dim": 256, "image_dim": null, "in_channels": 16,
      "num_attention_heads": 12, "num_layers": 30, "out_channels": 16, "patch_size": [1, 2, 2],
      "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 1024, "text_dim": 4096
    }"#;
    let cfg: Config = parse_config(t2v, path).unwrap();
    assert_eq!(cfg, Config::t2v_1_3b());
    assert_eq!(cfg.inner_dim(), 1536);
    assert_eq!(cfg.rope_axes(), [44, 42, 42]);

    let i2v = t2v
        .replace("\"added_kv_proj_dim\": null", "\"added_kv_proj_dim\": 5120")
        .replace("\"image_dim\": null", "\"image_dim\": 1280")
        .replace("\"in_channels\": 16", "\"in_channels\": 36")
        .replace("\"ffn_dim\": 8960", "\"ffn_dim\": 13824")
        .replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 40")
        .replace("\"num_layers\": 30", "\"num_layers\": 40");
    assert_eq!(parse_config::<Config>(&i2v, path).unwrap(), Config::i2v_14b());
    let half = i2v.replace("\"image_dim\": 1280", "\"image_dim\": null");
    let err = parse_config::<Config>(&half, path).unwrap_err().to_string();
    assert!(err.contains("added_kv_proj_dim"), "{err}");
    let unknown = t2v.replace("\"eps\"", "\"window_size\": [-1, -1], \"eps\"");
    let err = parse_config::<Config>(&unknown, path).unwrap_err().to_string();
    assert!(err.contains("window_size"), "{err}");
}

/// A grid beyond the rotary tables, or latents that do not divide into patches, are errors
/// naming the cause.
#[test]
fn bad_grids_are_errors() -> Result<()> {
    let p = Parity::<Model>::load("wan_tiny", REL)?;
    let [t, text] = p.ios(["timestep", "encoder_hidden_states"])?;
    let odd = Tensor::zeros((2, 4, 2, 5, 6), DType::F32, &Device::Cpu)?;
    let err = p.model.forward(&odd, t, text, None).unwrap_err().to_string();
    assert!(err.contains("divisible"), "{err}");
    let long = Tensor::zeros((2, 4, 33, 4, 6), DType::F32, &Device::Cpu)?;
    let err = p.model.forward(&long, t, text, None).unwrap_err().to_string();
    assert!(err.contains("rope_max_seq_len"), "{err}");
    Ok(())
}

/// The same checkpoint in bf16 runs end to end and stays near the f32 reference.
#[test]
fn bf16_model_runs_near_the_f32_reference() -> Result<()> {
    let p = Parity::<Model>::load_as("wan_tiny", REL, DType::BF16)?;
    let [x, t, text] = p.ios(["hidden_states", "timestep", "encoder_hidden_states"])?;
    let out = p.model.forward(x, t, text, None)?;
    assert_eq!(out.dtype(), DType::BF16);
    p.check_within("bf16 output", &out, "output", 5e-2)?;
    Ok(())
}
