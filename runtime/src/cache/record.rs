//! What the cache decided and why: the branch of a call, the reason of a decision, and the
//! records a trace keeps (one [`CallRecord`] per call of a cached list, with a [`BlockRecord`]
//! per block under DBPrune).

/// Which of the two calls of a step with separate CFG a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Branch {
    /// The conditional call, or the only call when CFG is not separate.
    NonCfg,
    /// The unconditional call of a step with separate CFG.
    Cfg,
}

/// Why a call was cached or computed: the answer to "why was this step cached?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A warmup step: always computed.
    Warmup,
    /// `steps_computation_mask` is 1 at this step.
    MaskCompute,
    /// `steps_computation_mask` is 0 under the static policy: cached without a diff.
    MaskStatic,
    /// `max_cached_steps` reached.
    MaxCachedSteps,
    /// `max_continuous_cached_steps` reached (the streak counter restarts).
    MaxContinuous,
    /// `max_accumulated_residual_diff_threshold` reached.
    MaxAccumulatedDiff,
    /// `residual_diff_threshold <= 0`: dynamic caching is off.
    ThresholdDisabled,
    /// Nothing computed yet in this branch to compare with.
    NoBuffer,
    /// The probe's shape differs from the reference (new resolution or batch): diff -2.0.
    ShapeChanged,
    /// The diff is not below the threshold.
    AboveThreshold,
    /// The diff is below the threshold: cached.
    BelowThreshold,
    /// `residual_diff_threshold >= 1`: cached without computing the diff (diff -1.0).
    AlwaysSimilar,
    /// The cache decided to reuse, but the stored middle output does not fit this call (a
    /// stream changed shape): computed instead of reusing a stale buffer.
    StaleBuffer,
    /// DBPrune: one of the first `Fn`, last `Bn` or `non_prune_block_ids` blocks, always
    /// computed.
    NonPruneBlock,
}

/// The outcome of `can_cache` for one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the middle blocks are skipped.
    pub cached: bool,
    /// Why.
    pub reason: Reason,
    /// The diff recorded for this call, if the call reached the similarity check.
    pub diff: Option<f64>,
}

impl Decision {
    /// A computed call, for `reason`, without a diff.
    pub fn compute(reason: Reason) -> Self {
        Self {
            cached: false,
            reason,
            diff: None,
        }
    }
}

/// Why a persistent context refreshed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshReason {
    /// The step counter passed `num_inference_steps`.
    NumInferenceSteps,
    /// `force_refresh_step_hint` was reached.
    ForceRefreshHint,
}

impl RefreshReason {
    /// The option that caused the refresh, as a trace shows it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NumInferenceSteps => "num_inference_steps",
            Self::ForceRefreshHint => "force_refresh_step_hint",
        }
    }
}

/// What happened in one call of a cached list: one line of a trace.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallRecord {
    /// The context (block list) name.
    pub list: String,
    /// The call's index over the context's life (`accumulated_transformer_executed_steps - 1`).
    pub call: usize,
    /// The pipeline step the call counted as.
    pub step: usize,
    /// The CFG branch.
    pub branch: Branch,
    /// Whether the middle blocks were skipped.
    pub cached: bool,
    /// Why.
    pub reason: Reason,
    /// The diff recorded, if the call reached the similarity check. In JSON a non-finite diff
    /// is the string `"NaN"`, `"inf"` or `"-inf"`, so it reads apart from `null` (no diff).
    #[serde(serialize_with = "serialize_diff")]
    pub diff: Option<f64>,
    /// The threshold in force.
    pub threshold: f64,
    /// Whether the context refreshed itself at the start of this call.
    pub refreshed: Option<&'static str>,
    /// DBPrune: the decision of every block (empty under DBCache).
    pub blocks: Vec<BlockRecord>,
}

/// What happened to one block in one DBPrune call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BlockRecord {
    /// The block's index in its list.
    pub index: usize,
    /// Whether the block was skipped (its stored residual reused).
    pub pruned: bool,
    /// Why.
    pub reason: Reason,
    /// The diff recorded for the block, if it reached the similarity check (non-finite diffs
    /// are strings in JSON, as in [`CallRecord`]).
    #[serde(serialize_with = "serialize_diff")]
    pub diff: Option<f64>,
    /// The threshold the block was compared with (relaxed by the dynamic threshold).
    pub threshold: f64,
}

/// Writes a diff for JSON, which has no NaN (serde_json would write `null`, the same as a call
/// without a diff): non-finite values as the strings `"NaN"`, `"inf"` and `"-inf"`.
pub fn serialize_diff<S: serde::Serializer>(
    diff: &Option<f64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match diff {
        Some(d) if d.is_nan() => s.serialize_str("NaN"),
        Some(d) if d.is_infinite() => s.serialize_str(if *d > 0.0 { "inf" } else { "-inf" }),
        Some(d) => s.serialize_some(d),
        None => s.serialize_none(),
    }
}
