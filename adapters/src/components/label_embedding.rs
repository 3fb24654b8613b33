//! Class-conditional timestep embedding: diffusers' `CombinedTimestepLabelEmbeddings` (DiT).
//! In the diffusers layout every DiT block stores a copy under `norm1.emb`, and the model's
//! final layer reuses block 0's.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::embeddings::{Mlp2, Timesteps};

/// `timestep_embedder(time_proj(t)) + class_embedder(labels)`: sinusoidal timesteps (256
/// channels, cos first, `downscale_freq_shift` 1) through a SiLU MLP, plus a row of the class
/// table `class_embedder.embedding_table` (`num_classes + 1` rows when label dropout was used
/// in training: the last row is the null class classifier-free guidance feeds).
#[derive(Debug, Clone)]
pub struct CombinedTimestepLabelEmbeddings {
    time_proj: Timesteps,
    timestep_embedder: Mlp2,
    embedding_table: Tensor,
}

impl CombinedTimestepLabelEmbeddings {
    /// Loads the embedder from `vb` (`norm1.emb` of a DiT block). `table_rows` is
    /// `num_classes + 1` for checkpoints trained with label dropout (DiT), else `num_classes`.
    pub fn new(table_rows: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            time_proj: Timesteps {
                num_channels: 256,
                flip_sin_to_cos: true,
                downscale_freq_shift: 1.0,
                scale: 1.0,
            },
            timestep_embedder: Mlp2::silu(256, dim, dim, vb.pp("timestep_embedder"))?,
            embedding_table: vb.get_with_hints(
                (table_rows, dim),
                "class_embedder.embedding_table.weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )?,
        })
    }

    /// The conditioning `(N, dim)` for `timestep` `(N,)` and integer `class_labels` `(N,)`.
    pub fn forward(&self, timestep: &Tensor, class_labels: &Tensor) -> Result<Tensor> {
        let dtype = self.embedding_table.dtype();
        let t = self.time_proj.forward(timestep)?.to_dtype(dtype)?;
        let t = self.timestep_embedder.forward(&t)?;
        let labels = match class_labels.dtype() {
            DType::U32 | DType::I64 | DType::U8 => class_labels.clone(),
            _ => class_labels.to_dtype(DType::U32)?,
        };
        t + self.embedding_table.index_select(&labels, 0)?
    }
}
