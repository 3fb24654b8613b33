//! Cache statistics per block list and CFG branch, and the summary table cache-dit prints
//! (docs/algorithm.md §8.1, §8.2).

use std::fmt::Write as _;

use crate::cache::config::cache::CacheType;
use crate::cache::config::naming::python_float;
use crate::cache::context::CacheContext;
use crate::cache::host_time::HostTime;
use crate::cache::record::Branch;

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
    /// The cache algorithm.
    pub cache_type: CacheType,
    /// The calibrator's part of the name (`T1O1`, `DMDH6`, `FoCa`), `None` without one.
    pub calibrator_options: Option<String>,
    /// DBPrune: blocks pruned per call of the non-CFG branch.
    pub pruned_blocks: Vec<usize>,
    /// DBPrune: blocks per call of the non-CFG branch.
    pub actual_blocks: Vec<usize>,
    /// DBPrune: `sum(pruned_blocks) / sum(actual_blocks)`, `None` before any call.
    pub pruned_ratio: Option<f64>,
    /// DBPrune: blocks pruned per call of the CFG branch.
    pub cfg_pruned_blocks: Vec<usize>,
    /// DBPrune: blocks per call of the CFG branch.
    pub cfg_actual_blocks: Vec<usize>,
    /// DBPrune: the CFG branch's pruned ratio.
    pub cfg_pruned_ratio: Option<f64>,
    /// Tensors the context holds now (reference probes, stored residuals, calibrator state).
    pub held_tensors: usize,
    /// Their size in bytes.
    pub held_bytes: usize,
    /// Host time of the list's calls, split between its blocks and the engine's own work.
    pub host_time: HostTime,
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
            cache_type: ctx.config().cache_type,
            calibrator_options: ctx.calibrator().map(|c| c.strify()),
            pruned_blocks: n.pruned_blocks.clone(),
            actual_blocks: n.actual_blocks.clone(),
            pruned_ratio: n.pruned_ratio(),
            cfg_pruned_blocks: c.pruned_blocks.clone(),
            cfg_actual_blocks: c.actual_blocks.clone(),
            cfg_pruned_ratio: c.pruned_ratio(),
            held_tensors: ctx.held_tensors().0,
            held_bytes: ctx.held_tensors().1,
            host_time: ctx.host_time(),
        }
    }

    /// cache-dit's full name of these options and statistics (see [`full_name`]).
    pub fn name(&self) -> String {
        full_name(self)
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
        if self.cache_type == CacheType::DBPrune {
            return self.render_prune();
        }
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
        out + &self.memory_line()
    }

    /// DBPrune's tables: `Pruned Blocks` instead of `Cache Steps`, then the prune ratio.
    fn render_prune(&self) -> String {
        let ratio = |r: Option<f64>, pruned: &[usize], actual: &[usize]| {
            r.map(|r| {
                format!(
                    "{}% ({}/{})\n",
                    python_float(((r * 100.0) * 100.0).round() / 100.0),
                    pruned.iter().sum::<usize>(),
                    actual.iter().sum::<usize>()
                )
            })
        };
        let mut out = format!(
            "⚡️Pruned Blocks and Residual Diffs Statistics: {}\n",
            self.block_type
        );
        let pruned: usize = self.pruned_blocks.iter().sum();
        out += &table_w("Pruned Blocks", 13, pruned, self.diff_statistics());
        if let Some(r) = ratio(self.pruned_ratio, &self.pruned_blocks, &self.actual_blocks) {
            out += &format!("Dynamic Block Prune Ratio: {r}");
        }
        if self.separate_cfg {
            out += &format!(
                "\n⚡️CFG Pruned Blocks and Residual Diffs Statistics: {}\n\n",
                self.block_type
            );
            let pruned: usize = self.cfg_pruned_blocks.iter().sum();
            // cache-dit pads this value to 18 under a 17-wide header.
            out += &table_w("CFG Pruned Blocks", 18, pruned, self.cfg_diff_statistics());
            let r = ratio(
                self.cfg_pruned_ratio,
                &self.cfg_pruned_blocks,
                &self.cfg_actual_blocks,
            );
            if let Some(r) = r {
                out += &format!("CFG Dynamic Block Prune Ratio: {r}");
            }
        }
        out + &self.memory_line()
    }

    /// A line on what the cache holds, printed with a calibrator or under DBPrune (cache-dit
    /// prints no such line; DBCache without a calibrator keeps its exact output).
    fn memory_line(&self) -> String {
        if self.calibrator_options.is_none() && self.cache_type == CacheType::DBCache {
            return String::new();
        }
        format!(
            "Cache buffers: {} tensors, {} held{}\n",
            self.held_tensors,
            human_bytes(self.held_bytes),
            self.calibrator_options
                .as_ref()
                .map(|c| format!(" (calibrator {c})"))
                .unwrap_or_default()
        )
    }
}

/// `1.50 MiB`, `12.0 KiB`, `96 B`.
fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    if value < 1024.0 {
        return format!("{bytes} B");
    }
    let mut unit = UNITS[0];
    for u in UNITS {
        value /= 1024.0;
        unit = u;
        if value < 1024.0 {
            break;
        }
    }
    format!("{value:.2} {unit}")
}

fn table(first: &str, cached: usize, stats: Option<DiffStatistics>) -> String {
    table_w(first, first.len(), cached, stats)
}

fn table_w(first: &str, value_width: usize, cached: usize, stats: Option<DiffStatistics>) -> String {
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
    let _ = writeln!(out, "| {:<value_width$} | {} |", cached, cells.join(" | "));
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

/// cache-dit's `strify` of a cached list's statistics (for a model, cache-dit uses the last
/// entry of its summary): `{cache}_{calibrator}` with `_P{pruned %}` after the cache part under
/// DBPrune and `_S{accumulated cached steps}` at the end when any step was cached, e.g.
/// `DBCache_F1B0_W8I1M0MC6_R0.5_CFG0_T1O1_S17`.
pub fn full_name(stats: &CacheStats) -> String {
    let mut cache = stats.cache_options.clone();
    if stats.cache_type == CacheType::DBPrune
        && let Some(r) = stats.pruned_ratio
    {
        cache += &format!("_P{}", python_float((r * 100.0 * 100.0).round() / 100.0));
    }
    let calibrator = stats.calibrator_options.as_deref().unwrap_or("T0O0");
    let mut name = format!("{cache}_{calibrator}");
    if stats.accumulated_cached_steps > 0 {
        name += &format!("_S{}", stats.accumulated_cached_steps);
    }
    name.trim_matches('_').to_string()
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

    #[test]
    fn bytes_print_in_binary_units() {
        assert_eq!(human_bytes(96), "96 B");
        assert_eq!(human_bytes(12 * 1024), "12.00 KiB");
        assert_eq!(human_bytes(3 << 29), "1.50 GiB");
    }
}
