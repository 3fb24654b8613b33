//! DiT: parity with diffusers (f32) on the fixtures of `tools/reference/gen_dit.py`, loaded
//! through the diffusers-folder loader: the tiny config of diffusers' unit tests (`dit_tiny`)
//! and a two-block variant on a 12×12 latent (`dit_tiny_deep`: the sin-cos table rebuilt off the
//! training grid, each block conditioned by its own, differing, `norm1.emb`).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod harness;

use cachedit_adapters::families::dit::{Config, DiTTransformer2DModel, names};
use harness::prelude::*;

type Model = DiTTransformer2DModel;
const REL: f32 = 1e-4;

fn check_model(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, t, labels] = p.ios(["hidden_states", "timestep", "class_labels"])?;
    p.output(&p.model.forward(x, t, labels)?)?;
    p.check("block0 temb", &p.model.conditioning(t, labels)?, "block0.temb")?;
    let eps = p.predict(&[names::CLASS_LABELS], 1.0)?;
    let want = p.io("output")?.narrow(1, 0, 4)?;
    assert_close(&format!("{name} predict (ε half)"), &eps, &want, REL)?;
    p.block("block0", |m, b| {
        let block = &m.transformer_blocks().blocks()[0];
        Ok(BlockOut::single(block.forward(b.hidden()?, t, labels)?))
    })
}

#[test]
fn tiny_dit_matches_diffusers() -> Result<()> {
    let p = Parity::<Model>::load("dit_tiny", REL)?;
    assert_eq!(p.model.config(), &Config::tiny());
    check_model("dit_tiny")
}

#[test]
fn two_block_dit_with_per_block_embedders_matches_diffusers() -> Result<()> {
    check_model("dit_tiny_deep")
}

/// diffusers unpatchifies a square grid: other latents are an error naming the shape.
#[test]
fn non_square_latents_are_an_error() -> Result<()> {
    let p = Parity::<Model>::load("dit_tiny", REL)?;
    let x = Tensor::zeros((1, 4, 8, 12), DType::F32, &Device::Cpu)?;
    let t = Tensor::new(&[500f32], &Device::Cpu)?;
    let labels = Tensor::new(&[1u32], &Device::Cpu)?;
    let err = p.model.forward(&x, &t, &labels).unwrap_err().to_string();
    assert!(err.contains("8x12"), "{err}");
    Ok(())
}
