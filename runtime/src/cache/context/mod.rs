//! `CacheContext`: the decision stream of one block list (docs/algorithm.md §3, §4): step counting, CFG
//! branches, warmup, masks, limits, the diff, refresh, and the stored buffers. What differs
//! between the strategies is asked of their [`rules`].

pub mod branch;
pub mod rules;

use candle_core::{Result, Tensor};

use crate::cache::calibrators;
use crate::cache::config::cache::{CacheConfig, ForceRefreshPolicy, StepsComputationPolicy};
use crate::cache::config::calibrator::CalibratorConfig;
use crate::cache::context::branch::{BranchState, Reference, Slot};
use crate::cache::context::rules::{DecisionRules, DiffLog};
use crate::cache::diff;
use crate::cache::host_time::HostTime;
use crate::cache::record::{Branch, Decision, Reason, RefreshReason};
use crate::cache::store::{MiddleStore, StoreFactory, StreamStores};
use crate::cache::streams::Streams;

/// The per-block-list cache state: one independent decision stream per CFG branch.
pub struct CacheContext {
    name: String,
    init_config: CacheConfig,
    config: CacheConfig,
    executed_steps: i64,
    transformer_executed_steps: i64,
    accumulated_executed_steps: usize,
    accumulated_transformer_executed_steps: usize,
    branches: [BranchState; 2],
    stores: StreamStores,
    calibrator: Option<CalibratorConfig>,
    host_time: HostTime,
    rules: &'static dyn DecisionRules,
}

impl CacheContext {
    /// A fresh context with plain (non-calibrated) residual buffers. `config` must have been
    /// validated and its `enable_separate_cfg` resolved.
    pub fn new(name: impl Into<String>, config: CacheConfig) -> Self {
        Self::with_stream_stores(name, config, StreamStores::plain())
    }

    /// A fresh context whose middle outputs are forecast by `calibrator` (per stream, as its
    /// `enable_calibrator` / `enable_encoder_calibrator` say), or kept plainly without one.
    /// `calibrator` must have been validated.
    pub fn with_calibrator(
        name: impl Into<String>,
        config: CacheConfig,
        calibrator: Option<CalibratorConfig>,
    ) -> Self {
        let stores = calibrators::stream_stores(calibrator.as_ref());
        let mut ctx = Self::with_stream_stores(name, config, stores);
        ctx.calibrator = calibrator;
        ctx
    }

    /// A fresh context whose middle outputs are kept by `stores` (one factory for both
    /// streams), reusing residuals or hidden states per stream.
    pub fn with_stores(
        name: impl Into<String>,
        config: CacheConfig,
        stores: StoreFactory,
        hidden_is_residual: bool,
        encoder_is_residual: bool,
    ) -> Self {
        let shared: std::sync::Arc<dyn Fn() -> Box<dyn MiddleStore> + Send + Sync> =
            std::sync::Arc::from(stores);
        let encoder = shared.clone();
        let stores = StreamStores {
            hidden: Box::new(move || shared()),
            encoder: Box::new(move || encoder()),
            hidden_is_residual,
            encoder_is_residual,
        };
        Self::with_stream_stores(name, config, stores)
    }

    /// A fresh context whose streams are kept by `stores`.
    pub fn with_stream_stores(name: impl Into<String>, config: CacheConfig, stores: StreamStores) -> Self {
        let branches = [BranchState::new(&stores), BranchState::new(&stores)];
        let rules = rules::for_type(config.cache_type);
        Self {
            name: name.into(),
            init_config: config.clone(),
            config,
            executed_steps: 0,
            transformer_executed_steps: 0,
            accumulated_executed_steps: 0,
            accumulated_transformer_executed_steps: 0,
            branches,
            stores,
            calibrator: None,
            host_time: HostTime::default(),
            rules,
        }
    }

    /// Host time of the calls since the context was created or last reset: blocks vs engine.
    pub fn host_time(&self) -> HostTime {
        self.host_time
    }

    /// Where a call's [`CallClock`](crate::cache::host_time::CallClock) adds its time.
    pub fn host_time_mut(&mut self) -> &mut HostTime {
        &mut self.host_time
    }

    /// The calibrator configuration, if the context forecasts with one.
    pub fn calibrator(&self) -> Option<&CalibratorConfig> {
        self.calibrator.as_ref()
    }

    /// The tensors the context holds (reference probes and stored or forecasting state, all
    /// branches and slots) and their size in bytes; clones of one tensor count once.
    pub fn held_tensors(&self) -> (usize, usize) {
        let mut seen = std::collections::HashSet::new();
        let held = self.branches.iter().flat_map(BranchState::held);
        let bytes = held
            .filter(|t| seen.insert(t.id()))
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum();
        (seen.len(), bytes)
    }

    /// The context's name (the block list's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options in force (a "once" force refresh clears the hint here).
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The options the context was created with, used again by every refresh.
    pub fn init_config(&self) -> &CacheConfig {
        &self.init_config
    }

    /// The pipeline step of the current call (`executed_steps - 1`; -1 before the first).
    pub fn current_step(&self) -> i64 {
        self.executed_steps - 1
    }

    /// The index of the current call of this context (-1 before the first).
    pub fn current_transformer_step(&self) -> i64 {
        self.transformer_executed_steps - 1
    }

    /// Pipeline steps over the context's life, surviving force refreshes.
    pub fn accumulated_executed_steps(&self) -> usize {
        self.accumulated_executed_steps
    }

    /// Calls over the context's life, surviving force refreshes.
    pub fn accumulated_transformer_executed_steps(&self) -> usize {
        self.accumulated_transformer_executed_steps
    }

    /// The state of one branch.
    pub fn branch(&self, b: Branch) -> &BranchState {
        &self.branches[b as usize]
    }

    fn separate_cfg(&self) -> bool {
        self.config.enable_separate_cfg == Some(true)
    }

    /// Whether the current call is the CFG (unconditional) call of its step.
    pub fn is_cfg_call(&self) -> bool {
        if !self.separate_cfg() {
            return false;
        }
        let t = self.current_transformer_step();
        if self.config.cfg_compute_first {
            t % 2 == 0
        } else {
            t % 2 != 0
        }
    }

    /// The branch of the current call.
    pub fn active_branch(&self) -> Branch {
        if self.is_cfg_call() {
            Branch::Cfg
        } else {
            Branch::NonCfg
        }
    }

    fn active(&mut self) -> &mut BranchState {
        let b = self.active_branch();
        &mut self.branches[b as usize]
    }

    /// Slot `index` of the active branch, created on first use.
    fn slot(&mut self, index: usize) -> &mut Slot {
        let b = self.active_branch() as usize;
        let branch = &mut self.branches[b];
        while branch.slots.len() <= index {
            branch.slots.push(Slot::new(&self.stores, branch.calls));
        }
        &mut branch.slots[index]
    }

    /// Re-creates the context from its initial options, as a pipeline call does upstream.
    pub fn reset(&mut self) {
        let stores = std::mem::replace(&mut self.stores, StreamStores::plain());
        let calibrator = self.calibrator.take();
        *self = Self::with_stream_stores(std::mem::take(&mut self.name), self.init_config.clone(), stores);
        self.calibrator = calibrator;
    }

    /// Persistent-mode refresh, run at the top of every call (docs/algorithm.md §3.4). Note the upstream
    /// quirk reproduced here: `current_step` has not advanced yet, so the `num_inference_steps`
    /// refresh fires one call late (period N + 1).
    pub fn maybe_refresh(&mut self) -> Option<RefreshReason> {
        let reason = if self
            .config
            .num_inference_steps
            .is_some_and(|n| self.current_step() >= n as i64)
        {
            RefreshReason::NumInferenceSteps
        } else if self
            .config
            .force_refresh_step_hint
            .is_some_and(|h| self.current_transformer_step() == h as i64 - 1)
        {
            RefreshReason::ForceRefreshHint
        } else {
            return None;
        };
        tracing::debug!(context = %self.name, ?reason, "refreshing cache context");
        let policy = self.config.force_refresh_step_policy;
        let carried = (
            self.accumulated_executed_steps,
            self.accumulated_transformer_executed_steps,
            self.branches
                .iter()
                .map(|b| {
                    (
                        b.accumulated_cached_steps,
                        b.cached_steps.clone(),
                        b.residual_diffs.clone(),
                    )
                })
                .collect::<Vec<_>>(),
            self.host_time,
        );
        self.reset();
        if reason == RefreshReason::ForceRefreshHint {
            let (exec, texec, branches, host_time) = carried;
            self.accumulated_executed_steps = exec;
            self.accumulated_transformer_executed_steps = texec;
            self.host_time = host_time;
            for (state, (acc, steps, diffs)) in self.branches.iter_mut().zip(branches) {
                state.accumulated_cached_steps = acc;
                state.cached_steps = steps;
                state.residual_diffs = diffs;
            }
            if policy == ForceRefreshPolicy::Once {
                self.config.force_refresh_step_hint = None;
            }
        }
        Some(reason)
    }

    /// Advances the counters; called once per call, after the Fn blocks (docs/algorithm.md §3.2).
    pub fn mark_step_begin(&mut self) {
        self.transformer_executed_steps += 1;
        self.accumulated_transformer_executed_steps += 1;
        let counts_step = !self.separate_cfg() || (self.is_cfg_call() == self.config.cfg_compute_first);
        if counts_step {
            self.executed_steps += 1;
            self.accumulated_executed_steps += 1;
        }
        if self.current_transformer_step() == 0 {
            for b in &mut self.branches {
                b.cached_steps.clear();
                b.residual_diffs.clear();
                b.pruned_blocks.clear();
                b.actual_blocks.clear();
                b.calls = 0;
                for slot in &mut b.slots {
                    slot.hidden.reset();
                    slot.encoder.reset();
                }
            }
        }
        let active = self.active();
        active.calls += 1;
        for slot in &mut active.slots {
            slot.hidden.mark_step_begin();
            slot.encoder.mark_step_begin();
        }
    }

    fn step(&self) -> usize {
        self.current_step().max(0) as usize
    }

    /// Records a diff for the current step of the active branch, first writer wins (docs/algorithm.md §3.3).
    /// DBPrune appends every block's diff and does not accumulate them (docs/algorithm.md §6).
    fn add_residual_diff(&mut self, slot: usize, diff: f64) {
        let step = self.step();
        self.slot(slot).diff = Some((step, diff));
        let log = self.rules.diff_log();
        let b = self.active();
        if log == DiffLog::EveryDecision {
            b.residual_diffs.push((step, diff));
        } else if b.diff_at(step).is_none() {
            b.residual_diffs.push((step, diff));
            if diff > 0.0 {
                b.accumulated_residual_diff += diff;
            }
        }
    }

    /// Marks the current call as cached and updates the continuous streak (docs/algorithm.md §3.3).
    pub fn add_cached_step(&mut self) {
        let step = self.step();
        let restart = self.config.restart_continuous_streak;
        let b = self.active();
        match b.cached_steps.last() {
            Some(&prev) if step == prev + 1 => {
                b.continuous_cached_steps += if b.continuous_cached_steps == 0 { 2 } else { 1 };
            }
            Some(_) if restart => b.continuous_cached_steps = 1,
            Some(_) => {}
            None => b.continuous_cached_steps += 1,
        }
        b.cached_steps.push(step);
        b.accumulated_cached_steps += 1;
    }

    /// DBPrune: counts the current step as cached once, whatever the number of pruned blocks.
    pub fn add_pruned_step(&mut self) {
        let step = self.step();
        if self.branch(self.active_branch()).cached_steps.last() != Some(&step) {
            self.add_cached_step();
        }
    }

    /// DBPrune: records the blocks pruned in this call out of `actual`.
    pub fn add_pruned_blocks(&mut self, pruned: usize, actual: usize) {
        let b = self.active();
        b.pruned_blocks.push(pruned);
        b.actual_blocks.push(actual);
    }

    /// The threshold the next decision compares with: `residual_diff_threshold`, or under
    /// DBPrune with `enable_dynamic_prune_threshold` the threshold relaxed from this step's
    /// non-CFG diffs (docs/algorithm.md §6).
    pub fn threshold(&self) -> f64 {
        let mut diffs = self.branch(Branch::NonCfg).diffs_at(self.step());
        self.rules.threshold(&self.config, &mut diffs)
    }

    /// Under DBPrune with a calibrator and `force_reduce_calibrator_vram`, block inputs are
    /// compared and kept strided by 4 on the last dimension.
    fn downsample_factor(&self) -> usize {
        self.rules.probe_stride(&self.config, self.calibrator.is_some())
    }

    /// Decides whether the current call may reuse the cache, in cache-dit's order (docs/algorithm.md §4.2).
    pub fn can_cache(&mut self, probe: &Tensor) -> Result<Decision> {
        self.can_cache_at(0, probe)
    }

    /// `can_cache` for decision point `slot` (DBPrune: the block index) with its own reference.
    pub fn can_cache_at(&mut self, slot: usize, probe: &Tensor) -> Result<Decision> {
        let step = self.step();
        let cfg = &self.config;
        if cfg.is_warmup_step(step) {
            return Ok(Decision::compute(Reason::Warmup));
        }
        if let Some(mask) = &cfg.steps_computation_mask {
            if mask.get(step) == Some(&1) {
                return Ok(Decision::compute(Reason::MaskCompute));
            }
            if cfg.steps_computation_policy == StepsComputationPolicy::Static {
                return Ok(Decision {
                    cached: true,
                    reason: Reason::MaskStatic,
                    diff: None,
                });
            }
        }
        let (max_cached, max_continuous) = (cfg.max_cached_steps, cfg.max_continuous_cached_steps);
        let max_acc = cfg.max_accumulated_residual_diff_threshold;
        let threshold = self.threshold();
        let reuse_non_cfg_diff = self.separate_cfg() && self.is_cfg_call() && !cfg.cfg_diff_compute_separate;
        let non_cfg = &self.branches[Branch::NonCfg as usize];
        // Under DBPrune cache-dit would compare a list with a float here and crash; the diff of
        // the same block at the same step is reused instead.
        let non_cfg_diff = if self.rules.diff_log() == DiffLog::EveryDecision {
            non_cfg
                .slots
                .get(slot)
                .and_then(|s| s.diff)
                .filter(|(s, _)| *s == step)
                .map(|d| d.1)
        } else {
            non_cfg.diff_at(step)
        };
        let k = self.downsample_factor();
        let b = self.active();
        if max_cached >= 0 && b.cached_steps.len() as i64 >= max_cached {
            return Ok(Decision::compute(Reason::MaxCachedSteps));
        }
        if max_continuous >= 0 && b.continuous_cached_steps >= max_continuous {
            b.continuous_cached_steps = 0;
            return Ok(Decision::compute(Reason::MaxContinuous));
        }
        if let Some(a) = max_acc
            && a > 0.0
            && b.accumulated_residual_diff >= a
        {
            return Ok(Decision::compute(Reason::MaxAccumulatedDiff));
        }
        if threshold <= 0.0 {
            return Ok(Decision::compute(Reason::ThresholdDisabled));
        }
        let probe_id = probe.id();
        let probe = &diff::downsample_last_dim(probe, k)?;
        let b = self.slot(slot);
        let Some(reference) = b.fn_buffer.as_mut() else {
            return Ok(Decision::compute(Reason::NoBuffer));
        };
        // cache-dit's `similarity`: sentinels for the cases that skip the tensor math.
        let (diff, reason_if_cached) = if threshold >= 1.0 {
            (-1.0, Reason::AlwaysSimilar)
        } else if reference.probe.shape() != probe.shape() {
            (-2.0, Reason::ShapeChanged)
        } else if let (true, Some(d)) = (reuse_non_cfg_diff, non_cfg_diff) {
            (d, Reason::BelowThreshold)
        } else {
            let mean_abs = match reference.mean_abs {
                Some(m) => m,
                None => {
                    let m = diff::mean_abs(&reference.probe)?;
                    reference.mean_abs = Some(m);
                    m
                }
            };
            let (d, probe_mean) = diff::relative_l1_and_mean(&reference.probe, probe, mean_abs)?;
            b.probe_mean = Some((probe_id, probe_mean));
            (d, Reason::BelowThreshold)
        };
        self.add_residual_diff(slot, diff);
        let decision = match reason_if_cached {
            Reason::AlwaysSimilar => Decision {
                cached: true,
                reason: Reason::AlwaysSimilar,
                diff: Some(diff),
            },
            Reason::ShapeChanged => Decision {
                cached: false,
                reason: Reason::ShapeChanged,
                diff: Some(diff),
            },
            _ if diff < threshold => Decision {
                cached: true,
                reason: Reason::BelowThreshold,
                diff: Some(diff),
            },
            _ => Decision {
                cached: false,
                reason: Reason::AboveThreshold,
                diff: Some(diff),
            },
        };
        Ok(decision)
    }

    /// Stores the Fn probe of a computed call as the reference for later diffs.
    pub fn set_fn_buffer(&mut self, probe: Tensor) {
        let slot = self.slot(0);
        let mean_abs = known_mean(slot, &probe);
        slot.fn_buffer = Some(Reference { probe, mean_abs });
    }

    /// `set_fn_buffer` for decision point `slot`.
    pub fn set_fn_buffer_at(&mut self, slot: usize, probe: Tensor) -> Result<()> {
        let k = self.downsample_factor();
        let s = self.slot(slot);
        let mean_abs = known_mean(s, &probe);
        let probe = diff::downsample_last_dim(&probe, k)?;
        s.fn_buffer = Some(Reference { probe, mean_abs });
        Ok(())
    }

    /// Stores what a computed call's middle blocks did: their residual (or output) for the
    /// hidden stream and, when present, the encoder stream. `before`/`after` are the streams
    /// entering and leaving the middle blocks.
    pub fn set_middle(&mut self, before: &Streams, after: &Streams) -> Result<()> {
        self.set_middle_at(0, before, after)
    }

    /// `set_middle` for decision point `slot`.
    pub fn set_middle_at(&mut self, slot: usize, before: &Streams, after: &Streams) -> Result<()> {
        let hidden = if self.stores.hidden_is_residual {
            (&after.hidden - &before.hidden)?
        } else {
            after.hidden.clone()
        };
        let encoder = match (&after.encoder, &before.encoder) {
            (Some(e), Some(e0)) if self.stores.encoder_is_residual => Some((e - e0)?),
            (Some(e), Some(_)) => Some(e.clone()),
            _ => None,
        };
        let b = self.slot(slot);
        b.hidden.update(hidden)?;
        if let Some(e) = encoder {
            b.encoder.update(e)?;
        }
        Ok(())
    }

    /// Whether the stored middle output fits streams shaped like `s` (a stale buffer after a
    /// resolution or prompt-length change must never be reused).
    pub fn cache_fits(&self, s: &Streams) -> bool {
        self.cache_fits_at(0, s)
    }

    /// `cache_fits` for decision point `slot`.
    pub fn cache_fits_at(&self, slot: usize, s: &Streams) -> bool {
        let Some(b) = self.branch(self.active_branch()).slots.get(slot) else {
            return false;
        };
        let hidden_ok = b.hidden.shape() == Some(s.hidden.shape());
        let encoder_ok = match (&s.encoder, b.encoder.shape()) {
            (Some(e), Some(shape)) => e.shape() == shape,
            _ => true,
        };
        hidden_ok && encoder_ok
    }

    /// Reuses the stored (or forecast) middle output on the streams leaving the Fn blocks
    /// (docs/algorithm.md §4.7). Call `cache_fits` first.
    pub fn apply_cache(&mut self, s: Streams) -> Result<Streams> {
        self.apply_cache_at(0, s)
    }

    /// `apply_cache` for decision point `slot`.
    pub fn apply_cache_at(&mut self, slot: usize, s: Streams) -> Result<Streams> {
        let (hidden_res, encoder_res) = (self.stores.hidden_is_residual, self.stores.encoder_is_residual);
        let b = self.slot(slot);
        let stored = b
            .hidden
            .approximate()?
            .ok_or_else(|| candle_core::Error::Msg("no stored middle output to reuse".into()))?;
        let hidden = if hidden_res { (stored + &s.hidden)? } else { stored };
        let encoder = match s.encoder {
            Some(e) => match b.encoder.approximate()? {
                Some(prev) if encoder_res => Some((prev + e)?),
                Some(prev) => Some(prev),
                None => Some(e),
            },
            None => None,
        };
        Ok(Streams { hidden, encoder })
    }
}

/// The mean of `probe` if the last diff of `slot` already read it back (same tensor).
fn known_mean(slot: &mut Slot, probe: &Tensor) -> Option<f64> {
    slot.probe_mean
        .take()
        .filter(|(id, _)| *id == probe.id())
        .map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn probe(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// A computed call's probe becomes the reference with its mean already known from the diff's
    /// read-back, so the next diff needs no extra host synchronisation, and the mean is the one a
    /// separate reduction gives.
    #[test]
    fn a_computed_probe_keeps_the_mean_read_back_with_its_diff() {
        let config = CacheConfig {
            max_warmup_steps: 0,
            residual_diff_threshold: 0.01,
            ..Default::default()
        };
        let mut ctx = CacheContext::new("blocks", config);
        ctx.mark_step_begin();
        let first = probe(&[1.0, 2.0, 3.0]);
        assert!(!ctx.can_cache(&first).unwrap().cached);
        ctx.set_fn_buffer(first);
        assert_eq!(ctx.slot(0).fn_buffer.as_ref().unwrap().mean_abs, None);

        ctx.mark_step_begin();
        let second = probe(&[2.0, -4.0, 6.0]);
        let d = ctx.can_cache(&second).unwrap();
        assert!(!d.cached, "{d:?}");
        ctx.set_fn_buffer(second.clone());
        let known = ctx.slot(0).fn_buffer.as_ref().unwrap().mean_abs;
        assert_eq!(known, Some(diff::mean_abs(&second).unwrap()));

        // A different tensor never picks up a stale mean.
        ctx.mark_step_begin();
        let third = probe(&[0.0, 0.0, 1.0]);
        ctx.can_cache(&third).unwrap();
        ctx.set_fn_buffer(probe(&[0.0, 0.0, 1.0]));
        assert_eq!(ctx.slot(0).fn_buffer.as_ref().unwrap().mean_abs, None);
    }
}
