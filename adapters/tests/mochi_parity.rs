//! Parity of the Candle Mochi transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_mochi.py`: the whole model, `temb` and the projected caption, the
//! rotary tables, the first block and the last (`context_pre_only`) block on diffusers' own
//! block inputs.

mod harness;

use cachedit_adapters::families::mochi::MochiRotary;
use cachedit_adapters::families::mochi::MochiTransformer3DModel;
use harness::prelude::*;

type Model = MochiTransformer3DModel;
const REL: f32 = 1e-4;

fn check(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, text, t, mask] = p.ios([
        "hidden_states",
        "encoder_hidden_states",
        "timestep",
        "encoder_attention_mask",
    ])?;
    p.output(&p.model.forward(x, text, t, mask)?)?;
    let (temb, caption) = p.model.time_embed(t, text, mask)?;
    p.check("temb", &temb, "temb")?;
    p.check("caption", &caption, "caption_proj")?;
    let (_, _, f, h, w) = x.dims5()?;
    let patch = p.model.config().patch_size;
    let rotary = p.model.rotary(f, h / patch, w / patch)?;
    p.check_within("rope cos", &rotary.cos, "first.in.rope_cos", 1e-5)?;
    p.check_within("rope sin", &rotary.sin, "first.in.rope_sin", 1e-5)?;

    let blocks = p.model.transformer_blocks().blocks();
    for (prefix, block) in [("first", &blocks[0]), ("last", &blocks[blocks.len() - 1])] {
        p.block(prefix, |_, b| {
            let rotary = MochiRotary {
                cos: b.input("rope_cos")?.clone(),
                sin: b.input("rope_sin")?.clone(),
            };
            let out = block.forward(b.hidden()?, b.encoder()?, b.temb()?, Some(mask), Some(&rotary))?;
            Ok(BlockOut::hid_enc(out))
        })?;
    }
    Ok(())
}

#[test]
fn tiny_mochi_matches_diffusers() -> Result<()> {
    check("mochi_tiny")
}

/// Asymmetric streams (image 16, text 24), three blocks, `out_channels != in_channels`; both
/// fixtures pad the prompt of sample 0.
#[test]
fn tiny_mochi_asymmetric_matches_diffusers() -> Result<()> {
    check("mochi_tiny_asym")
}
