//! Typed errors of the runtime.

/// An invalid cache configuration, found when the cache is enabled. Every message names the
/// option (with cache-dit's spelling) and, where it applies, the block list.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// F must be at least 1: the first block's residual is the similarity probe.
    #[error(
        "`Fn_compute_blocks` must be at least 1, found 0 (the Fn blocks produce the residual that decides caching)"
    )]
    FnTooSmall,
    /// F larger than the block list.
    #[error("`Fn_compute_blocks` = {found} exceeds the {len} blocks of `{list}`")]
    FnExceedsList {
        /// The block list.
        list: String,
        /// The configured F.
        found: usize,
        /// The list's length.
        len: usize,
    },
    /// B larger than the block list.
    #[error("`Bn_compute_blocks` = {found} exceeds the {len} blocks of `{list}`")]
    BnExceedsList {
        /// The block list.
        list: String,
        /// The configured B.
        found: usize,
        /// The list's length.
        len: usize,
    },
    /// F + B larger than the list: cache-dit would run the overlapping blocks twice.
    #[error(
        "`Fn_compute_blocks` + `Bn_compute_blocks` = {fn_blocks} + {bn_blocks} exceeds the {len} blocks of `{list}` (the Fn and Bn ranges would overlap)"
    )]
    FnBnOverlap {
        /// The block list.
        list: String,
        /// The configured F.
        fn_blocks: usize,
        /// The configured B.
        bn_blocks: usize,
        /// The list's length.
        len: usize,
    },
    /// A threshold or ratio that is infinite: every option is a finite number.
    #[error("`{field}` must be a finite number, found {value}")]
    NonFiniteOption {
        /// The option.
        field: &'static str,
        /// The value found.
        value: f64,
    },
    /// More `num_inference_steps` or mask entries than [`MAX_STEPS`](crate::limits::MAX_STEPS).
    #[error("`{field}` = {found} is more than the {max} steps supported", max = crate::limits::MAX_STEPS)]
    TooManySteps {
        /// The option.
        field: &'static str,
        /// The value found.
        found: usize,
    },
    /// A threshold that is NaN or negative.
    #[error("`{field}` must be a number >= 0, found {value}")]
    InvalidThreshold {
        /// The option.
        field: &'static str,
        /// The value found.
        value: f64,
    },
    /// `warmup_interval` of 0 (cache-dit's `range(0, W, 0)` raises).
    #[error("`warmup_interval` must be at least 1, found 0")]
    ZeroWarmupInterval,
    /// `num_inference_steps` of 0 would refresh the context on every call.
    #[error("`num_inference_steps` must be at least 1, found 0")]
    ZeroInferenceSteps,
    /// `force_refresh_step_hint` of 0 would refresh the context on every call.
    #[error("`force_refresh_step_hint` must be at least 1, found 0")]
    ZeroRefreshHint,
    /// An empty step mask.
    #[error("`steps_computation_mask` is empty")]
    EmptyStepMask,
    /// A mask entry other than 0 or 1.
    #[error("`steps_computation_mask`[{index}] = {value}: entries must be 0 (may cache) or 1 (compute)")]
    StepMaskValue {
        /// Position in the mask.
        index: usize,
        /// The value found.
        value: u8,
    },
    /// A mask whose length differs from `num_inference_steps`.
    #[error("`steps_computation_mask` has {len} entries but `num_inference_steps` is {steps}")]
    StepMaskLength {
        /// The mask's length.
        len: usize,
        /// `num_inference_steps`.
        steps: usize,
    },
    /// A static mask that caches step 0, before anything was computed (an assertion failure
    /// upstream).
    #[error(
        "`steps_computation_policy: static` needs `steps_computation_mask`[0] = 1: step 0 has nothing to reuse"
    )]
    StaticMaskStartsCached,
    /// cfg_compute_first with separate diffs (an assertion upstream).
    #[error(
        "`cfg_compute_first: true` requires `cfg_diff_compute_separate: false` when `enable_separate_cfg` is on"
    )]
    CfgComputeFirstWithSeparateDiffs,
    /// A DMD calibrator that keeps fewer than 2 snapshots (it could never forecast a change).
    #[error("`dmd_history` must be at least 2, found {found} (DMD fits need 4 evenly spaced snapshots)")]
    DmdHistoryTooShort {
        /// The value found.
        found: usize,
    },
    /// A calibrator that would keep more tensors than
    /// [`MAX_CALIBRATOR_HISTORY`](crate::limits::MAX_CALIBRATOR_HISTORY).
    #[error(
        "`{field}` = {found} is more than the {max} tensors a calibrator may keep",
        max = crate::limits::MAX_CALIBRATOR_HISTORY
    )]
    HistoryTooLong {
        /// The option.
        field: &'static str,
        /// The value found.
        found: usize,
    },
    /// A DMD ridge that is negative, NaN or infinite.
    #[error("`dmd_ridge` must be a finite number >= 0, found {found}")]
    InvalidDmdRidge {
        /// The value found.
        found: f64,
    },
    /// A DMD SVD precision other than low, medium, high.
    #[error("`dmd_svd_precision` must be one of low, medium, high; found `{found}`")]
    UnknownSvdPrecision {
        /// The value found.
        found: String,
    },
    /// A per-list override names a block list the model does not have.
    #[error("a per-list override names `{list}`, but the model's cached block lists are {known:?}")]
    UnknownBlockList {
        /// The name given.
        list: String,
        /// The model's lists.
        known: Vec<String>,
    },
}

/// A step mask that `steps_mask` cannot generate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// A policy name other than slow, medium, fast, ultra.
    #[error("unknown step mask policy `{0}`: expected slow, medium, fast or ultra")]
    UnknownPolicy(String),
    /// Predefined policies need at least 8 steps, or exactly 4 or 6.
    #[error("predefined step mask policies support 4, 6 or at least 8 steps, found {0}")]
    UnsupportedSteps(usize),
    /// More steps than [`MAX_STEPS`](crate::limits::MAX_STEPS) (`usize::MAX`: bins whose sum
    /// overflows).
    #[error(
        "a step mask of {0} steps is more than the {max} supported (check `num_inference_steps`)",
        max = crate::limits::MAX_STEPS
    )]
    TooManySteps(usize),
    /// Custom bins that cover fewer steps than asked for.
    #[error("the compute and cache bins cover {covered} steps, fewer than total_steps = {total}")]
    BinsTooShort {
        /// Steps the bins cover.
        covered: usize,
        /// Steps asked for.
        total: usize,
    },
}
