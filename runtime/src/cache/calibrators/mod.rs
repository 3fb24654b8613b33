//! Calibrators: on a cached call, forecast what the skipped blocks would have produced instead
//! of reusing the last computed value as is (docs/algorithm.md §7). Each is a [`MiddleStore`](crate::cache::store::MiddleStore): computed calls
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
//! By default the states count steps as cache-dit's do (see [`CalibratorTiming`](crate::cache::config::calibrator::CalibratorTiming)): the forecasts
//! are then the ones cache-dit makes on the same values. `CalibratorTiming::Corrected` fixes the
//! one-step lag and the ladders.

mod dmd;
mod foca;
mod linalg;
mod series;
mod taylorseer;

pub use dmd::Dmd;
pub use foca::FoCa;
pub use taylorseer::TaylorSeer;

use crate::cache::config::calibrator::{CalibratorCacheType, CalibratorConfig, CalibratorKind};
use crate::cache::store::{PlainStore, StoreFactory, StreamStores};

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
/// encoder stream if `enable_encoder_calibrator`, plain residual buffers elsewhere (docs/algorithm.md §4.6).
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
