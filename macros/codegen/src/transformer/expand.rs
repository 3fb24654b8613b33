//! Generate the `CachedTransformer` impl from a validated `Plan`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::paths::CratePath;
use crate::transformer::attrs::Modify;
use crate::transformer::model::{Entry, EntryKind, Plan};

/// The impl, its `StaticBlockLists` (when every list's block type is written out), plus a
/// compile-time check that chained lists share a pattern.
pub(crate) fn expand(input: &DeriveInput, plan: &Plan, paths: &CratePath) -> TokenStream {
    let rt = paths.rt();
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let lists = cached_lists(plan);
    let cfg = plan.container.cfg.as_ref().map(|layout| {
        quote! {
            fn cfg_layout(&self) -> CfgLayout {
                CfgLayout::#layout
            }
        }
    });
    let modifiers = default_modifiers(plan);
    let checks: Vec<_> = plan.entries.iter().filter_map(pattern_check).collect();
    let statics = static_block_lists(input, plan);
    let mut imports = vec![quote!(CachedListInfo), quote!(CachedTransformer)];
    if !checks.is_empty() || statics.is_some() {
        imports.push(quote!(CachedBlock));
    }
    if statics.is_some() {
        imports.extend([quote!(ForwardPattern), quote!(StaticBlockLists)]);
    }
    if cfg.is_some() {
        imports.push(quote!(CfgLayout));
    }
    if modifiers.is_some() {
        imports.push(quote!(ParamsModifier));
    }
    if plan
        .entries
        .iter()
        .any(|e| e.modify.as_ref().is_some_and(|m| !m.cache.is_empty()))
    {
        imports.push(quote!(CacheConfigPatch));
    }
    // In an anonymous const, so the imports that keep it readable stay private to it.
    quote! {
        const _: () = {
            use #rt::{#(#imports),*};

            #[automatically_derived]
            impl #impl_generics CachedTransformer for #name #ty_generics #where_clause {
                #lists
                #cfg
                #modifiers
            }
            #statics
            #(#checks)*
        };
    }
}

/// `impl StaticBlockLists`: the cached lists' names and patterns as constants, which
/// `register_families!` checks a `registry.yaml` entry against (or takes, when the entry leaves
/// them out), so a model declares its lists once, as its `BlockList` fields. `None` when a
/// pattern is not known from the tokens: a nested transformer (its lists' names are built at
/// run time) or a list field not written as `BlockList<Block>`; such a model implements the
/// trait by hand.
fn static_block_lists(input: &DeriveInput, plan: &Plan) -> Option<TokenStream> {
    let blocks = plan
        .entries
        .iter()
        .map(|e| e.block.as_ref())
        .collect::<Option<Vec<_>>>()?;
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    // A generic struct's lists may hold its parameters: the impl needs them to be blocks.
    let mut where_clause = where_clause.cloned();
    if !input.generics.params.is_empty() {
        let predicates = &mut where_clause
            .get_or_insert_with(|| syn::parse_quote!(where))
            .predicates;
        for block in &blocks {
            predicates.push(syn::parse_quote!(#block: CachedBlock));
        }
    }
    let lists = plan.entries.iter().zip(&blocks).map(|(e, block)| {
        let list = &e.name;
        quote!((#list, <#block as CachedBlock>::PATTERN))
    });
    Some(quote! {
        #[automatically_derived]
        impl #impl_generics StaticBlockLists for #name #ty_generics #where_clause {
            const BLOCK_LISTS: &'static [(&'static str, ForwardPattern)] = &[#(#lists),*];
        }
    })
}

/// A stand-in impl emitted next to the errors, so uses of the model do not add errors of their
/// own (thiserror's fallback).
pub(crate) fn fallback(input: &DeriveInput, paths: &CratePath) -> TokenStream {
    let rt = paths.rt();
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics #rt::CachedTransformer for #name #ty_generics #where_clause {
            fn cached_lists(&self) -> Vec<#rt::CachedListInfo<'_>> {
                Vec::new()
            }
        }
    }
}

fn cached_lists(plan: &Plan) -> TokenStream {
    let info = |e: &Entry| {
        let (field, name) = (&e.field, &e.name);
        let of = quote!(CachedListInfo::of(#name, &self.#field));
        match &e.kind {
            EntryKind::Chain { next, .. } => quote! {
                CachedListInfo {
                    len: self.#field.len() + self.#next.len(),
                    ..#of
                }
            },
            _ => of,
        }
    };
    let body = if plan.entries.iter().all(|e| !matches!(e.kind, EntryKind::Nested)) {
        let infos = plan.entries.iter().map(info);
        quote!(Vec::from([#(#infos),*]))
    } else {
        let steps = plan.entries.iter().map(|e| match e.kind {
            EntryKind::Nested => {
                let field = &e.field;
                let prefix = format!("{}.{{}}", e.name);
                quote! {
                    lists.extend(
                        CachedTransformer::cached_lists(&self.#field)
                            .into_iter()
                            .map(|mut list| {
                                list.name = format!(#prefix, list.name);
                                list
                            }),
                    );
                }
            }
            _ => {
                let info = info(e);
                quote!(lists.push(#info);)
            }
        });
        quote! {
            let mut lists = Vec::new();
            #(#steps)*
            lists
        }
    };
    quote! {
        fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
            #body
        }
    }
}

fn default_modifiers(plan: &Plan) -> Option<TokenStream> {
    let nested = plan.entries.iter().any(|e| matches!(e.kind, EntryKind::Nested));
    if !nested && plan.entries.iter().all(|e| e.modify.is_none()) {
        return None;
    }
    let body = if nested {
        let steps = plan.entries.iter().map(nested_modifiers);
        quote! {
            let mut modifiers = Vec::new();
            #(#steps)*
            modifiers
        }
    } else {
        let modifiers = plan.entries.iter().filter_map(|e| {
            let name = &e.name;
            e.modify.as_ref().map(|m| modifier(m, quote!(#name)))
        });
        quote!(Vec::from([#(#modifiers),*]))
    };
    Some(quote! {
        fn default_modifiers(&self) -> Vec<ParamsModifier> {
            #body
        }
    })
}

/// The modifiers one entry adds when the struct has nested transformers.
fn nested_modifiers(e: &Entry) -> TokenStream {
    let (field, name) = (&e.field, &e.name);
    match (&e.kind, &e.modify) {
        (EntryKind::Nested, modify) => {
            let prefix = format!("{name}.{{}}");
            let inner = quote! {
                modifiers.extend(
                    CachedTransformer::default_modifiers(&self.#field)
                        .into_iter()
                        .map(|mut modifier| {
                            modifier.list = format!(#prefix, modifier.list);
                            modifier
                        }),
                );
            };
            let outer = modify.as_ref().map(|m| {
                let modifier = modifier(m, quote!(format!(#prefix, list.name)));
                quote! {
                    modifiers.extend(
                        CachedTransformer::cached_lists(&self.#field)
                            .into_iter()
                            .map(|list| #modifier),
                    );
                }
            });
            quote!(#inner #outer)
        }
        (_, Some(m)) => {
            let modifier = modifier(m, quote!(#name));
            quote!(modifiers.push(#modifier);)
        }
        (_, None) => TokenStream::new(),
    }
}

/// `ParamsModifier { cache: CacheConfigPatch { .. }, ..ParamsModifier::new(list) }`.
fn modifier(m: &Modify, list: TokenStream) -> TokenStream {
    let cache = (!m.cache.is_empty()).then(|| {
        let fields = m.cache.iter().map(|(k, v)| quote!(#k: Some(#v)));
        quote! {
            cache: CacheConfigPatch {
                #(#fields,)*
                ..Default::default()
            },
        }
    });
    let calibrator = m.calibrator.as_ref().map(|c| quote!(calibrator: Some(#c),));
    quote! {
        ParamsModifier {
            #cache
            #calibrator
            ..ParamsModifier::new(#list)
        }
    }
}

/// `const _: () = assert!(..)` that a chain's two block types have the same pattern.
fn pattern_check(e: &Entry) -> Option<TokenStream> {
    let EntryKind::Chain {
        next,
        blocks: Some(blocks),
    } = &e.kind
    else {
        return None;
    };
    let (a, b) = &**blocks;
    let message = format!(
        "`{}` and `{next}` are chained into one cached list, so their blocks must have the same \
         forward pattern",
        e.field
    );
    Some(quote! {
        const _: () = {
            let same = <#a as CachedBlock>::PATTERN as u8 == <#b as CachedBlock>::PATTERN as u8;
            assert!(same, #message);
        };
    })
}
