//! TaylorSeer (docs/algorithm.md §7.1): keep the last computed value and `n` finite-difference derivatives,
//! forecast by a Taylor expansion over the steps elapsed since.

use std::collections::VecDeque;

use candle_core::{Result, Shape, Tensor};

use super::series::{StepClock, difference, held, newton, taylor};
use crate::cache::config::calibrator::CalibratorTiming;
use crate::cache::store::MiddleStore;

/// cache-dit's `TaylorSeerState` for one stream: holds `order + 1` tensors.
///
/// On each update the derivative ladder is rebuilt from the new value and the previous ladder:
/// `d[i+1] = (d[i] - prev[i]) / gap`. cache-dit divides every order by the gap to the previous
/// computed step and only differences once the state step is above 1; the forecast at `e` steps
/// after the last update is `Σ d[i] e^i / i!`. With [`CalibratorTiming::Corrected`] the ladder
/// holds true divided differences (order `i` divided by the gap to the `i`-th previous update)
/// evaluated in Newton form, which reproduces any polynomial of degree `order` exactly.
#[derive(Debug)]
pub struct TaylorSeer {
    order: usize,
    clock: StepClock,
    last_update: i64,
    ladder: Vec<Tensor>,
    /// The steps of the previous updates, newest first (corrected timing only).
    nodes: VecDeque<i64>,
}

impl TaylorSeer {
    /// A state keeping `order` derivatives (cache-dit's `n_derivatives`, the config's
    /// `taylorseer_order`).
    pub fn new(order: usize, timing: CalibratorTiming) -> Self {
        Self {
            order,
            clock: StepClock::new(timing),
            last_update: -1,
            ladder: Vec::new(),
            nodes: VecDeque::new(),
        }
    }

    /// The derivative terms currently known (the ladder's length minus one).
    pub fn derivatives(&self) -> usize {
        self.ladder.len().saturating_sub(1)
    }

    fn restart(&mut self) {
        self.clock.restart();
        self.last_update = -1;
        self.ladder.clear();
        self.nodes.clear();
    }
}

impl MiddleStore for TaylorSeer {
    fn update(&mut self, value: Tensor) -> Result<()> {
        self.clock.start();
        if self.ladder.first().is_some_and(|y| y.shape() != value.shape()) {
            self.restart();
        }
        let now = self.clock.now();
        let corrected = self.clock.corrected();
        let prev = std::mem::take(&mut self.ladder);
        let mut ladder = vec![value];
        for i in 0..self.order {
            let Some(p) = prev.get(i).filter(|_| now > 1) else {
                break;
            };
            let gap = if corrected {
                match self.nodes.get(i) {
                    Some(node) => now - node,
                    None => break,
                }
            } else {
                now - self.last_update
            };
            let next = difference(&ladder[i], p, gap)?;
            ladder.push(next);
        }
        self.ladder = ladder;
        self.last_update = now;
        if corrected {
            self.nodes.push_front(now);
            self.nodes.truncate(self.order);
        }
        Ok(())
    }

    fn approximate(&mut self) -> Result<Option<Tensor>> {
        let now = self.clock.now();
        if self.clock.corrected() {
            let nodes: Vec<i64> = self.nodes.iter().copied().collect();
            newton(&self.ladder, &nodes, now)
        } else {
            taylor(&self.ladder, now - self.last_update)
        }
    }

    fn shape(&self) -> Option<&Shape> {
        self.ladder.first().map(Tensor::shape)
    }

    fn mark_step_begin(&mut self) {
        self.clock.tick();
    }

    fn reset(&mut self) {
        self.clock.reset();
        self.last_update = -1;
        self.ladder.clear();
        self.nodes.clear();
    }

    fn held(&self) -> Vec<&Tensor> {
        held(&self.ladder)
    }
}
