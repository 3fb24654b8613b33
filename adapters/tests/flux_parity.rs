//! Parity of the Candle Flux transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_flux.py`: the whole model, the conditioning vector, the rotary table,
//! and one double and one single block on diffusers' own block inputs.

mod harness;

use cachedit_adapters::families::flux::FluxTransformer2DModel;
use harness::prelude::*;

type Model = FluxTransformer2DModel;
const REL: f32 = 1e-4;

fn check_model(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, text, pooled, t, img_ids, txt_ids] = p.ios([
        "hidden_states",
        "encoder_hidden_states",
        "pooled_projections",
        "timestep",
        "img_ids",
        "txt_ids",
    ])?;
    let guidance = p.opt("guidance");
    let run = |m: &Model| m.forward(x, text, pooled, t, img_ids, txt_ids, guidance);
    let out = run(&p.model)?;
    p.output(&out)?;

    // The rotary table and the conditioning vector, against the values diffusers fed block 0.
    let (cos, sin) = p.model.rotary_embedding(img_ids, txt_ids)?.full_tables()?;
    p.check_within("rope cos", &cos, "double0.in.rope_cos", 1e-6)?;
    p.check_within("rope sin", &sin, "double0.in.rope_sin", 1e-6)?;
    let temb = p.model.conditioning(t, guidance, pooled)?;
    p.check("temb", &temb, "double0.in.temb")?;

    // The two-list layout computes the same function.
    let cfg = p.model.config().clone().with_list_layout(ListLayout::Separate);
    let ckpt =
        cachedit_adapters::Checkpoint::from_dir(&fixture(name).join("transformer"), DType::F32, &Device::Cpu)
            .map_err(candle_core::Error::wrap)?;
    let separate =
        Model::from_checkpoint(cfg, ckpt, DType::F32, &Device::Cpu).map_err(candle_core::Error::wrap)?;
    assert_bit_identical(&format!("{name} separate vs chained"), &run(&separate)?, &out)
}

fn check_blocks(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    p.block("double0", |m, b| {
        let block = &m.transformer_blocks().blocks()[0];
        Ok(BlockOut::enc_hid(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
            Some(&b.rope()?),
        )?))
    })?;
    p.block("single0", |m, b| {
        let block = &m.single_transformer_blocks().blocks()[0];
        Ok(BlockOut::enc_hid(block.forward(
            b.hidden()?,
            b.encoder()?,
            b.temb()?,
            Some(&b.rope()?),
        )?))
    })
}

#[test]
fn tiny_flux_matches_diffusers() -> Result<()> {
    check_model("flux_tiny")
}

#[test]
fn tiny_flux_blocks_match_diffusers() -> Result<()> {
    check_blocks("flux_tiny")
}

/// Guidance embedder (dev-like), `in_channels != out_channels` (Fill-like), two blocks per list.
#[test]
fn tiny_flux_with_guidance_and_fill_channels_matches_diffusers() -> Result<()> {
    check_model("flux_tiny_guidance")?;
    check_blocks("flux_tiny_guidance")
}
