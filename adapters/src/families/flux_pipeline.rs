//! Flux as a `Denoiser`: packed latents, its conditioning tensors and one transformer call, as
//! diffusers' `FluxPipeline` makes it.

use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::flux::FluxTransformer2DModel;
use crate::components::patchify::{image_ids, text_ids};
use crate::registry::FamilyModel;
use crate::sample::{synthetic_pooled, synthetic_text};

/// Conditioning tensor names Flux's `predict` reads.
pub mod names {
    /// `(B, T, joint_attention_dim)` text embeddings (T5 in FLUX.1).
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// `(B, pooled_projection_dim)` pooled text embedding (CLIP in FLUX.1).
    pub const POOLED_PROJECTIONS: &str = "pooled_projections";
    /// `(S, 3)` image position ids.
    pub const IMG_IDS: &str = "img_ids";
    /// `(T, 3)` text position ids.
    pub const TXT_IDS: &str = "txt_ids";
    /// `(B,)` guidance scale, for guidance-distilled models (FLUX.1-dev).
    pub const GUIDANCE: &str = "guidance";
}

impl Denoiser for FluxTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let s = self.sample_shape();
        vec![batch, s.grid_h * s.grid_w, self.config().in_channels]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let text = synthetic_text(batch, s.text_len, cfg.joint_attention_dim, seed, device)?;
        let pooled = synthetic_pooled(batch, cfg.pooled_projection_dim, seed, device)?;
        let mut c = Conditioning::new()
            .with(names::ENCODER_HIDDEN_STATES, text)
            .with(names::POOLED_PROJECTIONS, pooled)
            .with(names::IMG_IDS, image_ids(s.grid_h, s.grid_w, 0.0, device)?)
            .with(names::TXT_IDS, text_ids(s.text_len, device)?);
        if cfg.guidance_embeds {
            c.insert(names::GUIDANCE, Tensor::full(3.5f32, batch, device)?);
        }
        Ok(c)
    }

    /// `timestep` in the flow-matching scheduler's scale (`sigma · 1000`), as the pipeline gets
    /// it; the transformer takes `sigma` (diffusers' `timestep / 1000`).
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let t = (timestep.to_dtype(DType::F32)? / 1000.0)?;
        self.forward(
            latents,
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
