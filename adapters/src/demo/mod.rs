//! A small trained demo model: a Flux-architecture transformer trained by cachedit itself on
//! procedurally drawn coloured shapes, so a default run shows real images and realistic
//! caching behaviour without downloading anything.
//!
//! - [`dataset`]: the shapes data set (`3 × 16 × 16` RGB in `[-1, 1]`, 16 classes).
//! - [`train`]: rectified-flow training ([`train::train_demo`]).
//! - [`image`]: PNG writing, image grids, loss plots, PSNR.
//! - [`ssim`]: structural similarity (Wang et al.), in floating point.
//!
//! There is no VAE: images are packed into 2×2-pixel patches (`8 × 8 = 64` tokens of 12
//! channels; 4×4 patches of 32×32 images left visible patch artefacts), and a class is turned into `encoder_hidden_states` / `pooled_projections` by a
//! fixed seeded projection of its shape and colour one-hots (no text encoder).
//!
//! The trained weights are embedded in the binary ([`load_demo_model`]).

pub mod dataset;
pub mod image;
pub mod ssim;
pub mod train;

use cachedit_runtime::{Conditioning, DenoiseOptions, Denoiser, denoise, seeded_normal};
use candle_core::{DType, Device, Result, Tensor};

pub use dataset::{Colour, DemoClass, Shape};

use crate::components::patchify::{image_ids, pack_latents, text_ids, unpack_latents};
use crate::families::flux::{Config, FluxTransformer2DModel};
use crate::families::flux_pipeline::names;
use crate::loader::{self, Checkpoint, LoadError};
use crate::registry::FamilyModel;
use crate::sample::SampleShape;

/// Pixels per patch side: 2×2 RGB pixels make one 12-channel token.
pub const PATCH: usize = 2;
/// Tokens per image side (`16 / 2`).
pub const GRID: usize = dataset::IMAGE_SIZE / PATCH;
/// Conditioning ("text") tokens per sample.
pub const TEXT_LEN: usize = 4;
/// Seed of the fixed class-embedding projection (part of the model: changing it invalidates
/// the trained weights).
const EMBED_SEED: u64 = 0x0c1a_55e5;

/// The committed weights (`adapters/assets/demo/`), embedded in the binary.
const DEMO_WEIGHTS: &[u8] = include_bytes!("../../assets/demo/diffusion_pytorch_model.safetensors");
/// The committed `config.json`.
const DEMO_CONFIG: &str = include_str!("../../assets/demo/config.json");

/// The demo architecture: FLUX.1 blocks at width 64 (2 heads × 32), 2 double + 2 single
/// blocks, 12-channel tokens, 32-wide conditioning, no guidance embedding.
pub fn demo_config() -> Config {
    Config {
        patch_size: 1,
        in_channels: 3 * PATCH * PATCH,
        out_channels: None,
        num_layers: 2,
        num_single_layers: 2,
        attention_head_dim: 32,
        num_attention_heads: 2,
        joint_attention_dim: 32,
        pooled_projection_dim: 32,
        guidance_embeds: false,
        axes_dims_rope: vec![8, 12, 12],
        list_layout: Default::default(),
    }
}

/// The generation size of the demo model (8×8 tokens, 4 conditioning tokens).
pub fn demo_sample_shape() -> SampleShape {
    SampleShape {
        grid_h: GRID,
        grid_w: GRID,
        text_len: TEXT_LEN,
    }
}

/// Loads the embedded trained demo model in f32 on `device`, with [`demo_sample_shape`].
pub fn load_demo_model(device: &Device) -> std::result::Result<FluxTransformer2DModel, LoadError> {
    let path = std::path::Path::new("<embedded demo config.json>");
    let cfg: Config = loader::parse_config(DEMO_CONFIG, path)?;
    let tensors = candle_core::safetensors::load_buffer(DEMO_WEIGHTS, device).map_err(|e| {
        LoadError::InvalidConfig {
            path: None,
            reason: format!("embedded demo weights: {e}"),
        }
    })?;
    let model =
        FluxTransformer2DModel::from_checkpoint(cfg, Checkpoint::from_tensors(tensors), DType::F32, device)?;
    Ok(model.with_sample_shape(demo_sample_shape()))
}

/// The fixed (not learned) embedding of classes: `(shape one-hot ‖ colour one-hot)` `(B, 8)`
/// times seeded Gaussian matrices, giving `encoder_hidden_states` `(B, TEXT_LEN, joint_dim)`
/// and `pooled_projections` `(B, pooled_dim)`.
fn class_embeddings(classes: &[DemoClass], cfg: &Config, device: &Device) -> Result<(Tensor, Tensor)> {
    let k = Shape::ALL.len() + Colour::ALL.len();
    let mut onehot = vec![0f32; classes.len() * k];
    for (i, c) in classes.iter().enumerate() {
        let index = c.index();
        onehot[i * k + index / Colour::ALL.len()] = 1.0;
        onehot[i * k + Shape::ALL.len() + index % Colour::ALL.len()] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (classes.len(), k), device)?;
    let scale = std::f64::consts::FRAC_1_SQRT_2;
    let text_w = (seeded_normal(
        &[k, TEXT_LEN * cfg.joint_attention_dim],
        EMBED_SEED,
        DType::F32,
        device,
    )? * scale)?;
    let pooled_w = (seeded_normal(
        &[k, cfg.pooled_projection_dim],
        EMBED_SEED ^ 1,
        DType::F32,
        device,
    )? * scale)?;
    let text = onehot
        .matmul(&text_w)?
        .reshape((classes.len(), TEXT_LEN, cfg.joint_attention_dim))?;
    Ok((text, onehot.matmul(&pooled_w)?))
}

/// The conditioning of one generation of `classes` (one sample per entry) for the demo model:
/// `encoder_hidden_states`, `pooled_projections`, `img_ids`, `txt_ids`.
pub fn demo_conditioning(classes: &[DemoClass], device: &Device) -> Result<Conditioning> {
    if classes.is_empty() {
        candle_core::bail!("demo conditioning needs at least one class");
    }
    let (text, pooled) = class_embeddings(classes, &demo_config(), device)?;
    Ok(Conditioning::new()
        .with(names::ENCODER_HIDDEN_STATES, text)
        .with(names::POOLED_PROJECTIONS, pooled)
        .with(names::IMG_IDS, image_ids(GRID, GRID, 0.0, device)?)
        .with(names::TXT_IDS, text_ids(TEXT_LEN, device)?))
}

/// Packs images `(B, 3, 16, 16)` into tokens `(B, 64, 12)`.
pub fn pack_images(images: &Tensor) -> Result<Tensor> {
    pack_latents(images, PATCH)
}

/// Unpacks tokens `(B, 64, 12)` back to images `(B, 3, 16, 16)` (values in about `[-1, 1]`).
pub fn unpack_images(latents: &Tensor) -> Result<Tensor> {
    unpack_latents(latents, dataset::IMAGE_SIZE, dataset::IMAGE_SIZE, PATCH)
}

/// The flow-matching sigmas of an Euler run: `steps + 1` values linearly from 1 to 0.
pub fn euler_sigmas(steps: usize) -> Vec<f64> {
    let n = steps.max(1);
    (0..=n).map(|i| 1.0 - i as f64 / n as f64).collect()
}

/// The denoising options of a demo generation: flow-matching Euler over [`euler_sigmas`] (the
/// schedule the model was trained for: no shift), no CFG.
pub fn demo_denoise_options(steps: usize) -> DenoiseOptions {
    DenoiseOptions {
        steps,
        sigmas: Some(euler_sigmas(steps)),
        ..Default::default()
    }
}

/// Flow-matching Euler sampling with the runtime's [`denoise`] loop: starting from `noise`
/// (latents at σ = 1) over [`euler_sigmas`], with a fresh cache context. Returns the final
/// latents (σ = 0).
pub fn sample_euler<M: Denoiser + ?Sized>(
    model: &M,
    noise: &Tensor,
    cond: &Conditioning,
    steps: usize,
) -> Result<Tensor> {
    let out = denoise(
        model,
        noise.clone(),
        cond,
        None,
        &demo_denoise_options(steps),
        |_, _| {},
    )?;
    Ok(out.latents)
}

/// Generates one image per entry of `classes` with the demo model in `steps` Euler steps from
/// noise seeded by `seed`: images `(B, 3, 16, 16)` in about `[-1, 1]`
/// (see [`image::tensor_to_images`]).
pub fn generate(
    model: &FluxTransformer2DModel,
    classes: &[DemoClass],
    steps: usize,
    seed: u64,
) -> Result<Tensor> {
    let device = model.device().clone();
    let cond = demo_conditioning(classes, &device)?;
    let noise = seeded_normal(&model.latent_shape(classes.len()), seed, DType::F32, &device)?;
    unpack_images(&sample_euler(model, &noise, &cond, steps)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The committed weights are tested in `tests/demo_model.rs` (load, determinism, values).

    #[test]
    fn pack_unpack_round_trip_and_sigmas() -> Result<()> {
        let (images, _) = dataset::batch(2, 1, &Device::Cpu)?;
        let tokens = pack_images(&images)?;
        assert_eq!(tokens.dims(), &[2, GRID * GRID, 3 * PATCH * PATCH]);
        let back = unpack_images(&tokens)?;
        assert_eq!(
            back.flatten_all()?.to_vec1::<f32>()?,
            images.flatten_all()?.to_vec1::<f32>()?
        );
        let s = euler_sigmas(4);
        assert_eq!(s, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
        Ok(())
    }
}
