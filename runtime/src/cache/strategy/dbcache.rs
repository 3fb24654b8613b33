//! The DBCache forward of one cached list (docs/algorithm.md §1.4, §1.5): Fn blocks, the decision, then the
//! middle blocks or the cache, then Bn blocks. The same code serves all six patterns because
//! `CachedBlock` normalises how each pattern moves the encoder stream.

use candle_core::Result;

use crate::cache::context::CacheContext;
use crate::cache::host_time::CallClock;
use crate::cache::record::{Branch, CallRecord, Decision, Reason, RefreshReason};
use crate::cache::strategy::Strategy;
use crate::cache::streams::{BlockRunner, Streams};

/// Dual Block Cache as a [`Strategy`]: one decision per call, for the middle blocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbCache;

impl Strategy for DbCache {
    fn name(&self) -> &'static str {
        "DBCache"
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

/// A cached list's Fn blocks produced NaN or infinite values: the run has gone wrong, and the
/// decision would compare garbage, so it stops here instead of returning an all-NaN result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "step {step}, block list `{list}` ({branch:?} branch): the residual of the first Fn_compute_blocks holds NaN or infinite values (check the inputs, weights and dtype)"
)]
pub struct NonFiniteError {
    /// The block list.
    pub list: String,
    /// The pipeline step.
    pub step: usize,
    /// The CFG branch.
    pub branch: Branch,
}

/// Runs one call of a cached list under `ctx`.
pub fn forward(
    ctx: &mut CacheContext,
    runner: &dyn BlockRunner,
    s: Streams,
) -> Result<(Streams, CallRecord)> {
    let mut clock = CallClock::start();
    let refreshed = ctx.maybe_refresh();
    let n = runner.len();
    let f = ctx.config().fn_compute_blocks.min(n);
    let b = ctx.config().bn_compute_blocks.min(n - f);

    let h_in = s.hidden.clone();
    let s = clock.blocks(|| runner.run(0..f, s))?;
    // cache-dit's context-parallel case: when the Fn blocks change the hidden shape the probe is
    // their output itself rather than a residual.
    let probe = if s.hidden.shape() == h_in.shape() {
        (&s.hidden - &h_in)?
    } else {
        s.hidden.clone()
    };
    ctx.mark_step_begin();
    let mut decision = ctx.can_cache(&probe)?;
    // A non-finite diff also comes from an all-zero reference (0/0, computed as before), so the
    // probe is only inspected then: the common path pays nothing.
    if decision.diff.is_some_and(|d| !d.is_finite()) && !crate::diff::all_finite(&probe)? {
        return Err(candle_core::Error::wrap(NonFiniteError {
            list: ctx.name().to_string(),
            step: ctx.current_step().max(0) as usize,
            branch: ctx.active_branch(),
        }));
    }
    if decision.cached && !ctx.cache_fits(&s) {
        decision = Decision {
            cached: false,
            reason: Reason::StaleBuffer,
            diff: decision.diff,
        };
    }
    let s = if decision.cached {
        ctx.add_cached_step();
        ctx.apply_cache(s)?
    } else {
        ctx.set_fn_buffer(probe);
        let before = s.clone();
        let after = clock.blocks(|| runner.run(f..n - b, s))?;
        ctx.set_middle(&before, &after)?;
        after
    };
    let s = clock.blocks(|| runner.run(n - b..n, s))?;

    let record = CallRecord {
        list: ctx.name().to_string(),
        call: ctx.accumulated_transformer_executed_steps().saturating_sub(1),
        step: ctx.current_step().max(0) as usize,
        branch: ctx.active_branch(),
        cached: decision.cached,
        reason: decision.reason,
        diff: decision.diff,
        threshold: ctx.config().residual_diff_threshold,
        refreshed: refreshed.map(RefreshReason::name),
        blocks: Vec::new(),
    };
    clock.finish(ctx.host_time_mut());
    tracing::trace!(list = %record.list, step = record.step, cached = record.cached, reason = ?record.reason, diff = ?record.diff, "cache decision");
    Ok((s, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(diff: Option<f64>) -> serde_json::Value {
        let r = CallRecord {
            list: "blocks".into(),
            call: 0,
            step: 0,
            branch: Branch::NonCfg,
            cached: false,
            reason: Reason::AboveThreshold,
            diff,
            threshold: 0.1,
            refreshed: None,
            blocks: Vec::new(),
        };
        serde_json::to_value(r).unwrap_or_default()["diff"].clone()
    }

    /// JSON has no NaN: serde_json would write `null`, which reads as a warmup call without a
    /// diff.
    #[test]
    fn a_nan_diff_reads_apart_from_no_diff_in_json() {
        assert_eq!(record(None), serde_json::Value::Null);
        assert_eq!(record(Some(f64::NAN)), "NaN");
        assert_eq!(record(Some(f64::INFINITY)), "inf");
        assert_eq!(record(Some(f64::NEG_INFINITY)), "-inf");
        assert_eq!(record(Some(0.25)), 0.25);
    }
}
