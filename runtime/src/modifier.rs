//! Per-list overrides (cache-dit's `ParamsModifier`, spec §9.4): a partial `CacheConfig` whose
//! set fields win over the shared config for one named block list.

use serde::{Deserialize, Serialize};

use crate::calibrator_config::CalibratorConfig;
use crate::config::{CacheConfig, CacheType, ForceRefreshPolicy, StepsComputationPolicy};

/// A `CacheConfig` with every field optional: the fields that are set override the base
/// config (cache-dit's `update(**kw)` with non-None values). Unknown keys are an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)] // each field is the `CacheConfig` field of the same name
pub struct CacheConfigPatch {
    pub cache_type: Option<CacheType>,
    #[serde(rename = "Fn_compute_blocks")]
    pub fn_compute_blocks: Option<usize>,
    #[serde(rename = "Bn_compute_blocks")]
    pub bn_compute_blocks: Option<usize>,
    pub residual_diff_threshold: Option<f64>,
    pub max_accumulated_residual_diff_threshold: Option<f64>,
    pub max_warmup_steps: Option<usize>,
    pub warmup_interval: Option<usize>,
    pub max_cached_steps: Option<i64>,
    pub max_continuous_cached_steps: Option<i64>,
    pub enable_separate_cfg: Option<bool>,
    pub cfg_compute_first: Option<bool>,
    pub cfg_diff_compute_separate: Option<bool>,
    pub num_inference_steps: Option<usize>,
    pub steps_computation_mask: Option<Vec<u8>>,
    pub steps_computation_policy: Option<StepsComputationPolicy>,
    pub force_refresh_step_hint: Option<usize>,
    pub force_refresh_step_policy: Option<ForceRefreshPolicy>,
    pub restart_continuous_streak: Option<bool>,
    pub enable_dynamic_prune_threshold: Option<bool>,
    pub max_dynamic_prune_threshold: Option<f64>,
    pub dynamic_prune_threshold_relax_ratio: Option<f64>,
    pub non_prune_block_ids: Option<Vec<usize>>,
    pub force_reduce_calibrator_vram: Option<bool>,
}

impl CacheConfigPatch {
    /// Overwrites the fields of `config` that this patch sets.
    pub fn apply(&self, config: &mut CacheConfig) {
        macro_rules! set {
            ($($f:ident),* ; $($o:ident),*) => {
                $( if let Some(v) = &self.$f { config.$f = v.clone(); } )*
                $( if self.$o.is_some() { config.$o = self.$o.clone(); } )*
            };
        }
        set!(cache_type, fn_compute_blocks, bn_compute_blocks, residual_diff_threshold, max_warmup_steps,
             warmup_interval, max_cached_steps, max_continuous_cached_steps, cfg_compute_first,
             cfg_diff_compute_separate, steps_computation_policy, force_refresh_step_policy,
             restart_continuous_streak, enable_dynamic_prune_threshold,
             dynamic_prune_threshold_relax_ratio, non_prune_block_ids, force_reduce_calibrator_vram;
             max_accumulated_residual_diff_threshold, enable_separate_cfg, num_inference_steps,
             steps_computation_mask, force_refresh_step_hint, max_dynamic_prune_threshold);
    }
}

/// Overrides for one cached list, named by the list's name (its field name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamsModifier {
    /// The block list it applies to.
    pub list: String,
    /// Fields of the cache config to override.
    pub cache: CacheConfigPatch,
    /// A calibrator for this list, replacing the shared one.
    pub calibrator: Option<CalibratorConfig>,
}

impl ParamsModifier {
    /// A modifier for list `list` with no overrides yet.
    pub fn new(list: impl Into<String>) -> Self {
        Self {
            list: list.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_fields_override() {
        let base = CacheConfig {
            residual_diff_threshold: 0.12,
            fn_compute_blocks: 4,
            ..Default::default()
        };
        let mut c = base.clone();
        CacheConfigPatch {
            fn_compute_blocks: Some(1),
            ..Default::default()
        }
        .apply(&mut c);
        assert_eq!(c.fn_compute_blocks, 1);
        assert_eq!(c.residual_diff_threshold, 0.12);
        let mut c = base.clone();
        CacheConfigPatch::default().apply(&mut c);
        assert_eq!(c, base);
    }
}
