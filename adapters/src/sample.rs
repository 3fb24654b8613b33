//! Types the families share that are not model code: the size of one generation
//! ([`SampleShape`] for images, [`VideoSampleShape`] for video), the synthetic text inputs of
//! a `Denoiser`, the rotary table over Flux-style position ids, and the additive key mask.
//! They live here, below every family, so no family imports another family's file for them.

use cachedit_runtime::seeded_normal;
use candle_core::{DType, Device, Result, Tensor};

use crate::components::rope::{MultiAxisRope, RotaryEmbedding};

/// The size of one image generation: the packed latent grid (`height/16 × width/16` for an
/// image of `height × width` through an 8× VAE and 2×2 packing) and the text length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleShape {
    /// Packed latent rows.
    pub grid_h: usize,
    /// Packed latent columns.
    pub grid_w: usize,
    /// Text tokens.
    pub text_len: usize,
}

impl Default for SampleShape {
    /// 256×256 pixels (16×16 packed tokens) with 32 text tokens.
    fn default() -> Self {
        Self {
            grid_h: 16,
            grid_w: 16,
            text_len: 32,
        }
    }
}

/// The size of one video generation in latent units (frames, rows, columns) and text tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSampleShape {
    /// Latent frames.
    pub frames: usize,
    /// Latent rows.
    pub height: usize,
    /// Latent columns.
    pub width: usize,
    /// Text tokens.
    pub text_len: usize,
}

impl Default for VideoSampleShape {
    /// 9 latent frames (33 video frames) of 32×32 latents (256×256 pixels), 32 text tokens.
    fn default() -> Self {
        Self {
            frames: 9,
            height: 32,
            width: 32,
            text_len: 32,
        }
    }
}

/// Seeds of the synthetic conditioning tensors, shared so that every family draws its text
/// states and pooled embedding from the same streams for the same `seed`.
pub mod seeds {
    /// XORed into the seed for the text-encoder states.
    pub const TEXT: u64 = 0x7e47;
    /// XORed into the seed for the pooled text embedding.
    pub const POOLED: u64 = 0x9001;
}

/// Synthetic text-encoder states `(batch, len, width)` for `seed` (f32).
pub fn synthetic_text(batch: usize, len: usize, width: usize, seed: u64, device: &Device) -> Result<Tensor> {
    seeded_normal(&[batch, len, width], seed ^ seeds::TEXT, DType::F32, device)
}

/// A synthetic pooled text embedding `(batch, width)` for `seed` (f32).
pub fn synthetic_pooled(batch: usize, width: usize, seed: u64, device: &Device) -> Result<Tensor> {
    seeded_normal(&[batch, width], seed ^ seeds::POOLED, DType::F32, device)
}

/// The rotary table of `cat(txt_ids, img_ids)` (Flux's `FluxPosEmbed`, Bria's `BriaEmbedND`,
/// Chroma): 2-D ids `(S, axes)`, or 3-D ids read from their first batch entry as diffusers
/// does.
pub fn txt_img_rotary(rope: &MultiAxisRope, img_ids: &Tensor, txt_ids: &Tensor) -> Result<RotaryEmbedding> {
    let ids2 = |t: &Tensor| if t.rank() == 3 { t.get(0) } else { Ok(t.clone()) };
    let ids = Tensor::cat(
        &[
            &ids2(txt_ids)?.to_dtype(DType::F32)?,
            &ids2(img_ids)?.to_dtype(DType::F32)?,
        ],
        0,
    )?;
    rope.forward(&ids, img_ids.device())
}

/// An additive attention mask (0 where `keep` is non-zero, `-inf` elsewhere), in `dtype`.
pub fn additive(keep: &Tensor, dtype: DType) -> Result<Tensor> {
    let keep = keep.to_dtype(DType::F32)?.ne(0f32)?;
    let zeros = keep.zeros_like()?.to_dtype(dtype)?;
    let neg = Tensor::full(f32::NEG_INFINITY, keep.shape(), keep.device())?.to_dtype(dtype)?;
    keep.where_cond(&zeros, &neg)
}
