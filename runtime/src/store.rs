//! Where the middle blocks' residual (or output) of the last computed call is kept, and what
//! a cached call gets back. The plain store returns what was stored; calibrators forecast.

use candle_core::{Result, Shape, Tensor};

/// Keeps the middle-block residual (or output) of one stream of one CFG branch. A cached call
/// asks it for the value to reuse; computed calls update it.
pub trait MiddleStore: Send {
    /// Records the value of a computed call.
    fn update(&mut self, value: Tensor) -> Result<()>;
    /// The value a cached call reuses, or `None` if nothing was stored yet. May advance the
    /// store's state (FoCa's does), so call it once per cached call.
    fn approximate(&mut self) -> Result<Option<Tensor>>;
    /// The shape of what `approximate` would return, without advancing any state.
    fn shape(&self) -> Option<&Shape>;
    /// Called once per call of this branch, after the Fn blocks (spec §3.2).
    fn mark_step_begin(&mut self) {}
    /// Forgets everything.
    fn reset(&mut self);
}

/// The store without a calibrator: the last computed value, as is.
#[derive(Debug, Default)]
pub struct PlainStore {
    value: Option<Tensor>,
}

impl MiddleStore for PlainStore {
    fn update(&mut self, value: Tensor) -> Result<()> {
        self.value = Some(value);
        Ok(())
    }

    fn approximate(&mut self) -> Result<Option<Tensor>> {
        Ok(self.value.clone())
    }

    fn shape(&self) -> Option<&Shape> {
        self.value.as_ref().map(Tensor::shape)
    }

    fn reset(&mut self) {
        self.value = None;
    }
}
