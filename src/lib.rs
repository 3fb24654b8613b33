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
pub use cachedit_macros::{CachedTransformer, block_adapter, patch_functor, register_families};
pub use cachedit_runtime as runtime;
pub use cachedit_runtime::*;

pub mod demo;
pub mod export;
pub mod inputs;

/// The registered families, like cache-dit's `supported_pipelines()`: their number and their
/// names suffixed with `*`, in registration order (`registry.yaml`'s, then other crates').
///
/// Unlike `cachedit_runtime::supported_pipelines`, this makes sure cachedit's own families are
/// linked in, even when nothing else of the adapters is used.
pub fn supported_pipelines() -> (usize, Vec<String>) {
    cachedit_adapters::link();
    cachedit_runtime::registry::supported_pipelines()
}

/// The registered family whose name is the longest prefix of `class_name` (a pipeline or
/// transformer class name, e.g. `FluxKontextPipeline`); see `runtime::registry` for the rule.
pub fn lookup(class_name: &str) -> Result<&'static FamilyEntry, RegistryError> {
    cachedit_adapters::link();
    cachedit_runtime::registry::lookup(class_name)
}

/// Every registered family, in registration order, with cachedit's own families linked in.
pub fn families() -> &'static [&'static FamilyEntry] {
    cachedit_adapters::link();
    cachedit_runtime::registry::families()
}

/// The names most users need.
pub mod prelude {
    pub use crate::{lookup, supported_pipelines};
    pub use cachedit_adapters::FamilyModel;
    pub use cachedit_macros::{CachedTransformer, block_adapter, patch_functor};
    pub use cachedit_runtime::{
        BlockList, BuildRequest, CacheConfig, CachedBlock, CachedTransformer, Denoiser, ForwardPattern,
        Streams, disable_cache, enable_cache, refresh_context, render_summary, summary,
    };
}

/// Paths used by generated code; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use cachedit_adapters as adapters;
    pub use cachedit_runtime as runtime;
    pub use candle_core;
}
