//! `#[block_adapter(pattern = Pattern_N)]` on the `impl` that holds a block's `forward`: keeps
//! the impl and generates the block's `CachedBlock` impl (and its `Args` struct).

pub(crate) mod args;
pub(crate) mod expand;
pub(crate) mod signature;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ImplItem, ItemImpl, Type};

use crate::errors::Errors;
use crate::paths::CratePath;
use crate::types;
use args::MacroArgs;
use expand::{Callee, Target};
use signature::Leading;

const NAME: &str = "block_adapter";
const METHOD: &str = "forward";

/// Expands `#[block_adapter(args)] item`. Never fails: on a misfit it emits the impl as written
/// (less the `#[block_index]` markers), the errors, and a stand-in `CachedBlock` impl and
/// `Args` struct (tokio's `#[tokio::main]` and thiserror do the same), so the rest of the crate
/// still compiles and only the misfit is reported.
pub fn block_adapter(
    args: TokenStream,
    item: TokenStream,
    default_paths: impl FnOnce() -> syn::Result<CratePath>,
) -> TokenStream {
    let mut errors = Errors::default();
    let args = MacroArgs::parse(args, NAME, &["pattern", "crate"], &mut errors);
    let mut item = match syn::parse2::<ItemImpl>(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &item,
                "`#[block_adapter]` goes on the `impl` block that holds the block's `fn forward`",
            );
            let error = error.into_compile_error();
            return quote!(#item #error);
        }
    };
    let generated = generate(&mut item, &args, default_paths, &mut errors);
    let tokens = match errors.finish(()) {
        Ok(()) => generated.unwrap_or_default(),
        Err(e) => {
            let mut tokens = e.into_compile_error();
            tokens.extend(generated);
            tokens
        }
    };
    quote!(#item #tokens)
}

/// The generated items when `errors` stays empty, else the stand-in (when the block's type and
/// a pattern are known).
fn generate(
    item: &mut ItemImpl,
    args: &MacroArgs,
    default_paths: impl FnOnce() -> syn::Result<CratePath>,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let generic = !item.generics.params.is_empty();
    if generic {
        errors.spanned(
            &item.generics,
            "`#[block_adapter]` does not support generic blocks: put it on an impl of a concrete \
             block type",
        );
    }
    let name = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    if name.is_none() {
        errors.spanned(&item.self_ty, "`#[block_adapter]` needs a named block type here");
    }
    let forward = item.items.iter_mut().find_map(|i| match i {
        ImplItem::Fn(f) if f.sig.ident == METHOD => Some(f),
        _ => None,
    });
    let Some(forward) = forward else {
        errors.spanned(
            &item.self_ty,
            format!(
                "no `fn forward` in this impl: `#[block_adapter]` goes on the impl that holds \
                 the block's `fn forward(&self, hidden: &Tensor, ..)`{}",
                item.trait_
                    .as_ref()
                    .map(|(t, _)| format!(" (this impl is for `{}`)", types::display(t)))
                    .unwrap_or_default()
            ),
        );
        return None;
    };
    let sig = forward.sig.clone();
    signature::strip_index_attrs(&mut forward.sig);
    let paths = errors.ok(args.paths(default_paths))?;
    let callee = match &item.trait_ {
        Some((path, _)) => Callee::TraitMethod(path.clone(), sig.ident.clone()),
        None => Callee::Method(sig.ident.clone()),
    };
    let target = Target {
        self_ty: (*item.self_ty).clone(),
        name: name?,
        callee,
        macro_name: "#[block_adapter]",
    };
    let Some(pattern) = args.pattern else {
        // The pattern argument is missing or wrong (already reported): stand in with the
        // pattern the signature fits, if any.
        let pattern = signature::fitting_pattern(&sig, Leading::SelfRef)?;
        let block = signature::analyze(&sig, pattern, Leading::SelfRef, &mut Errors::default());
        return (!generic).then(|| expand::stand_in(&block, &target, &paths));
    };
    let block = signature::analyze(&sig, pattern, Leading::SelfRef, errors);
    if !errors.is_empty() {
        // A generic impl's stand-in would be one more error.
        return (!generic).then(|| expand::stand_in(&block, &target, &paths));
    }
    Some(expand::expand(&block, &target, &paths))
}
