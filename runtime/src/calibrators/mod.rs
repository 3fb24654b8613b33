//! Calibrators: on a cached call, forecast what the skipped blocks would have produced instead
//! of reusing the last computed value as is (spec §7). Each is a [`MiddleStore`](crate::store::MiddleStore): computed calls
//! `update` it, cached calls ask it to `approximate`. A context keeps one per stream (hidden,
//! encoder) and CFG branch, and under DBPrune one per block as well, so every state sees one
//! value sequence.
//!
//! - [`TaylorSeer`]: Taylor expansion of order `n` from finite differences over the gaps between
//!   computed steps.
//! - [`FoCa`]: a Heun (trapezoid) forecast anchored at the last computed value, fed back into
//!   itself over consecutive cached calls.
//! - [`Dmd`]: Dynamic Mode Decomposition of the last evenly spaced computed values, advanced by
//!   eigenvalue powers, with a Taylor fallback while fewer than four are known.
//!
//! What is forecast is the middle-block residual (`calibrator_cache_type: residual`, reused as
//! `Fn output + forecast`) or the middle-block output (`hidden_states`, reused as is).
//!
//! # Memory
//!
//! State is bounded by the options, never by the number of steps. Per calibrated tensor (one
//! stream of one branch; under DBPrune, of one block), counting tensors shaped like that stream
//! in its dtype:
//!
//! | calibrator | tensors held | default |
//! |---|---|---|
//! | none (plain buffer) | 1 | 1 |
//! | TaylorSeer order `n` | `n + 1` (cache-dit keeps `2n + 2`) | 2 |
//! | FoCa | at most 4 (3 right after a computed call) | 4 |
//! | DMD history `h` | at most `h + 2` (`h` snapshots, two first derivatives) | 8 |
//!
//! DMD also holds a few numbers per batch item for its fit (`history²` complex values), and
//! while fitting or forecasting it briefly needs the window (fit) or two tensors (forecast) in
//! f64. Tensors are shared, never copied: a computed value kept as snapshot and as Taylor term
//! is one tensor. `CacheContext::held_tensors` reports what a context holds.
//!
//! # Step alignment
//!
//! By default the states count steps as cache-dit's do (see [`CalibratorTiming`]): the forecasts
//! are then the ones cache-dit makes on the same values. `CalibratorTiming::Corrected` fixes the
//! one-step lag and the ladders.

mod dmd;
mod foca;
mod linalg;
mod taylorseer;

use candle_core::{Result, Tensor};

pub use dmd::Dmd;
pub use foca::FoCa;
pub use taylorseer::TaylorSeer;

use crate::calibrator_config::{CalibratorCacheType, CalibratorConfig, CalibratorKind, CalibratorTiming};
use crate::store::{PlainStore, StoreFactory, StreamStores};

/// A fresh calibrator state as `config` describes it (the factory of one stream's stores).
pub fn factory(config: &CalibratorConfig) -> StoreFactory {
    let timing = config.timing;
    match &config.kind {
        CalibratorKind::TaylorSeer { taylorseer_order } => {
            let order = *taylorseer_order;
            Box::new(move || Box::new(TaylorSeer::new(order, timing)))
        }
        CalibratorKind::FoCa => Box::new(move || Box::new(FoCa::new(timing))),
        CalibratorKind::Dmd {
            dmd_history,
            dmd_rank,
            dmd_ridge,
            ..
        } => {
            let (history, rank, ridge) = (*dmd_history, *dmd_rank, *dmd_ridge);
            Box::new(move || Box::new(Dmd::new(history, rank, ridge, timing)))
        }
    }
}

/// The stores of a context: the calibrator on the hidden stream if `enable_calibrator`, on the
/// encoder stream if `enable_encoder_calibrator`, plain residual buffers elsewhere (spec §4.6).
pub fn stream_stores(config: Option<&CalibratorConfig>) -> StreamStores {
    let plain = || -> StoreFactory { Box::new(|| Box::new(PlainStore::default())) };
    let Some(c) = config else {
        return StreamStores::plain();
    };
    let residual = c.calibrator_cache_type == CalibratorCacheType::Residual;
    StreamStores {
        hidden: if c.enable_calibrator { factory(c) } else { plain() },
        encoder: if c.enable_encoder_calibrator {
            factory(c)
        } else {
            plain()
        },
        hidden_is_residual: !c.enable_calibrator || residual,
        encoder_is_residual: !c.enable_encoder_calibrator || residual,
    }
}

/// The step counter of one calibrator state (spec §7, "Step alignment"). cache-dit creates a
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

/// Tensors held by a store, for [`MiddleStore::held`](crate::store::MiddleStore::held).
pub(crate) fn held<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> Vec<&'a Tensor> {
    let mut out: Vec<&Tensor> = Vec::new();
    for t in tensors {
        if !out.iter().any(|h| h.id() == t.id()) {
            out.push(t);
        }
    }
    out
}
