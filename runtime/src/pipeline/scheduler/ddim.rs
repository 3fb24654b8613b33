//! DDIM: diffusers' `DDIMScheduler` with `eta = 0` (deterministic), as DiT and PixArt-style
//! pipelines use it. Betas (linear or scaled-linear) and their cumulative products are computed
//! in f32 as torch does; timesteps are the integers of diffusers' "leading", "trailing" and
//! "linspace" spacings.

use candle_core::{DType, Tensor};

use super::error::SchedulerError;

/// How the betas grow over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BetaSchedule {
    /// `linspace(beta_start, beta_end)` (DiT, PixArt).
    #[default]
    Linear,
    /// `linspace(sqrt(beta_start), sqrt(beta_end))²` (Stable Diffusion).
    ScaledLinear,
    /// `squaredcos_cap_v2`: the cosine ᾱ schedule of Nichol & Dhariwal, betas capped at 0.999
    /// (`beta_start` / `beta_end` unused).
    SquaredCosCapV2,
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PredictionType {
    /// The noise ε.
    #[default]
    Epsilon,
    /// The velocity `v = sqrt(ᾱ)·ε - sqrt(1-ᾱ)·x0`.
    VPrediction,
    /// The clean sample x0.
    Sample,
}

/// How `set_timesteps` picks the inference timesteps (table 2 of arXiv:2305.08891).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestepSpacing {
    /// `arange(N) * (T // N)` reversed, plus `steps_offset`.
    #[default]
    Leading,
    /// `round(arange(T, 0, -T/N)) - 1`.
    Trailing,
    /// `round(linspace(0, T-1, N))` reversed.
    Linspace,
}

/// The options of `DDIMScheduler`, with diffusers' names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DdimConfig {
    /// Training timesteps T (1000).
    pub num_train_timesteps: usize,
    /// First beta (0.0001).
    pub beta_start: f64,
    /// Last beta (0.02).
    pub beta_end: f64,
    /// Linear or scaled-linear betas.
    pub beta_schedule: BetaSchedule,
    /// Clamp the predicted x0 to `±clip_sample_range` (diffusers' default: on).
    pub clip_sample: bool,
    /// The clamp bound (1.0).
    pub clip_sample_range: f64,
    /// The last step goes to ᾱ = 1 (`true`) or to ᾱ of training step 0.
    pub set_alpha_to_one: bool,
    /// Added to "leading" timesteps (0; Stable Diffusion uses 1).
    pub steps_offset: usize,
    /// What the model predicts.
    pub prediction_type: PredictionType,
    /// How inference timesteps are spaced.
    pub timestep_spacing: TimestepSpacing,
    /// Rescale the betas to zero terminal SNR (arXiv:2305.08891, algorithm 1); ᾱ at the last
    /// training step becomes 0, so it needs `VPrediction` or `Sample`.
    pub rescale_betas_zero_snr: bool,
}

impl Default for DdimConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            clip_sample: true,
            clip_sample_range: 1.0,
            set_alpha_to_one: true,
            steps_offset: 0,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: TimestepSpacing::Leading,
            rescale_betas_zero_snr: false,
        }
    }
}

impl DdimConfig {
    /// facebook/DiT-XL-2's scheduler config: linear betas, no clipping, leading spacing.
    pub fn dit() -> Self {
        Self {
            clip_sample: false,
            ..Self::default()
        }
    }

    /// A PixArt-style config: linear betas, linspace spacing, final ᾱ from training step 0.
    pub fn pixart() -> Self {
        Self {
            clip_sample: false,
            set_alpha_to_one: false,
            timestep_spacing: TimestepSpacing::Linspace,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), SchedulerError> {
        let bad = |option, reason: &str| {
            Err(SchedulerError::InvalidOption {
                option,
                reason: reason.to_string(),
            })
        };
        if self.num_train_timesteps < 2 {
            return bad("num_train_timesteps", "must be at least 2");
        }
        for (option, v) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if !(v.is_finite() && v > 0.0 && v < 1.0) {
                return bad(option, "must be in (0, 1)");
            }
        }
        if self.clip_sample && !(self.clip_sample_range.is_finite() && self.clip_sample_range > 0.0) {
            return bad("clip_sample_range", "must be a finite number > 0");
        }
        Ok(())
    }
}

/// torch's f32 `linspace`: the first half counts up from `start`, the second down from `end`,
/// each value one fused multiply-add (as torch's vectorised CPU kernel rounds it).
fn torch_linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((n - i - 1) as f32, end)
            }
        })
        .collect()
}

/// diffusers' `betas_for_alpha_bar` with the cosine transform: computed in f64 (Python floats),
/// then stored as f32.
fn cosine_betas(n: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
    (0..n)
        .map(|i| {
            let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

/// diffusers' `rescale_zero_terminal_snr`, step by step in f32 as torch runs it (its `cumprod`
/// accumulates in f64, as in [`Ddim::new`]).
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let mut acc = 1.0f64;
    let mut sqrt: Vec<f32> = betas
        .iter()
        .map(|b| {
            acc *= f64::from(1.0 - b);
            (acc as f32).sqrt()
        })
        .collect();
    let (Some(&first), Some(&last)) = (sqrt.first(), sqrt.last()) else {
        return Vec::new();
    };
    let scale = first / (first - last);
    for s in &mut sqrt {
        *s -= last;
        *s *= scale;
    }
    let bar: Vec<f32> = sqrt.iter().map(|s| s * s).collect();
    std::iter::once(bar[0])
        .chain(bar.windows(2).map(|w| w[1] / w[0]))
        .map(|a| 1.0 - a)
        .collect()
}

/// The DDIM sampler with its current schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Ddim {
    config: DdimConfig,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    timesteps: Vec<i64>,
    timesteps_f32: Vec<f32>,
}

impl Ddim {
    /// A scheduler with `config` and no schedule yet (call `set_timesteps`).
    pub fn new(config: DdimConfig) -> Result<Self, SchedulerError> {
        config.validate()?;
        let n = config.num_train_timesteps;
        let betas: Vec<f32> = match config.beta_schedule {
            BetaSchedule::Linear => torch_linspace_f32(config.beta_start as f32, config.beta_end as f32, n),
            BetaSchedule::ScaledLinear => {
                torch_linspace_f32(config.beta_start.sqrt() as f32, config.beta_end.sqrt() as f32, n)
                    .into_iter()
                    .map(|b| b * b)
                    .collect()
            }
            BetaSchedule::SquaredCosCapV2 => cosine_betas(n),
        };
        let betas = if config.rescale_betas_zero_snr {
            rescale_zero_terminal_snr(&betas)
        } else {
            betas
        };
        // torch's CPU cumprod accumulates f32 inputs in f64.
        let mut acc = 1.0f64;
        let alphas_cumprod: Vec<f32> = betas
            .iter()
            .map(|b| {
                acc *= f64::from(1.0 - b);
                acc as f32
            })
            .collect();
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ok(Self {
            config,
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps: Vec::new(),
            timesteps_f32: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DdimConfig {
        &self.config
    }

    /// ᾱ_t for every training timestep.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// ᾱ after the last step (1, or ᾱ_0).
    pub fn final_alpha_cumprod(&self) -> f32 {
        self.final_alpha_cumprod
    }

    /// The integer timesteps of the schedule.
    pub fn int_timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    /// Given training timesteps used as they are, one per step; each step still goes from `t`
    /// to `t - T // steps`, as diffusers' `step` does whatever the timesteps are.
    pub fn set_custom_timesteps(&mut self, timesteps: &[i64]) -> Result<(), SchedulerError> {
        let train = self.config.num_train_timesteps;
        if timesteps.is_empty() {
            return Err(SchedulerError::ZeroSteps);
        }
        if let Some(&t) = timesteps.iter().find(|&&t| t < 0 || t >= train as i64) {
            return Err(SchedulerError::TimestepOutOfRange { timestep: t, train });
        }
        self.timesteps_f32 = timesteps.iter().map(|&t| t as f32).collect();
        self.timesteps = timesteps.to_vec();
        Ok(())
    }

    /// diffusers' `set_timesteps(num_steps)`.
    pub fn set_timesteps(&mut self, num_steps: usize) -> Result<(), SchedulerError> {
        let train = self.config.num_train_timesteps;
        if num_steps == 0 {
            return Err(SchedulerError::ZeroSteps);
        }
        if num_steps > train {
            return Err(SchedulerError::TooManySteps {
                steps: num_steps,
                train,
            });
        }
        let timesteps: Vec<i64> = match self.config.timestep_spacing {
            TimestepSpacing::Linspace => {
                let step = if num_steps > 1 {
                    (train - 1) as f64 / (num_steps - 1) as f64
                } else {
                    0.0
                };
                let mut v: Vec<f64> = (0..num_steps).map(|i| i as f64 * step).collect();
                if num_steps > 1 {
                    v[num_steps - 1] = (train - 1) as f64;
                }
                v.iter().rev().map(|t| t.round_ties_even() as i64).collect()
            }
            TimestepSpacing::Leading => {
                let ratio = (train / num_steps) as i64;
                let offset = self.config.steps_offset as i64;
                (0..num_steps as i64).rev().map(|i| i * ratio + offset).collect()
            }
            TimestepSpacing::Trailing => {
                // numpy's arange(T, 0, -ratio): length ceil(-T / -ratio), values start + i·delta
                // with delta = (start - ratio) - start.
                let (start, ratio) = (train as f64, train as f64 / num_steps as f64);
                let len = (start / ratio).ceil() as usize;
                let delta = (start - ratio) - start;
                (0..len)
                    .map(|i| (start + i as f64 * delta).round_ties_even() as i64 - 1)
                    .collect()
            }
        };
        if let Some(&t) = timesteps.iter().find(|&&t| t < 0 || t >= train as i64) {
            return Err(SchedulerError::TimestepOutOfRange { timestep: t, train });
        }
        self.timesteps_f32 = timesteps.iter().map(|&t| t as f32).collect();
        self.timesteps = timesteps;
        Ok(())
    }

    /// ᾱ at `t` and at its predecessor `t - T // N` (or the final ᾱ below 0), as diffusers'
    /// `step` picks them.
    fn alphas_at(&self, t: i64) -> Result<(f32, f32), SchedulerError> {
        let train = self.config.num_train_timesteps;
        let alpha = |t: i64| {
            usize::try_from(t)
                .ok()
                .and_then(|i| self.alphas_cumprod.get(i).copied())
                .ok_or(SchedulerError::TimestepOutOfRange { timestep: t, train })
        };
        let prev_t = t - (train / self.timesteps.len().max(1)) as i64;
        let prev = if prev_t >= 0 {
            alpha(prev_t)?
        } else {
            self.final_alpha_cumprod
        };
        Ok((alpha(t)?, prev))
    }
}

impl Ddim {
    /// The model timestep of every step of the schedule (what the transformer is called with).
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps_f32
    }

    /// The latents after step `index` from the latents `sample` at that step and the (guided)
    /// model output there. The DDIM update with `eta = 0`: predict x0 (clamped if `clip_sample`) and ε, then
    /// `sqrt(ᾱ_prev)·x0 + sqrt(1-ᾱ_prev)·ε`. Computed in f32, returned in the sample's dtype.
    pub fn step(
        &self,
        index: usize,
        model_output: &Tensor,
        sample: &Tensor,
    ) -> Result<Tensor, SchedulerError> {
        let t = *self.timesteps.get(index).ok_or(SchedulerError::StepOutOfRange {
            index,
            steps: self.timesteps.len(),
        })?;
        let (alpha_t, alpha_prev) = self.alphas_at(t)?;
        let (sqrt_a, sqrt_b) = (f64::from(alpha_t.sqrt()), f64::from((1.0 - alpha_t).sqrt()));
        let x = sample.to_dtype(DType::F32)?;
        let out = model_output.to_dtype(DType::F32)?;
        let (x0, eps) = match self.config.prediction_type {
            PredictionType::Epsilon => (((&x - out.affine(sqrt_b, 0.0)?)? / sqrt_a)?, out),
            PredictionType::VPrediction => (
                (x.affine(sqrt_a, 0.0)? - out.affine(sqrt_b, 0.0)?)?,
                (out.affine(sqrt_a, 0.0)? + x.affine(sqrt_b, 0.0)?)?,
            ),
            PredictionType::Sample => {
                let eps = ((&x - out.affine(sqrt_a, 0.0)?)? / sqrt_b)?;
                (out, eps)
            }
        };
        let x0 = if self.config.clip_sample {
            let r = self.config.clip_sample_range;
            x0.clamp(-r, r)?
        } else {
            x0
        };
        let direction = eps.affine(f64::from((1.0 - alpha_prev).sqrt()), 0.0)?;
        let prev = (x0.affine(f64::from(alpha_prev.sqrt()), 0.0)? + direction)?;
        Ok(prev.to_dtype(sample.dtype())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_spacing_counts_down_with_offset() {
        let mut s = Ddim::new(DdimConfig {
            steps_offset: 1,
            ..DdimConfig::dit()
        })
        .unwrap();
        s.set_timesteps(4).unwrap();
        assert_eq!(s.int_timesteps(), &[751, 501, 251, 1]);
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        let mut s = Ddim::new(DdimConfig::dit()).unwrap();
        assert!(matches!(s.set_timesteps(0), Err(SchedulerError::ZeroSteps)));
        assert!(matches!(
            s.set_timesteps(1001),
            Err(SchedulerError::TooManySteps { .. })
        ));
        let mut s = Ddim::new(DdimConfig {
            steps_offset: 500,
            ..DdimConfig::dit()
        })
        .unwrap();
        assert!(matches!(
            s.set_timesteps(2),
            Err(SchedulerError::TimestepOutOfRange { timestep: 1000, .. })
        ));
        assert!(
            Ddim::new(DdimConfig {
                beta_end: 1.5,
                ..DdimConfig::default()
            })
            .is_err()
        );
    }
}
