//! SD3 / SD3.5: parity with diffusers (f32) on the fixtures of `tools/reference/gen_sd3.py`
//! (whole model, conditioning, first block and the `context_pre_only` last block), and the cache
//! engine, including what upstream cache-dit cannot run: Bn = 0 (the cached tail then ends in
//! the block that returns no text stream) with and without a TaylorSeer calibrator.

mod harness;

use cachedit_adapters::families::sd3::{Config, SD3Transformer2DModel};
use harness::prelude::*;

type Model = SD3Transformer2DModel;
const REL: f32 = 1e-4;
/// Bn = 0 in the smooth check: the cached tail's last block returns no text stream.
const CACHE: CacheCase = CacheCase {
    cfg: CfgLayout::Batched,
    lists: &[("transformer_blocks", ForwardPattern::Pattern_1)],
    threshold: 0.1,
    drive: Drive::Plain,
};

fn check(name: &'static str) -> Result<()> {
    let p = Parity::<Model>::load(name, REL)?;
    let [x, text, pooled, t] = p.ios([
        "hidden_states",
        "encoder_hidden_states",
        "pooled_projections",
        "timestep",
    ])?;
    p.output(&p.model.forward(x, text, pooled, t)?)?;
    p.check("temb", &p.model.conditioning(t, pooled)?, "block0.in.temb")?;

    let blocks = p.model.transformer_blocks().blocks();
    for (prefix, block) in [("block0", &blocks[0]), ("last", &blocks[blocks.len() - 1])] {
        p.block(prefix, |_, b| {
            let (enc, hid) = block.forward(b.hidden()?, b.encoder()?, b.temb()?)?;
            if enc.is_none() {
                assert!(block.context_pre_only());
            }
            Ok(BlockOut::maybe_joint(hid, enc))
        })?;
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

fn model() -> Result<Model> {
    seeded_with_shape(Config::tiny(), (4, 6, 8))
}

#[test]
fn one_pattern_1_list_with_batched_cfg() -> Result<()> {
    CACHE.assert_lists(&model()?);
    for cfg in [Config::sd3_medium(), Config::sd35_large(), Config::sd35_medium()] {
        assert!(cfg.validate().is_ok(), "{cfg:?}");
    }
    Ok(())
}

#[test]
fn never_cache_threshold_is_bit_identical() -> Result<()> {
    CACHE.never_cache_is_bit_identical(&model()?)
}

#[test]
fn smooth_inputs_are_cached_after_warmup_with_bn_0() -> Result<()> {
    CACHE.smooth_inputs_are_cached(&model()?)
}

/// TaylorSeer (order 1) with Bn = 0 and with Bn = 1, where upstream crashes on SD3.
#[test]
fn taylorseer_calibrator_runs_with_bn_0_and_1() -> Result<()> {
    let run = |m: &Model| cache::smooth_run(m, 10, cache::Run::of(Drive::Plain, m));
    for bn in [0, 1] {
        let m = model()?;
        let plain = run(&m)?;
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
        let cached = run(&m)?;
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
