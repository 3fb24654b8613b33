//! Wan 2.1 as a `Denoiser`: 5-D video latents, UMT5 text states (and CLIP image tokens for
//! I2V), one transformer call per CFG branch, as `WanPipeline` / `WanImageToVideoPipeline` make
//! them: the timestep on the scheduler's 0-1000 scale, the conditional call first, then the
//! unconditional one (separate CFG).

use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::wan::WanTransformer3DModel;
use crate::registry::FamilyModel;
use crate::sample::synthetic_text;

/// Conditioning tensor names Wan's `predict` reads (diffusers' argument names).
pub mod names {
    /// `(B, T, text_dim)` UMT5 text states (the pipeline pads them to 512 tokens).
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// `(B, N, image_dim)` CLIP image tokens (I2V models only).
    pub const ENCODER_HIDDEN_STATES_IMAGE: &str = "encoder_hidden_states_image";
    /// `(B, in_channels - out_channels, F, H, W)`: I2V's mask and image latent, concatenated
    /// after the noisy latents on the channel axis (`WanImageToVideoPipeline`'s `condition`).
    pub const CONDITION: &str = "condition";
}

/// CLIP ViT-H/14 tokens per image (256 patches + the class token).
const CLIP_TOKENS: usize = 257;

impl WanTransformer3DModel {
    /// Channels of the latents the scheduler steps (I2V: without the image condition).
    fn latent_channels(&self) -> usize {
        self.config().out_channels()
    }
}

impl Denoiser for WanTransformer3DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let s = self.sample_shape();
        vec![batch, self.latent_channels(), s.frames, s.height, s.width]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let mut cond = Conditioning::new().with(
            names::ENCODER_HIDDEN_STATES,
            synthetic_text(batch, s.text_len, cfg.text_dim, seed, device)?,
        );
        if let Some(dim) = cfg.image_dim {
            let image = synthetic_text(batch, CLIP_TOKENS, dim, seed ^ 0x1a6e, device)?;
            cond.insert(names::ENCODER_HIDDEN_STATES_IMAGE, image);
        }
        let extra = cfg.in_channels.saturating_sub(self.latent_channels());
        if extra > 0 {
            let shape = [batch, extra, s.frames, s.height, s.width];
            cond.insert(
                names::CONDITION,
                cachedit_runtime::seeded_normal(&shape, seed ^ 0xc0d, DType::F32, device)?,
            );
        }
        Ok(cond)
    }

    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let input = match cond.get_opt(names::CONDITION) {
            Some(c) => Tensor::cat(&[latents, &c.to_dtype(latents.dtype())?], 1)?,
            None => latents.clone(),
        };
        self.forward(
            &input,
            &timestep.to_dtype(DType::F32)?,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            cond.get_opt(names::ENCODER_HIDDEN_STATES_IMAGE),
        )?
        .to_dtype(latents.dtype())
    }
}
