//! Parity of the Candle Chroma transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_chroma.py`: the whole model, the approximator output, the rotary table,
//! and one double and one single block on diffusers' own block inputs.

mod harness;

use cachedit_adapters::families::chroma::ChromaTransformer2DModel;
use harness::prelude::*;

type Model = ChromaTransformer2DModel;
const REL: f32 = 1e-4;

/// diffusers' block-level mask: `m[:, None, None, :] * m[:, None, :, None]`.
fn pairwise(mask: Option<&Tensor>) -> Result<Option<Tensor>> {
    mask.map(|m| {
        m.unsqueeze(1)?
            .unsqueeze(1)?
            .broadcast_mul(&m.unsqueeze(1)?.unsqueeze(3)?)
    })
    .transpose()
}

fn check(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, text, t, img_ids, txt_ids] = p.ios([
        "hidden_states",
        "encoder_hidden_states",
        "timestep",
        "img_ids",
        "txt_ids",
    ])?;
    let mask = p.opt("attention_mask");
    p.output(&p.model.forward(x, text, t, img_ids, txt_ids, mask)?)?;
    p.check("pooled_temb", &p.model.pooled_temb(t)?, "pooled_temb")?;
    let (cos, _) = p.model.rotary_embedding(img_ids, txt_ids)?.full_tables()?;
    p.check_within("rope cos", &cos, "double0.in.rope_cos", 1e-6)?;

    let mask = pairwise(mask)?;
    p.block("double0", |m, b| {
        let block = &m.transformer_blocks().blocks()[0].0;
        let rope = b.rope()?;
        let out = block.forward(b.hidden()?, b.encoder()?, b.temb()?, Some(&rope), mask.as_ref())?;
        Ok(BlockOut::enc_hid(out))
    })?;
    p.block("single0", |m, b| {
        let block = &m.single_transformer_blocks().blocks()[0].0;
        let rope = b.rope()?;
        Ok(BlockOut::single(block.forward(
            b.hidden()?,
            b.temb()?,
            Some(&rope),
            mask.as_ref(),
        )?))
    })
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
