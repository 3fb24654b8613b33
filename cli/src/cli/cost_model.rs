//! The time a cached run should take if the engine cost nothing: the overhead ratio's
//! denominator.
//!
//! A run's time is modelled as `E + b_d·d + b_s·s`: `E` is what no cache can skip (embedders,
//! final layer, scheduler), `d` and `s` the dual- and single-stream block executions the run
//! performed, `b_d` and `b_s` the time of one of each. A Flux double block and a single block
//! do about the same FLOPs, but the double block runs more, smaller ops (two streams of
//! modulation, projections and MLPs), so one common block cost would under-price the configs
//! that keep the double blocks (F8B0 at the large size computes all 8 of them on every step).
//!
//! The three unknowns come from three reference runs in the same process: the baseline (every
//! block of every step), and two always-cached "floor" runs (threshold 1, warmup 1) whose Fn
//! differs, one computing one block on a cached step and one computing every double block.

use cachedit::CallRecord;

/// Block executions of one run, by kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Executions {
    /// Dual-stream (double) block executions.
    pub double: f64,
    /// Single-stream block executions.
    pub single: f64,
}

impl Executions {
    /// All executions, of either kind.
    pub fn total(&self) -> f64 {
        self.double + self.single
    }
}

/// The model's block lists as the engine chains them: the double blocks, then the single ones.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Double blocks (the first list).
    pub double: usize,
    /// Single blocks (the second list).
    pub single: usize,
}

impl Layout {
    /// The blocks of each kind a call computes: every block, or on a cached call the first
    /// `fn_blocks` and the last `bn_blocks` of the chained list.
    pub fn computed(&self, cached: bool, fn_blocks: usize, bn_blocks: usize) -> Executions {
        if !cached {
            return Executions {
                double: self.double as f64,
                single: self.single as f64,
            };
        }
        let front_double = fn_blocks.min(self.double);
        let front_single = fn_blocks.saturating_sub(self.double).min(self.single);
        let back_single = bn_blocks.min(self.single - front_single);
        let back_double = bn_blocks
            .saturating_sub(self.single)
            .min(self.double - front_double);
        Executions {
            double: (front_double + back_double) as f64,
            single: (front_single + back_single) as f64,
        }
    }

    /// The executions of a whole run, from its decision trace.
    pub fn executions(&self, trace: &[CallRecord], fn_blocks: usize, bn_blocks: usize) -> Executions {
        trace.iter().fold(
            Executions {
                double: 0.0,
                single: 0.0,
            },
            |acc, r| {
                let c = self.computed(r.cached, fn_blocks, bn_blocks);
                Executions {
                    double: acc.double + c.double,
                    single: acc.single + c.single,
                }
            },
        )
    }
}

/// One reference run: its block executions and its time (wall or CPU seconds).
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// What it computed.
    pub executions: Executions,
    /// How long it took.
    pub seconds: f64,
}

/// `E + b_d·d + b_s·s`, fitted on reference runs.
#[derive(Debug, Clone, Copy)]
pub struct CostModel {
    /// What no cache can skip, in seconds.
    pub unskippable: f64,
    /// One double block execution, in seconds.
    pub double_block: f64,
    /// One single block execution, in seconds.
    pub single_block: f64,
}

impl CostModel {
    /// Solves the three references exactly. Where they cannot tell the two kinds apart (e.g. a
    /// model with one double block, which every cached step computes anyway) the kinds share
    /// one cost, fitted on the first two references.
    pub fn fit(refs: [Reference; 3]) -> Self {
        let row = |r: &Reference| [1.0, r.executions.double, r.executions.single];
        let a = [row(&refs[0]), row(&refs[1]), row(&refs[2])];
        let y = [refs[0].seconds, refs[1].seconds, refs[2].seconds];
        let det = det3(a);
        // Relative to the size of the entries: the block counts are in the hundreds.
        let scale = a.iter().flatten().map(|v| v.abs()).fold(1.0, f64::max);
        if det.abs() > 1e-9 * scale.powi(2) {
            let solve = |col: usize| {
                let mut m = a;
                for (row, yi) in m.iter_mut().zip(y) {
                    row[col] = yi;
                }
                det3(m) / det
            };
            return Self {
                unskippable: solve(0),
                double_block: solve(1),
                single_block: solve(2),
            };
        }
        let (n0, n1) = (refs[0].executions.total(), refs[1].executions.total());
        let b = (refs[0].seconds - refs[1].seconds) / (n0 - n1).max(1.0);
        Self {
            unskippable: refs[0].seconds - b * n0,
            double_block: b,
            single_block: b,
        }
    }

    /// The time a run with these block executions should take.
    pub fn ideal(&self, e: Executions) -> f64 {
        self.unskippable + self.double_block * e.double + self.single_block * e.single
    }
}

fn det3(m: [[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LARGE: Layout = Layout {
        double: 8,
        single: 16,
    };

    fn ex(double: f64, single: f64) -> Executions {
        Executions { double, single }
    }

    #[test]
    fn a_cached_call_computes_its_front_and_back_blocks_by_kind() {
        assert_eq!(LARGE.computed(false, 1, 0), ex(8.0, 16.0));
        assert_eq!(LARGE.computed(true, 1, 0), ex(1.0, 0.0));
        assert_eq!(LARGE.computed(true, 8, 0), ex(8.0, 0.0));
        assert_eq!(LARGE.computed(true, 1, 1), ex(1.0, 1.0));
        assert_eq!(LARGE.computed(true, 10, 2), ex(8.0, 4.0));
        // A Bn reaching back past the single blocks counts the double ones it covers.
        assert_eq!(LARGE.computed(true, 1, 18), ex(3.0, 16.0));
    }

    #[test]
    fn three_references_recover_the_costs_that_made_them() {
        let truth = CostModel {
            unskippable: 3.0,
            double_block: 0.55,
            single_block: 0.45,
        };
        let reference = |e: Executions| Reference {
            executions: e,
            seconds: truth.ideal(e),
        };
        // Baseline, F1 floor and F8 floor of the large model over 28 steps (warmup 1).
        let fitted = CostModel::fit([
            reference(ex(8.0 * 28.0, 16.0 * 28.0)),
            reference(ex(8.0 + 27.0, 16.0)),
            reference(ex(8.0 * 28.0, 16.0)),
        ]);
        assert!((fitted.unskippable - 3.0).abs() < 1e-9);
        assert!((fitted.double_block - 0.55).abs() < 1e-12);
        assert!((fitted.single_block - 0.45).abs() < 1e-12);
        let f8 = ex(8.0 * 28.0, 16.0 * 11.0);
        assert!((fitted.ideal(f8) - truth.ideal(f8)).abs() < 1e-9);
    }

    #[test]
    fn references_that_cannot_separate_the_kinds_share_one_cost() {
        // One double block: both floors compute it on every step.
        let refs = [
            Reference {
                executions: ex(28.0, 56.0),
                seconds: 8.4 + 1.0,
            },
            Reference {
                executions: ex(28.0, 2.0),
                seconds: 3.0 + 1.0,
            },
            Reference {
                executions: ex(28.0, 29.0),
                seconds: 5.7 + 1.0,
            },
        ];
        let fitted = CostModel::fit(refs);
        assert!((fitted.double_block - 0.1).abs() < 1e-12);
        assert_eq!(fitted.double_block, fitted.single_block);
        assert!((fitted.ideal(ex(28.0, 56.0)) - 9.4).abs() < 1e-9);
    }
}
