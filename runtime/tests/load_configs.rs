//! cache-dit's YAML config format.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::path::Path;

use cachedit_runtime::{
    CalibratorKind, LoadConfigError, StepsComputationPolicy, load_configs_str, steps_mask,
};

fn load(text: &str) -> Result<cachedit_runtime::LoadedConfig, LoadConfigError> {
    load_configs_str(text, Path::new("cache.yaml"))
}

#[test]
fn nested_format_with_policy_mask_and_taylorseer() {
    let c = load(
        "cache_config:\n  max_warmup_steps: 8\n  warmup_interval: 2\n  max_cached_steps: -1\n  max_continuous_cached_steps: 2\n  Fn_compute_blocks: 1\n  Bn_compute_blocks: 0\n  residual_diff_threshold: 0.12\n  num_inference_steps: 28\n  steps_computation_mask: fast\n  steps_computation_policy: static\n  cache_type: DBCache\n  enable_taylorseer: true\n  taylorseer_order: 2\n",
    )
    .unwrap();
    assert_eq!(c.cache.fn_compute_blocks, 1);
    assert_eq!(c.cache.residual_diff_threshold, 0.12);
    assert_eq!(c.cache.warmup_interval, 2);
    assert_eq!(
        c.cache.steps_computation_mask,
        Some(steps_mask(28, cachedit_runtime::MaskPolicy::Fast).unwrap())
    );
    assert_eq!(c.cache.steps_computation_policy, StepsComputationPolicy::Static);
    let cal = c.calibrator.unwrap();
    assert_eq!(cal.kind, CalibratorKind::TaylorSeer { taylorseer_order: 2 });
    assert!(cal.enable_calibrator && !cal.enable_encoder_calibrator);
    assert!(c.modifiers.is_empty());
}

#[test]
fn flat_legacy_format_and_list_masks() {
    let c = load("Fn_compute_blocks: 2\nresidual_diff_threshold: 0.2\nsteps_computation_mask: [1, 1, 0, 1]\nenable_foca: true\n").unwrap();
    assert_eq!(
        (c.cache.fn_compute_blocks, c.cache.residual_diff_threshold),
        (2, 0.2)
    );
    assert_eq!(c.cache.steps_computation_mask, Some(vec![1, 1, 0, 1]));
    assert_eq!(c.calibrator.unwrap().kind, CalibratorKind::FoCa);
    assert_eq!(c.cache.max_warmup_steps, 8, "defaults for keys not given");
}

#[test]
fn per_list_modifiers() {
    let c = load("cache_config:\n  residual_diff_threshold: 0.1\nparams_modifiers:\n  - list: single_transformer_blocks\n    cache_config:\n      residual_diff_threshold: 0.2\n      enable_dmd: true\n").unwrap();
    assert_eq!(c.modifiers.len(), 1);
    assert_eq!(c.modifiers[0].list, "single_transformer_blocks");
    assert_eq!(c.modifiers[0].cache.residual_diff_threshold, Some(0.2));
    assert_eq!(c.modifiers[0].cache.fn_compute_blocks, None);
    assert!(matches!(
        c.modifiers[0].calibrator.as_ref().unwrap().kind,
        CalibratorKind::Dmd { .. }
    ));
}

#[test]
fn unknown_keys_are_errors_naming_key_and_line() {
    let e = load("cache_config:\n  Fn_compute_blocks: 1\n  residual_diff_treshold: 0.1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("residual_diff_treshold"), "{e}");
    assert!(e.contains("cache.yaml"), "{e}");
    assert!(e.contains("line 3") || e.contains(":3"), "the line is shown: {e}");
    let e = load("cache_config: {}\nbogus: 1\n").unwrap_err().to_string();
    assert!(e.contains("bogus"), "{e}");
    let e = load("Fn_compute_blocks: 1\nbogus_flat: 2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus_flat"), "{e}");
}

#[test]
fn bad_configs_get_clear_errors() {
    let e = load("cache_config:\n  enable_taylorseer: true\n  enable_foca: true\n").unwrap_err();
    assert!(matches!(e, LoadConfigError::TwoCalibrators { .. }), "{e}");
    let e = load("cache_config:\n  steps_computation_mask: fast\n").unwrap_err();
    assert!(matches!(e, LoadConfigError::MaskNeedsSteps { .. }), "{e}");
    let e = load("cache_config:\n  num_inference_steps: 28\n  steps_computation_mask: turbo\n").unwrap_err();
    assert!(e.to_string().contains("turbo"), "{e}");
    let e = load("cache_config:\n  Fn_compute_blocks: many\n").unwrap_err();
    assert!(
        e.to_string().contains("Fn_compute_blocks") || e.to_string().contains("many"),
        "{e}"
    );
    let e = load("cache_config: {}\nparallelism_config: {ulysses_size: 2}\n").unwrap_err();
    assert!(
        e.to_string().contains("`parallelism_config` is not supported"),
        "{e}"
    );
    let e = load("cache_config:\n  cache_type: DBCahce\n").unwrap_err();
    assert!(e.to_string().contains("DBCahce"), "{e}");
}
