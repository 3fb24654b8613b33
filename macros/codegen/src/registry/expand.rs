//! Generating the registrations: per entry, a `const _: () = { .. };` holding the model and
//! config checks, the build function and the `inventory::submit!`.

use std::path::Path;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::parse::{CfgSpec, Family, Registry, SchedulerSpec};
use crate::paths::RegistryPaths;

/// The registrations of every entry of `registry`. With `file`, also an `include_str!` of it so
/// cargo rebuilds the crate when the YAML changes.
pub fn expand(registry: &Registry, file: Option<&Path>, paths: &RegistryPaths) -> TokenStream {
    let track = file.map(|f| {
        let f = f.to_string_lossy();
        quote!(
            const _: &str = include_str!(#f);
        )
    });
    let entries = registry
        .families
        .iter()
        .enumerate()
        .map(|(i, f)| entry(i, f, paths));
    quote! {
        #track
        #(#entries)*
    }
}

fn entry(index: usize, f: &Family, paths: &RegistryPaths) -> TokenStream {
    let rt = &paths.runtime;
    let name = &f.name;
    let model = &f.model;
    let model_str = quote!(#model).to_string().replace(' ', "");
    // Item names that say where a rustc error comes from (a misspelt type or constructor).
    let model_alias = format_ident!("registry_yaml_entry_{}_model", name);
    let tiny_fn = format_ident!("registry_yaml_entry_{}_tiny", name);
    let tiny = &f.tiny;
    let config_fns: Vec<_> = f
        .configs
        .iter()
        .enumerate()
        .map(|(i, (_, ctor))| format_ident!("registry_yaml_entry_{}_configs_{}_{}", name, i, ctor))
        .collect();
    let config_ctors = f.configs.iter().map(|(_, c)| c);
    let config_names: Vec<_> = f.configs.iter().map(|(n, _)| n).collect();
    let lists = f.block_lists.iter().map(|l| {
        let list = &l.name;
        let pattern = format_ident!("Pattern_{}", l.pattern);
        quote!(#rt::registry::BlockListDecl { name: #list, pattern: #rt::ForwardPattern::#pattern })
    });
    let declared = f
        .block_lists
        .iter()
        .map(|l| format!("{}: Pattern_{}", l.name, l.pattern))
        .collect::<Vec<_>>()
        .join(", ");
    let mismatch = format!(
        "registry.yaml entry `{name}`: `block_lists` [{declared}] disagree with the cached lists \
         of `{model_str}` (its `StaticBlockLists::BLOCK_LISTS`): same names, patterns and order needed"
    );
    let cfg = match f.cfg {
        CfgSpec::None => quote!(None),
        CfgSpec::Batched => quote!(Batched),
        CfgSpec::Separate => quote!(Separate),
    };
    let scheduler = match f.scheduler {
        SchedulerSpec::FlowMatchEuler => quote!(FlowMatchEuler),
        SchedulerSpec::Ddim => quote!(Ddim),
    };
    let defaults = &f.defaults_json;
    quote! {
        const _: () = {
            #[allow(non_camel_case_types)]
            type #model_alias = crate::#model;
            type Config = <#model_alias as #rt::registry::FamilyModel>::Config;

            #[allow(non_snake_case)]
            fn #tiny_fn() -> Config {
                Config::#tiny()
            }
            #(
                #[allow(non_snake_case)]
                fn #config_fns() -> Config {
                    Config::#config_ctors()
                }
            )*

            const BLOCK_LISTS: &[#rt::registry::BlockListDecl] = &[#(#lists),*];
            const _: () = ::core::assert!(
                #rt::registry::block_lists_match(
                    <#model_alias as #rt::registry::StaticBlockLists>::BLOCK_LISTS,
                    BLOCK_LISTS,
                ),
                #mismatch
            );

            fn build(request: &#rt::registry::BuildRequest) -> #rt::registry::BuildResult {
                #rt::registry::build_family::<#model_alias>(
                    #name,
                    request,
                    #tiny_fn,
                    &[#((#config_names, #config_fns as fn() -> Config)),*],
                )
            }

            #rt::__inventory::submit! {
                #rt::registry::FamilyEntry {
                    name: #name,
                    model: #model_str,
                    source_crate: ::core::env!("CARGO_PKG_NAME"),
                    index: #index,
                    block_lists: BLOCK_LISTS,
                    cfg: #rt::CfgLayout::#cfg,
                    scheduler: #rt::registry::SchedulerKind::#scheduler,
                    defaults_json: #defaults,
                    configs: &[#(#config_names),*],
                    build,
                }
            }
        };
    }
}
