//! diffusers' `AdaLayerNormSingle` (PixArt-α's adaLN-single, also Sana's, Allegro's and LTX's):
//! one timestep projection `(B, 6·dim)` for every block, each block adding its own
//! `scale_shift_table`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::embeddings::{Mlp2, Timesteps};
use super::linear;

/// diffusers' `AdaLayerNormSingle` (with `PixArtAlphaCombinedTimestepSizeEmbeddings`): the
/// timestep embedding, plus resolution and aspect-ratio embeddings (each `dim / 3` wide per
/// value) when the micro-conditions are on, then `linear(SiLU(·))` → `(B, 6·dim)`.
#[derive(Debug, Clone)]
pub struct AdaLayerNormSingle {
    time_proj: Timesteps,
    timestep_embedder: Mlp2,
    sizes: Option<(Mlp2, Mlp2)>,
    linear: Linear,
}

impl AdaLayerNormSingle {
    /// Loads `emb.*` and `linear` from `vb` (`adaln_single`).
    pub fn new(dim: usize, additional_conditions: bool, vb: VarBuilder) -> Result<Self> {
        let emb = vb.pp("emb");
        let sizes = if additional_conditions {
            let s = dim / 3;
            Some((
                Mlp2::silu(256, s, s, emb.pp("resolution_embedder"))?,
                Mlp2::silu(256, s, s, emb.pp("aspect_ratio_embedder"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            time_proj: Timesteps {
                num_channels: 256,
                flip_sin_to_cos: true,
                downscale_freq_shift: 0.0,
                scale: 1.0,
            },
            timestep_embedder: Mlp2::silu(256, dim, dim, emb.pp("timestep_embedder"))?,
            sizes,
            linear: linear(dim, 6 * dim, true, vb.pp("linear"))?,
        })
    }

    /// Whether resolution and aspect ratio are embedded.
    pub fn uses_additional_conditions(&self) -> bool {
        self.sizes.is_some()
    }

    /// `(timestep (B, 6·dim), embedded_timestep (B, dim))` for `timestep` `(B,)` on the 0-1000
    /// scale; `sizes` is `(resolution (B, 2), aspect_ratio (B, 1))` when the micro-conditions
    /// are on. `dtype` is the model's.
    pub fn forward(
        &self,
        timestep: &Tensor,
        sizes: Option<(&Tensor, &Tensor)>,
        dtype: DType,
    ) -> Result<(Tensor, Tensor)> {
        let embed = |mlp: &Mlp2, x: &Tensor| {
            mlp.forward(&self.time_proj.forward(&x.flatten_all()?)?.to_dtype(dtype)?)
        };
        let mut emb = embed(&self.timestep_embedder, timestep)?;
        if let Some((res_mlp, ar_mlp)) = &self.sizes {
            let Some((resolution, aspect_ratio)) = sizes else {
                candle_core::bail!(
                    "PixArt with `use_additional_conditions` needs `resolution` and `aspect_ratio` \
                     (diffusers' `added_cond_kwargs`)"
                );
            };
            let b = emb.dim(0)?;
            let res = embed(res_mlp, resolution)?.reshape((b, ()))?;
            let ar = embed(ar_mlp, aspect_ratio)?.reshape((b, ()))?;
            emb = (emb + Tensor::cat(&[res, ar], 1)?)?;
        }
        let six = self.linear.forward(&candle_nn::ops::silu(&emb)?)?;
        Ok((six, emb))
    }
}
