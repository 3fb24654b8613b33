//! CogVideoX 1.0 and 1.5 (`CogVideoXTransformer3DModel`): design X (shared-weight joint
//! attention with expert adaLN) over `[txt, img]`, one cached list, `transformer_blocks`,
//! Pattern_0. `CogVideoXPipeline` batches conditional and unconditional inputs (CFG batched).
//!
//! What the family adds to the design: the joint patch embedding (`text_proj` plus a per-frame
//! Conv2d patchify for 1.0 or a `p_t × p × p` linear patchify for 1.5) with a 3-D sin-cos
//! position table (2B), a learned table (5B-I2V) or none (rotary models); the pipeline's 3-D
//! rotary tables (linspace grid over a centred crop for 1.0, sliced grid for 1.5), which
//! [`CogVideoXTransformer3DModel::rotary`] builds; the timestep (+ 1.5-I2V `ofs`) embedding; and
//! the final LayerNorm plus `AdaLayerNorm` (shift, scale) before `proj_out`.

use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::cogvideox_positions::{pipeline_rotary, sincos_3d_table};
use crate::blocks::shared_joint::{SharedJointBlock, SharedJointBlockConfig};
use crate::components::embeddings::{Mlp2, Timesteps};
use crate::components::expert_modulation::ExpertModulation;
use crate::components::linear;
use crate::components::modulation::modulate;
use crate::components::norm::{Norm, NormKind};
use crate::components::rope::RotaryEmbedding;
use crate::loader::DiffusersConfig;
use crate::sample::VideoSampleShape;

/// The diffusers config of `CogVideoXTransformer3DModel`; defaults are diffusers' constructor
/// defaults (= `THUDM/CogVideoX-2b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Latent channels in (I2V models: noise plus image latents).
    pub in_channels: usize,
    /// Latent channels out (`None`: `in_channels`).
    pub out_channels: Option<usize>,
    /// `cos, sin` order of the timestep embedding.
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the timestep embedding.
    pub freq_shift: f64,
    /// Width of the timestep embedding (the blocks' conditioning).
    pub time_embed_dim: usize,
    /// Width of the `ofs` embedding (CogVideoX 1.5-I2V; equals `time_embed_dim`).
    pub ofs_embed_dim: Option<usize>,
    /// Width of the text-encoder states (T5-XXL: 4096).
    pub text_embed_dim: usize,
    /// Blocks.
    pub num_layers: usize,
    /// Dropout (inference: unused).
    pub dropout: f64,
    /// Bias of `to_q`, `to_k`, `to_v`.
    pub attention_bias: bool,
    /// Latent width the position table is built for.
    pub sample_width: usize,
    /// Latent height the position table is built for.
    pub sample_height: usize,
    /// Video frames (before temporal compression) the position table is built for.
    pub sample_frames: usize,
    /// Spatial patch size.
    pub patch_size: usize,
    /// Temporal patch size (CogVideoX 1.5; `None`: 1.0's per-frame patches).
    pub patch_size_t: Option<usize>,
    /// Video frames per latent frame.
    pub temporal_compression_ratio: usize,
    /// Text tokens the position table reserves.
    pub max_text_seq_length: usize,
    /// FFN activation (only `gelu-approximate`).
    pub activation_fn: String,
    /// Timestep MLP activation (only `silu`).
    pub timestep_activation_fn: String,
    /// Affine LayerNorms.
    pub norm_elementwise_affine: bool,
    /// LayerNorm epsilon.
    pub norm_eps: f64,
    /// Spatial scale of the sin-cos table.
    pub spatial_interpolation_scale: f64,
    /// Temporal scale of the sin-cos table.
    pub temporal_interpolation_scale: f64,
    /// Rotary image positions (the pipeline passes the tables) instead of the sin-cos table.
    pub use_rotary_positional_embeddings: bool,
    /// A learned joint position table (`patch_embed.pos_embedding`, 5B-I2V).
    pub use_learned_positional_embeddings: bool,
    /// Bias of the 1.0 Conv2d patch projection (1.5's linear projection always has one).
    pub patch_bias: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            num_attention_heads: 30,
            attention_head_dim: 64,
            in_channels: 16,
            out_channels: Some(16),
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            time_embed_dim: 512,
            ofs_embed_dim: None,
            text_embed_dim: 4096,
            num_layers: 30,
            dropout: 0.0,
            attention_bias: true,
            sample_width: 90,
            sample_height: 60,
            sample_frames: 49,
            patch_size: 2,
            patch_size_t: None,
            temporal_compression_ratio: 4,
            max_text_seq_length: 226,
            activation_fn: "gelu-approximate".into(),
            timestep_activation_fn: "silu".into(),
            norm_elementwise_affine: true,
            norm_eps: 1e-5,
            spatial_interpolation_scale: 1.875,
            temporal_interpolation_scale: 1.0,
            use_rotary_positional_embeddings: false,
            use_learned_positional_embeddings: false,
            patch_bias: true,
        }
    }
}

impl Config {
    /// `THUDM/CogVideoX-2b`: 30 layers of 30 × 64, sin-cos positions.
    pub fn cogvideox_2b() -> Self {
        Self::default()
    }

    /// `THUDM/CogVideoX-5b`: 42 layers of 48 × 64, rotary positions.
    pub fn cogvideox_5b() -> Self {
        Self {
            num_attention_heads: 48,
            num_layers: 42,
            use_rotary_positional_embeddings: true,
            ..Self::default()
        }
    }

    /// `THUDM/CogVideoX-5b-I2V`: the 5B with image latents concatenated to the noise (32
    /// channels in) and a learned position table.
    pub fn cogvideox_5b_i2v() -> Self {
        Self {
            in_channels: 32,
            use_learned_positional_embeddings: true,
            ..Self::cogvideox_5b()
        }
    }

    /// `THUDM/CogVideoX1.5-5B`: the 5B with `2 × 2 × 2` patches (`patch_bias` false, which
    /// its linear patch projection ignores), sized for 81 frames of 300 × 300 latents.
    pub fn cogvideox1_5_5b() -> Self {
        Self {
            patch_size_t: Some(2),
            patch_bias: false,
            sample_width: 300,
            sample_height: 300,
            sample_frames: 81,
            ..Self::cogvideox_5b()
        }
    }

    /// `THUDM/CogVideoX1.5-5B-I2V`: 1.5 with image latents (32 channels in) and the `ofs`
    /// embedding.
    pub fn cogvideox1_5_5b_i2v() -> Self {
        Self {
            in_channels: 32,
            ofs_embed_dim: Some(512),
            ..Self::cogvideox1_5_5b()
        }
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_cogvideox.py`).
    pub fn tiny() -> Self {
        Self {
            num_attention_heads: 2,
            attention_head_dim: 8,
            in_channels: 4,
            out_channels: Some(4),
            time_embed_dim: 2,
            text_embed_dim: 8,
            num_layers: 2,
            sample_width: 8,
            sample_height: 8,
            sample_frames: 8,
            patch_size: 2,
            patch_size_t: None,
            temporal_compression_ratio: 4,
            max_text_seq_length: 8,
            ..Self::default()
        }
    }

    /// Width of both streams (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels (`out_channels` or `in_channels`).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Latent frames per temporal patch (1 for CogVideoX 1.0).
    pub fn temporal_patch(&self) -> usize {
        self.patch_size_t.unwrap_or(1)
    }

    /// The design-X knobs of `CogVideoXBlock` under this config.
    pub fn block_config(&self) -> SharedJointBlockConfig {
        SharedJointBlockConfig {
            modulation: ExpertModulation::Expert6 {
                cond_dim: self.time_embed_dim,
                affine: self.norm_elementwise_affine,
                eps: self.norm_eps,
            },
            attention_bias: self.attention_bias,
            ..SharedJointBlockConfig::cogvideox(
                self.inner_dim(),
                self.num_attention_heads,
                self.attention_head_dim,
                self.time_embed_dim,
            )
        }
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("num_attention_heads", self.num_attention_heads),
            ("attention_head_dim", self.attention_head_dim),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("time_embed_dim", self.time_embed_dim),
            ("text_embed_dim", self.text_embed_dim),
            ("patch_size", self.patch_size),
            ("patch_size_t", self.temporal_patch()),
            ("temporal_compression_ratio", self.temporal_compression_ratio),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if self.activation_fn != "gelu-approximate" || self.timestep_activation_fn != "silu" {
            return Err(
                "only `activation_fn` \"gelu-approximate\" and `timestep_activation_fn` \"silu\" are supported"
                    .into(),
            );
        }
        if !self.use_rotary_positional_embeddings && self.use_learned_positional_embeddings {
            return Err(
                "learned positional embeddings need `use_rotary_positional_embeddings` (as in diffusers)"
                    .into(),
            );
        }
        if self.use_rotary_positional_embeddings && !(self.attention_head_dim / 8).is_multiple_of(2) {
            return Err(
                "rotary positions need `attention_head_dim / 8` even (3-D split t: d/4, h, w: 3d/8)".into(),
            );
        }
        if !self.use_rotary_positional_embeddings && !self.inner_dim().is_multiple_of(16) {
            return Err("the 3-D sin-cos table needs `heads × head_dim` divisible by 16".into());
        }
        if self.ofs_embed_dim.is_some_and(|d| d != self.time_embed_dim) {
            return Err("`ofs_embed_dim` must equal `time_embed_dim` (the embeddings are added)".into());
        }
        Ok(())
    }
}

/// diffusers' `CogVideoXBlock`: design X with CogVideoX's knobs.
#[derive(Debug, Clone)]
pub struct CogVideoXBlock {
    inner: SharedJointBlock,
}

impl CogVideoXBlock {
    /// Loads the block from `vb` (`transformer_blocks.{i}`).
    pub fn new(cfg: &SharedJointBlockConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            inner: SharedJointBlock::new(cfg, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_0)]
impl CogVideoXBlock {
    /// Returns `(hidden_states, encoder_hidden_states)`, like diffusers; `image_rotary_emb`
    /// covers the image tokens only.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<(Tensor, Tensor)> {
        self.inner
            .forward(hidden_states, encoder_hidden_states, temb, image_rotary_emb, None)
    }
}

/// The position table `CogVideoXPatchEmbed` adds to the joint sequence.
#[derive(Debug, Clone)]
enum Positions {
    /// Rotary models without a learned table: nothing is added.
    None,
    /// The 3-D sin-cos table of the patch grid, on the image tokens.
    SinCos,
    /// `pos_embedding` `(1, max_text + patches, D)`, on the whole joint sequence.
    Learned(Tensor),
}

/// diffusers' `CogVideoXTransformer3DModel`.
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Batched)]
pub struct CogVideoXTransformer3DModel {
    cfg: Config,
    dtype: DType,
    patch_proj: Linear,
    text_proj: Linear,
    positions: Positions,
    time_proj: Timesteps,
    time_embedding: Mlp2,
    ofs_embedding: Option<Mlp2>,
    transformer_blocks: BlockList<CogVideoXBlock>,
    norm_final: Norm,
    norm_out_linear: Linear,
    norm_out: Norm,
    proj_out: Linear,
    sample: VideoSampleShape,
}

impl CogVideoXTransformer3DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let (d, p, pt, c) = (
            cfg.inner_dim(),
            cfg.patch_size,
            cfg.temporal_patch(),
            cfg.in_channels,
        );
        let pe = vb.pp("patch_embed");
        let patch_in = c * pt * p * p;
        let patch_proj = match cfg.patch_size_t {
            // Conv2d with kernel = stride = p is a linear map over packed `(C, p, p)` patches.
            None => {
                let w = pe
                    .pp("proj")
                    .get((d, c, p, p), "weight")?
                    .reshape((d, patch_in))?;
                let b = cfg.patch_bias.then(|| pe.pp("proj").get(d, "bias")).transpose()?;
                Linear::new(w, b)
            }
            // 1.5's `nn.Linear` always has a bias: diffusers' `patch_bias` only reaches the Conv2d.
            Some(_) => linear(patch_in, d, true, pe.pp("proj"))?,
        };
        let positions = if cfg.use_learned_positional_embeddings {
            let h = cfg.sample_height / p;
            let w = cfg.sample_width / p;
            let f = (cfg.sample_frames - 1) / cfg.temporal_compression_ratio + 1;
            Positions::Learned(pe.get((1, cfg.max_text_seq_length + f * h * w, d), "pos_embedding")?)
        } else if cfg.use_rotary_positional_embeddings {
            Positions::None
        } else {
            Positions::SinCos
        };
        let ln = NormKind::LayerNorm {
            affine: cfg.norm_elementwise_affine,
            bias: true,
        };
        let block_cfg = cfg.block_config();
        let blocks = (0..cfg.num_layers)
            .map(|i| CogVideoXBlock::new(&block_cfg, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let te = cfg.time_embed_dim;
        Ok(Self {
            dtype: vb.dtype(),
            patch_proj,
            text_proj: linear(cfg.text_embed_dim, d, true, pe.pp("text_proj"))?,
            positions,
            time_proj: Timesteps {
                num_channels: d,
                flip_sin_to_cos: cfg.flip_sin_to_cos,
                downscale_freq_shift: cfg.freq_shift,
                scale: 1.0,
            },
            time_embedding: Mlp2::silu(d, te, te, vb.pp("time_embedding"))?,
            ofs_embedding: cfg
                .ofs_embed_dim
                .map(|o| Mlp2::silu(o, o, o, vb.pp("ofs_embedding")))
                .transpose()?,
            transformer_blocks: BlockList::new(blocks),
            norm_final: Norm::new(ln, d, cfg.norm_eps, vb.pp("norm_final"))?,
            norm_out_linear: linear(te, 2 * d, true, vb.pp("norm_out").pp("linear"))?,
            norm_out: Norm::new(ln, d, cfg.norm_eps, vb.pp("norm_out").pp("norm"))?,
            proj_out: linear(d, p * p * pt * cfg.out_channels(), true, vb.pp("proj_out"))?,
            // the pipeline's default size: the config's sample size (latent rows and columns;
            // video frames, compressed and, for 1.5, padded to whole temporal patches)
            sample: VideoSampleShape {
                frames: ((cfg.sample_frames.max(1) - 1) / cfg.temporal_compression_ratio + 1)
                    .next_multiple_of(cfg.temporal_patch()),
                height: cfg.sample_height,
                width: cfg.sample_width,
                text_len: cfg.max_text_seq_length,
            },
            cfg,
        })
    }

    /// The blocks' conditioning: the timestep embedding, plus the `ofs` embedding when the
    /// model has one (`ofs` `(1,)` or `(B,)`; 1.5-I2V pipelines pass 2.0).
    pub fn time_embed(&self, timestep: &Tensor, ofs: Option<&Tensor>) -> Result<Tensor> {
        let t = self.time_proj.forward(timestep)?.to_dtype(self.dtype)?;
        let emb = self.time_embedding.forward(&t)?;
        match (&self.ofs_embedding, ofs) {
            (Some(mlp), Some(ofs)) => {
                let o = Timesteps {
                    num_channels: self.cfg.ofs_embed_dim.unwrap_or(self.cfg.time_embed_dim),
                    ..self.time_proj
                };
                let o = mlp.forward(&o.forward(ofs)?.to_dtype(self.dtype)?)?;
                emb.broadcast_add(&o)
            }
            (Some(_), None) => candle_core::bail!("this CogVideoX model embeds `ofs`, but none was given"),
            (None, _) => Ok(emb),
        }
    }

    /// `CogVideoXPatchEmbed`: `(text, image)` tokens `(B, T, D)`, `(B, F'·h·w, D)` of
    /// `encoder_hidden_states` and `hidden_states` `(B, F, C, H, W)`, positions added.
    pub fn patch_embed(
        &self,
        encoder_hidden_states: &Tensor,
        hidden_states: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (b, f, c, h, w) = hidden_states.dims5()?;
        let (p, pt) = (self.cfg.patch_size, self.cfg.temporal_patch());
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) || !f.is_multiple_of(pt) {
            candle_core::bail!(
                "latents of {f} frames of {h}x{w} are not divisible into {pt}x{p}x{p} patches"
            );
        }
        let (fp, hp, wp) = (f / pt, h / p, w / p);
        let tokens = hidden_states
            .to_dtype(self.dtype)?
            .reshape(vec![b, fp, pt, c, hp, p, wp, p])?
            .permute([0, 1, 4, 6, 3, 2, 5, 7])?
            .reshape((b, fp * hp * wp, c * pt * p * p))?;
        let image = self.patch_proj.forward(&tokens)?;
        let text = self
            .text_proj
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        match &self.positions {
            Positions::None => Ok((text, image)),
            Positions::SinCos => {
                let cfg = &self.cfg;
                let d = cfg.inner_dim();
                let table = sincos_3d_table(
                    d,
                    fp,
                    hp,
                    wp,
                    cfg.spatial_interpolation_scale,
                    cfg.temporal_interpolation_scale,
                );
                let table =
                    Tensor::from_vec(table, (1, fp * hp * wp, d), image.device())?.to_dtype(self.dtype)?;
                Ok((text, image.broadcast_add(&table)?))
            }
            Positions::Learned(table) => {
                let (t, s) = (text.dim(1)?, image.dim(1)?);
                if t + s != table.dim(1)? {
                    candle_core::bail!(
                        "the learned position table covers {} tokens but the input has {t} text + {s} image tokens (generate at the config's sample size)",
                        table.dim(1)?
                    );
                }
                let joint = Tensor::cat(&[&text, &image], 1)?.broadcast_add(table)?;
                Ok((joint.narrow(1, 0, t)?, joint.narrow(1, t, s)?))
            }
        }
    }

    /// The rotary tables `CogVideoXPipeline._prepare_rotary_positional_embeddings` passes for
    /// `frames` latent frames of a `grid_h × grid_w` patch grid (`None` for sin-cos models);
    /// see [`pipeline_rotary`].
    pub fn rotary(&self, frames: usize, grid_h: usize, grid_w: usize) -> Result<Option<RotaryEmbedding>> {
        let cfg = &self.cfg;
        if !cfg.use_rotary_positional_embeddings {
            return Ok(None);
        }
        let base = (
            cfg.sample_height / cfg.patch_size,
            cfg.sample_width / cfg.patch_size,
        );
        pipeline_rotary(
            cfg.attention_head_dim,
            cfg.patch_size_t,
            base,
            (frames, grid_h, grid_w),
            self.proj_out.weight().device(),
        )
        .map(Some)
    }

    /// The transformer: `hidden_states` `(B, F, C, H, W)` (frames before channels, as the
    /// pipeline lays latents out), `encoder_hidden_states` `(B, T, text_embed_dim)`,
    /// `timestep` `(B,)`, `ofs` for 1.5-I2V, the pipeline's `image_rotary_emb`. Returns
    /// `(B, F, out_channels, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        ofs: Option<&Tensor>,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<Tensor> {
        let (b, f, _, h, w) = hidden_states.dims5()?;
        let (p, pt) = (self.cfg.patch_size, self.cfg.temporal_patch());
        let temb = self.time_embed(timestep, ofs)?;
        let (encoder, hidden) = self.patch_embed(encoder_hidden_states, hidden_states)?;
        let s = self.transformer_blocks.forward(
            Streams::new(hidden, encoder),
            &CogVideoXBlockArgs {
                temb: &temb,
                image_rotary_emb,
            },
        )?;
        let x = self.norm_final.forward(&s.hidden)?;
        let mods = self
            .norm_out_linear
            .forward(&candle_nn::ops::silu(&temb)?)?
            .chunk(2, 1)?;
        let x = modulate(&self.norm_out.forward(&x)?, &mods[0], &mods[1])?;
        let out = self.proj_out.forward(&x)?;
        let (fp, hp, wp) = (f / pt, h / p, w / p);
        let oc = self.cfg.out_channels();
        out.reshape(vec![b, fp, hp, wp, oc, pt, p, p])?
            .permute([0, 1, 5, 4, 2, 6, 3, 7])?
            .reshape((b, f, oc, h, w))
    }
}

crate::family_model!(
    CogVideoXTransformer3DModel,
    config = Config,
    sample = VideoSampleShape,
    tiny_sample = VideoSampleShape {
        frames: 2,
        height: 8,
        width: 8,
        text_len: 8,
    }
);

super::model_accessors!(CogVideoXTransformer3DModel, transformer_blocks: CogVideoXBlock);
