//! Noise schedulers: which timesteps a generation visits and how one model output moves the
//! latents to the next step. Each matches its diffusers class on the same configuration
//! (`tools/reference/schedulers.py` and `ddim.py` dump diffusers' values; the tests compare).
//!
//! - [`FlowMatchEuler`]: diffusers' `FlowMatchEulerDiscreteScheduler` as the Flux, SD3,
//!   Qwen-Image and Wan pipelines call it (static or dynamic shift).
//! - [`Ddim`]: diffusers' `DDIMScheduler` with `eta = 0` (DiT, PixArt-style models).
//!
//! [`Scheduler`] is what a [`DenoiseOptions`](crate::pipeline::DenoiseOptions) carries; the
//! registry's `scheduler:` key picks a family's default with [`Scheduler::for_kind`].

pub mod ddim;
pub mod flow_match;

use candle_core::Tensor;

pub use ddim::{BetaSchedule, Ddim, DdimConfig, PredictionType, TimestepSpacing};
pub use flow_match::{DynamicShift, FlowMatchEuler, SigmaSpacing};

use crate::registry::SchedulerKind;

/// A configured sampler: flow matching with Euler steps, or DDIM.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduler {
    /// Flow matching (`FlowMatchEulerDiscreteScheduler`).
    FlowMatchEuler(FlowMatchEuler),
    /// DDIM with `eta = 0` (`DDIMScheduler`).
    Ddim(DdimConfig),
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::FlowMatchEuler(FlowMatchEuler::default())
    }
}

impl From<FlowMatchEuler> for Scheduler {
    fn from(s: FlowMatchEuler) -> Self {
        Self::FlowMatchEuler(s)
    }
}

impl From<DdimConfig> for Scheduler {
    fn from(c: DdimConfig) -> Self {
        Self::Ddim(c)
    }
}

impl Scheduler {
    /// The default sampler of a registry `scheduler:` kind: Flux's dynamic shift for flow
    /// matching (pass `--shift` or build a [`FlowMatchEuler`] for SD3-style static shifts), the
    /// DiT hub config for DDIM.
    pub fn for_kind(kind: SchedulerKind) -> Self {
        match kind {
            SchedulerKind::FlowMatchEuler => Self::FlowMatchEuler(FlowMatchEuler {
                dynamic: Some(DynamicShift::FLUX),
                ..FlowMatchEuler::default()
            }),
            SchedulerKind::Ddim => Self::Ddim(DdimConfig::dit()),
        }
    }

    /// The schedule of one generation of `steps` steps over `seq_len` image tokens. `sigmas`
    /// (flow matching only: `steps + 1` values) replaces the computed schedule as it is.
    pub fn plan(&self, steps: usize, seq_len: usize, sigmas: Option<&[f64]>) -> Result<Plan, SchedulerError> {
        if steps == 0 {
            return Err(SchedulerError::ZeroSteps);
        }
        // Before any schedule is allocated; also keeps `steps + 1` from wrapping.
        crate::limits::check_steps(steps, |steps| SchedulerError::StepsAboveLimit { steps })?;
        match self {
            Self::FlowMatchEuler(s) => {
                let sigmas = match sigmas {
                    Some(given) if given.len() == steps + 1 && given.iter().all(|x| x.is_finite()) => {
                        given.to_vec()
                    }
                    Some(given) => {
                        return Err(SchedulerError::BadSigmas {
                            steps,
                            given: given.to_vec(),
                        });
                    }
                    None => s.sigmas(steps, seq_len),
                };
                // A NaN or infinite shift gives a schedule of NaNs and an all-NaN image.
                if let Some(bad) = sigmas.iter().find(|x| !x.is_finite()) {
                    return Err(SchedulerError::InvalidOption {
                        option: "shift",
                        reason: format!("the computed sigmas are not finite ({bad}); check the shift"),
                    });
                }
                let timesteps = sigmas[..steps].iter().map(|&x| s.timestep(x)).collect();
                Ok(Plan::Flow { sigmas, timesteps })
            }
            Self::Ddim(config) => {
                if sigmas.is_some() {
                    return Err(SchedulerError::SigmasWithDdim);
                }
                let mut d = Ddim::new(config.clone())?;
                d.set_timesteps(steps)?;
                Ok(Plan::Ddim(d))
            }
        }
    }

    /// The schedule of `steps` given model timesteps, used as they are: DDIM's training
    /// timesteps (integers), or flow matching's `sigma · num_train_timesteps` (the last step
    /// ending at sigma 0).
    pub fn plan_timesteps(&self, steps: usize, timesteps: &[f64]) -> Result<Plan, SchedulerError> {
        let bad = || SchedulerError::BadTimesteps {
            steps,
            given: timesteps.to_vec(),
        };
        crate::limits::check_steps(steps, |steps| SchedulerError::StepsAboveLimit { steps })?;
        if timesteps.len() != steps || timesteps.iter().any(|t| !t.is_finite()) {
            return Err(bad());
        }
        match self {
            Self::FlowMatchEuler(s) => {
                let train = s.num_train_timesteps as f64;
                let sigmas: Vec<f64> = timesteps
                    .iter()
                    .map(|t| t / train)
                    .chain(std::iter::once(0.0))
                    .collect();
                self.plan(steps, 0, Some(&sigmas))
            }
            Self::Ddim(config) => {
                if timesteps.iter().any(|t| t.fract() != 0.0) {
                    return Err(bad());
                }
                let ints: Vec<i64> = timesteps.iter().map(|&t| t as i64).collect();
                let mut d = Ddim::new(config.clone())?;
                d.set_custom_timesteps(&ints)?;
                Ok(Plan::Ddim(d))
            }
        }
    }
}

/// One generation's schedule, made by [`Scheduler::plan`].
#[derive(Debug, Clone)]
pub enum Plan {
    /// Flow matching: `steps + 1` sigmas (ending in 0) and the model timestep of each step.
    Flow {
        /// The sigmas.
        sigmas: Vec<f64>,
        /// `sigma · 1000` (after any shift), per step.
        timesteps: Vec<f64>,
    },
    /// DDIM with its integer timesteps set.
    Ddim(Ddim),
}

impl Plan {
    /// The model timestep of every step.
    pub fn timesteps(&self) -> Vec<f64> {
        match self {
            Self::Flow { timesteps, .. } => timesteps.clone(),
            Self::Ddim(d) => d.timesteps().iter().map(|&t| f64::from(t)).collect(),
        }
    }

    /// The flow-matching sigmas (empty under DDIM).
    pub fn sigmas(&self) -> &[f64] {
        match self {
            Self::Flow { sigmas, .. } => sigmas,
            Self::Ddim(_) => &[],
        }
    }

    /// The latents after step `index` from the latents `sample` and the (guided) model output.
    pub fn step(
        &self,
        index: usize,
        model_output: &Tensor,
        sample: &Tensor,
    ) -> Result<Tensor, SchedulerError> {
        match self {
            Self::Flow { sigmas, .. } => {
                let (Some(&sigma), Some(&next)) = (sigmas.get(index), sigmas.get(index + 1)) else {
                    return Err(SchedulerError::StepOutOfRange {
                        index,
                        steps: sigmas.len().saturating_sub(1),
                    });
                };
                Ok((sample + (model_output * (next - sigma))?)?)
            }
            Self::Ddim(d) => d.step(index, model_output, sample),
        }
    }
}

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
