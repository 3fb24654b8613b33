//! What one CFG branch of a context records and stores: its cached steps and diffs, its
//! counters, and its decision slots (DBCache has one, for the middle blocks; DBPrune one per
//! block), each with the reference probe and the stores of both streams.

use candle_core::{Tensor, TensorId};

use crate::cache::store::{MiddleStore, StreamStores};

/// What one branch has recorded and stored (cache-dit keeps these twice, plain and `cfg_`).
pub struct BranchState {
    /// Pipeline steps at which this branch was cached.
    pub cached_steps: Vec<usize>,
    /// The diff recorded per step, first writer wins, in insertion order.
    pub residual_diffs: Vec<(usize, f64)>,
    /// Sum of the positive recorded diffs (never reset within a context).
    pub accumulated_residual_diff: f64,
    /// The continuous-cached counter of docs/algorithm.md §3.3.
    pub continuous_cached_steps: i64,
    /// Cached calls over the context's life, surviving force refreshes.
    pub accumulated_cached_steps: usize,
    /// DBPrune: blocks pruned per call (cache-dit's `pruned_blocks`).
    pub pruned_blocks: Vec<usize>,
    /// DBPrune: blocks of the list per call (cache-dit's `actual_blocks`).
    pub actual_blocks: Vec<usize>,
    pub(crate) slots: Vec<Slot>,
    /// Calls of this branch since the context (re)started: a slot created later (DBPrune
    /// creates them as blocks are reached) starts with as many step ticks as its siblings.
    pub(crate) calls: usize,
}

/// What one decision point keeps: DBCache has one (the middle blocks), DBPrune one per block.
pub(crate) struct Slot {
    pub(crate) fn_buffer: Option<Reference>,
    pub(crate) hidden: Box<dyn MiddleStore>,
    pub(crate) encoder: Box<dyn MiddleStore>,
    /// The diff this slot recorded last, with its step (DBPrune's per-block CFG diff reuse).
    pub(crate) diff: Option<(usize, f64)>,
    /// `mean|probe|` of the probe diffed last, read back in the same transfer as its diff: when
    /// that probe becomes the reference (a computed call), its mean needs no second host sync.
    pub(crate) probe_mean: Option<(TensorId, f64)>,
}

impl Slot {
    pub(crate) fn new(stores: &StreamStores, ticks: usize) -> Self {
        let mut slot = Self {
            fn_buffer: None,
            probe_mean: None,
            hidden: (stores.hidden)(),
            encoder: (stores.encoder)(),
            diff: None,
        };
        for _ in 0..ticks {
            slot.hidden.mark_step_begin();
            slot.encoder.mark_step_begin();
        }
        slot
    }
}

/// The Fn probe of the last computed call, with its `mean|.|` once known.
pub(crate) struct Reference {
    pub(crate) probe: Tensor,
    pub(crate) mean_abs: Option<f64>,
}

impl BranchState {
    pub(crate) fn new(stores: &StreamStores) -> Self {
        Self {
            cached_steps: Vec::new(),
            residual_diffs: Vec::new(),
            accumulated_residual_diff: 0.0,
            continuous_cached_steps: 0,
            accumulated_cached_steps: 0,
            pruned_blocks: Vec::new(),
            actual_blocks: Vec::new(),
            slots: vec![Slot::new(stores, 0)],
            calls: 0,
        }
    }

    /// The tensors this branch holds: reference probes and what its stores keep.
    pub(crate) fn held(&self) -> impl Iterator<Item = &Tensor> {
        self.slots.iter().flat_map(|slot| {
            let probe = slot.fn_buffer.as_ref().map(|r| &r.probe);
            probe
                .into_iter()
                .chain(slot.hidden.held())
                .chain(slot.encoder.held())
        })
    }

    /// The diffs recorded at `step`, in order (DBPrune records one per prunable block).
    pub fn diffs_at(&self, step: usize) -> impl Iterator<Item = f64> + '_ {
        self.residual_diffs
            .iter()
            .filter(move |(s, _)| *s == step)
            .map(|(_, d)| *d)
    }

    /// `sum(pruned) / sum(actual)`, cache-dit's `pruned_ratio` (`None` before any DBPrune call).
    pub fn pruned_ratio(&self) -> Option<f64> {
        let actual: usize = self.actual_blocks.iter().sum();
        (!self.actual_blocks.is_empty() && actual > 0)
            .then(|| self.pruned_blocks.iter().sum::<usize>() as f64 / actual as f64)
    }

    pub(crate) fn diff_at(&self, step: usize) -> Option<f64> {
        self.residual_diffs
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, d)| *d)
    }
}
