//! What a context's decisions depend on besides its config: the rules of the strategy it runs
//! under. DBCache decides once per call and keeps one diff per step; DBPrune decides block by
//! block, keeps every diff and may relax its threshold. The context asks these rules and never
//! names a strategy, so the strategies (which drive the context) sit above it.

use crate::cache::config::cache::{CacheConfig, CacheType};

/// How the diffs a context records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffLog {
    /// One diff per step and branch, first writer wins; positive diffs accumulate towards
    /// `max_accumulated_residual_diff_threshold` (DBCache).
    FirstPerStep,
    /// Every decision's diff, in order, none accumulated; a CFG call reuses the non-CFG diff of
    /// the same decision point (DBPrune).
    EveryDecision,
}

/// The strategy-specific rules a context applies to its decisions.
pub trait DecisionRules: Send + Sync {
    /// How diffs are recorded.
    fn diff_log(&self) -> DiffLog;

    /// The threshold of the next decision, given the diffs the non-CFG branch recorded at this
    /// step so far.
    fn threshold(&self, config: &CacheConfig, step_diffs: &mut dyn Iterator<Item = f64>) -> f64;

    /// The stride on the last dimension at which probes are compared and kept (1: all of it).
    fn probe_stride(&self, config: &CacheConfig, calibrated: bool) -> usize;
}

/// DBCache's rules: one decision per call, the configured threshold.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerCallRules;

impl DecisionRules for PerCallRules {
    fn diff_log(&self) -> DiffLog {
        DiffLog::FirstPerStep
    }

    fn threshold(&self, config: &CacheConfig, _: &mut dyn Iterator<Item = f64>) -> f64 {
        config.residual_diff_threshold
    }

    fn probe_stride(&self, _: &CacheConfig, _: bool) -> usize {
        1
    }
}

/// DBPrune's rules: one decision per block, every diff kept, the dynamic threshold, and
/// strided probes with a calibrator under `force_reduce_calibrator_vram`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerBlockRules;

impl DecisionRules for PerBlockRules {
    fn diff_log(&self) -> DiffLog {
        DiffLog::EveryDecision
    }

    fn threshold(&self, config: &CacheConfig, step_diffs: &mut dyn Iterator<Item = f64>) -> f64 {
        dynamic_threshold(config, step_diffs)
    }

    fn probe_stride(&self, config: &CacheConfig, calibrated: bool) -> usize {
        if config.force_reduce_calibrator_vram && calibrated {
            4
        } else {
            1
        }
    }
}

/// The rules of `cache_type`.
pub fn for_type(cache_type: CacheType) -> &'static dyn DecisionRules {
    match cache_type {
        CacheType::DBCache => &PerCallRules,
        CacheType::DBPrune => &PerBlockRules,
    }
}

/// The threshold of the next DBPrune decision (cache-dit's `PrunedContext.
/// get_residual_diff_threshold`): `residual_diff_threshold`, or with
/// `enable_dynamic_prune_threshold` and positive diffs among the first five recorded at this step
/// by the non-CFG branch (`diffs`), `max(R, mean · dynamic_prune_threshold_relax_ratio)` when that
/// relaxed value is below the cap (`max_dynamic_prune_threshold`, default `2 R`).
pub fn dynamic_threshold(config: &CacheConfig, diffs: impl Iterator<Item = f64>) -> f64 {
    let base = config.residual_diff_threshold;
    if !config.enable_dynamic_prune_threshold {
        return base;
    }
    let positive: Vec<f64> = diffs.take(5).filter(|d| *d > 0.0).collect();
    if positive.is_empty() {
        return base;
    }
    let mean = positive.iter().sum::<f64>() / positive.len() as f64;
    let relaxed = mean * config.dynamic_prune_threshold_relax_ratio;
    let cap = config.max_dynamic_prune_threshold.unwrap_or(2.0 * base);
    if relaxed < cap { relaxed.max(base) } else { base }
}
