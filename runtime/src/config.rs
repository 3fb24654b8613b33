//! `CacheConfig`: every DBCache option with cache-dit's names and defaults (spec §2.1), and its
//! validation, done once when a cache is enabled.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Which cache algorithm a context runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CacheType {
    /// Dual Block Cache: skip the middle blocks of a call when the first blocks' residual is
    /// close to the last computed call's.
    #[default]
    DBCache,
    /// Dynamic Block Prune: decide block by block whether a block can be skipped by reusing its
    /// residual from the last call it was computed (spec §6).
    DBPrune,
}

impl CacheType {
    /// The name cache-dit uses in naming strings and YAML.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DBCache => "DBCache",
            Self::DBPrune => "DBPrune",
        }
    }
}

/// What a mask-0 step of `steps_computation_mask` does (spec §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepsComputationPolicy {
    /// Mask-0 steps go through the limit and diff checks like unmasked steps.
    #[default]
    Dynamic,
    /// Mask-0 steps after warmup are cached unconditionally: no diff, no limits.
    Static,
}

impl StepsComputationPolicy {
    /// cache-dit's spelling (`dynamic`, `static`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dynamic => "dynamic",
            Self::Static => "static",
        }
    }
}

/// Whether `force_refresh_step_hint` refreshes the context once or every `hint` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForceRefreshPolicy {
    /// Refresh once, before transformer call `hint`.
    #[default]
    Once,
    /// Refresh before every `hint`-th call of the (fresh) context.
    Repeat,
}

impl ForceRefreshPolicy {
    /// cache-dit's spelling (`once`, `repeat`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Repeat => "repeat",
        }
    }
}

/// The DBCache options of one block list, with cache-dit's field names in serde and its
/// defaults (`DBCacheConfig()` in Python equals `CacheConfig::default()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// The cache algorithm.
    pub cache_type: CacheType,
    /// F: the first blocks, always computed; their residual is the similarity probe.
    #[serde(rename = "Fn_compute_blocks")]
    pub fn_compute_blocks: usize,
    /// B: the last blocks, always computed; they refine the cached middle output.
    #[serde(rename = "Bn_compute_blocks")]
    pub bn_compute_blocks: usize,
    /// R: a call is cached when `mean|prev - cur| / mean|prev| < R`. `0` disables dynamic
    /// caching; `>= 1` caches every eligible call without computing the diff.
    pub residual_diff_threshold: f64,
    /// Once the sum of the recorded positive diffs of a branch reaches this, it stops caching.
    pub max_accumulated_residual_diff_threshold: Option<f64>,
    /// W: steps `0..W` (strided by `warmup_interval`) are always computed.
    pub max_warmup_steps: usize,
    /// I: the stride of the warmup steps.
    pub warmup_interval: usize,
    /// Cache only while fewer than this many steps of the branch were cached; negative means
    /// unlimited, 0 disables caching.
    pub max_cached_steps: i64,
    /// The longest run of consecutively cached steps; negative means unlimited, 0 disables
    /// caching.
    pub max_continuous_cached_steps: i64,
    /// Whether each step makes two calls (conditional, then unconditional) that keep separate
    /// caches. `None` is resolved from the model's CFG layout when the cache is enabled.
    pub enable_separate_cfg: Option<bool>,
    /// With separate CFG, the unconditional (CFG) call comes first in each step.
    pub cfg_compute_first: bool,
    /// With separate CFG, the CFG call computes its own diff; `false` reuses the non-CFG diff of
    /// the same step.
    pub cfg_diff_compute_separate: bool,
    /// Steps per generation: a persistent context refreshes itself after this many steps.
    pub num_inference_steps: Option<usize>,
    /// Per-step mask: 1 = must compute, 0 = may be cached.
    pub steps_computation_mask: Option<Vec<u8>>,
    /// What mask-0 steps do.
    pub steps_computation_policy: StepsComputationPolicy,
    /// Refresh the context right before transformer call number `hint`.
    pub force_refresh_step_hint: Option<usize>,
    /// Refresh once or repeatedly at `force_refresh_step_hint`.
    pub force_refresh_step_policy: ForceRefreshPolicy,
    /// cache-dit (HEAD f86744af) keeps the continuous-cached counter after a non-adjacent cache
    /// hit, so `max_continuous_cached_steps = 1` gives streaks of 1, 2, 2, 2 (spec §4.3). `true`
    /// restarts the streak at 1 after a gap (upstream PR #1114). Default `false` matches
    /// cache-dit's cached-step lists.
    pub restart_continuous_streak: bool,
    /// DBPrune: relax the threshold per block to `mean(first five positive diffs of the step) *
    /// dynamic_prune_threshold_relax_ratio`, capped (spec §6).
    pub enable_dynamic_prune_threshold: bool,
    /// DBPrune: the cap of the relaxed threshold; `None` means `2 * residual_diff_threshold`.
    pub max_dynamic_prune_threshold: Option<f64>,
    /// DBPrune: the factor applied to the mean diff by the dynamic threshold (default 1.25).
    pub dynamic_prune_threshold_relax_ratio: f64,
    /// DBPrune: blocks never pruned, besides the first `Fn_compute_blocks` and the last
    /// `Bn_compute_blocks`. Ids at or beyond a list's length are ignored (as upstream).
    pub non_prune_block_ids: Vec<usize>,
    /// DBPrune with a calibrator: compare and keep the block inputs strided by 4 on the last
    /// dimension (`x[..., ::4]`), saving memory (cache-dit's `force_reduce_calibrator_vram`).
    pub force_reduce_calibrator_vram: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            cache_type: CacheType::DBCache,
            fn_compute_blocks: 8,
            bn_compute_blocks: 0,
            residual_diff_threshold: 0.08,
            max_accumulated_residual_diff_threshold: None,
            max_warmup_steps: 8,
            warmup_interval: 1,
            max_cached_steps: -1,
            max_continuous_cached_steps: -1,
            enable_separate_cfg: None,
            cfg_compute_first: false,
            cfg_diff_compute_separate: true,
            num_inference_steps: None,
            steps_computation_mask: None,
            steps_computation_policy: StepsComputationPolicy::Dynamic,
            force_refresh_step_hint: None,
            force_refresh_step_policy: ForceRefreshPolicy::Once,
            restart_continuous_streak: false,
            enable_dynamic_prune_threshold: false,
            max_dynamic_prune_threshold: None,
            dynamic_prune_threshold_relax_ratio: 1.25,
            non_prune_block_ids: Vec::new(),
            force_reduce_calibrator_vram: false,
        }
    }
}

impl CacheConfig {
    /// A DBPrune config with cache-dit's `DBPruneConfig()` defaults.
    pub fn dbprune() -> Self {
        Self {
            cache_type: CacheType::DBPrune,
            ..Self::default()
        }
    }

    /// Checks every option that does not depend on the block list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.fn_compute_blocks < 1 {
            return Err(ConfigError::FnTooSmall);
        }
        check_threshold("residual_diff_threshold", self.residual_diff_threshold)?;
        if let Some(a) = self.max_accumulated_residual_diff_threshold {
            check_threshold("max_accumulated_residual_diff_threshold", a)?;
        }
        if let Some(m) = self.max_dynamic_prune_threshold {
            check_threshold("max_dynamic_prune_threshold", m)?;
        }
        check_threshold(
            "dynamic_prune_threshold_relax_ratio",
            self.dynamic_prune_threshold_relax_ratio,
        )?;
        if self.warmup_interval == 0 {
            return Err(ConfigError::ZeroWarmupInterval);
        }
        if self.num_inference_steps == Some(0) {
            return Err(ConfigError::ZeroInferenceSteps);
        }
        if let Some(found) = self.num_inference_steps {
            crate::limits::check_steps(found, |found| ConfigError::TooManySteps {
                field: "num_inference_steps",
                found,
            })?;
        }
        if self.force_refresh_step_hint == Some(0) {
            return Err(ConfigError::ZeroRefreshHint);
        }
        if let Some(mask) = &self.steps_computation_mask {
            if mask.is_empty() {
                return Err(ConfigError::EmptyStepMask);
            }
            crate::limits::check_steps(mask.len(), |found| ConfigError::TooManySteps {
                field: "steps_computation_mask",
                found,
            })?;
            if let Some((index, &value)) = mask.iter().enumerate().find(|(_, v)| **v > 1) {
                return Err(ConfigError::StepMaskValue { index, value });
            }
            if let Some(steps) = self.num_inference_steps
                && mask.len() != steps
            {
                return Err(ConfigError::StepMaskLength {
                    len: mask.len(),
                    steps,
                });
            }
            if self.steps_computation_policy == StepsComputationPolicy::Static && mask[0] == 0 {
                return Err(ConfigError::StaticMaskStartsCached);
            }
        }
        if self.enable_separate_cfg == Some(true) && self.cfg_diff_compute_separate && self.cfg_compute_first
        {
            return Err(ConfigError::CfgComputeFirstWithSeparateDiffs);
        }
        Ok(())
    }

    /// Checks the options against a block list of `len` blocks named `list`.
    pub fn validate_for_list(&self, list: &str, len: usize) -> Result<(), ConfigError> {
        self.validate()?;
        let (f, b) = (self.fn_compute_blocks, self.bn_compute_blocks);
        if f > len {
            return Err(ConfigError::FnExceedsList {
                list: list.to_string(),
                found: f,
                len,
            });
        }
        if b > len {
            return Err(ConfigError::BnExceedsList {
                list: list.to_string(),
                found: b,
                len,
            });
        }
        // Under DBPrune, F and B only name protected blocks: overlapping ranges are harmless.
        if f + b > len && self.cache_type == CacheType::DBCache {
            return Err(ConfigError::FnBnOverlap {
                list: list.to_string(),
                fn_blocks: f,
                bn_blocks: b,
                len,
            });
        }
        Ok(())
    }

    /// Steps `0..min(W, leading ones of the mask)` strided by `warmup_interval` (spec §4.2).
    pub fn is_warmup_step(&self, step: usize) -> bool {
        let limit = match &self.steps_computation_mask {
            Some(mask) => {
                let leading_ones = mask.iter().take_while(|&&m| m == 1).count();
                self.max_warmup_steps.min(leading_ones)
            }
            None => self.max_warmup_steps,
        };
        step < limit && step.is_multiple_of(self.warmup_interval.max(1))
    }
}

fn check_threshold(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_nan() || value < 0.0 {
        return Err(ConfigError::InvalidThreshold { field, value });
    }
    if value.is_infinite() {
        return Err(ConfigError::NonFiniteOption { field, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_cache_dits() {
        let c = CacheConfig::default();
        assert_eq!((c.fn_compute_blocks, c.bn_compute_blocks), (8, 0));
        assert_eq!(c.residual_diff_threshold, 0.08);
        assert_eq!((c.max_warmup_steps, c.warmup_interval), (8, 1));
        assert_eq!((c.max_cached_steps, c.max_continuous_cached_steps), (-1, -1));
        assert_eq!(c.enable_separate_cfg, None);
        assert!(!c.cfg_compute_first && c.cfg_diff_compute_separate);
        assert_eq!(c.steps_computation_policy, StepsComputationPolicy::Dynamic);
        assert_eq!(c.force_refresh_step_policy, ForceRefreshPolicy::Once);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn warmup_steps_follow_interval_and_mask() {
        let c = CacheConfig {
            max_warmup_steps: 8,
            warmup_interval: 2,
            ..Default::default()
        };
        let w: Vec<usize> = (0..12).filter(|&s| c.is_warmup_step(s)).collect();
        assert_eq!(w, vec![0, 2, 4, 6]);
        let c = CacheConfig {
            steps_computation_mask: Some(vec![1, 1, 1, 1, 0, 0, 1]),
            ..Default::default()
        };
        let w: Vec<usize> = (0..12).filter(|&s| c.is_warmup_step(s)).collect();
        assert_eq!(w, vec![0, 1, 2, 3]);
        let c = CacheConfig {
            max_warmup_steps: 0,
            ..Default::default()
        };
        assert!(!c.is_warmup_step(0));
    }
}
