//! Snapshots of what the macros generate, formatted with prettyplease: one per pattern, the
//! argument and return forms, the derive's modes, and a patch functor. Review a change with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test -p cachedit-codegen`).

#![allow(clippy::panic)] // tests fail by panicking

use cachedit_codegen::{CratePath, block_adapter, derive_cached_transformer, patch_functor};
use proc_macro2::TokenStream;
use quote::quote;

fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens.clone()).unwrap_or_else(|e| panic!("{e}: {tokens}"));
    prettyplease::unparse(&file)
}

fn adapter(args: TokenStream, item: TokenStream) -> String {
    pretty(block_adapter(args, item, || Ok(CratePath::cachedit())))
}

fn derive(input: TokenStream) -> String {
    pretty(derive_cached_transformer(input, || Ok(CratePath::cachedit())))
}

// ---- #[block_adapter]: the six patterns ----

#[test]
fn pattern_0() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_0),
        quote! {
            impl CogVideoXBlock {
                pub fn forward(
                    &self,
                    hidden_states: &Tensor,
                    encoder_hidden_states: &Tensor,
                    temb: &Tensor,
                    image_rotary_emb: Option<&Tensor>,
                ) -> Result<(Tensor, Tensor)> {
                    todo!()
                }
            }
        }
    ));
}

#[test]
fn pattern_1() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_1),
        quote! {
            impl FluxTransformerBlock {
                pub fn new(vb: VarBuilder) -> Result<Self> {
                    todo!()
                }

                pub fn forward(
                    &self,
                    hidden_states: &Tensor,
                    encoder_hidden_states: &Tensor,
                    temb: &Tensor,
                    image_rotary_emb: &(Tensor, Tensor),
                ) -> Result<(Tensor, Tensor)> {
                    todo!()
                }
            }
        }
    ));
}

#[test]
fn pattern_2() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_2),
        quote! {
            impl WanTransformerBlock {
                pub fn forward(
                    &self,
                    hidden_states: &Tensor,
                    encoder_hidden_states: &Tensor,
                    temb: &Tensor,
                    rotary_emb: &Tensor,
                ) -> Result<Tensor> {
                    todo!()
                }
            }
        }
    ));
}

#[test]
fn pattern_3_without_arguments() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_3),
        quote! {
            impl ShapEBlock {
                fn forward(&self, hidden_states: &Tensor) -> candle_core::Result<Tensor> {
                    todo!()
                }
            }
        }
    ));
}

#[test]
fn pattern_4() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_4),
        quote! {
            impl TextEmittingBlock {
                pub fn forward(&self, hidden_states: &Tensor, temb: &Tensor) -> Result<(Tensor, Tensor)> {
                    todo!()
                }
            }
        }
    ));
}

/// Owned and optional arguments: `Copy` ones are passed as they are, others cloned; `'a` only
/// where something borrows.
#[test]
fn pattern_5_owned_arguments() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_5),
        quote! {
            impl OwnedArgsBlock {
                pub fn forward(
                    &self,
                    hidden_states: Tensor,
                    causal: bool,
                    scale: f64,
                    kept: Vec<usize>,
                ) -> Result<(Tensor, Tensor)> {
                    todo!()
                }
            }
        }
    ));
}

// ---- #[block_adapter]: argument and return forms ----

/// SD3's last block has no context output: `(None, H)`.
#[test]
fn optional_encoder_output() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_1),
        quote! {
            impl JointTransformerBlock {
                pub fn forward(
                    &self,
                    hidden_states: &Tensor,
                    encoder_hidden_states: &Tensor,
                    temb: &Tensor,
                ) -> Result<(Option<Tensor>, Tensor)> {
                    todo!()
                }
            }
        }
    ));
}

/// HunyuanDiT-style: the encoder stream may be absent, taken as an `Option`.
#[test]
fn optional_encoder_input() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_2),
        quote! {
            impl CrossAttnBlock {
                pub fn forward(
                    &self,
                    hidden_states: &Tensor,
                    encoder_hidden_states: Option<&Tensor>,
                    temb: &Tensor,
                ) -> Result<Tensor> {
                    todo!()
                }
            }
        }
    ));
}

/// Chroma-style: the block slices its own modulation from a per-call tensor by its index.
#[test]
fn block_index() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_3),
        quote! {
            impl ChromaSingleTransformerBlock {
                pub fn forward(
                    &self,
                    hidden_states: &Tensor,
                    pooled_temb: &Tensor,
                    #[block_index] index: usize,
                    image_rotary_emb: &Tensor,
                    attention_mask: Option<&Tensor>,
                ) -> Result<Tensor> {
                    todo!()
                }
            }
        }
    ));
}

/// A block whose forward is `candle_nn::Module::forward`, and an infallible forward.
#[test]
fn trait_impl_and_infallible() {
    let module = adapter(
        quote!(pattern = Pattern_3),
        quote! {
            impl Module for MlpBlock {
                fn forward(&self, xs: &Tensor) -> Result<Tensor> {
                    todo!()
                }
            }
        },
    );
    let infallible = adapter(
        quote!(pattern = Pattern_0),
        quote! {
            impl SwapBlock {
                fn forward(&self, hidden: Tensor, encoder: Tensor) -> (Tensor, Tensor) {
                    (encoder, hidden)
                }
            }
        },
    );
    insta::assert_snapshot!(format!("{module}\n{infallible}"));
}

/// Below the facade (the adapters crate) generated code names the runtime and Candle directly.
#[test]
fn runtime_paths() {
    let out = block_adapter(
        quote!(pattern = Pattern_3),
        quote! {
            impl Block {
                fn forward(&self, hidden_states: &Tensor, temb: &Tensor) -> Result<Tensor> {
                    todo!()
                }
            }
        },
        || {
            Ok(CratePath::runtime(
                quote!(::cachedit_runtime),
                quote!(::candle_core),
            ))
        },
    );
    insta::assert_snapshot!(pretty(out));
}

/// A misfit emits the impl as written next to the errors (all of them), and a stand-in
/// `CachedBlock` impl so that uses of the block add no errors.
#[test]
fn misfit_keeps_the_impl() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_1),
        quote! {
            impl Block {
                fn forward(&self, hidden_states: &Tensor, #[block_index] i: usize) -> Result<Tensor> {
                    todo!()
                }
            }
        }
    ));
}

/// A misfit whose arguments could be read: the stand-in keeps the `Args` struct, so the literal
/// that passes them adds no error either.
#[test]
fn misfit_keeps_the_args() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_1),
        quote! {
            impl JointBlock {
                pub fn forward(&self, hidden: &Tensor, encoder: &Tensor, temb: &Tensor) -> Result<Tensor> {
                    todo!()
                }
            }
        }
    ));
}

/// Without a valid pattern argument, the stand-in takes the pattern the signature fits.
#[test]
fn misfit_without_pattern_stands_in_with_the_fitting_one() {
    insta::assert_snapshot!(adapter(
        quote!(pattern = Pattern_7),
        quote! {
            impl SingleBlock {
                pub fn forward(&self, hidden: &Tensor, temb: &Tensor) -> Result<Tensor> {
                    todo!()
                }
            }
        }
    ));
}

// ---- #[derive(CachedTransformer)] ----

/// Auto mode: every `BlockList` field in declaration order, other fields ignored.
#[test]
fn derive_auto() {
    insta::assert_snapshot!(derive(quote! {
        pub struct ChromaTransformer {
            x_embedder: Linear,
            transformer_blocks: BlockList<ChromaTransformerBlock>,
            single_transformer_blocks: cachedit::BlockList<ChromaSingleTransformerBlock>,
            #[cached(skip)]
            refiner: BlockList<RefinerBlock>,
            norm_out: LayerNorm,
        }
    }));
}

/// Manual mode: the lists named, reordered and renamed; CFG layout; per-list overrides.
#[test]
fn derive_manual() {
    insta::assert_snapshot!(derive(quote! {
        #[cached(lists(single_blocks, double_blocks), cfg = Separate)]
        pub struct Model {
            #[cached(name = "transformer_blocks", modify(fn_compute_blocks = 4, residual_diff_threshold = 0.12))]
            double_blocks: BlockList<DoubleBlock>,
            #[cached(modify(max_warmup_steps = 2, calibrator = CalibratorConfig::taylorseer(1)))]
            single_blocks: BlockList<SingleBlock>,
            extra_blocks: BlockList<ExtraBlock>,
        }
    }));
}

/// FLUX.1 as cache-dit caches it: both lists as one Pattern_1 list named `transformer_blocks`.
#[test]
fn derive_chained() {
    insta::assert_snapshot!(derive(quote! {
        pub struct FluxTransformer {
            #[cached(chain = single_transformer_blocks)]
            transformer_blocks: BlockList<FluxTransformerBlock>,
            single_transformer_blocks: BlockList<FluxSingleTransformerBlock>,
        }
    }));
}

/// Wan 2.2: two transformers in one pipeline, each with its own contexts and overrides.
#[test]
fn derive_nested() {
    insta::assert_snapshot!(derive(quote! {
        #[cached(cfg = Separate)]
        pub struct Wan22Transformers {
            #[cached(nested)]
            transformer: WanTransformer,
            #[cached(nested, modify(max_warmup_steps = 2))]
            transformer_2: Option<WanTransformer>,
        }
    }));
}

/// A generic model: the `StaticBlockLists` impl requires its lists' blocks to be blocks.
#[test]
fn derive_generic() {
    insta::assert_snapshot!(derive(quote! {
        pub struct Model<B> where B: Send {
            blocks: BlockList<B>,
            refiner: BlockList<RefinerBlock>,
        }
    }));
}

// ---- #[patch_functor] ----

/// HiDream's double blocks: each appends its own Llama layer to the text stream and trims it.
#[test]
fn patch_functor_hidream() {
    let out = patch_functor(
        quote!(pattern = Pattern_0, wrapper = HiDreamDoubleBlock),
        quote! {
            /// One HiDream double block with its loop body.
            pub fn hidream_double(
                block: &HiDreamImageTransformerBlock,
                hidden_states: &Tensor,
                encoder_hidden_states: &Tensor,
                #[block_index] index: usize,
                llama_layers: &[Tensor],
                temb: &Tensor,
            ) -> Result<(Tensor, Tensor)> {
                let text_len = encoder_hidden_states.dim(1)?;
                let context = Tensor::cat(&[encoder_hidden_states, &llama_layers[index]], 1)?;
                let (hidden, context) = block.forward(hidden_states, &context, temb)?;
                Ok((hidden, context.narrow(1, 0, text_len)?))
            }
        },
        || Ok(CratePath::cachedit()),
    );
    insta::assert_snapshot!(pretty(out));
}

/// A misfit still generates the wrapper, with a stand-in impl, so code using it adds no errors.
#[test]
fn functor_misfit_keeps_the_wrapper() {
    let out = patch_functor(
        quote!(pattern = Pattern_3, wrapper = Single),
        quote! {
            fn single(block: &Inner, hidden: &Tensor, #[block_index] index: u32, scale: f64) -> Result<Tensor> {
                todo!()
            }
        },
        || Ok(CratePath::cachedit()),
    );
    insta::assert_snapshot!(pretty(out));
}

// ---- register_families!: one registry.yaml entry ----

#[test]
fn registry_entry_flux() {
    let registry = cachedit_codegen::registry::parse(
        "families:
  - name: Flux
    model: families::flux::FluxTransformer2DModel
    block_lists:
      - { name: transformer_blocks, pattern: Pattern_1 }
    cfg: none
    scheduler: flow_match_euler
    defaults: { Fn_compute_blocks: 1, residual_diff_threshold: 0.12 }
    configs:
      FLUX.1-dev: dev
      FLUX.1-schnell: schnell
    tiny: tiny
",
        "registry.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tokens =
        cachedit_codegen::registry::expand(&registry, None, &cachedit_codegen::RegistryPaths::cachedit());
    insta::assert_snapshot!(pretty(tokens));
}

/// An entry without `block_lists` takes the model's `StaticBlockLists`.
#[test]
fn registry_entry_lists_from_the_model() {
    let registry = cachedit_codegen::registry::parse(
        "families:
  - name: ToyDiT
    model: ToyTransformer
    cfg: none
    scheduler: flow_match_euler
    tiny: tiny
",
        "registry.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tokens =
        cachedit_codegen::registry::expand(&registry, None, &cachedit_codegen::RegistryPaths::cachedit());
    insta::assert_snapshot!(pretty(tokens));
}
