//! Chroma as a `Denoiser`: packed latents (as Flux), T5 text embeddings with the pipeline's
//! padding mask, and one transformer call. `ChromaPipeline` runs true CFG as two separate calls
//! per step (cache-dit registers Chroma with `has_separate_cfg`).

use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result};

use super::chroma::ChromaTransformer2DModel;
use crate::components::patchify::{image_ids, text_ids};
use crate::registry::FamilyModel;
use crate::sample::synthetic_text;

/// Conditioning tensor names Chroma's `predict` reads.
pub mod names {
    /// `(B, T, joint_attention_dim)` T5 text embeddings.
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// `(S, 3)` image position ids.
    pub const IMG_IDS: &str = "img_ids";
    /// `(T, 3)` text position ids.
    pub const TXT_IDS: &str = "txt_ids";
    /// Optional `(B, T + S)` float mask over `[txt, img]` (see
    /// [`ChromaTransformer2DModel::forward`]).
    pub const ATTENTION_MASK: &str = "attention_mask";
}

impl Denoiser for ChromaTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let s = self.sample_shape();
        vec![batch, s.grid_h * s.grid_w, self.config().in_channels]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let text = synthetic_text(batch, s.text_len, cfg.joint_attention_dim, seed, device)?;
        Ok(Conditioning::new()
            .with(names::ENCODER_HIDDEN_STATES, text)
            .with(names::IMG_IDS, image_ids(s.grid_h, s.grid_w, 0.0, device)?)
            .with(names::TXT_IDS, text_ids(s.text_len, device)?))
    }

    /// `timestep` in the flow-matching scheduler's scale (`sigma · 1000`); the transformer takes
    /// `sigma`.
    fn predict(
        &self,
        latents: &candle_core::Tensor,
        timestep: &candle_core::Tensor,
        cond: &Conditioning,
    ) -> Result<candle_core::Tensor> {
        let t = (timestep.to_dtype(DType::F32)? / 1000.0)?;
        self.forward(
            latents,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            &t,
            cond.get(names::IMG_IDS)?,
            cond.get(names::TXT_IDS)?,
            cond.get_opt(names::ATTENTION_MASK),
        )?
        .to_dtype(latents.dtype())
    }
}
