//! The arguments of `#[block_adapter(..)]` and `#[patch_functor(..)]`:
//! `pattern = Pattern_N`, `crate = path` and, for a functor, `wrapper = Name`.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;

use crate::errors::Errors;
use crate::paths::CratePath;
use crate::pattern::Pattern;

/// The parsed arguments; whatever could not be parsed is `None` and recorded in the errors.
#[derive(Default)]
pub(crate) struct MacroArgs {
    /// `pattern = Pattern_N`.
    pub pattern: Option<Pattern>,
    /// `crate = path`: the facade's path.
    pub krate: Option<syn::Path>,
    /// `wrapper = Name` (patch functors).
    pub wrapper: Option<syn::Ident>,
}

impl MacroArgs {
    /// Parses `args` of the attribute `#[name(..)]`, which accepts the keys `keys`.
    pub(crate) fn parse(args: TokenStream, name: &str, keys: &[&str], errors: &mut Errors) -> Self {
        let mut out = Self::default();
        let parser = syn::meta::parser(|meta| out.parse_one(&meta, name, keys));
        errors.ok(parser.parse2(args));
        if out.pattern.is_none() && errors.is_empty() {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!("`#[{name}]` needs the block's forward pattern: `#[{name}(pattern = Pattern_1)]`"),
            ));
        }
        out
    }

    fn parse_one(&mut self, meta: &ParseNestedMeta<'_>, name: &str, keys: &[&str]) -> syn::Result<()> {
        let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
        if !keys.contains(&key.as_str()) {
            let expected: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            return Err(meta.error(format!(
                "unknown `#[{name}]` argument; expected {}",
                expected.join(", ")
            )));
        }
        let duplicate = || meta.error(format!("`{key}` is given twice"));
        match key.as_str() {
            "pattern" => {
                let path: syn::Path = meta.value()?.parse()?;
                let pattern = Pattern::parse(&path)?;
                if self.pattern.replace(pattern).is_some() {
                    return Err(duplicate());
                }
            }
            "crate" => {
                let path = meta.value()?.call(syn::Path::parse_mod_style)?;
                if self.krate.replace(path).is_some() {
                    return Err(duplicate());
                }
            }
            _ => {
                let ident: syn::Ident = meta.value()?.parse()?;
                if self.wrapper.replace(ident).is_some() {
                    return Err(duplicate());
                }
            }
        }
        Ok(())
    }

    /// The paths generated code uses: `crate = ..` or the resolved default.
    pub(crate) fn paths(&self, default: impl FnOnce() -> syn::Result<CratePath>) -> syn::Result<CratePath> {
        match &self.krate {
            Some(path) => Ok(CratePath::facade(path)),
            None => default(),
        }
    }
}
