//! Enabling, validation, shape changes, several lists, chained lists, refresh and the summary.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use cachedit_runtime::{
    BlockList, CacheConfig, CacheConfigPatch, CacheOptions, CachedListInfo, CachedTransformer, ConfigError,
    ParamsModifier, Reason, StepsComputationPolicy, Streams, disable_cache, enable_cache,
    enable_cache_with_options, refresh_context, render_summary, summary,
};
use candle_core::{Device, Result, Tensor};
use common::*;

fn err(config: CacheConfig, len: usize) -> ConfigError {
    let model = Model::new((0..len).map(|_| P3Block).collect());
    let e = enable_cache(&model, &config).expect_err("invalid config must be rejected");
    assert!(
        !model.blocks.cache_handle().is_enabled(),
        "nothing is attached on error"
    );
    e
}

#[test]
fn every_invalid_config_has_its_own_error_naming_the_field() {
    let base = CacheConfig {
        fn_compute_blocks: 1,
        ..Default::default()
    };
    let cases: Vec<(CacheConfig, usize, &str)> = vec![
        (
            CacheConfig {
                fn_compute_blocks: 0,
                ..base.clone()
            },
            4,
            "`Fn_compute_blocks` must be at least 1",
        ),
        (
            CacheConfig {
                fn_compute_blocks: 5,
                ..base.clone()
            },
            4,
            "`Fn_compute_blocks` = 5 exceeds the 4 blocks of `transformer_blocks`",
        ),
        (
            CacheConfig {
                bn_compute_blocks: 6,
                ..base.clone()
            },
            4,
            "`Bn_compute_blocks` = 6 exceeds",
        ),
        (
            CacheConfig {
                fn_compute_blocks: 3,
                bn_compute_blocks: 2,
                ..base.clone()
            },
            4,
            "would overlap",
        ),
        (
            CacheConfig {
                residual_diff_threshold: f64::NAN,
                ..base.clone()
            },
            4,
            "`residual_diff_threshold` must be a number >= 0, found NaN",
        ),
        (
            CacheConfig {
                residual_diff_threshold: -0.1,
                ..base.clone()
            },
            4,
            "found -0.1",
        ),
        (
            CacheConfig {
                max_accumulated_residual_diff_threshold: Some(-1.0),
                ..base.clone()
            },
            4,
            "`max_accumulated_residual_diff_threshold`",
        ),
        (
            CacheConfig {
                warmup_interval: 0,
                ..base.clone()
            },
            4,
            "`warmup_interval` must be at least 1",
        ),
        (
            CacheConfig {
                num_inference_steps: Some(0),
                ..base.clone()
            },
            4,
            "`num_inference_steps` must be at least 1",
        ),
        (
            CacheConfig {
                force_refresh_step_hint: Some(0),
                ..base.clone()
            },
            4,
            "`force_refresh_step_hint` must be at least 1",
        ),
        (
            CacheConfig {
                steps_computation_mask: Some(vec![]),
                ..base.clone()
            },
            4,
            "`steps_computation_mask` is empty",
        ),
        (
            CacheConfig {
                steps_computation_mask: Some(vec![1, 2]),
                ..base.clone()
            },
            4,
            "`steps_computation_mask`[1] = 2",
        ),
        (
            CacheConfig {
                steps_computation_mask: Some(vec![1, 0, 1]),
                num_inference_steps: Some(4),
                ..base.clone()
            },
            4,
            "`steps_computation_mask` has 3 entries but `num_inference_steps` is 4",
        ),
        (
            CacheConfig {
                steps_computation_mask: Some(vec![0, 1]),
                steps_computation_policy: StepsComputationPolicy::Static,
                ..base.clone()
            },
            4,
            "`steps_computation_policy: static` needs",
        ),
        (
            CacheConfig {
                enable_separate_cfg: Some(true),
                cfg_compute_first: true,
                ..base.clone()
            },
            4,
            "`cfg_compute_first: true` requires `cfg_diff_compute_separate: false`",
        ),
    ];
    let mut seen = std::collections::HashSet::new();
    for (config, len, want) in cases {
        let e = err(config, len);
        let msg = e.to_string();
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
        seen.insert(std::mem::discriminant(&e));
    }
    assert_eq!(
        seen.len(),
        13,
        "each kind of mistake has its own variant (the three threshold cases share one)"
    );
}

#[test]
fn a_resolution_change_is_computed_and_never_reuses_a_stale_buffer() -> Result<()> {
    // Threshold >= 1 would cache every call after warmup, so only the shape guard computes.
    let model = Model::new(vec![P1Block, P1Block, P1Block]);
    let c = CacheConfig {
        fn_compute_blocks: 1,
        max_warmup_steps: 1,
        residual_diff_threshold: 1.0,
        ..Default::default()
    };
    enable_cache(&model, &c).map_err(candle_core::Error::wrap)?;
    let adds = Adds::first(3, scalar(0.1), 0.2);
    let run = |h: (usize, usize), e: (usize, usize)| -> Result<(bool, Reason, Streams)> {
        let s = Streams::new(
            Tensor::ones(h, candle_core::DType::F32, &Device::Cpu)?,
            Tensor::ones(e, candle_core::DType::F32, &Device::Cpu)?,
        );
        let out = model.blocks.forward(s.clone(), &adds)?;
        let rec = model
            .blocks
            .cache_handle()
            .last_call()
            .ok_or_else(|| candle_core::Error::Msg("no record".into()))?;
        Ok((rec.cached, rec.reason, out))
    };
    assert!(!run((4, 8), (2, 8))?.0);
    assert!(run((4, 8), (2, 8))?.0);
    // New resolution. A threshold >= 1 answers "similar" before the shape check (upstream's
    // order), so it is the stale-buffer guard that computes this call.
    let (cached, reason, out) = run((6, 8), (2, 8))?;
    assert!(!cached);
    assert_eq!(reason, Reason::StaleBuffer);
    assert_eq!(out.hidden.dims(), &[6, 8]);
    // Same hidden shape, new prompt length: the encoder buffer is stale -> computed.
    let (cached, reason, out) = run((6, 8), (3, 8))?;
    assert!(!cached && reason == Reason::StaleBuffer);
    assert_eq!(out.encoder.map(|e| e.dims().to_vec()), Some(vec![3, 8]));
    assert!(
        run((6, 8), (3, 8))?.0,
        "caches again once the new shapes are stored"
    );
    Ok(())
}

#[test]
fn shape_change_under_a_threshold_records_the_sentinel() -> Result<()> {
    let model = scalar_model(vector_config(1, 0.5));
    let seq = [
        f32_tensor(&[1.0, 1.0], &[1, 2]),
        f32_tensor(&[1.0, 1.0, 1.0], &[1, 3]),
    ];
    assert_eq!(run_shaped_sequence(&model, &seq)?, "CC");
    let rec = model
        .blocks
        .cache_handle()
        .last_call()
        .ok_or_else(|| candle_core::Error::Msg("none".into()))?;
    assert_eq!((rec.reason, rec.diff), (Reason::ShapeChanged, Some(-2.0)));
    Ok(())
}

/// Two lists of different patterns with independent contexts, plus per-list overrides.
struct TwoLists {
    double: BlockList<P0Block>,
    single: BlockList<P3Block>,
}

impl CachedTransformer for TwoLists {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        vec![
            CachedListInfo::of("double", &self.double),
            CachedListInfo::of("single", &self.single),
        ]
    }
}

impl TwoLists {
    fn new() -> Self {
        Self {
            double: BlockList::new(vec![P0Block, P0Block, P0Block]),
            single: BlockList::new(vec![P3Block, P3Block, P3Block]),
        }
    }

    /// Runs one call: the double list's Fn residual is `rd`, the single list's `rs`.
    fn call(&self, rd: f32, rs: f32) -> Result<(bool, bool)> {
        let h = scalar(0.0);
        let s = self.double.forward(
            Streams::new(h.clone(), scalar(1.0)),
            &Adds::first(3, scalar(rd), 1.0),
        )?;
        let _ = s;
        self.single
            .forward(Streams::hidden(h), &Adds::first(3, scalar(rs), 1.0))?;
        let cached = |l: &cachedit_runtime::CacheHandle| l.last_call().is_some_and(|r| r.cached);
        Ok((
            cached(self.double.cache_handle()),
            cached(self.single.cache_handle()),
        ))
    }
}

#[test]
fn several_lists_keep_independent_contexts_and_overrides() -> Result<()> {
    let model = TwoLists::new();
    let options = CacheOptions {
        cache: vector_config(1, 0.1),
        calibrator: None,
        modifiers: vec![ParamsModifier {
            cache: CacheConfigPatch {
                residual_diff_threshold: Some(0.5),
                ..Default::default()
            },
            ..ParamsModifier::new("single")
        }],
    };
    enable_cache_with_options(&model, &options).map_err(candle_core::Error::wrap)?;
    assert_eq!(model.call(1.0, 1.0)?, (false, false));
    // 30% change: above the shared 0.1, below the single list's 0.5.
    assert_eq!(model.call(1.3, 1.3)?, (false, true));
    assert_eq!(model.call(1.3, 1.0)?, (true, true));
    let stats = summary(&model);
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (stats[0].list.as_str(), stats[1].list.as_str()),
        ("double", "single")
    );
    assert_eq!(stats[0].cached_steps, vec![2]);
    assert_eq!(stats[1].cached_steps, vec![1, 2]);
    assert!(
        stats[1].cache_options.contains("_R0.5"),
        "{}",
        stats[1].cache_options
    );
    assert_eq!(stats[0].block_type, "P0Block");

    let bad = CacheOptions {
        modifiers: vec![ParamsModifier::new("singel")],
        ..options
    };
    let e = enable_cache_with_options(&model, &bad).expect_err("unknown list");
    assert!(
        e.to_string().contains("`singel`") && e.to_string().contains("\"single\""),
        "{e}"
    );
    Ok(())
}

#[test]
fn contexts_are_per_model_instance() -> Result<()> {
    let (a, b) = (
        scalar_model(vector_config(1, 0.1)),
        scalar_model(vector_config(1, 0.1)),
    );
    assert_eq!(run_scalar_sequence(&a, &[1.0, 1.0, 1.0])?, "CSS");
    assert_eq!(run_scalar_sequence(&b, &[1.0])?, "C", "b starts its own warmup");
    Ok(())
}

#[test]
fn refresh_context_restarts_counters_and_warmup() -> Result<()> {
    let model = scalar_model(vector_config(2, 0.1));
    assert_eq!(run_scalar_sequence(&model, &[1.0; 4])?, "CCSS");
    refresh_context(&model);
    assert_eq!(run_scalar_sequence(&model, &[1.0; 4])?, "CCSS");
    assert_eq!(summary(&model)[0].cached_steps, vec![2, 3]);
    disable_cache(&model);
    assert!(summary(&model).is_empty());
    Ok(())
}

#[test]
fn host_time_counts_every_call_and_splits_out_the_blocks() -> Result<()> {
    let model = scalar_model(vector_config(2, 0.1));
    assert_eq!(run_scalar_sequence(&model, &[1.0; 4])?, "CCSS");
    let t = summary(&model)[0].host_time;
    assert_eq!(t.calls, 4, "computed and cached calls alike");
    assert!(
        t.blocks > std::time::Duration::ZERO && t.blocks <= t.total,
        "{t:?}"
    );
    assert_eq!(t.engine() + t.blocks, t.total);
    refresh_context(&model);
    run_scalar_sequence(&model, &[1.0; 2])?;
    assert_eq!(
        summary(&model)[0].host_time.calls,
        2,
        "a refresh starts a new count, as the other statistics do"
    );
    Ok(())
}

/// FLUX.1 style: two fields run as ONE cached list; Fn/Bn count across both.
struct Chained {
    first: BlockList<P1Block>,
    second: BlockList<P1Block>,
}

impl CachedTransformer for Chained {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        let mut info = CachedListInfo::of("first", &self.first);
        info.len += self.second.len();
        vec![info]
    }
}

#[test]
fn chained_lists_form_one_cached_list() -> Result<()> {
    let model = Chained {
        first: BlockList::new(vec![P1Block, P1Block]),
        second: BlockList::new(vec![P1Block, P1Block]),
    };
    // F3 B1 exceeds the first field (2 blocks) but fits the chained list of 4.
    let c = CacheConfig {
        fn_compute_blocks: 3,
        bn_compute_blocks: 1,
        max_warmup_steps: 1,
        residual_diff_threshold: 1.0,
        ..Default::default()
    };
    enable_cache(&model, &c).map_err(candle_core::Error::wrap)?;
    let adds = Adds::first(4, scalar(0.3), 0.1);
    let s = || Streams::new(scalar(0.2), scalar(0.4));
    let plain = |st: Streams| -> Result<Streams> {
        let mut st = st;
        for (i, b) in model
            .first
            .blocks()
            .iter()
            .chain(model.second.blocks())
            .enumerate()
        {
            // Block indices restart in the second field.
            st = cachedit_runtime::CachedBlock::forward_streams(b, st, &adds, i % 2)?;
        }
        Ok(st)
    };
    let out0 = model.first.forward_chained(&adds, &model.second, &adds, s())?;
    let want0 = plain(s())?;
    assert_eq!(out0.hidden.to_vec1::<f32>()?, want0.hidden.to_vec1::<f32>()?);
    model.first.forward_chained(&adds, &model.second, &adds, s())?;
    let stats = summary(&model);
    assert_eq!((stats.len(), stats[0].cached_steps.clone()), (1, vec![1]));
    Ok(())
}

#[test]
fn summary_renders_cache_dits_table() {
    let model = scalar_model(vector_config(4, 0.1));
    run_scalar_sequence(&model, &[1.0, 1.0, 1.0, 1.0, 1.05, 1.08, 1.12, 1.15, 1.2, 1.3]).expect("forward");
    let table = render_summary(&summary(&model));
    let want = "⚡️Cache Steps and Residual Diffs Statistics: P3Block, Executed Steps: 10, Transformer Executed Steps: 10\n\n\
| Cache Steps | Diffs P00 | Diffs P25 | Diffs P50 | Diffs P75 | Diffs P95 | Diffs Min | Diffs Max |\n\
|-------------|-----------|-----------|-----------|-----------|-----------|-----------|-----------|\n\
| 4           | 0.027     | 0.055     | 0.076     | 0.11      | 0.151     | 0.027     | 0.161     |\n";
    assert_eq!(table, want);
}
