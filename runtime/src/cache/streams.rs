//! `Streams`, the two tensors that flow through a block list, and `BlockRunner`, what the
//! strategies drive: any contiguous range of a cached list's blocks.

use std::ops::Range;

use candle_core::{Result, Tensor};

/// The two streams that flow through a block list: the hidden (image/video) stream `H` and the
/// optional encoder (text) stream `E`.
#[derive(Debug, Clone)]
pub struct Streams {
    /// `H`.
    pub hidden: Tensor,
    /// `E`: fed to every block for Patterns 0-2; for Patterns 3-5 the `E` output of the last
    /// block that ran (or `None`).
    pub encoder: Option<Tensor>,
}

impl Streams {
    /// Both streams.
    pub fn new(hidden: Tensor, encoder: Tensor) -> Self {
        Self {
            hidden,
            encoder: Some(encoder),
        }
    }

    /// The hidden stream alone (Patterns 3-5).
    pub fn hidden(hidden: Tensor) -> Self {
        Self {
            hidden,
            encoder: None,
        }
    }
}

/// Something that runs any contiguous range of a cached list's blocks: one `BlockList`, or
/// several chained into one cached list (FLUX.1's double + single blocks).
pub trait BlockRunner {
    /// The number of blocks.
    fn len(&self) -> usize;
    /// Whether there are no blocks.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Runs blocks `range` in order on `s`.
    fn run(&self, range: Range<usize>, s: Streams) -> Result<Streams>;
}

/// Two runners run one after the other as a single list; indices of the second are offset by
/// the first's length.
pub struct Chain<A, B>(pub A, pub B);

impl<A: BlockRunner, B: BlockRunner> BlockRunner for Chain<A, B> {
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }

    fn run(&self, range: Range<usize>, s: Streams) -> Result<Streams> {
        let split = self.0.len();
        let first = range.start.min(split)..range.end.min(split);
        let second = range.start.max(split) - split..range.end.max(split) - split;
        let s = if first.is_empty() {
            s
        } else {
            self.0.run(first, s)?
        };
        if second.is_empty() {
            Ok(s)
        } else {
            self.1.run(second, s)
        }
    }
}
