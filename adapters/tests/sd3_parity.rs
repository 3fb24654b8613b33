//! SD3 / SD3.5: parity with diffusers (f32) on the fixtures of `tools/reference/gen_sd3.py`
//! (whole model, conditioning, first block and the `context_pre_only` last block), and the cache
//! engine, including what upstream cache-dit cannot run: Bn = 0 (the cached tail then ends in
//! the block that returns no text stream) with and without a TaylorSeer calibrator.

mod cache_support;
mod common;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::families::sd3::{Config, SD3Transformer2DModel};
use cachedit_adapters::seeded_var_builder;
use cachedit_runtime::{
    CacheConfig, CacheOptions, CachedTransformer, CalibratorConfig, CfgLayout, ForwardPattern,
    enable_cache_with_options, summary,
};
use candle_core::{DType, Device, Result};
use common::{assert_close, fixture, get, io};

const REL: f32 = 1e-4;

fn check(name: &str) -> Result<()> {
    let io = io(name)?;
    let model =
        SD3Transformer2DModel::from_pretrained(&fixture(name).join("transformer"), DType::F32, &Device::Cpu)
            .map_err(candle_core::Error::wrap)?;
    let out = model.forward(
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "pooled_projections")?,
        get(&io, "timestep")?,
    )?;
    assert_close(&format!("{name} output"), &out, get(&io, "output")?, REL)?;
    let temb = model.conditioning(get(&io, "timestep")?, get(&io, "pooled_projections")?)?;
    assert_close(&format!("{name} temb"), &temb, get(&io, "block0.in.temb")?, REL)?;

    let blocks = model.transformer_blocks().blocks();
    for (prefix, block) in [("block0", &blocks[0]), ("last", &blocks[blocks.len() - 1])] {
        let k = |s: &str| format!("{prefix}.{s}");
        let (enc, hid) = block.forward(
            get(&io, &k("in.hidden_states"))?,
            get(&io, &k("in.encoder_hidden_states"))?,
            get(&io, &k("in.temb"))?,
        )?;
        assert_close(
            &format!("{name} {prefix} hidden"),
            &hid,
            get(&io, &k("out.hidden_states"))?,
            REL,
        )?;
        match (enc, io.get(&k("out.encoder_hidden_states"))) {
            (Some(e), Some(r)) => {
                assert_close(&format!("{name} {prefix} encoder"), &e, r, REL)?;
            }
            (None, None) => assert!(block.context_pre_only()),
            (e, r) => candle_core::bail!(
                "{prefix}: encoder output {} vs reference {}",
                e.is_some(),
                r.is_some()
            ),
        }
    }
    Ok(())
}

#[test]
fn tiny_sd3_matches_diffusers() -> Result<()> {
    check("sd3_tiny")
}

/// RMS q/k norms, MMDiT-X dual attention, patch 2.
#[test]
fn tiny_sd35_matches_diffusers() -> Result<()> {
    check("sd35_tiny")
}

fn seeded() -> Result<SD3Transformer2DModel> {
    Ok(
        SD3Transformer2DModel::new(Config::tiny(), seeded_var_builder(42, DType::F32, &Device::Cpu))?
            .with_sample_shape((4, 6, 8)),
    )
}

#[test]
fn one_pattern_1_list_with_batched_cfg() -> Result<()> {
    let m = seeded()?;
    let lists = m.cached_lists();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].name, "transformer_blocks");
    assert_eq!(lists[0].pattern, ForwardPattern::Pattern_1);
    assert_eq!(m.cfg_layout(), CfgLayout::Batched);
    for cfg in [Config::sd3_medium(), Config::sd35_large(), Config::sd35_medium()] {
        use cachedit_adapters::loader::DiffusersConfig;
        assert!(cfg.validate().is_ok(), "{cfg:?}");
    }
    Ok(())
}

#[test]
fn never_cache_threshold_is_bit_identical() -> Result<()> {
    cache_support::assert_never_cache_is_bit_identical(&seeded()?, &cache_support::never_cache().into(), 1)
}

/// Bn = 0: the cached tail's last block returns no text stream.
#[test]
fn smooth_inputs_are_cached_after_warmup_with_bn_0() -> Result<()> {
    cache_support::assert_smooth_inputs_are_cached(&seeded()?, 0.1)
}

/// TaylorSeer (order 1) with Bn = 0 and with Bn = 1, where upstream crashes on SD3.
#[test]
fn taylorseer_calibrator_runs_with_bn_0_and_1() -> Result<()> {
    for bn in [0, 1] {
        let m = seeded()?;
        let plain = cache_support::smooth_run(&m, 10)?;
        let options = CacheOptions {
            cache: CacheConfig {
                fn_compute_blocks: 1,
                bn_compute_blocks: bn,
                residual_diff_threshold: 0.1,
                max_warmup_steps: 3,
                ..CacheConfig::default()
            },
            calibrator: Some(CalibratorConfig::taylorseer(1)),
            modifiers: Vec::new(),
        };
        enable_cache_with_options(&m, &options).map_err(candle_core::Error::wrap)?;
        let cached = cache_support::smooth_run(&m, 10)?;
        let stats = summary(&m);
        println!("bn {bn}: cached steps {:?}", stats[0].cached_steps);
        assert!(!stats[0].cached_steps.is_empty(), "bn {bn}: nothing was cached");
        for (i, (a, b)) in plain.iter().zip(&cached).enumerate() {
            let err = (b - a)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            let scale = a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert!(
                err.is_finite() && err <= 0.5 * scale.max(1.0),
                "bn {bn} step {i}: {err} vs {scale}"
            );
        }
    }
    Ok(())
}
