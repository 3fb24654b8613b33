//! Parsing, validation and generation behind cachedit's proc macros, over `proc_macro2` so it
//! can be unit-tested (insta snapshots) and reused outside a proc-macro crate. The proc-macro
//! crate `cachedit-macros` is a set of thin shims over the three entry points:
//!
//! - [`block_adapter`]: `#[block_adapter(pattern = Pattern_N)]` on a block's `impl`;
//! - [`patch_functor`]: `#[patch_functor(pattern = Pattern_N, wrapper = Name)]` on a function
//!   that runs one block with loop-body logic;
//! - [`derive_cached_transformer`]: `#[derive(CachedTransformer)]` with `#[cached(..)]`;
//! - [`register_families`]: `register_families!("registry.yaml")`, a crate's families as
//!   `inventory` registrations.
//!
//! Each goes parse → validate → expand; errors are spanned `syn::Error`s, accumulated, and the
//! attribute macros still emit the item they were given (tokio-style) next to them.

mod adapter;
mod errors;
mod functor;
mod paths;
mod pattern;
pub mod registry;
mod transformer;
mod types;

pub use adapter::block_adapter;
pub use functor::patch_functor;
pub use paths::{CratePath, RegistryPaths};
pub use pattern::Pattern;
pub use registry::register_families;
pub use transformer::derive_cached_transformer;
