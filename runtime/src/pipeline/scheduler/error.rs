//! Why a schedule cannot be planned or stepped.
/// A scheduler configuration or call that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Zero inference steps.
    #[error("the number of inference steps must be at least 1")]
    ZeroSteps,
    /// More inference steps than training timesteps (DDIM).
    #[error("{steps} inference steps exceed the scheduler's {train} training timesteps")]
    TooManySteps {
        /// Steps asked for.
        steps: usize,
        /// `num_train_timesteps`.
        train: usize,
    },
    /// More steps than [`MAX_STEPS`](crate::limits::MAX_STEPS).
    #[error("{steps} inference steps are more than the {max} supported", max = crate::limits::MAX_STEPS)]
    StepsAboveLimit {
        /// Steps asked for.
        steps: usize,
    },
    /// A given sigma schedule of the wrong length or with non-finite values.
    #[error("{} sigmas given for {steps} steps: expected steps + 1 finite values ({given:?})", given.len())]
    BadSigmas {
        /// Steps of the generation.
        steps: usize,
        /// The sigmas given.
        given: Vec<f64>,
    },
    /// Given timesteps of the wrong length, not finite, or (DDIM) not integers.
    #[error(
        "{} timesteps given for {steps} steps: expected steps finite values (integers for DDIM) \
         ({given:?})",
        given.len()
    )]
    BadTimesteps {
        /// Steps of the generation.
        steps: usize,
        /// The timesteps given.
        given: Vec<f64>,
    },
    /// A sigma schedule given to DDIM, which has none.
    #[error("a sigma schedule was given, but DDIM takes no sigmas (use a flow-matching scheduler)")]
    SigmasWithDdim,
    /// A configuration value out of range.
    #[error("invalid scheduler option `{option}`: {reason}")]
    InvalidOption {
        /// The option (diffusers' spelling).
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// A timestep outside the training range (e.g. a large `steps_offset`).
    #[error("timestep {timestep} is outside the {train} training timesteps (check `steps_offset`)")]
    TimestepOutOfRange {
        /// The timestep.
        timestep: i64,
        /// `num_train_timesteps`.
        train: usize,
    },
    /// A step index past the schedule.
    #[error("step index {index} is out of range for a schedule of {steps} steps")]
    StepOutOfRange {
        /// The index asked for.
        index: usize,
        /// Steps in the schedule.
        steps: usize,
    },
    /// A tensor operation failed (shape or dtype mismatch between sample and model output).
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

impl From<SchedulerError> for candle_core::Error {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Tensor(t) => t,
            other => candle_core::Error::Msg(other.to_string()),
        }
    }
}
