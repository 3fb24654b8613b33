//! What the calibrators share: the step clock of a calibrator state and the finite-difference
//! series (Taylor and Newton forms) they forecast with.

use candle_core::{Result, Tensor};

use crate::cache::config::calibrator::CalibratorTiming;

/// The step counter of one calibrator state (docs/algorithm.md §7, "Step alignment"). cache-dit creates a
/// state at its first `update` with step -1 and only advances existing states, so the state's
/// step lags the branch's by one; the corrected timing counts every call of the branch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepClock {
    current: i64,
    started: bool,
    timing: CalibratorTiming,
}

impl StepClock {
    pub(crate) fn new(timing: CalibratorTiming) -> Self {
        Self {
            current: -1,
            started: false,
            timing,
        }
    }

    pub(crate) fn corrected(&self) -> bool {
        self.timing == CalibratorTiming::Corrected
    }

    /// `mark_step_begin`: one call of the branch begins.
    pub(crate) fn tick(&mut self) {
        if self.started || self.corrected() {
            self.current += 1;
        }
    }

    /// An update arrives: from now on the state exists and counts.
    pub(crate) fn start(&mut self) {
        self.started = true;
    }

    /// The state's step.
    pub(crate) fn now(&self) -> i64 {
        self.current
    }

    /// cache-dit's state `reset()` on a shape change: the step restarts at -1. The corrected
    /// timing keeps counting branch steps.
    pub(crate) fn restart(&mut self) {
        if !self.corrected() {
            self.current = -1;
        }
    }

    /// A fresh context: the state does not exist yet.
    pub(crate) fn reset(&mut self) {
        self.current = -1;
        self.started = false;
    }
}

/// `Σ ladder[i] · e^i / i!`: cache-dit's Taylor forecast `e` steps after the last update.
pub(crate) fn taylor(ladder: &[Tensor], elapsed: i64) -> Result<Option<Tensor>> {
    let Some(first) = ladder.first() else {
        return Ok(None);
    };
    let mut out = first.clone();
    let mut factorial = 1.0f64;
    for (i, d) in ladder.iter().enumerate().skip(1) {
        factorial *= i as f64;
        let coefficient = (elapsed as f64).powi(i as i32) / factorial;
        out = (out + d.affine(coefficient, 0.0)?)?;
    }
    Ok(Some(out))
}

/// Newton form `D0 + (t - t0) D1 + (t - t0)(t - t1) D2 + ...` of a divided-difference ladder
/// whose nodes are `nodes` (newest first).
pub(crate) fn newton(ladder: &[Tensor], nodes: &[i64], t: i64) -> Result<Option<Tensor>> {
    let Some(first) = ladder.first() else {
        return Ok(None);
    };
    let mut out = first.clone();
    let mut coefficient = 1.0f64;
    for (d, node) in ladder.iter().skip(1).zip(nodes) {
        coefficient *= (t - node) as f64;
        out = (out + d.affine(coefficient, 0.0)?)?;
    }
    Ok(Some(out))
}

/// `(a - b) / gap`, as cache-dit divides a finite difference by a step gap.
pub(crate) fn difference(a: &Tensor, b: &Tensor, gap: i64) -> Result<Tensor> {
    (a - b)? / gap as f64
}

/// Tensors held by a store, for [`MiddleStore::held`](crate::cache::store::MiddleStore::held).
pub(crate) fn held<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Vec<&'a Tensor> {
    let mut out: Vec<&Tensor> = Vec::new();
    for t in tensors {
        if !out.iter().any(|h| h.id() == t.id()) {
            out.push(t);
        }
    }
    out
}
