//! Noise schedulers: which timesteps a generation visits and how one model output moves the
//! latents to the next step. Each matches its diffusers class on the same configuration
//! (`tools/reference/schedulers.py` dumps diffusers' values; the tests compare).
//!
//! - [`FlowMatchEuler`]: diffusers' `FlowMatchEulerDiscreteScheduler` (Flux, SD3, Qwen-Image,
//!   Wan, ...).
//! - [`Ddim`]: diffusers' `DDIMScheduler` with `eta = 0` (DiT, PixArt-style models).
//!
//! The pipeline drives both through one type: a [`Scheduler`] (the configuration) produces the
//! [`Schedule`] of one generation (its timesteps), whose [`Schedule::step`] applies the update.
//! A schedule is computed per generation, so one configured scheduler serves any number of them.

pub mod ddim;
pub mod flow_match;

use candle_core::Tensor;

pub use ddim::{BetaSchedule, Ddim, DdimConfig, PredictionType, TimestepSpacing};
pub use flow_match::{DynamicShift, FlowMatchEuler, SigmaSpacing};

use crate::registry::SchedulerKind;

/// A configured sampler, as the denoising pipeline takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduler {
    /// Flow matching with Euler steps.
    FlowMatchEuler(FlowMatchEuler),
    /// DDIM with `eta = 0`.
    Ddim(Ddim),
}

impl Default for Scheduler {
    /// Flow matching without shift (`FlowMatchEuler::default()`).
    fn default() -> Self {
        Self::FlowMatchEuler(FlowMatchEuler::default())
    }
}

impl From<FlowMatchEuler> for Scheduler {
    fn from(s: FlowMatchEuler) -> Self {
        Self::FlowMatchEuler(s)
    }
}

impl From<Ddim> for Scheduler {
    fn from(s: Ddim) -> Self {
        Self::Ddim(s)
    }
}

impl Scheduler {
    /// The default scheduler of a registry entry's `scheduler:` key: flow matching with Flux's
    /// resolution-dependent shift (what diffusers' Flux-style pipelines configure), or DDIM with
    /// facebook/DiT-XL-2's configuration ([`DdimConfig::dit`]).
    pub fn for_kind(kind: SchedulerKind) -> Self {
        match kind {
            SchedulerKind::FlowMatchEuler => Self::FlowMatchEuler(FlowMatchEuler {
                dynamic: Some(DynamicShift::FLUX),
                ..FlowMatchEuler::default()
            }),
            // DiT's config passes `validate` (it is diffusers' default with clipping off), so
            // `Ddim::new` cannot fail here; the fallback keeps this function infallible anyway.
            SchedulerKind::Ddim => Ddim::new(DdimConfig::dit()).map_or_else(|_| Self::default(), Self::Ddim),
        }
    }

    /// The registry kind this scheduler is.
    pub fn kind(&self) -> SchedulerKind {
        match self {
            Self::FlowMatchEuler(_) => SchedulerKind::FlowMatchEuler,
            Self::Ddim(_) => SchedulerKind::Ddim,
        }
    }

    /// The scale of the initial Gaussian noise (diffusers' `init_noise_sigma`): 1 for both.
    pub fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// The schedule of `steps` steps for `seq_len` image tokens (only Flux's dynamic shift
    /// reads `seq_len`).
    pub fn schedule(&self, steps: usize, seq_len: usize) -> Result<Schedule<'_>, SchedulerError> {
        if steps == 0 {
            return Err(SchedulerError::ZeroSteps);
        }
        Ok(match self {
            Self::FlowMatchEuler(f) => Schedule::flow(f, f.sigmas(steps, seq_len)),
            Self::Ddim(d) => Schedule::ddim(d, d.timesteps(steps)?),
        })
    }

    /// A given flow-matching schedule used as it is: `steps + 1` sigmas, the last one the end
    /// of the last step (e.g. a schedule exported from diffusers). Flow matching only.
    pub fn schedule_from_sigmas(&self, sigmas: &[f64]) -> Result<Schedule<'_>, SchedulerError> {
        let Self::FlowMatchEuler(f) = self else {
            return Err(SchedulerError::Unsupported {
                scheduler: self.kind(),
                what: "a sigma schedule",
            });
        };
        if sigmas.len() < 2 || sigmas.iter().any(|s| !s.is_finite()) {
            return Err(SchedulerError::BadSigmas(sigmas.to_vec()));
        }
        Ok(Schedule::flow(f, sigmas.to_vec()))
    }

    /// Given model timesteps used as they are, one per step. DDIM: training timesteps
    /// (integers in `0..num_train_timesteps`), stepped as diffusers steps them (from `t` to
    /// `t - T // steps`). Flow matching: `sigma · num_train_timesteps`, the last step ending at 0.
    pub fn schedule_from_timesteps(&self, timesteps: &[f64]) -> Result<Schedule<'_>, SchedulerError> {
        match self {
            Self::FlowMatchEuler(f) => {
                let train = f.num_train_timesteps as f64;
                let sigmas: Vec<f64> = timesteps
                    .iter()
                    .map(|t| t / train)
                    .chain(std::iter::once(0.0))
                    .collect();
                self.schedule_from_sigmas(&sigmas)
            }
            Self::Ddim(d) => {
                let ints = timesteps
                    .iter()
                    .map(|&t| {
                        if t.fract() == 0.0 && t.abs() < 1e15 {
                            Ok(t as i64)
                        } else {
                            Err(SchedulerError::NonIntegerTimestep(t))
                        }
                    })
                    .collect::<Result<Vec<i64>, _>>()?;
                d.check_timesteps(&ints)?;
                Ok(Schedule::ddim(d, ints))
            }
        }
    }
}

/// The timesteps of one generation and the update between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule<'a> {
    steps: Steps<'a>,
}

#[derive(Debug, Clone, PartialEq)]
enum Steps<'a> {
    /// `steps + 1` sigmas; the model timestep is `sigma · train`.
    Flow { sigmas: Vec<f64>, train: f64 },
    /// One training timestep per step.
    Ddim { ddim: &'a Ddim, timesteps: Vec<i64> },
}

impl<'a> Schedule<'a> {
    fn flow(f: &FlowMatchEuler, sigmas: Vec<f64>) -> Self {
        Self {
            steps: Steps::Flow {
                sigmas,
                train: f.num_train_timesteps as f64,
            },
        }
    }

    fn ddim(ddim: &'a Ddim, timesteps: Vec<i64>) -> Self {
        Self {
            steps: Steps::Ddim { ddim, timesteps },
        }
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        match &self.steps {
            Steps::Flow { sigmas, .. } => sigmas.len().saturating_sub(1),
            Steps::Ddim { timesteps, .. } => timesteps.len(),
        }
    }

    /// Whether the schedule has no step (never, for a schedule built by [`Scheduler`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The model timestep of every step, in order (what the transformer is called with).
    pub fn timesteps(&self) -> Vec<f64> {
        match &self.steps {
            Steps::Flow { sigmas, train } => sigmas[..self.len()].iter().map(|s| s * train).collect(),
            Steps::Ddim { timesteps, .. } => timesteps.iter().map(|&t| t as f64).collect(),
        }
    }

    /// The flow-matching sigmas (`steps + 1`, the last one where the last step ends); `None`
    /// for DDIM.
    pub fn sigmas(&self) -> Option<&[f64]> {
        match &self.steps {
            Steps::Flow { sigmas, .. } => Some(sigmas),
            Steps::Ddim { .. } => None,
        }
    }

    /// The latents after step `index`, from the latents `sample` at that step and the (guided)
    /// model output there. Flow matching: `sample + (sigma_next - sigma) · v` in the sample's
    /// dtype; DDIM: see [`Ddim::step`].
    pub fn step(
        &self,
        index: usize,
        model_output: &Tensor,
        sample: &Tensor,
    ) -> Result<Tensor, SchedulerError> {
        let out_of_range = SchedulerError::StepOutOfRange {
            index,
            steps: self.len(),
        };
        match &self.steps {
            Steps::Flow { sigmas, .. } => {
                let (Some(sigma), Some(next)) = (sigmas.get(index), sigmas.get(index + 1)) else {
                    return Err(out_of_range);
                };
                Ok((sample + (model_output * (next - sigma))?)?)
            }
            Steps::Ddim { ddim, timesteps } => {
                let t = *timesteps.get(index).ok_or(out_of_range)?;
                ddim.step(t, timesteps.len(), model_output, sample)
            }
        }
    }
}

/// A scheduler configuration or call that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A schedule of zero steps.
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
    /// A custom sigma schedule that is too short or not finite.
    #[error("custom sigmas must be at least 2 finite numbers (steps + 1), found {0:?}")]
    BadSigmas(Vec<f64>),
    /// A given DDIM timestep that is not an integer.
    #[error("DDIM timesteps are integer training timesteps, found {0}")]
    NonIntegerTimestep(f64),
    /// An override this scheduler cannot use.
    #[error("the {scheduler:?} scheduler cannot use {what}")]
    Unsupported {
        /// The scheduler.
        scheduler: SchedulerKind,
        /// What was given.
        what: &'static str,
    },
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
    /// `step` past the last step.
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
