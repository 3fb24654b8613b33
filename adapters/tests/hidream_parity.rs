//! Parity of the Candle HiDream-I1 transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_hidream.py`: the whole model, and the first double and the first single
//! `HiDreamBlock` on diffusers' own block inputs.

mod harness;

use cachedit_adapters::families::hidream::HiDreamImageTransformer2DModel;
use harness::prelude::*;

type Model = HiDreamImageTransformer2DModel;
const REL: f32 = 1e-4;

fn check(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, t, t5, llama, pooled] = p.ios([
        "hidden_states",
        "timesteps",
        "encoder_hidden_states_t5",
        "encoder_hidden_states_llama3",
        "pooled_embeds",
    ])?;
    p.output(&p.model.forward(x, t, t5, llama, pooled)?)?;

    // The blocks on diffusers' inputs; the rotary table is the model's own (ids are not
    // captured), for the padded image length and the joint text length.
    let (_, _, h, w) = x.dims4()?;
    let patch = p.model.config().patch_size;
    let img_len = p.io("double0.in.hidden_states")?.dim(1)?;
    let txt_len = p.io("double0.in.encoder_hidden_states")?.dim(1)?;
    let rotary = p
        .model
        .rotary(h / patch, w / patch, img_len, txt_len, &Device::Cpu)?;
    p.block("double0", |m, b| {
        let block = &m.double_stream_blocks().blocks()[0].0;
        let masks = b.opt_input("hidden_states_masks");
        let out = block.forward(b.hidden()?, masks, b.encoder()?, b.temb()?, Some(&rotary))?;
        Ok(BlockOut::hid_enc(out))
    })?;
    p.block("single0", |m, b| {
        let block = &m.single_stream_blocks().blocks()[0].0;
        let masks = b.opt_input("hidden_states_masks");
        Ok(BlockOut::single(block.forward(
            b.hidden()?,
            masks,
            b.temb()?,
            Some(&rotary),
        )?))
    })
}

#[test]
fn tiny_hidream_matches_diffusers() -> Result<()> {
    check("hidream_tiny")
}

/// Top-2 of 4 routed experts, two blocks per list, Llama layers picked out of order, and a
/// non-square latent (padded to `max_seq` with an image mask).
#[test]
fn tiny_hidream_moe_non_square_matches_diffusers() -> Result<()> {
    check("hidream_tiny_moe")
}
