//! CogVideoX as a `Denoiser`: `(B, F, C, H, W)` video latents, T5 text states, the pipeline's
//! rotary tables and one transformer call, as `CogVideoXPipeline` makes it (integer timesteps
//! as the scheduler gives them; the pipeline batches conditional and unconditional inputs into
//! one call). Image-to-video configs (more channels in than out) read the image latents that
//! `CogVideoXImageToVideoPipeline` concatenates to the noise along the channels, and 1.5-I2V
//! passes `ofs = 2.0` as that pipeline does.

use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::cogvideox::CogVideoXTransformer3DModel;
use crate::registry::FamilyModel;
use crate::sample::synthetic_text;
use cachedit_runtime::seeded_normal;

/// Conditioning tensor names CogVideoX's `predict` reads.
pub mod names {
    /// `(B, T, text_embed_dim)` T5 text states.
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// `(B, F, in_channels - out_channels, H, W)` image latents (image-to-video configs only).
    pub const IMAGE_LATENTS: &str = "image_latents";
}

/// The `ofs` value `CogVideoXImageToVideoPipeline` passes to models with an `ofs` embedding.
pub const I2V_OFS: f32 = 2.0;

impl CogVideoXTransformer3DModel {
    fn image_channels(&self) -> usize {
        let cfg = self.config();
        cfg.in_channels.saturating_sub(cfg.out_channels())
    }
}

impl Denoiser for CogVideoXTransformer3DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let s = self.sample_shape();
        vec![batch, s.frames, self.config().out_channels(), s.height, s.width]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let (cfg, s) = (self.config(), self.sample_shape());
        let text = synthetic_text(batch, s.text_len, cfg.text_embed_dim, seed, device)?;
        let cond = Conditioning::new().with(names::ENCODER_HIDDEN_STATES, text);
        Ok(match self.image_channels() {
            0 => cond,
            c => {
                let shape = [batch, s.frames, c, s.height, s.width];
                cond.with(
                    names::IMAGE_LATENTS,
                    seeded_normal(&shape, seed ^ 0x1a7e, DType::F32, device)?,
                )
            }
        })
    }

    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let (_, f, _, h, w) = latents.dims5()?;
        let p = self.config().patch_size;
        let x = match self.image_channels() {
            0 => latents.clone(),
            _ => Tensor::cat(
                &[
                    latents,
                    &cond.get(names::IMAGE_LATENTS)?.to_dtype(latents.dtype())?,
                ],
                2,
            )?,
        };
        let ofs = match self.config().ofs_embed_dim {
            Some(_) => Some(Tensor::new(&[I2V_OFS], latents.device())?),
            None => None,
        };
        let rotary = self.rotary(f, h / p, w / p)?;
        self.forward(
            &x,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            &timestep.to_dtype(DType::F32)?,
            ofs.as_ref(),
            rotary.as_ref(),
        )?
        .to_dtype(latents.dtype())
    }
}
