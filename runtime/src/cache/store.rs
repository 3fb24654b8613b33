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
    /// Called once per call of this branch, after the Fn blocks (docs/algorithm.md §3.2).
    fn mark_step_begin(&mut self) {}
    /// Forgets everything.
    fn reset(&mut self);
    /// The tensors the store holds now (for memory accounting; clones of one tensor count
    /// once, by `Tensor::id`).
    fn held(&self) -> Vec<&Tensor> {
        Vec::new()
    }
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

    fn held(&self) -> Vec<&Tensor> {
        self.value.iter().collect()
    }
}

/// Makes the store of one stream of one branch (plain buffers, or a calibrator).
pub type StoreFactory = Box<dyn Fn() -> Box<dyn MiddleStore> + Send + Sync>;

/// How a context keeps what its middle blocks did, per stream: the store of each stream and
/// whether it keeps the residual (reused as `Fn output + residual`) or the output itself.
pub struct StreamStores {
    /// Makes the hidden stream's stores.
    pub hidden: StoreFactory,
    /// Makes the encoder stream's stores.
    pub encoder: StoreFactory,
    /// The hidden stream keeps residuals (`true`) or middle-block outputs.
    pub hidden_is_residual: bool,
    /// The encoder stream keeps residuals (`true`) or middle-block outputs.
    pub encoder_is_residual: bool,
}

impl StreamStores {
    /// Plain residual buffers on both streams: DBCache without a calibrator.
    pub fn plain() -> Self {
        Self {
            hidden: Box::new(|| Box::new(PlainStore::default())),
            encoder: Box::new(|| Box::new(PlainStore::default())),
            hidden_is_residual: true,
            encoder_is_residual: true,
        }
    }
}

impl std::fmt::Debug for StreamStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamStores")
            .field("hidden_is_residual", &self.hidden_is_residual)
            .field("encoder_is_residual", &self.encoder_is_residual)
            .finish_non_exhaustive()
    }
}
