//! Where a cached list's calls spend host time: in its blocks, or in the engine around them.
//!
//! This is the engine's overhead measured directly, inside the run it slows down, so machine
//! load cancels out of the ratio `total / (total - engine)`, which comparing two runs' times
//! cannot do on a shared machine.

use std::time::{Duration, Instant};

/// Host wall time of a context's calls, split between the blocks and the engine's own work:
/// the probe residual, the diff and its read-back, the decision, applying or storing the cache,
/// calibrator updates and forecasts.
///
/// The split is exact on CPU, where an op has finished when it returns. On an asynchronous
/// device (CUDA) a block only enqueues its kernels and the wait for them lands in the diff's
/// read-back, so there the engine's share includes block compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct HostTime {
    /// Calls measured.
    pub calls: usize,
    /// Time inside the calls, blocks included.
    pub total: Duration,
    /// Time inside the blocks the calls ran.
    pub blocks: Duration,
}

impl HostTime {
    /// Time the engine itself took: the calls' time outside their blocks.
    pub fn engine(&self) -> Duration {
        self.total.saturating_sub(self.blocks)
    }
}

/// A stopwatch over one call, which times the block runs inside it separately.
#[derive(Debug)]
pub struct CallClock {
    start: Instant,
    blocks: Duration,
}

impl CallClock {
    /// Starts timing a call.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
            blocks: Duration::ZERO,
        }
    }

    /// Runs `f`, counting its time as block time.
    pub fn blocks<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.blocks += t.elapsed();
        out
    }

    /// Ends the call and adds it to `into`.
    pub fn finish(self, into: &mut HostTime) {
        into.calls += 1;
        into.total += self.start.elapsed();
        into.blocks += self.blocks;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_time_is_split_from_the_rest_of_the_call() {
        let mut acc = HostTime::default();
        let mut clock = CallClock::start();
        std::thread::sleep(Duration::from_millis(20));
        clock.blocks(|| std::thread::sleep(Duration::from_millis(30)));
        clock.finish(&mut acc);
        assert_eq!(acc.calls, 1);
        assert!(acc.blocks >= Duration::from_millis(30));
        assert!(acc.engine() >= Duration::from_millis(20));
        assert_eq!(acc.engine() + acc.blocks, acc.total);
    }
}
