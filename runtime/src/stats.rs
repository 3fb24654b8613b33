//! Cache statistics per block list and CFG branch, and the summary table cache-dit prints
//! (spec §8.1, §8.2).

use std::fmt::Write as _;

use crate::context::{Branch, CacheContext};
use crate::naming::python_float;

/// Percentiles of the recorded diffs (sentinels included, as upstream), numpy's linear rule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DiffStatistics {
    /// Smallest diff.
    pub min: f64,
    /// 0th percentile (equals `min`; cache-dit prints both).
    pub p00: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest diff.
    pub max: f64,
}

impl DiffStatistics {
    /// The statistics of `values`, or `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let pct = |q: f64| percentile(&v, q);
        Some(Self {
            min: v[0],
            p00: pct(0.0),
            p25: pct(25.0),
            p50: pct(50.0),
            p75: pct(75.0),
            p95: pct(95.0),
            max: v[v.len() - 1],
        })
    }
}

/// numpy's default ("linear") percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = pos - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    // numpy's `_lerp` interpolates from the nearer end for accuracy.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// What one cached block list recorded (cache-dit's `CacheStats`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CacheStats {
    /// The block list.
    pub list: String,
    /// The type name of its blocks.
    pub block_type: String,
    /// The naming string of the options in force.
    pub cache_options: String,
    /// Pipeline steps cached by the non-CFG branch (this context life).
    pub cached_steps: Vec<usize>,
    /// Diffs recorded by the non-CFG branch, per step.
    pub residual_diffs: Vec<(usize, f64)>,
    /// Pipeline steps cached by the CFG branch.
    pub cfg_cached_steps: Vec<usize>,
    /// Diffs recorded by the CFG branch, per step.
    pub cfg_residual_diffs: Vec<(usize, f64)>,
    /// Cached calls of the non-CFG branch, surviving force refreshes.
    pub accumulated_cached_steps: usize,
    /// Cached calls of the CFG branch, surviving force refreshes.
    pub cfg_accumulated_cached_steps: usize,
    /// Pipeline steps run.
    pub accumulated_executed_steps: usize,
    /// Calls run.
    pub accumulated_transformer_executed_steps: usize,
    /// Whether the context keeps separate CFG branches.
    pub separate_cfg: bool,
}

impl CacheStats {
    /// The statistics of the context of list `list`, whose blocks are of type `block_type`.
    pub fn from_context(ctx: &CacheContext, block_type: &str) -> Self {
        let (n, c) = (ctx.branch(Branch::NonCfg), ctx.branch(Branch::Cfg));
        Self {
            list: ctx.name().to_string(),
            block_type: block_type.to_string(),
            cache_options: ctx.config().strify(),
            cached_steps: n.cached_steps.clone(),
            residual_diffs: n.residual_diffs.clone(),
            cfg_cached_steps: c.cached_steps.clone(),
            cfg_residual_diffs: c.residual_diffs.clone(),
            accumulated_cached_steps: n.accumulated_cached_steps,
            cfg_accumulated_cached_steps: c.accumulated_cached_steps,
            accumulated_executed_steps: ctx.accumulated_executed_steps(),
            accumulated_transformer_executed_steps: ctx.accumulated_transformer_executed_steps(),
            separate_cfg: ctx.config().enable_separate_cfg == Some(true),
        }
    }

    /// Percentiles of the non-CFG diffs.
    pub fn diff_statistics(&self) -> Option<DiffStatistics> {
        DiffStatistics::of(&self.residual_diffs.iter().map(|d| d.1).collect::<Vec<_>>())
    }

    /// Percentiles of the CFG diffs.
    pub fn cfg_diff_statistics(&self) -> Option<DiffStatistics> {
        DiffStatistics::of(&self.cfg_residual_diffs.iter().map(|d| d.1).collect::<Vec<_>>())
    }

    /// The table cache-dit's `summary()` logs for this list (plus the CFG table when the CFG
    /// branch recorded anything).
    pub fn render(&self) -> String {
        let mut out = format!(
            "⚡️Cache Steps and Residual Diffs Statistics: {}, Executed Steps: {}, Transformer Executed Steps: {}\n\n",
            self.block_type, self.accumulated_executed_steps, self.accumulated_transformer_executed_steps
        );
        out += &table(
            "Cache Steps",
            self.accumulated_cached_steps,
            self.diff_statistics(),
        );
        if self.separate_cfg {
            out += &format!(
                "\n⚡️CFG Cache Steps and Residual Diffs Statistics: {}, Executed Steps: {}, Transformer Executed Steps: {}\n\n",
                self.block_type, self.accumulated_executed_steps, self.accumulated_transformer_executed_steps
            );
            out += &table(
                "CFG Cache Steps",
                self.cfg_accumulated_cached_steps,
                self.cfg_diff_statistics(),
            );
        }
        out
    }
}

fn table(first: &str, cached: usize, stats: Option<DiffStatistics>) -> String {
    let w = first.len();
    let cols = [
        "Diffs P00",
        "Diffs P25",
        "Diffs P50",
        "Diffs P75",
        "Diffs P95",
        "Diffs Min",
        "Diffs Max",
    ];
    let mut out = format!("| {first} | {} |\n", cols.join(" | "));
    let _ = writeln!(
        out,
        "|{}|{}",
        "-".repeat(w + 2),
        cols.iter()
            .map(|c| "-".repeat(c.len() + 2) + "|")
            .collect::<String>()
    );
    let values: Vec<String> = match stats {
        Some(s) => [s.p00, s.p25, s.p50, s.p75, s.p95, s.min, s.max]
            .iter()
            .map(|&x| python_float(round3(x)))
            .collect(),
        None => vec!["-".to_string(); cols.len()],
    };
    let cells: Vec<String> = values.iter().map(|v| format!("{v:<9}")).collect();
    let _ = writeln!(out, "| {:<w$} | {} |", cached, cells.join(" | "));
    out
}

fn round3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        x
    }
}

/// The tables of several lists, one after the other.
pub fn render_summary(stats: &[CacheStats]) -> String {
    stats
        .iter()
        .map(CacheStats::render)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_numpy_linear() {
        let s = DiffStatistics::of(&[0.05, 0.08, 0.12, 0.026786, 0.071429, 0.160714]).unwrap();
        assert_eq!(s.min, 0.026786);
        assert_eq!(s.max, 0.160714);
        // np.percentile([...], 25) = 0.0553572..., 50 = 0.0757145, 95 = 0.1505355
        assert!((s.p25 - 0.05535725).abs() < 1e-9, "{}", s.p25);
        assert!((s.p50 - 0.0757145).abs() < 1e-9, "{}", s.p50);
        assert!((s.p95 - 0.1505355).abs() < 1e-9, "{}", s.p95);
        assert_eq!(DiffStatistics::of(&[]), None);
        let one = DiffStatistics::of(&[-1.0]).unwrap();
        assert_eq!((one.p00, one.p95), (-1.0, -1.0));
    }
}
