//! `#[derive(CachedTransformer)]`: enumerates a model's cached lists for `enable_cache`.
//!
//! Auto mode caches every `BlockList<_>` field in declaration order (plus any field with list
//! options); `#[cached(lists(a, b))]` names them explicitly instead. Field options chain two
//! fields into one cached list (FLUX.1), include a nested transformer's lists under a prefix
//! (Wan 2.2's `transformer` and `transformer_2`), rename or skip a list, and declare default
//! per-list overrides; the struct option `cfg = ..` declares the model's CFG layout. The lists'
//! names and patterns also become the model's `StaticBlockLists` constants, for the registry.

mod attrs;
mod expand;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::paths::CratePath;

/// Expands `#[derive(CachedTransformer)]` on `input`. On error it emits the errors and a
/// stand-in impl with no lists, so code using the model reports nothing more.
pub fn derive_cached_transformer(
    input: TokenStream,
    default_paths: impl FnOnce() -> syn::Result<CratePath>,
) -> TokenStream {
    let input = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => input,
        Err(e) => return e.into_compile_error(),
    };
    let paths = explicit_crate(&input).map_or_else(default_paths, Ok);
    match (model::plan(&input), paths) {
        (Ok(plan), Ok(paths)) => expand::expand(&input, &plan, &paths),
        (Err(e), Ok(paths)) => {
            let mut tokens = e.into_compile_error();
            tokens.extend(expand::fallback(&input, &paths));
            tokens
        }
        (Err(mut e), Err(p)) => {
            e.combine(p);
            e.into_compile_error()
        }
        (Ok(_), Err(p)) => p.into_compile_error(),
    }
}

/// `#[cached(crate = path)]`, read on its own so that it applies even when other options are
/// wrong (their errors are reported by `model::plan`).
fn explicit_crate(input: &DeriveInput) -> Option<CratePath> {
    let mut errors = crate::errors::Errors::default();
    attrs::container(&input.attrs, &mut errors)
        .krate
        .map(CratePath::facade)
}
