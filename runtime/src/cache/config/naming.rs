//! cache-dit's naming strings of configurations (`strify`, docs/algorithm.md §8.4), e.g.
//! `DBCache_F1B0_W8I1M0MC0_R0.08_CFG0`; the full name of a run, which adds its statistics
//! (`..._T1O1_S17`), is [`CacheStats::name`](crate::cache::stats::CacheStats::name).

use crate::cache::config::cache::{CacheConfig, CacheType};
use crate::cache::config::calibrator::{CalibratorConfig, CalibratorKind};

impl CacheConfig {
    /// The configuration part of cache-dit's name:
    /// `{cache_type}_F{F}B{B}_W{W}I{I}M{max(0,M)}MC{max(0,MC)}_R{R}` plus `_SCM{mask}_{policy}`,
    /// `_N{steps}`, `_FR{hint}_{policy}` and `_CFG{0|1}` when set. `R` is printed as Python's
    /// `str(float)` would (`0.08`, `1.0`, `1e-05`). DBPrune's name is only the first part
    /// (`DBPrune_F1B1_W8I1M0MC0_R0.08`), as cache-dit's `DBPruneConfig.strify`.
    pub fn strify(&self) -> String {
        let mut s = format!(
            "{}_F{}B{}_W{}I{}M{}MC{}_R{}",
            self.cache_type.name(),
            self.fn_compute_blocks,
            self.bn_compute_blocks,
            self.max_warmup_steps,
            self.warmup_interval,
            self.max_cached_steps.max(0),
            self.max_continuous_cached_steps.max(0),
            python_float(self.residual_diff_threshold),
        );
        if self.cache_type == CacheType::DBPrune {
            return s;
        }
        if let Some(mask) = &self.steps_computation_mask {
            let bits: String = mask.iter().map(|m| m.to_string()).collect();
            s += &format!("_SCM{bits}_{}", self.steps_computation_policy.name());
        }
        // Python's `if self.num_inference_steps:` skips 0 as well as None.
        if let Some(n) = self.num_inference_steps.filter(|&n| n > 0) {
            s += &format!("_N{n}");
        }
        if let Some(h) = self.force_refresh_step_hint.filter(|&h| h > 0) {
            s += &format!("_FR{h}_{}", self.force_refresh_step_policy.name());
        }
        if let Some(cfg) = self.enable_separate_cfg {
            s += &format!("_CFG{}", u8::from(cfg));
        }
        s
    }
}

impl CalibratorConfig {
    /// The calibrator's part of cache-dit's name: TaylorSeer `T1O{order}` (order 0: `NONE`),
    /// DMD `DMDH{history}` plus the precision's initial unless "medium" (`DMDH6l`), `FoCa`.
    pub fn strify(&self) -> String {
        match &self.kind {
            CalibratorKind::TaylorSeer { taylorseer_order: 0 } => "NONE".into(),
            CalibratorKind::TaylorSeer { taylorseer_order } => format!("T1O{taylorseer_order}"),
            CalibratorKind::FoCa => "FoCa".into(),
            CalibratorKind::Dmd {
                dmd_history,
                dmd_svd_precision,
                ..
            } => match dmd_svd_precision.chars().next() {
                Some('m') | None => format!("DMDH{dmd_history}"),
                Some(p) => format!("DMDH{dmd_history}{p}"),
            },
        }
    }

    /// cache-dit's `strify(details=True)`: `TaylorSeer_O(1)`, `DMD_H(6, medium)`, `FoCa`.
    pub fn strify_details(&self) -> String {
        match &self.kind {
            CalibratorKind::TaylorSeer { taylorseer_order: 0 } => "NONE".into(),
            CalibratorKind::TaylorSeer { taylorseer_order } => {
                format!("TaylorSeer_O({taylorseer_order})")
            }
            CalibratorKind::FoCa => "FoCa".into(),
            CalibratorKind::Dmd {
                dmd_history,
                dmd_svd_precision,
                ..
            } => format!("DMD_H({dmd_history}, {dmd_svd_precision})"),
        }
    }
}

/// cache-dit's name of a configuration before any run: `{cache}_{calibrator}`, the calibrator
/// part `T0O0` without one (`strify` of a config dict).
pub fn options_name(config: &CacheConfig, calibrator: Option<&CalibratorConfig>) -> String {
    let calibrator = calibrator.map_or_else(|| "T0O0".to_string(), CalibratorConfig::strify);
    format!("{}_{calibrator}", config.strify())
}

/// Formats a float as Python's `str(float)`: the shortest repr that round-trips, in fixed
/// notation for exponents in `-4..16` (always with a decimal point) and scientific notation
/// with a signed two-digit exponent otherwise.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let fixed = format!("{x}");
        if fixed.contains('.') {
            fixed
        } else {
            format!("{fixed}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::config::cache::{ForceRefreshPolicy, StepsComputationPolicy};

    #[test]
    fn floats_print_like_python() {
        let cases = [
            (0.08, "0.08"),
            (0.5, "0.5"),
            (1.0, "1.0"),
            (0.12, "0.12"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456.0, "123456.0"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "{x}");
        }
    }

    #[test]
    fn names_match_cache_dit() {
        assert_eq!(CacheConfig::default().strify(), "DBCache_F8B0_W8I1M0MC0_R0.08");
        let c = CacheConfig {
            fn_compute_blocks: 1,
            max_continuous_cached_steps: 6,
            residual_diff_threshold: 0.5,
            enable_separate_cfg: Some(false),
            ..Default::default()
        };
        assert_eq!(c.strify(), "DBCache_F1B0_W8I1M0MC6_R0.5_CFG0");
        let c = CacheConfig {
            fn_compute_blocks: 1,
            max_warmup_steps: 4,
            residual_diff_threshold: 0.6,
            steps_computation_mask: Some(vec![1, 1, 1, 1, 1, 0, 1, 0, 1]),
            steps_computation_policy: StepsComputationPolicy::Dynamic,
            enable_separate_cfg: Some(false),
            ..Default::default()
        };
        assert_eq!(
            c.strify(),
            "DBCache_F1B0_W4I1M0MC0_R0.6_SCM111110101_dynamic_CFG0"
        );
        let c = CacheConfig {
            residual_diff_threshold: 1.0,
            num_inference_steps: Some(28),
            force_refresh_step_hint: Some(1),
            force_refresh_step_policy: ForceRefreshPolicy::Repeat,
            enable_separate_cfg: Some(true),
            ..Default::default()
        };
        // cache-dit prints `R1` when the user passed the int 1; a float threshold prints `1.0`.
        assert_eq!(c.strify(), "DBCache_F8B0_W8I1M0MC0_R1.0_N28_FR1_repeat_CFG1");
    }

    #[test]
    fn prune_and_calibrator_names_match_cache_dit() {
        let prune = CacheConfig {
            fn_compute_blocks: 1,
            bn_compute_blocks: 1,
            num_inference_steps: Some(28),
            enable_separate_cfg: Some(true),
            ..CacheConfig::dbprune()
        };
        assert_eq!(prune.strify(), "DBPrune_F1B1_W8I1M0MC0_R0.08");
        assert_eq!(CalibratorConfig::taylorseer(1).strify(), "T1O1");
        assert_eq!(
            CalibratorConfig::taylorseer(2).strify_details(),
            "TaylorSeer_O(2)"
        );
        assert_eq!(CalibratorConfig::taylorseer(0).strify(), "NONE");
        assert_eq!(CalibratorConfig::foca().strify(), "FoCa");
        let mut dmd = CalibratorConfig::dmd();
        assert_eq!(dmd.strify(), "DMDH6");
        assert_eq!(dmd.strify_details(), "DMD_H(6, medium)");
        if let CalibratorKind::Dmd {
            dmd_svd_precision, ..
        } = &mut dmd.kind
        {
            *dmd_svd_precision = "low".into();
        }
        assert_eq!(dmd.strify(), "DMDH6l");
        let c = CacheConfig {
            fn_compute_blocks: 1,
            max_continuous_cached_steps: 6,
            residual_diff_threshold: 0.5,
            enable_separate_cfg: Some(false),
            ..Default::default()
        };
        assert_eq!(options_name(&c, None), "DBCache_F1B0_W8I1M0MC6_R0.5_CFG0_T0O0");
        assert_eq!(
            options_name(&c, Some(&CalibratorConfig::taylorseer(1))),
            "DBCache_F1B0_W8I1M0MC6_R0.5_CFG0_T1O1"
        );
    }
}
