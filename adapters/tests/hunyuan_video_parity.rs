//! Parity of the Candle HunyuanVideo transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_hunyuan_video.py`: the whole model, the refined text, `temb`, the rotary
//! table, and one double and one single block on diffusers' own block inputs.

mod harness;

use cachedit_adapters::families::hunyuan_video::{HunyuanVideoTransformer3DModel, joint_rotary};
use cachedit_adapters::sample::additive;
use harness::prelude::*;

type Model = HunyuanVideoTransformer3DModel;
const REL: f32 = 1e-4;

fn check(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, t, text, mask, pooled] = p.ios([
        "hidden_states",
        "timestep",
        "encoder_hidden_states",
        "encoder_attention_mask",
        "pooled_projections",
    ])?;
    let guidance = p.opt("guidance");
    p.output(&p.model.forward(x, t, text, Some(mask), pooled, guidance)?)?;
    let refined = p.model.context_embedder().forward(text, t, Some(mask))?;
    p.check("refined text", &refined, "refined_text")?;
    p.check("temb", &p.model.conditioning(t, pooled, guidance)?, "temb")?;
    let cfg = p.model.config();
    let (_, _, f, h, w) = x.dims5()?;
    let rope = p.model.image_rotary(
        f / cfg.patch_size_t,
        h / cfg.patch_size,
        w / cfg.patch_size,
        &Device::Cpu,
    )?;
    let (cos, sin) = rope.full_tables()?;
    p.check_within("rope cos", &cos, "double0.in.rope_cos", 1e-5)?;
    p.check_within("rope sin", &sin, "double0.in.rope_sin", 1e-5)?;

    // The image table diffusers passed, extended over the text, and the additive mask.
    let block_args = |b: &BlockIo| -> Result<_> {
        let rotary = joint_rotary(&b.rope()?, b.encoder()?.dim(1)?)?;
        Ok((additive(b.input("attention_mask")?, DType::F32)?, rotary))
    };
    p.block("double0", |m, b| {
        let (mask, rotary) = block_args(b)?;
        let block = &m.transformer_blocks().blocks()[0];
        let out = block.forward(b.hidden()?, b.encoder()?, b.temb()?, Some(&mask), Some(&rotary))?;
        Ok(BlockOut::hid_enc(out))
    })?;
    p.block("single0", |m, b| {
        let (mask, rotary) = block_args(b)?;
        let block = &m.single_transformer_blocks().blocks()[0];
        let out = block.forward(b.hidden()?, b.encoder()?, b.temb()?, Some(&mask), Some(&rotary))?;
        Ok(BlockOut::hid_enc(out))
    })
}

#[test]
fn tiny_hunyuan_video_matches_diffusers() -> Result<()> {
    check("hunyuan_video_tiny")
}

/// `latent_concat` I2V channels (9 in, 4 out), 2×2 patches, no guidance embedder, two blocks
/// per list and two refiner blocks; both fixtures pad the text of sample 0.
#[test]
fn tiny_hunyuan_video_i2v_matches_diffusers() -> Result<()> {
    check("hunyuan_video_tiny_i2v")
}
