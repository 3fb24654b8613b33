//! `CacheConfig`: every DBCache option with cache-dit's names and defaults (docs/algorithm.md §2.1), and its
//! validation, done once when a cache is enabled. The options are declared once, below; the
//! per-list patch `CacheConfigPatch` and the YAML keys `CacheConfig::KEYS` follow from them.

use serde::{Deserialize, Serialize};

use crate::cache::config::error::ConfigError;
use crate::cache::config::keys::declare_cache_config;

/// Which cache algorithm a context runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CacheType {
    /// Dual Block Cache: skip the middle blocks of a call when the first blocks' residual is
    /// close to the last computed call's.
    #[default]
    DBCache,
    /// Dynamic Block Prune: decide block by block whether a block can be skipped by reusing its
    /// residual from the last call it was computed (docs/algorithm.md §6).
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

/// What a mask-0 step of `steps_computation_mask` does (docs/algorithm.md §4.5).
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

declare_cache_config! {
    /// The cache algorithm.
    cache_type: CacheType = CacheType::DBCache,
    /// F: the first blocks, always computed; their residual is the similarity probe.
    fn_compute_blocks as "Fn_compute_blocks": usize = 8,
    /// B: the last blocks, always computed; they refine the cached middle output.
    bn_compute_blocks as "Bn_compute_blocks": usize = 0,
    /// R: a call is cached when `mean|prev - cur| / mean|prev| < R`. `0` disables dynamic
    /// caching; `>= 1` caches every eligible call without computing the diff.
    residual_diff_threshold: f64 = 0.08,
    /// Once the sum of the recorded positive diffs of a branch reaches this, it stops caching.
    max_accumulated_residual_diff_threshold: Option<f64> = None,
    /// W: steps `0..W` (strided by `warmup_interval`) are always computed.
    max_warmup_steps: usize = 8,
    /// I: the stride of the warmup steps.
    warmup_interval: usize = 1,
    /// Cache only while fewer than this many steps of the branch were cached; negative means
    /// unlimited, 0 disables caching.
    max_cached_steps: i64 = -1,
    /// The longest run of consecutively cached steps; negative means unlimited, 0 disables
    /// caching.
    max_continuous_cached_steps: i64 = -1,
    /// Whether each step makes two calls (conditional, then unconditional) that keep separate
    /// caches. `None` is resolved from the model's CFG layout when the cache is enabled.
    enable_separate_cfg: Option<bool> = None,
    /// With separate CFG, the unconditional (CFG) call comes first in each step.
    cfg_compute_first: bool = false,
    /// With separate CFG, the CFG call computes its own diff; `false` reuses the non-CFG diff of
    /// the same step.
    cfg_diff_compute_separate: bool = true,
    /// Steps per generation: a persistent context refreshes itself after this many steps.
    num_inference_steps: Option<usize> = None,
    /// Per-step mask: 1 = must compute, 0 = may be cached.
    steps_computation_mask: Option<Vec<u8>> = None,
    /// What mask-0 steps do.
    steps_computation_policy: StepsComputationPolicy = StepsComputationPolicy::Dynamic,
    /// Refresh the context right before transformer call number `hint`.
    force_refresh_step_hint: Option<usize> = None,
    /// Refresh once or repeatedly at `force_refresh_step_hint`.
    force_refresh_step_policy: ForceRefreshPolicy = ForceRefreshPolicy::Once,
    /// cache-dit (HEAD f86744af) keeps the continuous-cached counter after a non-adjacent cache
    /// hit, so `max_continuous_cached_steps = 1` gives streaks of 1, 2, 2, 2 (docs/algorithm.md §4.3). `true`
    /// restarts the streak at 1 after a gap (upstream PR #1114). Default `false` matches
    /// cache-dit's cached-step lists.
    restart_continuous_streak: bool = false,
    /// DBPrune: relax the threshold per block to `mean(first five positive diffs of the step) *
    /// dynamic_prune_threshold_relax_ratio`, capped (docs/algorithm.md §6).
    enable_dynamic_prune_threshold: bool = false,
    /// DBPrune: the cap of the relaxed threshold; `None` means `2 * residual_diff_threshold`.
    max_dynamic_prune_threshold: Option<f64> = None,
    /// DBPrune: the factor applied to the mean diff by the dynamic threshold (default 1.25).
    dynamic_prune_threshold_relax_ratio: f64 = 1.25,
    /// DBPrune: blocks never pruned, besides the first `Fn_compute_blocks` and the last
    /// `Bn_compute_blocks`. Ids at or beyond a list's length are ignored (as upstream).
    non_prune_block_ids: Vec<usize> = Vec::new(),
    /// DBPrune with a calibrator: compare and keep the block inputs strided by 4 on the last
    /// dimension (`x[..., ::4]`), saving memory (cache-dit's `force_reduce_calibrator_vram`).
    force_reduce_calibrator_vram: bool = false,
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

    /// Steps `0..min(W, leading ones of the mask)` strided by `warmup_interval` (docs/algorithm.md §4.2).
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
