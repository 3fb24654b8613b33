//! `register_families!("registry.yaml")`: a crate's family list, turned into `inventory`
//! registrations at compile time.
//!
//! [`parse`] reads and validates the YAML (every error names the entry, the key and the line);
//! [`expand`] generates one `inventory::submit!` of a runtime `FamilyEntry` per entry, with the
//! compile-time checks rustc performs: the model type and config constructors must exist, and
//! the declared block lists must equal the model's `StaticBlockLists::BLOCK_LISTS`.

mod expand;
mod parse;

use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;

pub use expand::expand;
pub use parse::{BlockListSpec, CfgSpec, Family, Registry, SchedulerSpec, parse};

use crate::paths::RegistryPaths;

/// Entry point of the `register_families!` macro: `input` is a string literal, the YAML's path
/// relative to `manifest_dir` (the invoking crate's `CARGO_MANIFEST_DIR`), or `yaml = "..."`
/// with the YAML inline. Errors become `compile_error!`s.
pub fn register_families(
    input: TokenStream,
    manifest_dir: Option<PathBuf>,
    paths: impl FnOnce() -> syn::Result<RegistryPaths>,
) -> TokenStream {
    match try_register(input, manifest_dir, paths) {
        Ok(tokens) => tokens,
        Err(e) => e.into_compile_error(),
    }
}

/// The macro's input: a file path, or `yaml = "..."` inline (for tests and examples).
enum Input {
    File(syn::LitStr),
    Inline(syn::LitStr),
}

impl syn::parse::Parse for Input {
    fn parse(input: syn::parse::ParseStream) -> syn::Result<Self> {
        if input.peek(syn::LitStr) {
            return Ok(Self::File(input.parse()?));
        }
        let key: syn::Ident = input.parse()?;
        if key != "yaml" {
            return Err(syn::Error::new(key.span(), "expected a path or `yaml = \"...\"`"));
        }
        input.parse::<syn::Token![=]>()?;
        Ok(Self::Inline(input.parse()?))
    }
}

fn try_register(
    input: TokenStream,
    manifest_dir: Option<PathBuf>,
    paths: impl FnOnce() -> syn::Result<RegistryPaths>,
) -> syn::Result<TokenStream> {
    let input: Input = syn::parse2(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected the path of a registry YAML file, relative to the crate's Cargo.toml \
             (`register_families!(\"registry.yaml\")`), or `yaml = \"...\"`",
        )
    })?;
    let (lit, text, path, label) = match input {
        Input::Inline(lit) => (lit.clone(), lit.value(), None, "registry YAML".to_owned()),
        Input::File(lit) => {
            let dir = manifest_dir.ok_or_else(|| {
                syn::Error::new(lit.span(), "CARGO_MANIFEST_DIR is not set; build with cargo")
            })?;
            let path = dir.join(lit.value());
            let text = std::fs::read_to_string(&path)
                .map_err(|e| syn::Error::new(lit.span(), format!("cannot read {}: {e}", path.display())))?;
            (lit.clone(), text, Some(path), file_label(&lit.value()))
        }
    };
    let registry = parse(&text, &label).map_err(|msg| syn::Error::new(lit.span(), msg))?;
    Ok(expand(&registry, path.as_deref(), &paths()?))
}

fn file_label(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned())
}
