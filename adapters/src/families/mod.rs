//! The DiT families, as configurations of the shared block designs plus their own embedders,
//! patchify and rotary tables. A family file holds its diffusers config, the design knobs its
//! blocks set, its weight names, embedders, patchify and rotary tables; its `*_pipeline.rs`
//! (where it has one) the `Denoiser` glue.

pub mod auraflow;
pub mod auraflow_blocks;
pub mod bria;
pub mod chroma;
pub mod chroma_pipeline;
pub mod cogvideox;
pub mod cogvideox_pipeline;
pub mod cogvideox_positions;
pub mod dit;
pub mod flux;
pub mod flux_bfl;
pub mod flux_pipeline;
pub mod hidream;
pub mod hidream_blocks;
pub mod hidream_pipeline;
pub mod hunyuan_video;
pub mod hunyuan_video_pipeline;
pub mod hunyuan_video_refiner;
pub mod mochi;
pub mod mochi_pipeline;
pub mod pixart;
pub mod qwen_image;
pub mod qwen_image_pipeline;
pub mod sd3;
pub mod visualcloze;
pub mod wan;
pub mod wan_moe;
pub mod wan_pipeline;

/// How a model with a dual-stream list followed by a single-stream list exposes them to the
/// cache engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListLayout {
    /// Both lists run as ONE cached list named after the first (cache-dit's default for FLUX.1,
    /// "dummy blocks" mode): Fn/Bn count across both.
    #[default]
    Chained,
    /// Two cached lists, each with its own context (cache-dit with
    /// `CACHE_DIT_FLUX_ENABLE_DUMMY_BLOCKS=0`).
    Separate,
}

/// The accessors every family model has: `config()` (its `cfg` field) and one accessor per
/// cached block list (a `BlockList` field of the same name).
macro_rules! model_accessors {
    ($model:ty, $($list:ident: $block:ty),+ $(,)?) => {
        impl $model {
            /// The config.
            pub fn config(&self) -> &Config {
                &self.cfg
            }

            $(
                #[doc = concat!("The blocks of `", stringify!($list), "`.")]
                pub fn $list(&self) -> &::cachedit_runtime::BlockList<$block> {
                    &self.$list
                }
            )+
        }
    };
}
pub(crate) use model_accessors;
