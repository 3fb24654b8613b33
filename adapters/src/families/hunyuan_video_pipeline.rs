//! HunyuanVideo as a `Denoiser`: 5-D video latents, Llava-Llama text states with their mask, a
//! pooled CLIP embedding and the embedded guidance scale, as `HunyuanVideoPipeline` passes
//! them (timestep in the flow-matching scheduler's 0..1000 scale, guidance × 1000). The
//! guidance is embedded, so there is one transformer call per step (no separate CFG).

use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::hunyuan_video::HunyuanVideoTransformer3DModel;
use crate::registry::FamilyModel;
use crate::sample::{synthetic_pooled, synthetic_text};

/// Conditioning tensor names HunyuanVideo's `predict` reads.
pub mod names {
    /// `(B, T, text_embed_dim)` text-encoder states.
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// Optional `(B, T)` mask of the valid text tokens.
    pub const ENCODER_ATTENTION_MASK: &str = "encoder_attention_mask";
    /// `(B, pooled_projection_dim)` pooled CLIP-L embedding.
    pub const POOLED_PROJECTIONS: &str = "pooled_projections";
    /// `(B,)` guidance scale × 1000, for guidance-embedding models.
    pub const GUIDANCE: &str = "guidance";
}

impl Denoiser for HunyuanVideoTransformer3DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let s = self.sample_shape();
        vec![batch, self.config().in_channels, s.frames, s.height, s.width]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let text = synthetic_text(batch, s.text_len, cfg.text_embed_dim, seed, device)?;
        let pooled = synthetic_pooled(batch, cfg.pooled_projection_dim, seed, device)?;
        let mut c = Conditioning::new()
            .with(names::ENCODER_HIDDEN_STATES, text)
            .with(
                names::ENCODER_ATTENTION_MASK,
                Tensor::ones((batch, s.text_len), DType::F32, device)?,
            )
            .with(names::POOLED_PROJECTIONS, pooled);
        if cfg.guidance_embeds {
            c.insert(names::GUIDANCE, Tensor::full(6000f32, batch, device)?);
        }
        Ok(c)
    }

    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        self.forward(
            latents,
            &timestep.to_dtype(DType::F32)?,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            cond.get_opt(names::ENCODER_ATTENTION_MASK),
            cond.get(names::POOLED_PROJECTIONS)?,
            cond.get_opt(names::GUIDANCE),
        )?
        .to_dtype(latents.dtype())
    }
}
