//! FoCa (docs/algorithm.md §7.2): a Heun (trapezoid) forecast anchored at the last computed value, averaging
//! the slope between the last two computed values and the slope between the last two values
//! seen (computed or forecast). Forecasts feed back into the state.

use candle_core::{Result, Shape, Tensor};

use super::series::{StepClock, held};
use crate::cache::config::calibrator::CalibratorTiming;
use crate::cache::store::MiddleStore;

/// Beyond this many steps after the last computed value the forecast is damped toward it.
const MAX_HORIZON: f64 = 3.0;

/// cache-dit's `FoCaState` for one stream: at most 4 tensors.
///
/// With `e` steps since the last computed value `F`, `dF` the change between the last two
/// computed values and `dK` the change between the last two values seen, the forecast is
/// `F + e/2 (dF + dK)` for `e <= 3`, else `w (F + 3/2 (dF + dK)) + (1 - w) F` with `w = 3/e`.
/// As upstream, the changes are not divided by the gaps between the steps they span. Each
/// forecast becomes the newest value seen, so call `approximate` exactly once per cached call.
/// The timing option has no effect: only step differences enter.
#[derive(Debug)]
pub struct FoCa {
    clock: StepClock,
    last_full: i64,
    f_k: Option<Tensor>,
    f_km1: Option<Tensor>,
    f_full: Option<Tensor>,
    f_full_prev: Option<Tensor>,
}

impl FoCa {
    /// An empty state.
    pub fn new(timing: CalibratorTiming) -> Self {
        Self {
            clock: StepClock::new(timing),
            last_full: -1,
            f_k: None,
            f_km1: None,
            f_full: None,
            f_full_prev: None,
        }
    }

    fn clear(&mut self) {
        self.last_full = -1;
        self.f_k = None;
        self.f_km1 = None;
        self.f_full = None;
        self.f_full_prev = None;
    }
}

impl MiddleStore for FoCa {
    fn update(&mut self, value: Tensor) -> Result<()> {
        self.clock.start();
        if self.f_k.as_ref().is_some_and(|f| f.shape() != value.shape()) {
            self.clock.restart();
            self.clear();
        }
        self.last_full = self.clock.now();
        self.f_full_prev = self.f_full.replace(value.clone());
        self.f_km1 = self.f_k.replace(value);
        Ok(())
    }

    fn approximate(&mut self) -> Result<Option<Tensor>> {
        let Some(f_k) = self.f_k.clone() else {
            return Ok(None);
        };
        let (Some(f_km1), Some(f_full), Some(f_full_prev)) = (&self.f_km1, &self.f_full, &self.f_full_prev)
        else {
            return Ok(Some(self.f_full.clone().unwrap_or(f_k)));
        };
        let elapsed = (self.clock.now() - self.last_full) as f64;
        let slopes = ((f_full - f_full_prev)? + (&f_k - f_km1)?)?;
        let forecast = if elapsed <= MAX_HORIZON {
            (f_full + slopes.affine(elapsed / 2.0, 0.0)?)?
        } else {
            let w = MAX_HORIZON / elapsed;
            let heun = (f_full + slopes.affine(MAX_HORIZON / 2.0, 0.0)?)?;
            (heun.affine(w, 0.0)? + f_full.affine(1.0 - w, 0.0)?)?
        };
        self.f_km1 = Some(f_k);
        self.f_k = Some(forecast.clone());
        Ok(Some(forecast))
    }

    fn shape(&self) -> Option<&Shape> {
        self.f_k.as_ref().map(Tensor::shape)
    }

    fn mark_step_begin(&mut self) {
        self.clock.tick();
    }

    fn reset(&mut self) {
        self.clock.reset();
        self.clear();
    }

    fn held(&self) -> Vec<&Tensor> {
        held(
            [&self.f_k, &self.f_km1, &self.f_full, &self.f_full_prev]
                .into_iter()
                .flatten(),
        )
    }
}
