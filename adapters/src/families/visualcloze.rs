//! VisualCloze (`VisualClozePipeline` / `VisualClozeGenerationPipeline`): diffusers'
//! `FluxTransformer2DModel` fine-tuned from FLUX.1-Fill-dev. The transformer is Flux with
//! Fill's channels (`in_channels` 384 = 64 latent + 320 condition, `out_channels` 64); what
//! differs is the pipeline: the condition (masked in-context images and their mask) is
//! concatenated to the latents on the channels at every step, and cache-dit caches the double
//! and the single blocks as two lists (Pattern_1 each).

use cachedit_runtime::{
    CachedListInfo, CachedTransformer, Conditioning, Denoiser, ForwardPattern, StaticBlockLists,
    seeded_normal,
};
use candle_core::{DType, Device, Result, Tensor};

use super::ListLayout;
use super::flux::{self, FluxTransformer2DModel};
use super::flux_pipeline::names as flux_names;
use crate::components::patchify::{image_ids, text_ids};
use crate::sample::SampleShape;
use crate::sample::{synthetic_pooled, synthetic_text};

/// The transformer config (diffusers' `FluxTransformer2DModel` config).
pub type Config = flux::Config;

/// `VisualCloze/VisualClozePipeline-384` and `-512` (both the same transformer): FLUX.1-Fill-dev
/// channels with a guidance embedder, the two lists cached separately.
pub fn config() -> Config {
    flux::Config::fill().with_list_layout(ListLayout::Separate)
}

/// The tiny config of diffusers' Flux unit tests (`test_models_transformer_flux.py`), which
/// VisualCloze shares, with VisualCloze's list layout.
pub fn tiny() -> Config {
    flux::Config::tiny().with_list_layout(ListLayout::Separate)
}

/// A tiny Fill-shaped config for tests: the unit-test geometry with a guidance embedder and
/// `in_channels` 24 = 4 latent + 4 masked-image + 16 mask channels → `out_channels` 4.
pub fn tiny_fill() -> Config {
    Config {
        in_channels: 24,
        out_channels: Some(4),
        guidance_embeds: true,
        ..tiny()
    }
}

/// The registry's constructors (`registry.yaml` names configs as `Config::<name>()`, and
/// VisualCloze's config type is Flux's).
impl flux::Config {
    /// [`tiny_fill`]: VisualCloze's tiny config (a condition to concatenate needs more input
    /// than output channels).
    pub fn visualcloze_tiny() -> Self {
        tiny_fill()
    }
}

/// Conditioning names `predict` reads: Flux's ([`flux_names`]) plus the channel condition.
pub mod names {
    pub use super::flux_names::*;
    /// `(B, S, in_channels - out_channels)`: the packed masked in-context images and mask,
    /// concatenated after the latents on the channels (diffusers' `masked_image_latents`).
    pub const CONDITION_LATENTS: &str = "condition_latents";
}

/// VisualCloze's transformer: Flux with Fill channels and VisualCloze's pipeline contract.
#[derive(Debug)]
pub struct VisualClozeTransformer2DModel {
    inner: FluxTransformer2DModel,
    sample: SampleShape,
}

impl VisualClozeTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`). Whatever `cfg`'s list
    /// layout, the two lists are cached separately, as cache-dit does for VisualCloze (so a hub
    /// `config.json` or `Config::fill()` gives VisualCloze's layout).
    pub fn new(cfg: Config, vb: candle_nn::VarBuilder) -> Result<Self> {
        Self::wrap(FluxTransformer2DModel::new(
            cfg.with_list_layout(ListLayout::Separate),
            vb,
        )?)
    }

    /// Wraps a Flux model; its output channels must not exceed its input channels.
    pub fn wrap(inner: FluxTransformer2DModel) -> Result<Self> {
        let cfg = inner.config();
        if cfg.out_channels() > cfg.in_channels {
            candle_core::bail!(
                "VisualCloze needs in_channels ({}) >= out_channels ({})",
                cfg.in_channels,
                cfg.out_channels()
            );
        }
        Ok(Self {
            inner,
            sample: SampleShape::default(),
        })
    }

    /// The Flux transformer.
    pub fn flux(&self) -> &FluxTransformer2DModel {
        &self.inner
    }

    /// The config.
    pub fn config(&self) -> &Config {
        self.inner.config()
    }

    /// Channels of the condition concatenated after the latents.
    pub fn condition_channels(&self) -> usize {
        self.config().in_channels - self.config().out_channels()
    }

    /// The transformer on `latents` `(B, S, out_channels)` and `condition_latents`
    /// `(B, S, in_channels - out_channels)`; the other arguments as
    /// [`FluxTransformer2DModel::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        latents: &Tensor,
        condition_latents: &Tensor,
        encoder_hidden_states: &Tensor,
        pooled_projections: &Tensor,
        timestep: &Tensor,
        img_ids: &Tensor,
        txt_ids: &Tensor,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let hidden = Tensor::cat(&[latents, &condition_latents.to_dtype(latents.dtype())?], 2)?;
        self.inner.forward(
            &hidden,
            encoder_hidden_states,
            pooled_projections,
            timestep,
            img_ids,
            txt_ids,
            guidance,
        )
    }
}

impl CachedTransformer for VisualClozeTransformer2DModel {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        self.inner.cached_lists()
    }
}

/// cache-dit's VisualCloze adapter: the double and the single blocks as two Pattern_1 lists.
impl StaticBlockLists for VisualClozeTransformer2DModel {
    const BLOCK_LISTS: &'static [(&'static str, ForwardPattern)] = &[
        ("transformer_blocks", ForwardPattern::Pattern_1),
        ("single_transformer_blocks", ForwardPattern::Pattern_1),
    ];
}

crate::family_model!(
    VisualClozeTransformer2DModel,
    config = Config,
    sample = SampleShape
);

impl Denoiser for VisualClozeTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![
            batch,
            self.sample.grid_h * self.sample.grid_w,
            self.config().out_channels(),
        ]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample);
        let seq = s.grid_h * s.grid_w;
        let mut c = Conditioning::new()
            .with(
                names::ENCODER_HIDDEN_STATES,
                synthetic_text(batch, s.text_len, cfg.joint_attention_dim, seed, device)?,
            )
            .with(
                names::POOLED_PROJECTIONS,
                synthetic_pooled(batch, cfg.pooled_projection_dim, seed, device)?,
            )
            .with(
                names::CONDITION_LATENTS,
                seeded_normal(
                    &[batch, seq, self.condition_channels()],
                    seed ^ 0xc10e,
                    DType::F32,
                    device,
                )?,
            )
            .with(names::IMG_IDS, image_ids(s.grid_h, s.grid_w, 0.0, device)?)
            .with(names::TXT_IDS, text_ids(s.text_len, device)?);
        if cfg.guidance_embeds {
            // VisualClozePipeline's default guidance scale.
            c.insert(names::GUIDANCE, Tensor::full(30f32, batch, device)?);
        }
        Ok(c)
    }

    /// `timestep` in the flow-matching scheduler's scale (`sigma · 1000`); the transformer takes
    /// `timestep / 1000`, as the pipeline passes it.
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let t = (timestep.to_dtype(DType::F32)? / 1000.0)?;
        self.forward(
            latents,
            cond.get(names::CONDITION_LATENTS)?,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            cond.get(names::POOLED_PROJECTIONS)?,
            &t,
            cond.get(names::IMG_IDS)?,
            cond.get(names::TXT_IDS)?,
            cond.get_opt(names::GUIDANCE),
        )?
        .to_dtype(latents.dtype())
    }
}
