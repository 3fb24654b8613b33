//! PixArt: parity with diffusers (f32) on the fixtures of `tools/reference/gen_pixart.py`,
//! loaded through the diffusers-folder loader: the tiny config of diffusers' unit tests
//! (`pixart_tiny`) and the α-1024 layout at tiny size (`pixart_tiny_alpha`: caption projection,
//! resolution / aspect-ratio micro-conditions, interpolation scale 2). Both run an 8×12 latent,
//! so the sin-cos table is rebuilt off the square training grid, and a padded caption mask.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod harness;

use cachedit_adapters::families::pixart::{Config, PixArtTransformer2DModel, names};
use harness::prelude::*;

type Model = PixArtTransformer2DModel;
const REL: f32 = 1e-4;

fn check_model(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, text, mask, t] = p.ios([
        "hidden_states",
        "encoder_hidden_states",
        "encoder_attention_mask",
        "timestep",
    ])?;
    let added = match (p.opt(names::RESOLUTION), p.opt(names::ASPECT_RATIO)) {
        (Some(r), Some(a)) => Some((r, a)),
        _ => None,
    };
    p.output(&p.model.forward(x, text, t, Some(mask), added)?)?;
    let (temb, embedded) = p.model.conditioning(t, added)?;
    p.check("adaln timestep", &temb, "adaln.timestep")?;
    p.check("adaln embedded_timestep", &embedded, "adaln.embedded_timestep")?;
    p.check(
        "block0 caption",
        &p.model.caption(text)?,
        "block0.in.encoder_hidden_states",
    )?;
    p.check(
        "block0 mask",
        &p.model.mask_bias(mask)?,
        "block0.in.encoder_attention_mask",
    )?;
    // `Denoiser::predict`: the same call from the conditioning, the ε half of the output.
    let keys: &[&str] = if added.is_some() {
        &[
            names::ENCODER_HIDDEN_STATES,
            names::ENCODER_ATTENTION_MASK,
            names::RESOLUTION,
            names::ASPECT_RATIO,
        ]
    } else {
        &[names::ENCODER_HIDDEN_STATES, names::ENCODER_ATTENTION_MASK]
    };
    let eps = p.predict(keys, 1.0)?;
    let want = p.io("output")?.narrow(1, 0, 4)?;
    assert_close(&format!("{name} predict (ε half)"), &eps, &want, REL)?;
    // Block 0 on diffusers' own inputs (`timestep` is adaln_single's `(B, 6·dim)`).
    p.block("block0", |m, b| {
        let block = &m.transformer_blocks().blocks()[0];
        Ok(BlockOut::single(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.input("timestep")?,
            Some(b.input("encoder_attention_mask")?),
        )?))
    })
}

#[test]
fn tiny_pixart_matches_diffusers() -> Result<()> {
    let p = Parity::<Model>::load("pixart_tiny", REL)?;
    assert_eq!(p.model.config(), &Config::tiny());
    check_model("pixart_tiny")
}

#[test]
fn tiny_pixart_alpha_with_caption_projection_and_micro_conditions_matches_diffusers() -> Result<()> {
    let p = Parity::<Model>::load("pixart_tiny_alpha", REL)?;
    let cfg = p.model.config();
    assert!(cfg.additional_conditions() && cfg.caption_channels == Some(16));
    assert_eq!(cfg.position_scale(), 2.0);
    check_model("pixart_tiny_alpha")
}

/// Micro-conditions are required when the config uses them, and named in the error.
#[test]
fn missing_micro_conditions_are_an_error() -> Result<()> {
    let p = Parity::<Model>::load("pixart_tiny_alpha", REL)?;
    let [x, text, t] = p.ios(["hidden_states", "encoder_hidden_states", "timestep"])?;
    let err = p.model.forward(x, text, t, None, None).unwrap_err().to_string();
    assert!(err.contains("aspect_ratio"), "{err}");
    Ok(())
}

/// The fixture loaded in bf16 stays close to diffusers' f32 output: a smoke test of the dtype
/// plumbing (positions and masks in f32, cast at the boundaries), not a parity claim.
#[test]
fn tiny_pixart_runs_in_bf16() -> Result<()> {
    let p = Parity::<Model>::load_as("pixart_tiny", REL, DType::BF16)?;
    let out = p.model.forward(
        &p.io("hidden_states")?.to_dtype(DType::BF16)?,
        &p.io("encoder_hidden_states")?.to_dtype(DType::BF16)?,
        p.io("timestep")?,
        Some(p.io("encoder_attention_mask")?),
        None,
    )?;
    assert_eq!(out.dtype(), DType::BF16);
    p.check_within("bf16 output", &out, "output", 5e-2)?;
    Ok(())
}

#[test]
fn published_configs_validate_and_the_tiny_one_has_no_extras() {
    for cfg in [
        Config::alpha_1024(),
        Config::alpha_512(),
        Config::sigma_1024(),
        Config::tiny(),
    ] {
        assert_eq!(cfg.validate(), Ok(()), "{cfg:?}");
    }
    assert!(Config::alpha_1024().additional_conditions());
    assert!(!Config::alpha_512().additional_conditions());
    assert!(!Config::sigma_1024().additional_conditions());
    assert_eq!(Config::alpha_1024().position_scale(), 2.0);
    assert_eq!(Config::alpha_512().position_scale(), 1.0);
    let tiny = Config::tiny();
    assert!(!tiny.additional_conditions() && tiny.caption_channels.is_none());
}

#[test]
fn inconsistent_configs_are_rejected() {
    let wrong_cross = Config {
        caption_channels: Some(16),
        ..Config::tiny()
    };
    assert!(
        wrong_cross
            .validate()
            .unwrap_err()
            .contains("cross_attention_dim")
    );
    let not_thirds = Config {
        use_additional_conditions: Some(true),
        ..Config::tiny()
    };
    assert!(not_thirds.validate().unwrap_err().contains("multiple of 3"));
    let zero = Config {
        norm_type: "ada_norm_zero".into(),
        ..Config::tiny()
    };
    assert!(zero.validate().unwrap_err().contains("norm_type"));
}
