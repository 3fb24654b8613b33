//! Every DBCache vector of docs/algorithm.md §14, produced by the real cache-dit code, driven through a real
//! `BlockList` whose first block adds the vector's "Fn residual" (hidden input 0).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use cachedit_runtime::{
    Branch, CacheConfig, CfgLayout, ForceRefreshPolicy, Reason, StepsComputationPolicy, Streams,
    enable_cache, set_tracing, summary, take_trace,
};
use candle_core::{DType, Result};
use common::*;

fn ones(n: usize) -> Vec<f32> {
    vec![1.0; n]
}

fn check(config: CacheConfig, residuals: &[f32], expected: &str) -> Model<P3Block> {
    let model = scalar_model(config);
    let got = run_scalar_sequence(&model, residuals).expect("forward");
    assert_eq!(got, expected.replace(' ', ""));
    model
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn a_diff_against_last_computed_call() {
    let r = [1.0, 1.0, 1.0, 1.0, 1.05, 1.08, 1.12, 1.15, 1.2, 1.3];
    let model = check(vector_config(4, 0.1), &r, "CCCCSSCSSC");
    let s = &summary(&model)[0];
    assert_eq!(s.cached_steps, vec![4, 5, 7, 8]);
    let want = [
        (4, 0.05),
        (5, 0.08),
        (6, 0.12),
        (7, 0.026786),
        (8, 0.071429),
        (9, 0.160714),
    ];
    assert_eq!(s.residual_diffs.len(), want.len());
    for ((step, d), (ws, wd)) in s.residual_diffs.iter().zip(want) {
        assert_eq!(*step, ws);
        assert!(close(*d, wd), "step {step}: {d} vs {wd}");
    }
    let acc = model
        .blocks
        .cache_handle()
        .with_context(|c| c.branch(Branch::NonCfg).accumulated_residual_diff);
    assert!(close(acc.unwrap_or_default(), 0.508929), "{acc:?}");
}

#[test]
fn b_max_continuous_cached_steps_streaks() {
    let mc = |m| CacheConfig {
        max_continuous_cached_steps: m,
        ..vector_config(2, 0.1)
    };
    check(mc(1), &ones(12), "CCSCSSCSSCSS");
    check(mc(2), &ones(12), "CCSSCSSCSSCS");
    check(mc(3), &ones(12), "CCSSSCSSSCSS");
}

#[test]
fn corrected_streak_restarts_after_a_gap() {
    // With the switch, MC1 gives streaks of 1 throughout instead of 1, 2, 2, 2.
    let c = CacheConfig {
        max_continuous_cached_steps: 1,
        restart_continuous_streak: true,
        ..vector_config(2, 0.1)
    };
    check(c, &ones(12), "CCSCSCSCSCSC");
}

#[test]
fn c_max_cached_steps() {
    check(
        CacheConfig {
            max_cached_steps: 3,
            ..vector_config(2, 0.1)
        },
        &ones(12),
        "CCSSSCCCCCCC",
    );
}

#[test]
fn q_max_cached_steps_zero_disables_caching() {
    check(
        CacheConfig {
            max_cached_steps: 0,
            ..vector_config(1, 0.1)
        },
        &ones(4),
        "CCCC",
    );
}

#[test]
fn d_warmup_interval() {
    check(
        CacheConfig {
            warmup_interval: 2,
            ..vector_config(8, 0.1)
        },
        &ones(12),
        "CSCSCSCSSSSS",
    );
}

#[test]
fn d2_no_warmup_still_computes_step_zero() {
    let model = check(vector_config(0, 0.1), &ones(12), "CSSSSSSSSSSS");
    assert_eq!(
        summary(&model)[0].residual_diffs[0].0,
        1,
        "no diff recorded at step 0"
    );
}

fn mask_e() -> CacheConfig {
    CacheConfig {
        steps_computation_mask: Some(vec![1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1]),
        ..vector_config(8, 0.1)
    }
}
const E_RESIDUALS: [f32; 12] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 1.5, 1.5, 1.0, 1.0, 1.0, 1.0];

#[test]
fn e1_dynamic_mask() {
    let model = check(mask_e(), &E_RESIDUALS, "CCCCSCCSCCSC");
    let diffs = &summary(&model)[0].residual_diffs;
    let want = [(4, 0.0), (5, 0.5), (7, 0.0), (8, 0.333333), (10, 0.0)];
    assert_eq!(diffs.len(), want.len());
    for ((s, d), (ws, wd)) in diffs.iter().zip(want) {
        assert_eq!(*s, ws);
        assert!(close(*d, wd), "step {s}: {d}");
    }
}

#[test]
fn e2_static_mask_records_no_diffs() {
    let c = CacheConfig {
        steps_computation_policy: StepsComputationPolicy::Static,
        ..mask_e()
    };
    let model = check(c, &E_RESIDUALS, "CCCCSSCSSCSC");
    assert!(summary(&model)[0].residual_diffs.is_empty());
}

#[test]
fn p_static_mask_caches_beyond_its_length() {
    let c = CacheConfig {
        steps_computation_mask: Some(vec![1, 1, 0, 1]),
        steps_computation_policy: StepsComputationPolicy::Static,
        ..vector_config(2, 0.1)
    };
    check(c, &[1.0, 1.0, 5.0, 9.0, 20.0, 50.0], "CCSCSS");
}

/// Runs calls `(cond, uncond)` per step (or the reverse with `cfg_first`), returning C/S.
fn run_cfg(config: CacheConfig, steps: usize, cfg_first: bool) -> (String, Model<P3Block>) {
    let mut model = Model::new(vec![P3Block, P3Block, P3Block]);
    model.cfg = CfgLayout::Separate;
    enable_cache(&model, &config).expect("config");
    let mut calls = Vec::new();
    for s in 0..steps {
        let (cond, uncond) = (1.0 + 0.01 * s as f32, 2.0 + 0.5 * s as f32);
        if cfg_first {
            calls.extend([uncond, cond]);
        } else {
            calls.extend([cond, uncond]);
        }
    }
    let got = run_scalar_sequence(&model, &calls).expect("forward");
    (got, model)
}

#[test]
fn f_separate_cfg_keeps_independent_branches() {
    let (got, model) = run_cfg(vector_config(2, 0.1), 8, false);
    assert_eq!(got, "CCCCSCSCSCSCSCSC");
    let s = &summary(&model)[0];
    assert_eq!(s.cached_steps, vec![2, 3, 4, 5, 6, 7]);
    assert!(s.cfg_cached_steps.is_empty());
    let want = [0.2, 0.166667, 0.142857, 0.125, 0.111111, 0.1];
    let cfg_diffs: Vec<f64> = s.cfg_residual_diffs.iter().map(|d| d.1).collect();
    assert_eq!(cfg_diffs.len(), want.len());
    assert!(
        cfg_diffs.iter().zip(want).all(|(d, w)| close(*d, w)),
        "{cfg_diffs:?}"
    );
    assert!(s.cache_options.ends_with("_CFG1"), "{}", s.cache_options);
}

#[test]
fn g_cfg_reuses_the_non_cfg_diff() {
    let c = CacheConfig {
        cfg_diff_compute_separate: false,
        ..vector_config(2, 0.1)
    };
    let (got, model) = run_cfg(c, 8, false);
    assert_eq!(got, "CCCCSSSSSSSSSSSS");
    let s = &summary(&model)[0];
    assert!(
        close(s.cfg_residual_diffs[0].1, 0.009901),
        "{:?}",
        s.cfg_residual_diffs
    );
    assert_eq!(s.cfg_residual_diffs, s.residual_diffs);
}

#[test]
fn o_cfg_compute_first() {
    let c = CacheConfig {
        cfg_compute_first: true,
        cfg_diff_compute_separate: false,
        ..vector_config(2, 0.1)
    };
    let (got, _) = run_cfg(c, 6, true);
    assert_eq!(got, "CCCCCSCSCSCS");
}

#[test]
fn r_separate_cfg_with_one_call_per_step_counts_half_steps() {
    let c = CacheConfig {
        enable_separate_cfg: Some(true),
        ..vector_config(2, 0.1)
    };
    let model = check(c, &ones(8), "CCCCSSSS");
    let s = &summary(&model)[0];
    assert_eq!(
        (s.cached_steps.clone(), s.cfg_cached_steps.clone()),
        (vec![2, 3], vec![2, 3])
    );
}

#[test]
fn h_threshold_at_least_one_caches_without_math() {
    let model = check(vector_config(2, 1.0), &[1.0, 2.0, 5.0, 9.0], "CCSS");
    assert_eq!(summary(&model)[0].residual_diffs, vec![(2, -1.0), (3, -1.0)]);
}

#[test]
fn i_shape_change_is_computed_with_sentinel() {
    let model = scalar_model(vector_config(1, 0.5));
    let seq = [
        f32_tensor(&[1.0], &[1]),
        f32_tensor(&[1.0, 1.0], &[2]),
        f32_tensor(&[1.0, 1.0], &[2]),
    ];
    assert_eq!(run_shaped_sequence(&model, &seq).expect("forward"), "CCS");
    assert_eq!(summary(&model)[0].residual_diffs, vec![(1, -2.0), (2, 0.0)]);
}

#[test]
fn j_max_accumulated_residual_diff() {
    let c = CacheConfig {
        max_accumulated_residual_diff_threshold: Some(0.1),
        ..vector_config(1, 0.2)
    };
    check(c, &[1.0, 1.04, 1.08, 1.1, 1.1, 1.1], "CSSCCC");
}

#[test]
fn k_threshold_is_strict() {
    check(vector_config(1, 0.25), &[1.0, 1.25, 0.75, 1.0], "CCCC");
}

#[test]
fn l_persistent_refresh_by_num_inference_steps() {
    let c = CacheConfig {
        num_inference_steps: Some(4),
        ..vector_config(2, 0.1)
    };
    let model = scalar_model(c);
    set_tracing(&model, true);
    assert_eq!(
        run_scalar_sequence(&model, &ones(12)).expect("forward"),
        "CCSSSCCSSSCC"
    );
    let steps: Vec<usize> = take_trace(&model).iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]);
}

#[test]
fn m_force_refresh_once() {
    let c = CacheConfig {
        force_refresh_step_hint: Some(3),
        ..vector_config(2, 0.1)
    };
    let model = check(c, &ones(8), "CCSCCSSS");
    let s = &summary(&model)[0];
    assert_eq!(s.cached_steps, vec![2, 3, 4]);
    assert_eq!(s.accumulated_cached_steps, 4);
    assert_eq!(s.accumulated_executed_steps, 8);
    assert_eq!(s.accumulated_transformer_executed_steps, 8);
}

#[test]
fn m2_force_refresh_repeat() {
    let c = CacheConfig {
        force_refresh_step_hint: Some(3),
        force_refresh_step_policy: ForceRefreshPolicy::Repeat,
        ..vector_config(2, 0.1)
    };
    check(c, &ones(8), "CCSCCSCC");
}

/// docs/algorithm.md §14 numerics vector through a block list running in bf16: a true ratio of 0.0799 rounds
/// to 0.080078125 and is not cached; the same inputs in f32 are cached; 0.0795 is cached.
#[test]
fn bf16_numerics_decide_as_upstream() -> Result<()> {
    let prev = vec![1.0f32; 5000];
    let with_diffs = |k: usize| {
        let mut v = prev.clone();
        v.iter_mut().take(k).for_each(|x| *x = 1.5);
        f32_tensor(&v, &[5000])
    };
    for (dtype, k, want) in [
        (DType::BF16, 799, "CC"),
        (DType::F32, 799, "CS"),
        (DType::BF16, 795, "CS"),
    ] {
        let model = scalar_model(vector_config(1, 0.08));
        let seq = [
            to_dtype(&f32_tensor(&prev, &[5000]), dtype),
            to_dtype(&with_diffs(k), dtype),
        ];
        assert_eq!(
            run_shaped_sequence(&model, &seq)?,
            want,
            "{dtype:?} with {k} differing elements"
        );
        let d = summary(&model)[0].residual_diffs[0].1;
        if dtype == DType::BF16 {
            assert_eq!(d, if k == 799 { 0.080078125 } else { 0.07958984375 });
        }
    }
    Ok(())
}

#[test]
fn trace_explains_every_decision() {
    let c = CacheConfig {
        max_cached_steps: 2,
        ..vector_config(2, 0.1)
    };
    let model = scalar_model(c);
    set_tracing(&model, true);
    run_scalar_sequence(&model, &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]).expect("forward");
    let reasons: Vec<Reason> = take_trace(&model).iter().map(|r| r.reason).collect();
    use Reason::*;
    assert_eq!(
        reasons,
        vec![
            Warmup,
            Warmup,
            BelowThreshold,
            AboveThreshold,
            BelowThreshold,
            MaxCachedSteps
        ]
    );
    let _ = Streams::hidden(scalar(0.0));
}
