//! Calibrator configurations with cache-dit's names and defaults (docs/algorithm.md §2.4). The calibrators
//! forecast the middle blocks' residual (or output) on cached calls instead of reusing the last
//! computed one as is.

use serde::{Deserialize, Serialize};

use crate::cache::config::error::ConfigError;
use crate::limits::MAX_CALIBRATOR_HISTORY;

/// The SVD precisions cache-dit's DMD accepts.
pub const DMD_SVD_PRECISIONS: [&str; 3] = ["low", "medium", "high"];

/// Whether the calibrators reproduce cache-dit's step bookkeeping or the corrected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibratorTiming {
    /// As cache-dit (default, gives the same forecasts): a calibrator state only starts counting
    /// steps after its first update, so its step lags the branch's by one and TaylorSeer's
    /// `current_step > 1` gate holds derivatives back until branch step 3 (docs/algorithm.md §7, "Step
    /// alignment"); TaylorSeer's ladder divides every order by the latest gap and is evaluated as
    /// a Taylor series; DMD's Taylor fallback differences against the update two back.
    #[default]
    CacheDit,
    /// Corrected: the state step is the branch step (derivatives from branch step 2), TaylorSeer
    /// keeps true divided differences over the actual gaps between computed steps and evaluates
    /// them in Newton form (so order `n` forecasts a polynomial of degree `n` exactly once `n + 1`
    /// computed steps are known), and DMD's fallback differences against the previous update.
    /// FoCa is the same in both modes.
    Corrected,
}

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
    /// cache-dit's step bookkeeping (default) or the corrected one.
    #[serde(default)]
    pub timing: CalibratorTiming,
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
            timing: CalibratorTiming::CacheDit,
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

    /// Checks the forecaster's options (done by `enable_cache`). TaylorSeer order 0 is accepted:
    /// it keeps the last computed value, like no calibrator, but honours
    /// `calibrator_cache_type` (cache-dit names it `NONE`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kept = match &self.kind {
            CalibratorKind::TaylorSeer { taylorseer_order } => Some(("taylorseer_order", *taylorseer_order)),
            CalibratorKind::Dmd { dmd_history, .. } => Some(("dmd_history", *dmd_history)),
            CalibratorKind::FoCa => None,
        };
        if let Some((field, found)) = kept
            && found > MAX_CALIBRATOR_HISTORY
        {
            return Err(ConfigError::HistoryTooLong { field, found });
        }
        if let CalibratorKind::Dmd {
            dmd_history,
            dmd_ridge,
            dmd_svd_precision,
            ..
        } = &self.kind
        {
            if *dmd_history < 2 {
                return Err(ConfigError::DmdHistoryTooShort { found: *dmd_history });
            }
            if !dmd_ridge.is_finite() || *dmd_ridge < 0.0 {
                return Err(ConfigError::InvalidDmdRidge { found: *dmd_ridge });
            }
            if !DMD_SVD_PRECISIONS.contains(&dmd_svd_precision.as_str()) {
                return Err(ConfigError::UnknownSvdPrecision {
                    found: dmd_svd_precision.clone(),
                });
            }
            if *dmd_history < 4 {
                tracing::warn!(
                    dmd_history,
                    "DMD needs 4 evenly spaced snapshots to fit; with fewer it always uses its Taylor fallback"
                );
            }
        }
        Ok(())
    }

    /// The corrected step bookkeeping instead of cache-dit's (see [`CalibratorTiming`]).
    pub fn corrected(mut self) -> Self {
        self.timing = CalibratorTiming::Corrected;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_bad_dmd_options() {
        assert!(CalibratorConfig::dmd().validate().is_ok());
        assert!(CalibratorConfig::taylorseer(0).validate().is_ok());
        let with = |h: usize, ridge: f64, p: &str| CalibratorConfig {
            kind: CalibratorKind::Dmd {
                dmd_history: h,
                dmd_rank: 0,
                dmd_ridge: ridge,
                dmd_svd_precision: p.into(),
            },
            ..CalibratorConfig::dmd()
        };
        assert_eq!(
            with(1, 1e-8, "medium").validate(),
            Err(ConfigError::DmdHistoryTooShort { found: 1 })
        );
        assert_eq!(
            with(6, -1.0, "medium").validate(),
            Err(ConfigError::InvalidDmdRidge { found: -1.0 })
        );
        assert!(matches!(
            with(6, f64::NAN, "medium").validate(),
            Err(ConfigError::InvalidDmdRidge { .. })
        ));
        assert_eq!(
            with(6, 1e-8, "Medium").validate(),
            Err(ConfigError::UnknownSvdPrecision {
                found: "Medium".into()
            })
        );
        assert!(with(2, 0.0, "low").validate().is_ok());
        assert_eq!(
            with(MAX_CALIBRATOR_HISTORY + 1, 1e-8, "medium").validate(),
            Err(ConfigError::HistoryTooLong {
                field: "dmd_history",
                found: MAX_CALIBRATOR_HISTORY + 1
            })
        );
        assert!(matches!(
            CalibratorConfig::taylorseer(usize::MAX).validate(),
            Err(ConfigError::HistoryTooLong { .. })
        ));
    }
}
