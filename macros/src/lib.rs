//! Proc macros of cachedit: thin shims over `cachedit-codegen`, where all parsing, validation
//! and generation live (and are snapshot-tested). Use them through the `cachedit` crate.
//!
//! - `#[block_adapter(pattern = Pattern_N)]` on the `impl` holding a block's `fn forward`
//!   generates its `CachedBlock` impl and its `<Block>Args` struct;
//! - `#[patch_functor(pattern = Pattern_N, wrapper = Name)]` on a function that runs one block
//!   with the per-block logic of its model's loop generates a cacheable newtype `Name`;
//! - `#[derive(CachedTransformer)]` with `#[cached(..)]` options lists a model's block lists.
//!
//! Generated code names the runtime through `::cachedit::__private` when the crate depends on
//! `cachedit`, else through `::cachedit_runtime` and `::candle_core` (crates below the facade,
//! such as the adapters); `crate = path` overrides it.

use cachedit_codegen::CratePath;
use proc_macro::TokenStream;

/// Makes a block cacheable: on the `impl` that holds its `fn forward`, generates
/// `impl CachedBlock` and, if `forward` takes arguments besides the streams, a
/// `pub struct <Block>Args<'a>` with one field per argument.
///
/// `forward` takes `&self`, then the streams of the pattern (`H` for Patterns 3-5; `H, E` for
/// Patterns 0-2, each as `&Tensor` or `Tensor`, `E` also as an `Option`), then its other
/// arguments in any order; a `#[block_index] index: usize` parameter receives the block's
/// position in its list. It returns what the pattern returns (`Result<Tensor>` or
/// `Result<(Tensor, Tensor)>` in the pattern's order; an encoder output may be
/// `Option<Tensor>`). Anything else is a compile error at the offending parameter or type.
///
/// ```ignore
/// #[block_adapter(pattern = Pattern_1)]
/// impl JointBlock {
///     pub fn forward(&self, hidden: &Tensor, encoder: &Tensor, temb: &Tensor)
///         -> Result<(Tensor, Tensor)> { .. }
/// }
/// // generates `pub struct JointBlockArgs<'a> { pub temb: &'a Tensor }` and
/// // `impl CachedBlock for JointBlock`: `blocks.forward(streams, &JointBlockArgs { temb: &t })`
/// ```
#[proc_macro_attribute]
pub fn block_adapter(args: TokenStream, item: TokenStream) -> TokenStream {
    cachedit_codegen::block_adapter(args.into(), item.into(), CratePath::from_manifest).into()
}

/// Adapts a block whose signature or loop-body logic does not fit a pattern: on a function
/// `fn f(block: &Block, <streams of the pattern>, ..) -> <return of the pattern>` that runs one
/// block together with the per-block logic of its model's loop (per-layer inputs, modulation
/// slices, skip stacks, post-block hooks; `#[block_index]` gives the index), generates
/// `struct Name(Block)` (from `wrapper = Name`) implementing `CachedBlock` by calling `f`.
///
/// ```ignore
/// #[patch_functor(pattern = Pattern_3, wrapper = ConsisIdBlock)]
/// fn consisid_block(block: &CogVideoBlock, hidden: &Tensor, #[block_index] i: usize,
///                   face: &FaceHook) -> Result<Tensor> {
///     let hidden = block.forward(hidden)?;
///     face.after_block(i, hidden)
/// }
/// ```
#[proc_macro_attribute]
pub fn patch_functor(args: TokenStream, item: TokenStream) -> TokenStream {
    cachedit_codegen::patch_functor(args.into(), item.into(), CratePath::from_manifest).into()
}

/// Implements `CachedTransformer`: every `BlockList<_>` field in declaration order is a cached
/// list named after the field.
///
/// Struct options `#[cached(..)]`: `cfg = None | Batched | Separate` (the CFG layout),
/// `lists(a, b)` (cache exactly these fields, in this order), `crate = path`. Field options:
/// `skip`; `chain = next` (this field and `next` are one cached list, run with
/// `forward_chained`); `nested` (a field that is itself a `CachedTransformer`: its lists are
/// included as `field.list`); `name = "..."` (the list's name or the nested prefix);
/// `modify(fn_compute_blocks = 1, .., calibrator = expr)` (default overrides for the list,
/// applied by `enable_cache` unless the caller passes its own).
///
/// It also implements `StaticBlockLists` (the lists' names and patterns as constants, which
/// `register_families!` checks a `registry.yaml` entry against, or takes when the entry has no
/// `block_lists`), so the lists are declared once, as the `BlockList<Block>` fields. Not for a
/// struct with a `nested` field or a list field written other than `BlockList<Block>` (an
/// alias): such a model implements `StaticBlockLists` by hand if it is registered.
#[proc_macro_derive(CachedTransformer, attributes(cached))]
pub fn derive_cached_transformer(input: TokenStream) -> TokenStream {
    cachedit_codegen::derive_cached_transformer(input.into(), CratePath::from_manifest).into()
}

/// Registers the families of a `registry.yaml` (path relative to the crate's `Cargo.toml`):
/// one `inventory` registration of a runtime `FamilyEntry` per entry, listed by
/// `supported_pipelines()` and found by `lookup()`. Invoke once, at the crate root.
///
/// Checked at compile time, with messages naming the entry and the key: the YAML's schema
/// (unknown keys, patterns, CFG layouts, schedulers, duplicate keys or names), that the model
/// type and its config constructors exist, and that the declared `block_lists` equal the
/// model's `StaticBlockLists::BLOCK_LISTS` (an entry without `block_lists` takes the model's).
/// The crate is rebuilt when the YAML changes.
///
/// It also generates `pub fn link()` at the crate root. A program only contains the crates it
/// names, so when a library crate registers families, every binary or test that looks them up
/// without naming anything else of that crate calls `that_crate::link()` once first; without
/// it `lookup` answers "no registered family matches" (and says so).
///
/// ```ignore
/// // in the library crate `my_families`:
/// cachedit::register_families!("registry.yaml");
/// // in the binary:
/// my_families::link();
/// let family = cachedit::lookup("MyDiTPipeline")?;
/// ```
#[proc_macro]
pub fn register_families(input: TokenStream) -> TokenStream {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from);
    cachedit_codegen::register_families(input.into(), dir, cachedit_codegen::RegistryPaths::from_manifest)
        .into()
}
