//! VisualCloze: parity with diffusers (f32) on the fixture of `tools/reference/gen_visualcloze.py`
//! (whole model through `Denoiser::predict`, and one block of each list on diffusers' own block
//! inputs), and the cache engine on its two separately cached lists.

mod cache_support;
mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::components::rope::RotaryEmbedding;
use cachedit_adapters::families::visualcloze::{self, VisualClozeTransformer2DModel, names};
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{CachedTransformer, Conditioning, Denoiser};
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;
const NAME: &str = "visualcloze_tiny";

fn load() -> Result<VisualClozeTransformer2DModel> {
    VisualClozeTransformer2DModel::from_pretrained(
        &fixture(NAME).join("transformer"),
        DType::F32,
        &Device::Cpu,
    )
    .map_err(candle_core::Error::wrap)
}

#[test]
fn tiny_visualcloze_matches_diffusers() -> Result<()> {
    let io = io(NAME)?;
    let model = load()?;
    assert_eq!(model.cached_lists().len(), 2, "VisualCloze caches two lists");
    let hidden = get(&io, "hidden_states")?;
    let out_ch = model.config().out_channels();
    let latents = hidden.narrow(2, 0, out_ch)?;
    let condition = hidden.narrow(2, out_ch, model.condition_channels())?;
    let cond = Conditioning::new()
        .with(names::CONDITION_LATENTS, condition)
        .with(
            names::ENCODER_HIDDEN_STATES,
            get(&io, "encoder_hidden_states")?.clone(),
        )
        .with(names::POOLED_PROJECTIONS, get(&io, "pooled_projections")?.clone())
        .with(names::IMG_IDS, get(&io, "img_ids")?.clone())
        .with(names::TXT_IDS, get(&io, "txt_ids")?.clone())
        .with(names::GUIDANCE, get(&io, "guidance")?.clone());
    let t = (get(&io, "timestep")? * 1000.0)?;
    let out = model.predict(&latents, &t, &cond)?;
    assert_close("visualcloze output", &out, get(&io, "output")?, REL)?;
    Ok(())
}

#[test]
fn tiny_visualcloze_blocks_match_diffusers() -> Result<()> {
    let io = io(NAME)?;
    let model = load()?;
    for prefix in ["double0", "single0"] {
        let k = |s: &str| format!("{prefix}.{s}");
        let rotary = RotaryEmbedding::from_interleaved_full(
            get(&io, &k("in.rope_cos"))?,
            get(&io, &k("in.rope_sin"))?,
        )?;
        let (h, e, t) = (
            get(&io, &k("in.hidden_states"))?,
            get(&io, &k("in.encoder_hidden_states"))?,
            get(&io, &k("in.temb"))?,
        );
        let flux = model.flux();
        let (enc, hid) = if prefix == "double0" {
            flux.transformer_blocks().blocks()[0].forward(h, e, t, Some(&rotary))?
        } else {
            flux.single_transformer_blocks().blocks()[0].forward(h, e, t, Some(&rotary))?
        };
        assert_close(
            &format!("{prefix} hidden"),
            &hid,
            get(&io, &k("out.hidden_states"))?,
            REL,
        )?;
        assert_close(
            &format!("{prefix} encoder"),
            &enc,
            get(&io, &k("out.encoder_hidden_states"))?,
            REL,
        )?;
    }
    Ok(())
}

fn seeded() -> Result<VisualClozeTransformer2DModel> {
    let cfg = visualcloze::Config {
        num_layers: 2,
        num_single_layers: 2,
        ..visualcloze::tiny_fill()
    };
    VisualClozeTransformer2DModel::new(cfg, seeded_var_builder(42, DType::F32, &Device::Cpu))
}

#[test]
fn never_cache_threshold_is_bit_identical() -> Result<()> {
    let m = seeded()?;
    cache_support::assert_never_cache_is_bit_identical(&m, &cache_support::never_cache().into(), 2)
}

#[test]
fn smooth_inputs_are_cached_after_warmup() -> Result<()> {
    cache_support::assert_smooth_inputs_are_cached(&seeded()?, 0.1)
}

#[test]
fn configs_are_consistent() {
    use cachedit_adapters::loader::DiffusersConfig;
    for cfg in [
        visualcloze::config(),
        visualcloze::tiny(),
        visualcloze::tiny_fill(),
    ] {
        assert!(cfg.validate().is_ok(), "{cfg:?}");
    }
    assert_eq!(visualcloze::config().in_channels, 384);
    assert_eq!(visualcloze::config().out_channels(), 64);
}
