//! Parity of the Candle HunyuanVideo transformer with diffusers (f32) on the fixtures written by
//! `tools/reference/gen_hunyuan_video.py`: the whole model, the refined text, `temb`, the rotary
//! table, and one double and one single block on diffusers' own block inputs.

mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::components::rope::RotaryEmbedding;
use cachedit_adapters::families::hunyuan_video::{HunyuanVideoTransformer3DModel, joint_rotary};
use cachedit_adapters::sample::additive;
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn check(name: &str) -> Result<()> {
    let io = io(name)?;
    let model = HunyuanVideoTransformer3DModel::from_pretrained(
        &fixture(name).join("transformer"),
        DType::F32,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)?;
    let (x, t, text, mask, pooled) = (
        get(&io, "hidden_states")?,
        get(&io, "timestep")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "encoder_attention_mask")?,
        get(&io, "pooled_projections")?,
    );
    let out = model.forward(x, t, text, Some(mask), pooled, io.get("guidance"))?;
    assert_close(&format!("{name} output"), &out, get(&io, "output")?, REL)?;
    let refined = model.context_embedder().forward(text, t, Some(mask))?;
    assert_close(
        &format!("{name} refined text"),
        &refined,
        get(&io, "refined_text")?,
        REL,
    )?;
    let temb = model.conditioning(t, pooled, io.get("guidance"))?;
    assert_close(&format!("{name} temb"), &temb, get(&io, "temb")?, REL)?;
    let cfg = model.config();
    let (_, _, f, h, w) = x.dims5()?;
    let rope = model.image_rotary(
        f / cfg.patch_size_t,
        h / cfg.patch_size,
        w / cfg.patch_size,
        &Device::Cpu,
    )?;
    let (cos, sin) = rope.full_tables()?;
    assert_close(
        &format!("{name} rope cos"),
        &cos,
        get(&io, "double0.in.rope_cos")?,
        1e-5,
    )?;
    assert_close(
        &format!("{name} rope sin"),
        &sin,
        get(&io, "double0.in.rope_sin")?,
        1e-5,
    )?;

    for prefix in ["double0", "single0"] {
        let k = |s: &str| format!("{prefix}.{s}");
        let enc_in = get(&io, &k("in.encoder_hidden_states"))?;
        let rotary = joint_rotary(
            &RotaryEmbedding::from_interleaved_full(
                get(&io, &k("in.rope_cos"))?,
                get(&io, &k("in.rope_sin"))?,
            )?,
            enc_in.dim(1)?,
        )?;
        let mask = additive(get(&io, &k("in.attention_mask"))?, DType::F32)?;
        let (hs, tb) = (get(&io, &k("in.hidden_states"))?, get(&io, &k("in.temb"))?);
        let (hid, enc) = if prefix == "double0" {
            model.transformer_blocks().blocks()[0].forward(hs, enc_in, tb, Some(&mask), Some(&rotary))?
        } else {
            model.single_transformer_blocks().blocks()[0].forward(
                hs,
                enc_in,
                tb,
                Some(&mask),
                Some(&rotary),
            )?
        };
        assert_close(
            &format!("{name} {prefix} hidden"),
            &hid,
            get(&io, &k("out.hidden_states"))?,
            REL,
        )?;
        assert_close(
            &format!("{name} {prefix} encoder"),
            &enc,
            get(&io, &k("out.encoder_hidden_states"))?,
            REL,
        )?;
    }
    Ok(())
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
