//! Where generated code finds the runtime and Candle.
//!
//! Users depend on the facade `cachedit` only, so generated code names everything through its
//! hidden `__private` module (`::cachedit::__private::runtime::CachedBlock`), serde-style. Crates
//! of this workspace below the facade (the adapters) cannot depend on it, so when a crate has
//! `cachedit-runtime` but no `cachedit` among its dependencies the paths are
//! `::cachedit_runtime::...` and `::candle_core::...`. The crate's `Cargo.toml` decides
//! (`proc-macro-crate`, which also follows renamed dependencies); a `crate = path` argument
//! overrides it with the path of a facade (`crate = ::my_reexport::cachedit`).

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};

/// The paths of the runtime crate and of `candle_core` as generated code spells them.
#[derive(Debug, Clone)]
pub struct CratePath {
    runtime: TokenStream,
    candle: TokenStream,
}

impl CratePath {
    /// Through the facade at `root` (`::cachedit`): `root::__private::{runtime, candle_core}`.
    pub fn facade(root: impl ToTokens) -> Self {
        Self {
            runtime: quote!(#root::__private::runtime),
            candle: quote!(#root::__private::candle_core),
        }
    }

    /// The default facade path, `::cachedit`, as used by snapshot tests.
    pub fn cachedit() -> Self {
        Self::facade(quote!(::cachedit))
    }

    /// Directly through the runtime and Candle crates (crates below the facade).
    pub fn runtime(runtime: impl ToTokens, candle: impl ToTokens) -> Self {
        Self {
            runtime: runtime.into_token_stream(),
            candle: candle.into_token_stream(),
        }
    }

    /// Resolves the paths from the `Cargo.toml` of the crate being compiled: the facade if it
    /// is a dependency (or the crate itself, which names itself `cachedit` with
    /// `extern crate self as cachedit`), else `cachedit-runtime` and `candle-core`.
    pub fn from_manifest() -> syn::Result<Self> {
        if let Ok(found) = crate_name("cachedit") {
            return Ok(Self::facade(absolute(found, "cachedit")));
        }
        let missing = || {
            syn::Error::new(
                Span::call_site(),
                "cachedit's macros need the `cachedit` crate: add it to [dependencies] \
                 (or pass `crate = path::to::cachedit`)",
            )
        };
        let runtime = crate_name("cachedit-runtime").map_err(|_| missing())?;
        let candle = crate_name("candle-core").map_err(|_| missing())?;
        Ok(Self::runtime(
            absolute(runtime, "cachedit_runtime"),
            absolute(candle, "candle_core"),
        ))
    }

    /// The runtime crate (`::cachedit::__private::runtime`).
    pub(crate) fn rt(&self) -> &TokenStream {
        &self.runtime
    }

    /// The `candle_core` crate.
    pub(crate) fn candle(&self) -> &TokenStream {
        &self.candle
    }
}

fn absolute(found: FoundCrate, own_name: &str) -> TokenStream {
    let name = match found {
        FoundCrate::Itself => own_name.to_owned(),
        FoundCrate::Name(name) => name,
    };
    let ident = syn::Ident::new(&name, Span::call_site());
    quote!(::#ident)
}

/// Where the registrations of `register_families!` find the runtime: `FamilyEntry`,
/// `inventory`, and the registry contract (`FamilyModel`, `build_family`) its pipeline layer
/// holds.
#[derive(Debug, Clone)]
pub struct RegistryPaths {
    /// The runtime crate.
    pub runtime: TokenStream,
}

impl RegistryPaths {
    /// Through the facade at `root`: `root::__private::runtime`.
    pub fn facade(root: impl ToTokens) -> Self {
        Self {
            runtime: quote!(#root::__private::runtime),
        }
    }

    /// The default facade path, `::cachedit`, as used by snapshot tests.
    pub fn cachedit() -> Self {
        Self::facade(quote!(::cachedit))
    }

    /// Resolves the paths from the invoking crate's `Cargo.toml`: the facade if it is a
    /// dependency, else `cachedit-runtime`.
    pub fn from_manifest() -> syn::Result<Self> {
        if let Ok(found) = crate_name("cachedit") {
            return Ok(Self::facade(absolute(found, "cachedit")));
        }
        let runtime = crate_name("cachedit-runtime").map_err(|_| {
            syn::Error::new(
                Span::call_site(),
                "register_families! needs the `cachedit` crate: add it to [dependencies]",
            )
        })?;
        Ok(Self {
            runtime: absolute(runtime, "cachedit_runtime"),
        })
    }
}
