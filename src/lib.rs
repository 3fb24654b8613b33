//! cachedit: make diffusion transformers generate faster without retraining, by caching the
//! work of transformer blocks between denoising steps (a Rust port of cache-dit's DBCache).
//!
//! ```ignore
//! use cachedit::prelude::*;
//! let model = MyTransformer::new(cfg, vb)?;          // its block lists are `BlockList`s
//! enable_cache(&model, &CacheConfig { fn_compute_blocks: 1, ..Default::default() })?;
//! // ... run the denoising loop; calls whose first-block residual barely changed skip the
//! // middle blocks ...
//! println!("{}", render_summary(&summary(&model)));
//! ```

// Generated code names this crate `::cachedit`, which then also works inside it.
extern crate self as cachedit;

pub use cachedit_adapters as adapters;
pub use cachedit_macros::{CachedTransformer, block_adapter, patch_functor};
pub use cachedit_runtime as runtime;
pub use cachedit_runtime::*;

pub mod demo;

/// The names most users need.
pub mod prelude {
    pub use cachedit_macros::{CachedTransformer, block_adapter, patch_functor};
    pub use cachedit_runtime::{
        BlockList, CacheConfig, CachedBlock, CachedTransformer, ForwardPattern, Streams, disable_cache,
        enable_cache, refresh_context, render_summary, summary,
    };
}

/// Paths used by generated code; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use cachedit_runtime as runtime;
    pub use candle_core;
}
