//! DBPrune, Dynamic Block Prune (docs/algorithm.md §6): decide block by block whether a block can be skipped.
//! The probe of block `i` is its input hidden state, compared with its input at the last call
//! where it was computed; a pruned block's output is its input plus the residual it produced
//! then (or its forecast, with a calibrator). The first `Fn`, the last `Bn` and the
//! `non_prune_block_ids` blocks are always computed.
//!
//! Every other rule is DBCache's (warmup, masks, limits, separate CFG branches), with these
//! differences, as upstream: the step counter advances before any block runs; every block's
//! diff is recorded (a list per step) and none accumulates, so
//! `max_accumulated_residual_diff_threshold` never applies; a step counts as cached once however
//! many blocks it pruned; `max_continuous_cached_steps` is checked per block and resets the
//! streak when it blocks, so the next block of the same call may prune again; the threshold may
//! be relaxed per block from the step's first diffs ([`dynamic_threshold`]).
//!
//! Deliberate differences from cache-dit (HEAD f86744af):
//! - Patterns 3-5 work. cache-dit raises a `TypeError` on the first computed block (its 3/4/5
//!   wrapper calls `_process_block_outputs` with two arguments); `CachedBlock` gives every
//!   pattern the same two-stream form, so the loop here is pattern-agnostic. For Patterns 3-5 the
//!   encoder stream entering block `i` is the `E` output of block `i - 1`, as upstream's loop
//!   passes it, and its residual is kept like the hidden one.
//! - The protected ids are computed per list. cache-dit caches them per (manager, list length)
//!   in an `lru_cache`, so two lists of the same length with different `Fn`/`Bn`/ids under
//!   per-list overrides would share the first list's.
//! - `cfg_diff_compute_separate: false` reuses the non-CFG diff of the same block at the same
//!   step (cache-dit compares a list with a float and raises).
//! - With a hidden-states calibrator on the encoder stream the encoder output is kept (cache-dit
//!   keeps the residual and then reuses it as the output).

use candle_core::Result;

use crate::cache::config::cache::CacheConfig;
use crate::cache::context::CacheContext;
use crate::cache::host_time::CallClock;
use crate::cache::record::{BlockRecord, Branch, CallRecord, Decision, Reason, RefreshReason};
use crate::cache::strategy::Strategy;
use crate::cache::streams::{BlockRunner, Streams};

pub use crate::cache::context::rules::dynamic_threshold;

/// Dynamic Block Prune as a [`Strategy`]: every block of the list is a decision point.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbPrune;

impl Strategy for DbPrune {
    fn name(&self) -> &'static str {
        "DBPrune"
    }

    fn forward(
        &self,
        ctx: &mut CacheContext,
        runner: &dyn BlockRunner,
        s: Streams,
    ) -> Result<(Streams, CallRecord)> {
        forward(ctx, runner, s)
    }
}

/// Which of a list's `len` blocks are never pruned: the first `Fn_compute_blocks`, the last
/// `Bn_compute_blocks` and `non_prune_block_ids` (ids `>= len` are ignored, as upstream).
pub fn non_prune_blocks(config: &CacheConfig, len: usize) -> Vec<bool> {
    let f = config.fn_compute_blocks.min(len);
    let b = config.bn_compute_blocks.min(len);
    (0..len)
        .map(|i| i < f || i >= len - b || config.non_prune_block_ids.contains(&i))
        .collect()
}

/// One DBPrune call in progress: `begin`, then `block` for every block in order, then
/// `finish`. `forward` drives it over a list; it is public so that a caller can feed each block
/// its own input (what cache-dit's test harness does).
pub struct PruneCall<'c> {
    ctx: &'c mut CacheContext,
    protected: Vec<bool>,
    blocks: Vec<BlockRecord>,
    refreshed: Option<RefreshReason>,
}

impl<'c> PruneCall<'c> {
    /// Starts a call of a list of `len` blocks: refresh check, then the step counter advances
    /// (before any block, unlike DBCache).
    pub fn begin(ctx: &'c mut CacheContext, len: usize) -> Self {
        let refreshed = ctx.maybe_refresh();
        ctx.mark_step_begin();
        let protected = non_prune_blocks(ctx.config(), len);
        Self {
            ctx,
            protected,
            blocks: Vec::with_capacity(len),
            refreshed,
        }
    }

    /// Block `index` on `s`: pruned (input + stored residual) or computed with `run`, whose
    /// residual is then stored.
    pub fn block(
        &mut self,
        index: usize,
        s: Streams,
        run: impl FnOnce(Streams) -> Result<Streams>,
    ) -> Result<Streams> {
        let ctx = &mut *self.ctx;
        let protected = self.protected.get(index).copied().unwrap_or(true);
        let threshold = ctx.threshold();
        let decision = if protected {
            Decision {
                cached: false,
                reason: Reason::NonPruneBlock,
                diff: None,
            }
        } else {
            let d = ctx.can_cache_at(index, &s.hidden)?;
            if d.cached && !ctx.cache_fits_at(index, &s) {
                Decision {
                    cached: false,
                    reason: Reason::StaleBuffer,
                    diff: d.diff,
                }
            } else {
                d
            }
        };
        let out = if decision.cached {
            ctx.add_pruned_step();
            ctx.apply_cache_at(index, s)?
        } else if protected {
            run(s)?
        } else {
            let before = s.clone();
            let after = run(s)?;
            ctx.set_fn_buffer_at(index, before.hidden.clone())?;
            ctx.set_middle_at(index, &before, &after)?;
            after
        };
        self.blocks.push(BlockRecord {
            index,
            pruned: decision.cached,
            reason: decision.reason,
            diff: decision.diff,
            threshold,
        });
        Ok(out)
    }

    /// Ends the call: records the pruned and actual block counts and returns the call's record
    /// (cached when any block was pruned; its reason is the first prunable block's).
    pub fn finish(self) -> CallRecord {
        let ctx = self.ctx;
        let pruned = self.blocks.iter().filter(|b| b.pruned).count();
        ctx.add_pruned_blocks(pruned, self.protected.len());
        let first = self.blocks.iter().find(|b| b.reason != Reason::NonPruneBlock);
        CallRecord {
            list: ctx.name().to_string(),
            call: ctx.accumulated_transformer_executed_steps().saturating_sub(1),
            step: ctx.current_step().max(0) as usize,
            branch: ctx.active_branch(),
            cached: pruned > 0,
            reason: first.map_or(Reason::NonPruneBlock, |b| b.reason),
            diff: None,
            threshold: ctx.config().residual_diff_threshold,
            refreshed: self.refreshed.map(RefreshReason::name),
            blocks: self.blocks,
        }
    }
}

/// Runs one call of a list under DBPrune.
pub fn forward(
    ctx: &mut CacheContext,
    runner: &dyn BlockRunner,
    s: Streams,
) -> Result<(Streams, CallRecord)> {
    let n = runner.len();
    let mut clock = CallClock::start();
    let mut call = PruneCall::begin(ctx, n);
    let mut s = s;
    for i in 0..n {
        s = call.block(i, s, |s| clock.blocks(|| runner.run(i..i + 1, s)))?;
    }
    let record = call.finish();
    clock.finish(ctx.host_time_mut());
    tracing::trace!(list = %record.list, step = record.step, pruned = record.blocks.iter().filter(|b| b.pruned).count(), "prune decisions");
    Ok((s, record))
}

/// `sum(pruned) / sum(actual)` of a branch, cache-dit's `pruned_ratio` (`None` before any call).
pub fn pruned_ratio(ctx: &CacheContext, branch: Branch) -> Option<f64> {
    ctx.branch(branch).pruned_ratio()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_blocks_are_fn_bn_and_ids() {
        let c = CacheConfig {
            fn_compute_blocks: 2,
            bn_compute_blocks: 1,
            non_prune_block_ids: vec![4, 9],
            ..CacheConfig::dbprune()
        };
        let p = non_prune_blocks(&c, 7);
        assert_eq!(p, [true, true, false, false, true, false, true]);
        assert!(non_prune_blocks(&c, 2).iter().all(|&x| x));
    }

    #[test]
    fn dynamic_threshold_relaxes_within_the_cap() {
        let c = CacheConfig {
            residual_diff_threshold: 0.1,
            enable_dynamic_prune_threshold: true,
            ..CacheConfig::dbprune()
        };
        assert_eq!(dynamic_threshold(&c, [].into_iter()), 0.1);
        assert!((dynamic_threshold(&c, [0.09].into_iter()) - 0.1125).abs() < 1e-12);
        // Only the first five diffs count, and only the positive ones.
        let d = [0.0, -1.0, 0.12, 0.12, 0.12, 0.5];
        assert!((dynamic_threshold(&c, d.into_iter()) - 0.15).abs() < 1e-12);
        // Relaxed beyond the cap (2R): back to R.
        assert_eq!(dynamic_threshold(&c, [0.2].into_iter()), 0.1);
        // Below R: R.
        assert_eq!(dynamic_threshold(&c, [0.01].into_iter()), 0.1);
        let off = CacheConfig {
            enable_dynamic_prune_threshold: false,
            ..c
        };
        assert_eq!(dynamic_threshold(&off, [0.09].into_iter()), 0.1);
    }
}
