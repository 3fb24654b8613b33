//! Mochi as a `Denoiser`: 5-D video latents, T5 text states with their mask, and one
//! transformer call, as `MochiPipeline` makes it (timestep as the scheduler gives it; the
//! pipeline batches conditional and unconditional inputs into one call).

use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::mochi::MochiTransformer3DModel;
use crate::registry::FamilyModel;
use crate::sample::synthetic_text;

/// Conditioning tensor names Mochi's `predict` reads.
pub mod names {
    /// `(B, T, text_embed_dim)` T5 text states.
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// `(B, T)` mask of the valid text tokens (valid tokens first).
    pub const ENCODER_ATTENTION_MASK: &str = "encoder_attention_mask";
}

impl Denoiser for MochiTransformer3DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let s = self.sample_shape();
        vec![batch, self.config().in_channels, s.frames, s.height, s.width]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let text = synthetic_text(batch, s.text_len, cfg.text_embed_dim, seed, device)?;
        Ok(Conditioning::new().with(names::ENCODER_HIDDEN_STATES, text).with(
            names::ENCODER_ATTENTION_MASK,
            Tensor::ones((batch, s.text_len), DType::F32, device)?,
        ))
    }

    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        self.forward(
            latents,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            &timestep.to_dtype(DType::F32)?,
            cond.get(names::ENCODER_ATTENTION_MASK)?,
        )?
        .to_dtype(latents.dtype())
    }
}
