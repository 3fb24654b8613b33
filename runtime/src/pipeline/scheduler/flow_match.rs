//! Flow-matching Euler (diffusers' `FlowMatchEulerDiscreteScheduler`, the sampler of Flux, SD3,
//! Wan and Qwen-Image): sigmas from 1 towards 0, optionally shifted, and the Euler step
//! `x + (sigma_next - sigma) * v`.

/// Flux's resolution-dependent shift (`calculate_shift` in diffusers): `mu` grows linearly with
/// the image sequence length from `base_shift` at `base_seq_len` to `max_shift` at `max_seq_len`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynamicShift {
    /// Sequence length of `base_shift` (256).
    pub base_seq_len: usize,
    /// Sequence length of `max_shift` (4096).
    pub max_seq_len: usize,
    /// `mu` at `base_seq_len` (0.5).
    pub base_shift: f64,
    /// `mu` at `max_seq_len` (1.15).
    pub max_shift: f64,
}

impl DynamicShift {
    /// FLUX.1's values.
    pub const FLUX: Self = Self {
        base_seq_len: 256,
        max_seq_len: 4096,
        base_shift: 0.5,
        max_shift: 1.15,
    };

    /// `mu` for `seq_len` image tokens.
    pub fn mu(&self, seq_len: usize) -> f64 {
        let m = (self.max_shift - self.base_shift) / (self.max_seq_len as f64 - self.base_seq_len as f64);
        let b = self.base_shift - m * self.base_seq_len as f64;
        seq_len as f64 * m + b
    }
}

/// How the unshifted sigmas of `steps` steps are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigmaSpacing {
    /// `linspace(1, 1/steps, steps)`: what FluxPipeline (and Qwen-Image) pass as `sigmas`.
    #[default]
    Pipeline,
    /// diffusers' `set_timesteps(num_inference_steps)` without sigmas (SD3): `linspace` over the
    /// training range `[sigma_max, sigma_min]` (`sigma_min` already shifted when the shift is
    /// static, which diffusers then shifts again).
    TrainRange,
}

/// The flow-matching Euler sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMatchEuler {
    /// Training timesteps (1000): `timestep = sigma * num_train_timesteps`.
    pub num_train_timesteps: usize,
    /// Static shift `sigma' = s·sigma / (1 + (s-1)·sigma)` (SD3: 3.0; 1.0 = none).
    pub shift: f64,
    /// Resolution-dependent exponential shift instead of the static one (Flux).
    pub dynamic: Option<DynamicShift>,
    /// How the unshifted sigmas are spaced.
    pub spacing: SigmaSpacing,
}

impl Default for FlowMatchEuler {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            shift: 1.0,
            dynamic: None,
            spacing: SigmaSpacing::Pipeline,
        }
    }
}

impl FlowMatchEuler {
    /// The `steps + 1` sigmas (ending in 0) for `seq_len` image tokens: spaced per `spacing`,
    /// then shifted.
    pub fn sigmas(&self, steps: usize, seq_len: usize) -> Vec<f64> {
        let (hi, lo) = match self.spacing {
            SigmaSpacing::Pipeline => (1.0, 1.0 / steps.max(1) as f64),
            SigmaSpacing::TrainRange => {
                let min = 1.0 / self.num_train_timesteps as f64;
                (
                    1.0,
                    if self.dynamic.is_some() {
                        min
                    } else {
                        self.static_shift(min)
                    },
                )
            }
        };
        let mut sigmas: Vec<f64> = (0..steps)
            .map(|i| {
                let s = if steps > 1 {
                    hi + (lo - hi) * i as f64 / (steps - 1) as f64
                } else {
                    hi
                };
                match &self.dynamic {
                    Some(d) => {
                        let e = d.mu(seq_len).exp();
                        e / (e + (1.0 / s - 1.0))
                    }
                    None => self.static_shift(s),
                }
            })
            .collect();
        sigmas.push(0.0);
        sigmas
    }

    fn static_shift(&self, s: f64) -> f64 {
        self.shift * s / (1.0 + (self.shift - 1.0) * s)
    }

    /// The model timestep of a sigma.
    pub fn timestep(&self, sigma: f64) -> f64 {
        sigma * self.num_train_timesteps as f64
    }
}

#[cfg(test)]
mod tests {
    /// diffusers' sigmas for every configuration of `tools/reference/schedulers.py`.
    #[test]
    fn matches_diffusers_fixture() {
        let text = include_str!("../../../tests/fixtures/schedulers.json");
        let cases: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        for c in cases {
            let dynamic = c["dynamic"].as_bool().unwrap();
            let sched = FlowMatchEuler {
                shift: c["shift"].as_f64().unwrap(),
                dynamic: dynamic.then_some(DynamicShift::FLUX),
                spacing: if dynamic {
                    SigmaSpacing::Pipeline
                } else {
                    SigmaSpacing::TrainRange
                },
                ..Default::default()
            };
            let got = sched.sigmas(
                c["steps"].as_u64().unwrap() as usize,
                c["seq_len"].as_u64().unwrap() as usize,
            );
            let want: Vec<f64> = c["sigmas"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len(), "{}", c["name"]);
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            // diffusers computes in f32.
            assert!(err < 2e-6, "{}: max error {err}", c["name"]);
        }
    }

    use super::*;

    #[test]
    fn sigmas_follow_diffusers() {
        let s = FlowMatchEuler::default().sigmas(4, 256);
        assert_eq!(s, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
        // SD3 shift 3: 3s / (1 + 2s)
        let s = FlowMatchEuler {
            shift: 3.0,
            ..Default::default()
        }
        .sigmas(2, 0);
        assert!((s[1] - 1.5 / 2.0).abs() < 1e-12, "{s:?}");
        // Flux at 256 tokens: mu = 0.5
        let f = FlowMatchEuler {
            dynamic: Some(DynamicShift::FLUX),
            ..Default::default()
        };
        assert!((DynamicShift::FLUX.mu(4096) - 1.15).abs() < 1e-12);
        let s = f.sigmas(2, 256);
        let e = 0.5f64.exp();
        assert!((s[1] - e / (e + 1.0)).abs() < 1e-12, "{s:?}");
        assert_eq!(s[0], 1.0);
    }
}
