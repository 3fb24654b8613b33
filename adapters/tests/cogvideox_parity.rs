//! Parity of the Candle CogVideoX transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_cogvideox.py`: the whole model (directly and through `Denoiser::predict`,
//! which builds the pipeline's rotary tables itself), the joint patch embedding, the blocks'
//! conditioning, the rotary tables of `CogVideoXPipeline`, and the first and last blocks on
//! diffusers' own block inputs.

mod harness;

use cachedit_adapters::families::cogvideox::CogVideoXTransformer3DModel;
use cachedit_adapters::families::cogvideox_pipeline::names;
use harness::prelude::*;

type Model = CogVideoXTransformer3DModel;
const REL: f32 = 1e-4;

fn check(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, text, t] = p.ios(["hidden_states", "encoder_hidden_states", "timestep"])?;
    let ofs = p.opt("ofs");
    let cfg = p.model.config().clone();
    let (_, f, _, h, w) = x.dims5()?;
    let rotary = p.model.rotary(f, h / cfg.patch_size, w / cfg.patch_size)?;
    assert_eq!(rotary.is_some(), p.opt("first.in.rope_cos").is_some());
    if let Some(r) = &rotary {
        let (cos, sin) = r.full_tables()?;
        p.check_within("rope cos", &cos, "first.in.rope_cos", 1e-5)?;
        p.check_within("rope sin", &sin, "first.in.rope_sin", 1e-5)?;
    }

    let (txt, img) = p.model.patch_embed(text, x)?;
    p.check("patch_embed", &Tensor::cat(&[&txt, &img], 1)?, "patch_embed")?;
    p.check("temb", &p.model.time_embed(t, ofs)?, "first.in.temb")?;

    let blocks = p.model.transformer_blocks().blocks();
    for (prefix, block) in [("first", &blocks[0]), ("last", &blocks[blocks.len() - 1])] {
        p.block(prefix, |_, b| {
            let rope = b.opt_input("rope_cos").map(|_| b.rope()).transpose()?;
            let out = block.forward(b.hidden()?, b.encoder()?, b.temb()?, rope.as_ref())?;
            Ok(BlockOut::hid_enc(out))
        })?;
    }
    p.output(&p.model.forward(x, text, t, ofs, rotary.as_ref())?)?;
    // the Denoiser glue: image latents split off the channels as the I2V pipeline concatenates
    // them, `ofs` and the rotary tables supplied by `predict`
    let out_c = cfg.out_channels();
    let mut cond = Conditioning::new().with(names::ENCODER_HIDDEN_STATES, text.clone());
    if cfg.in_channels > out_c {
        cond = cond.with(names::IMAGE_LATENTS, x.narrow(2, out_c, cfg.in_channels - out_c)?);
    }
    let predicted = p.model.predict(&x.narrow(2, 0, out_c)?, t, &cond)?;
    p.check("predict", &predicted, "output")?;

    Ok(())
}

/// diffusers' unit-test config: CogVideoX-2B style, sin-cos positions at patchify.
#[test]
fn tiny_cogvideox_matches_diffusers() -> Result<()> {
    check("cogvideox_tiny")
}

/// CogVideoX-5B-I2V style: image latents in the channels, rotary over a non-square grid, a
/// learned position table.
#[test]
fn tiny_cogvideox_i2v_matches_diffusers() -> Result<()> {
    check("cogvideox_tiny_i2v")?;
    // the pipeline's table for a grid smaller than the base grid: a centred crop region
    let p = Parity::<Model>::load("cogvideox_tiny_i2v", REL)?;
    let r = p.model.rotary(2, 3, 5)?.expect("a rotary model");
    let (cos, sin) = r.full_tables()?;
    p.check_within("cropped rope cos", &cos, "alt_rope_cos", 1e-5)?;
    p.check_within("cropped rope sin", &sin, "alt_rope_sin", 1e-5)?;
    Ok(())
}

/// CogVideoX 1.5 style: `2 × 2 × 2` patches, sliced-grid rotary, `ofs`.
#[test]
fn tiny_cogvideox1_5_matches_diffusers() -> Result<()> {
    check("cogvideox1_5_tiny")
}
