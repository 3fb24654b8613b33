//! Timestep, guidance and pooled-text embedders: diffusers' `get_timestep_embedding`,
//! `Timesteps`, `TimestepEmbedding`, `PixArtAlphaTextProjection` and the combined
//! `CombinedTimestep[Guidance]TextProjEmbeddings`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::linear;

/// diffusers' `get_timestep_embedding`: sinusoidal embeddings of a 1-D tensor of (possibly
/// fractional) timesteps, `(N,)` → `(N, dim)` in f32.
///
/// The frequencies are computed on the host in f32 with the same operation order as diffusers
/// (`exp(-ln(max_period) * i / (half - downscale_freq_shift))`), so they match bit for bit.
pub fn timestep_embedding(
    timesteps: &Tensor,
    dim: usize,
    flip_sin_to_cos: bool,
    downscale_freq_shift: f64,
    scale: f64,
    max_period: f64,
) -> Result<Tensor> {
    let n = timesteps.dims1()?;
    let half = dim / 2;
    let neg_log = -(max_period.ln()) as f32;
    let denom = half as f32 - downscale_freq_shift as f32;
    let freqs: Vec<f32> = (0..half).map(|i| ((neg_log * i as f32) / denom).exp()).collect();
    let device = timesteps.device();
    let freqs = Tensor::from_vec(freqs, (1, half), device)?;
    let t = timesteps.to_dtype(DType::F32)?.reshape((n, 1))?;
    let mut args = t.broadcast_mul(&freqs)?;
    if scale != 1.0 {
        args = (args * scale)?;
    }
    let (first, second) = if flip_sin_to_cos {
        (args.cos()?, args.sin()?)
    } else {
        (args.sin()?, args.cos()?)
    };
    let mut parts = vec![first, second];
    if dim % 2 == 1 {
        parts.push(Tensor::zeros((n, 1), DType::F32, device)?);
    }
    Tensor::cat(&parts, 1)
}

/// diffusers' `Timesteps` module: the parameters of [`timestep_embedding`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timesteps {
    /// Embedding width.
    pub num_channels: usize,
    /// `cos, sin` order instead of `sin, cos`.
    pub flip_sin_to_cos: bool,
    /// Frequency shift.
    pub downscale_freq_shift: f64,
    /// Scale applied to the arguments.
    pub scale: f64,
}

impl Timesteps {
    /// The embedding of `timesteps` `(N,)`, `(N, num_channels)` f32.
    pub fn forward(&self, timesteps: &Tensor) -> Result<Tensor> {
        timestep_embedding(
            timesteps,
            self.num_channels,
            self.flip_sin_to_cos,
            self.downscale_freq_shift,
            self.scale,
            10000.0,
        )
    }
}

/// A two-layer MLP `linear_1` → act → `linear_2`: diffusers' `TimestepEmbedding` (SiLU) and
/// `PixArtAlphaTextProjection` (SiLU or GELU-tanh) share these names.
#[derive(Debug, Clone)]
pub struct Mlp2 {
    linear_1: Linear,
    linear_2: Linear,
    gelu_tanh: bool,
}

impl Mlp2 {
    /// `in_dim → hidden → out_dim` with SiLU.
    pub fn silu(in_dim: usize, hidden: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: linear(in_dim, hidden, true, vb.pp("linear_1"))?,
            linear_2: linear(hidden, out_dim, true, vb.pp("linear_2"))?,
            gelu_tanh: false,
        })
    }

    /// `in_dim → hidden → out_dim` with GELU-tanh (`PixArtAlphaTextProjection`'s default).
    pub fn gelu_tanh(in_dim: usize, hidden: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            gelu_tanh: true,
            ..Self::silu(in_dim, hidden, out_dim, vb)?
        })
    }
}

impl Module for Mlp2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.linear_1.forward(x)?;
        let h = if self.gelu_tanh {
            h.gelu()?
        } else {
            candle_nn::ops::silu(&h)?
        };
        self.linear_2.forward(&h)
    }
}

/// diffusers' `CombinedTimestepTextProjEmbeddings` / `CombinedTimestepGuidanceTextProjEmbeddings`
/// (Flux, HunyuanVideo; Bria without the pooled text): `time_proj` (256 channels, cos first, shift
/// 0) → `timestep_embedder`, plus `guidance_embedder` on the guidance, plus `text_embedder` on the
/// pooled text embedding.
#[derive(Debug, Clone)]
pub struct CombinedTimestepTextProj {
    time_proj: Timesteps,
    timestep_embedder: Mlp2,
    guidance_embedder: Option<Mlp2>,
    text_embedder: Option<Mlp2>,
}

impl CombinedTimestepTextProj {
    /// `embedding_dim` output; a guidance embedder if `guidance`; a pooled-text embedder if
    /// `pooled_projection_dim` is given.
    pub fn new(
        embedding_dim: usize,
        pooled_projection_dim: Option<usize>,
        guidance: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let time_proj = Timesteps {
            num_channels: 256,
            flip_sin_to_cos: true,
            downscale_freq_shift: 0.0,
            scale: 1.0,
        };
        let emb = |name: &str| Mlp2::silu(256, embedding_dim, embedding_dim, vb.pp(name));
        Ok(Self {
            time_proj,
            timestep_embedder: emb("timestep_embedder")?,
            guidance_embedder: if guidance {
                Some(emb("guidance_embedder")?)
            } else {
                None
            },
            text_embedder: match pooled_projection_dim {
                Some(p) => Some(Mlp2::silu(
                    p,
                    embedding_dim,
                    embedding_dim,
                    vb.pp("text_embedder"),
                )?),
                None => None,
            },
        })
    }

    /// Whether the embedder has a guidance embedder.
    pub fn has_guidance(&self) -> bool {
        self.guidance_embedder.is_some()
    }

    /// `temb` `(B, embedding_dim)` in `dtype`. `timestep`/`guidance` are already scaled (Flux
    /// multiplies them by 1000 before calling this).
    pub fn forward(
        &self,
        timestep: &Tensor,
        guidance: Option<&Tensor>,
        pooled: Option<&Tensor>,
        dtype: DType,
    ) -> Result<Tensor> {
        let t = self.time_proj.forward(timestep)?.to_dtype(dtype)?;
        let mut temb = self.timestep_embedder.forward(&t)?;
        if let (Some(embedder), Some(g)) = (&self.guidance_embedder, guidance) {
            let g = self.time_proj.forward(g)?.to_dtype(dtype)?;
            temb = (temb + embedder.forward(&g)?)?;
        }
        if let (Some(embedder), Some(p)) = (&self.text_embedder, pooled) {
            temb = (temb + embedder.forward(&p.to_dtype(dtype)?)?)?;
        }
        Ok(temb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 2e-6, "{a:?} vs {b:?}");
        }
    }

    /// Values from diffusers 0.42 `get_timestep_embedding`.
    #[test]
    fn matches_diffusers_timestep_embedding() -> Result<()> {
        let t = Tensor::new(&[0f32, 500.0, 999.0], &Device::Cpu)?;
        let e = timestep_embedding(&t, 8, true, 0.0, 1.0, 10000.0)?.to_vec2::<f32>()?;
        close(&e[0], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        close(
            &e[1],
            &[
                -0.883_849_3,
                0.964_965,
                0.283_662_2,
                0.877_582_55,
                -0.467_771_8,
                -0.262_378_54,
                -0.958_924_3,
                0.479_425_52,
            ],
        );
        close(
            &e[2],
            &[
                0.999_649_8,
                0.807_455_06,
                -0.844_469_8,
                0.541_143_5,
                -0.026_460_752,
                -0.589_929_1,
                -0.535_603_17,
                0.840_930_2,
            ],
        );
        let t = Tensor::new(&[3f32], &Device::Cpu)?;
        let e = timestep_embedding(&t, 7, false, 1.0, 2.0, 10000.0)?.to_vec2::<f32>()?;
        close(
            &e[0],
            &[
                -0.279_415_5,
                0.059_964_005,
                0.000_599_999_85,
                0.960_170_3,
                0.998_200_5,
                0.999_999_8,
                0.0,
            ],
        );
        Ok(())
    }
}
