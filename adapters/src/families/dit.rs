//! DiT (`DiTTransformer2DModel`, docs/families.md §1.16): class-conditional design D without
//! cross-attention, adaLN-zero from a timestep + class embedding, a 2-D sin-cos position table,
//! learned σ (`out_channels = 2·in_channels`). One cached list, `transformer_blocks` (Pattern_3).
//!
//! In the diffusers layout every block's `norm1` owns a `CombinedTimestepLabelEmbeddings`
//! (`norm1.emb`) and embeds `(timestep, class_labels)` itself; the final layer reuses block 0's.
//! The blocks here keep their own embedders too, so any checkpoint (not only one whose copies
//! are identical) gives diffusers' result, and the conditioning of the final layer is computed
//! outside the blocks from block 0's embedder, which is what cache-dit's `DiTPatchFunctor`
//! arranges upstream.

use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, Conditioning, Denoiser, Streams, seeded_normal};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::sequential::{SequentialBlock, SequentialBlockConfig};
use crate::components::label_embedding::CombinedTimestepLabelEmbeddings;
use crate::components::linear;
use crate::components::norm::{Norm, NormKind};
use crate::components::patch_embed::PatchEmbed;
use crate::loader::DiffusersConfig;

/// The diffusers config of `DiTTransformer2DModel` (and of the `Transformer2DModel` configs the
/// DiT checkpoints were published with); defaults are diffusers' constructor defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Latent channels out (8 = ε and the learned variance).
    pub out_channels: Option<usize>,
    /// Number of blocks.
    pub num_layers: usize,
    /// Training-time dropout (no effect at inference).
    pub dropout: f64,
    /// Unused by DiT (a `Transformer2DModel` argument).
    pub norm_num_groups: usize,
    /// Bias of the attention projections.
    pub attention_bias: bool,
    /// Latent size the model was trained at (the sin-cos table's `base_size`).
    pub sample_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// FFN activation (`"gelu-approximate"`).
    pub activation_fn: String,
    /// Number of classes (the class table has one more row: the null class).
    pub num_embeds_ada_norm: Option<usize>,
    /// Attention in f32 for half-precision weights (off in the published configs).
    pub upcast_attention: bool,
    /// `"ada_norm_zero"`.
    pub norm_type: String,
    /// LayerNorms with affine parameters (off).
    pub norm_elementwise_affine: bool,
    /// Epsilon of the blocks' FFN LayerNorm (`norm3`).
    pub norm_eps: f64,
    /// `Transformer2DModel` configs only: must be null (DiT has no text).
    pub cross_attention_dim: Option<usize>,
    /// `Transformer2DModel` configs only: must be false.
    pub double_self_attention: bool,
    /// `Transformer2DModel` configs only: must be false.
    pub only_cross_attention: bool,
    /// `Transformer2DModel` configs only: must be false.
    pub use_linear_projection: bool,
    /// `Transformer2DModel` configs only: must be null (no discrete latents).
    pub num_vector_embeds: Option<usize>,
    /// `Transformer2DModel` configs only: `"default"`.
    pub attention_type: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            num_attention_heads: 16,
            attention_head_dim: 72,
            in_channels: 4,
            out_channels: None,
            num_layers: 28,
            dropout: 0.0,
            norm_num_groups: 32,
            attention_bias: true,
            sample_size: 32,
            patch_size: 2,
            activation_fn: "gelu-approximate".into(),
            num_embeds_ada_norm: Some(1000),
            upcast_attention: false,
            norm_type: "ada_norm_zero".into(),
            norm_elementwise_affine: false,
            norm_eps: 1e-5,
            cross_attention_dim: None,
            double_self_attention: false,
            only_cross_attention: false,
            use_linear_projection: false,
            num_vector_embeds: None,
            attention_type: "default".into(),
        }
    }
}

impl Config {
    /// `facebook/DiT-XL-2-256`: 28 blocks of 1152, 1000 ImageNet classes, learned σ.
    pub fn xl_2_256() -> Self {
        Self {
            out_channels: Some(8),
            ..Self::default()
        }
    }

    /// `facebook/DiT-XL-2-512`: the same on 64×64 latents.
    pub fn xl_2_512() -> Self {
        Self {
            sample_size: 64,
            ..Self::xl_2_256()
        }
    }

    /// The tiny config of diffusers' unit tests (`test_models_dit_transformer2d.py`).
    pub fn tiny() -> Self {
        Self {
            num_attention_heads: 2,
            attention_head_dim: 4,
            out_channels: Some(8),
            num_layers: 1,
            sample_size: 8,
            num_embeds_ada_norm: Some(8),
            ..Self::default()
        }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Number of classes (the null class of classifier-free guidance is this index).
    pub fn num_classes(&self) -> usize {
        self.num_embeds_ada_norm.unwrap_or(0)
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("num_attention_heads", self.num_attention_heads),
            ("attention_head_dim", self.attention_head_dim),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("num_layers", self.num_layers),
            ("sample_size", self.sample_size),
            ("patch_size", self.patch_size),
            ("num_embeds_ada_norm", self.num_classes()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        let expect = [
            ("norm_type", self.norm_type.as_str(), "ada_norm_zero"),
            ("activation_fn", self.activation_fn.as_str(), "gelu-approximate"),
            ("attention_type", self.attention_type.as_str(), "default"),
        ];
        if let Some((name, found, want)) = expect.iter().find(|(_, found, want)| found != want) {
            return Err(format!("`{name}` {found:?} is not supported (DiT uses {want:?})"));
        }
        let off = [
            ("norm_elementwise_affine", self.norm_elementwise_affine),
            ("double_self_attention", self.double_self_attention),
            ("only_cross_attention", self.only_cross_attention),
            ("use_linear_projection", self.use_linear_projection),
        ];
        if let Some((name, _)) = off.iter().find(|(_, on)| *on) {
            return Err(format!("`{name}` = true is not supported by DiT"));
        }
        if self.cross_attention_dim.is_some() || self.num_vector_embeds.is_some() {
            return Err(
                "`cross_attention_dim` and `num_vector_embeds` must be null (DiT is class-conditional, continuous)"
                    .into(),
            );
        }
        if !self.inner_dim().is_multiple_of(4) {
            return Err(format!(
                "the width {} must be a multiple of 4 (2-D sin-cos table)",
                self.inner_dim()
            ));
        }
        Ok(())
    }
}

/// diffusers' `BasicTransformerBlock(norm_type="ada_norm_zero")` as DiT builds it: its own
/// `norm1.emb` embedder, then design D with DiT's knobs (no cross-attention).
#[derive(Debug, Clone)]
pub struct DiTTransformerBlock {
    emb: CombinedTimestepLabelEmbeddings,
    inner: SequentialBlock,
}

impl DiTTransformerBlock {
    /// Loads block `transformer_blocks.{i}` from `vb`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (d, heads, head_dim) = (cfg.inner_dim(), cfg.num_attention_heads, cfg.attention_head_dim);
        let knobs = SequentialBlockConfig {
            attention_bias: cfg.attention_bias,
            ..SequentialBlockConfig::dit(d, heads, head_dim, cfg.norm_eps)
        };
        Ok(Self {
            emb: CombinedTimestepLabelEmbeddings::new(cfg.num_classes() + 1, d, vb.pp("norm1.emb"))?,
            inner: SequentialBlock::new(&knobs, vb)?,
        })
    }

    /// The block's conditioning `(B, dim)`: `norm1.emb(timestep, class_labels)`.
    pub fn conditioning(&self, timestep: &Tensor, class_labels: &Tensor) -> Result<Tensor> {
        self.emb.forward(timestep, class_labels)
    }
}

#[block_adapter(pattern = Pattern_3)]
impl DiTTransformerBlock {
    /// The block on the image tokens `(B, S, dim)` for `timestep` `(B,)` (0-1000) and integer
    /// `class_labels` `(B,)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        timestep: &Tensor,
        class_labels: &Tensor,
    ) -> Result<Tensor> {
        let temb = self.conditioning(timestep, class_labels)?;
        self.inner.forward(hidden_states, None, &temb, None, None, None)
    }
}

/// diffusers' `DiTTransformer2DModel`: one cached list, `transformer_blocks` (Pattern_3), with
/// batched CFG (`DiTPipeline` appends the null class to the batch).
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Batched)]
pub struct DiTTransformer2DModel {
    #[cached(skip)]
    cfg: Config,
    #[cached(skip)]
    dtype: DType,
    pos_embed: PatchEmbed,
    transformer_blocks: BlockList<DiTTransformerBlock>,
    norm_out: Norm,
    proj_out_1: Linear,
    proj_out_2: Linear,
    /// The latent side (height = width) a generation uses.
    sample: usize,
}

impl DiTTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let (d, p) = (cfg.inner_dim(), cfg.patch_size);
        let blocks = (0..cfg.num_layers)
            .map(|i| DiTTransformerBlock::new(&cfg, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let no_affine = NormKind::LayerNorm {
            affine: false,
            bias: false,
        };
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: PatchEmbed::new(cfg.in_channels, p, d, cfg.sample_size, 1.0, vb.pp("pos_embed"))?,
            transformer_blocks: BlockList::new(blocks),
            norm_out: Norm::new(no_affine, d, 1e-6, vb.pp("norm_out"))?,
            proj_out_1: linear(d, 2 * d, true, vb.pp("proj_out_1"))?,
            proj_out_2: linear(d, p * p * cfg.out_channels(), true, vb.pp("proj_out_2"))?,
            sample: cfg.sample_size,
            cfg,
        })
    }

    /// The tokens the cached list receives: the patch embedding with positions.
    pub fn embed(&self, hidden_states: &Tensor) -> Result<Tensor> {
        self.pos_embed.forward(&hidden_states.to_dtype(self.dtype)?)
    }

    /// The final layer's conditioning `(B, dim)`: block 0's `norm1.emb`.
    pub fn conditioning(&self, timestep: &Tensor, class_labels: &Tensor) -> Result<Tensor> {
        let Some(first) = self.transformer_blocks.blocks().first() else {
            candle_core::bail!("DiT has no blocks");
        };
        first.conditioning(timestep, class_labels)
    }

    /// The final layer: `norm_out` modulated by `proj_out_1(SiLU(cond))` (`shift, scale`),
    /// `proj_out_2`, and unpatchify to `(B, out_channels, H, W)`.
    pub fn finish(&self, hidden: &Tensor, cond: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let b = hidden.dim(0)?;
        let mods = self
            .proj_out_1
            .forward(&candle_nn::ops::silu(cond)?)?
            .unsqueeze(1)?;
        let d = self.cfg.inner_dim();
        let (shift, scale) = (mods.narrow(2, 0, d)?, mods.narrow(2, d, d)?);
        let x = self.norm_out.forward(hidden)?;
        let x = x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(&shift)?;
        let out = self.proj_out_2.forward(&x)?;
        let (p, c) = (self.cfg.patch_size, self.cfg.out_channels());
        // (B, h·w, p·p·c) as (h, w, p, q, c) → (B, c, h·p, w·q)
        out.reshape((b, h / p, w / p, p, p, c))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, c, h, w))
    }

    /// The transformer: `hidden_states` `(B, C, H, H)` (square: diffusers unpatchifies a
    /// square grid), `timestep` `(B,)` on the 0-1000 scale, `class_labels` `(B,)` (the null
    /// class is `num_embeds_ada_norm`). Returns `(B, out_channels, H, H)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        timestep: &Tensor,
        class_labels: &Tensor,
    ) -> Result<Tensor> {
        let (_, _, h, w) = hidden_states.dims4()?;
        let p = self.cfg.patch_size;
        if h != w || !h.is_multiple_of(p) {
            candle_core::bail!("DiT takes square latents divisible into {p}x{p} patches, got {h}x{w}");
        }
        let args = DiTTransformerBlockArgs {
            timestep,
            class_labels,
        };
        let s = self
            .transformer_blocks
            .forward(Streams::hidden(self.embed(hidden_states)?), &args)?;
        self.finish(&s.hidden, &self.conditioning(timestep, class_labels)?, h, w)
    }
}

/// Conditioning tensor names DiT's `predict` reads.
pub mod names {
    /// `(B,)` integer class labels (`num_embeds_ada_norm` is the null class).
    pub const CLASS_LABELS: &str = "class_labels";
}

impl Denoiser for DiTTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![batch, self.cfg.in_channels, self.sample, self.sample]
    }

    /// Seeded class labels in `0..num_classes`.
    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let u = seeded_normal(&[batch], seed, DType::F32, device)?.to_vec1::<f32>()?;
        let n = self.cfg.num_classes();
        let labels: Vec<u32> = u
            .iter()
            .map(|x| ((x.abs() * 1000.0) as usize % n) as u32)
            .collect();
        Ok(Conditioning::new().with(names::CLASS_LABELS, Tensor::from_vec(labels, batch, device)?))
    }

    /// `timestep` on the scheduler's 0-1000 scale; with a learned variance the ε half is
    /// returned, as `DiTPipeline` splits it off before the scheduler step.
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let out = self.forward(latents, timestep, cond.get(names::CLASS_LABELS)?)?;
        let c = self.cfg.in_channels;
        let out = if self.cfg.out_channels() == 2 * c {
            out.narrow(1, 0, c)?
        } else {
            out
        };
        out.contiguous()?.to_dtype(latents.dtype())
    }
}

crate::family_model!(
    DiTTransformer2DModel,
    config = Config,
    sample = usize,
    tiny_sample = 8
);

super::model_accessors!(DiTTransformer2DModel, transformer_blocks: DiTTransformerBlock);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_and_invalid_configs() {
        for cfg in [Config::xl_2_256(), Config::xl_2_512(), Config::tiny()] {
            assert_eq!(cfg.validate(), Ok(()), "{cfg:?}");
        }
        let text = Config {
            cross_attention_dim: Some(8),
            ..Config::tiny()
        };
        assert!(text.validate().unwrap_err().contains("cross_attention_dim"));
        let single = Config {
            norm_type: "ada_norm_single".into(),
            ..Config::tiny()
        };
        assert!(single.validate().unwrap_err().contains("norm_type"));
    }
}
