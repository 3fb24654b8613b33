//! QwenImage as a `Denoiser`: packed latents (2×2 patches of 16 VAE channels), Qwen2.5-VL text
//! states with their padding mask, and one transformer call, as `QwenImagePipeline` makes it.
//! The pipeline runs true CFG as two separate calls per step, conditional first (cache-dit
//! registers QwenImage with `has_separate_cfg`).

use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::qwen_image::QwenImageTransformer2DModel;
use crate::registry::FamilyModel;
use crate::sample::synthetic_text;

/// Conditioning tensor names QwenImage's `predict` reads.
pub mod names {
    /// `(B, T, joint_attention_dim)` text states (Qwen2.5-VL's last hidden layer).
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// Optional `(B, T)` mask of the valid text tokens (non-zero = valid).
    pub const ENCODER_HIDDEN_STATES_MASK: &str = "encoder_hidden_states_mask";
}

impl Denoiser for QwenImageTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let s = self.sample_shape();
        vec![batch, s.grid_h * s.grid_w, self.config().in_channels]
    }

    /// Text states of the sample shape's length; the last quarter of sample 0's tokens are
    /// padding, so the mask path runs as with a real prompt shorter than the batch's longest.
    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let text = synthetic_text(batch, s.text_len, cfg.joint_attention_dim, seed, device)?;
        let valid = s.text_len - s.text_len / 4;
        let mut mask = vec![1f32; batch * s.text_len];
        mask[valid..s.text_len].fill(0.0);
        Ok(Conditioning::new().with(names::ENCODER_HIDDEN_STATES, text).with(
            names::ENCODER_HIDDEN_STATES_MASK,
            Tensor::from_vec(mask, (batch, s.text_len), device)?,
        ))
    }

    /// `timestep` in the flow-matching scheduler's scale (`sigma · 1000`); the pipeline passes
    /// `timestep / 1000` and `img_shapes = [(1, grid_h, grid_w)]`.
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let cfg = self.config();
        if cfg.out_token_channels() != cfg.in_channels {
            candle_core::bail!(
                "QwenImage predicts {} channels per token but the latents have {}: a denoising loop needs them equal",
                cfg.out_token_channels(),
                cfg.in_channels
            );
        }
        let s = self.sample_shape();
        let t = (timestep.to_dtype(DType::F32)? / 1000.0)?;
        self.forward(
            latents,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            cond.get_opt(names::ENCODER_HIDDEN_STATES_MASK),
            &t,
            &[(1, s.grid_h, s.grid_w)],
        )?
        .to_dtype(latents.dtype())
    }
}
