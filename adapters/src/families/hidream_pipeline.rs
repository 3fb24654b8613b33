//! HiDream as a `Denoiser`: 4-D latents, T5 states, every Llama-3.1 hidden layer, and the pooled
//! CLIP-L/G embedding, as `HiDreamImagePipeline` passes them (timestep in the scheduler's
//! 0..1000 scale; the pipeline batches CFG into one call and negates the model output before
//! the scheduler step, which `predict` does not do).

use cachedit_runtime::{Conditioning, Denoiser, seeded_normal};
use candle_core::{DType, Device, Result, Tensor};

use super::hidream::HiDreamImageTransformer2DModel;
use crate::registry::FamilyModel;
use crate::sample::{synthetic_pooled, synthetic_text};

/// Conditioning tensor names HiDream's `predict` reads.
pub mod names {
    /// `(B, T5, caption_channels[0])` T5 states.
    pub const ENCODER_HIDDEN_STATES_T5: &str = "encoder_hidden_states_t5";
    /// `(B, L, Tl, caption_channels[1])` Llama hidden layers, batch-first so the pipeline can
    /// batch conditionings (`predict` hands the transformer diffusers' layer-major layout).
    pub const ENCODER_HIDDEN_STATES_LLAMA3: &str = "encoder_hidden_states_llama3";
    /// `(B, text_emb_dim)` pooled CLIP-L/G embedding.
    pub const POOLED_EMBEDS: &str = "pooled_embeds";
}

impl Denoiser for HiDreamImageTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let (s, p) = (self.sample_shape(), self.config().patch_size);
        vec![batch, self.config().in_channels, s.grid_h * p, s.grid_w * p]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let layers = cfg.llama_layers.iter().max().map_or(1, |m| m + 1);
        let t5 = synthetic_text(batch, s.text_len, cfg.caption_channels[0], seed, device)?;
        let llama = seeded_normal(
            &[batch, layers, s.text_len, cfg.caption_channels[1]],
            seed ^ 0x11a3,
            DType::F32,
            device,
        )?;
        let pooled = synthetic_pooled(batch, cfg.text_emb_dim, seed, device)?;
        Ok(Conditioning::new()
            .with(names::ENCODER_HIDDEN_STATES_T5, t5)
            .with(names::ENCODER_HIDDEN_STATES_LLAMA3, llama)
            .with(names::POOLED_EMBEDS, pooled))
    }

    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        self.forward(
            latents,
            &timestep.to_dtype(DType::F32)?,
            cond.get(names::ENCODER_HIDDEN_STATES_T5)?,
            &cond
                .get(names::ENCODER_HIDDEN_STATES_LLAMA3)?
                .transpose(0, 1)?
                .contiguous()?,
            cond.get(names::POOLED_EMBEDS)?,
        )?
        .to_dtype(latents.dtype())
    }
}
