//! Calibrator configurations with cache-dit's names and defaults (spec §2.4). The calibrators
//! forecast the middle blocks' residual (or output) on cached calls instead of reusing the last
//! computed one as is.

use serde::{Deserialize, Serialize};

/// What a calibrator forecasts: the middle blocks' residual or their output hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibratorCacheType {
    /// The residual `Mn(x) - x` (cache-dit's default).
    #[default]
    Residual,
    /// The middle blocks' output.
    HiddenStates,
}

/// Which forecaster, with its own options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CalibratorKind {
    /// Taylor expansion of order `taylorseer_order` from finite differences (default order 1).
    TaylorSeer {
        /// The expansion order n (derivatives kept: n).
        taylorseer_order: usize,
    },
    /// FoCa's Heun-style forecast; no options.
    FoCa,
    /// Dynamic Mode Decomposition over recent computed values, with a Taylor fallback.
    Dmd {
        /// Snapshots kept (default 6).
        dmd_history: usize,
        /// Rank of the fit; 0 picks it from the singular values (default 0).
        dmd_rank: usize,
        /// Ridge added to the singular values (default 1e-8).
        dmd_ridge: f64,
        /// "low", "medium" or "high" (default "medium").
        dmd_svd_precision: String,
    },
}

/// A calibrator for the hidden and (optionally) the encoder stream; cache-dit's
/// `TaylorSeerCalibratorConfig`, `FoCaCalibratorConfig`, `DMDCalibratorConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibratorConfig {
    /// Forecast the hidden stream.
    pub enable_calibrator: bool,
    /// Forecast the encoder stream too.
    pub enable_encoder_calibrator: bool,
    /// Residual or hidden-states forecasting.
    pub calibrator_cache_type: CalibratorCacheType,
    /// The forecaster.
    pub kind: CalibratorKind,
}

impl CalibratorConfig {
    /// `TaylorSeerCalibratorConfig(taylorseer_order=order)`: both streams, residuals.
    pub fn taylorseer(order: usize) -> Self {
        Self {
            enable_calibrator: true,
            enable_encoder_calibrator: true,
            calibrator_cache_type: CalibratorCacheType::Residual,
            kind: CalibratorKind::TaylorSeer {
                taylorseer_order: order,
            },
        }
    }

    /// `FoCaCalibratorConfig()`: both streams, residuals.
    pub fn foca() -> Self {
        Self {
            kind: CalibratorKind::FoCa,
            ..Self::taylorseer(1)
        }
    }

    /// `DMDCalibratorConfig()` with its defaults: history 6, rank 0, ridge 1e-8, "medium".
    pub fn dmd() -> Self {
        Self {
            kind: CalibratorKind::Dmd {
                dmd_history: 6,
                dmd_rank: 0,
                dmd_ridge: 1e-8,
                dmd_svd_precision: "medium".into(),
            },
            ..Self::taylorseer(1)
        }
    }
}
