//! Stable Diffusion 3 / 3.5 (`SD3Transformer2DModel`): MMDiT joint blocks over `[img, txt]`
//! (no rotary), adaLN-zero from timestep + pooled CLIP, a cropped 2-D sin-cos position table,
//! optional RMS q/k norms (3.5) and MMDiT-X image self-attention (`attn2`, 3.5-medium). The last
//! block is `context_pre_only`: it returns no text stream (Pattern_1 with `None`).

use cachedit_macros::block_adapter;
use cachedit_runtime::{BlockList, Conditioning, Denoiser, Streams};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::joint::{ClipF16, ContextPreOnly, DualStreamJointBlock, JointBlockConfig};
use crate::components::attention::{AttentionExtras, JointOrder, QkNorm};
use crate::components::embeddings::CombinedTimestepTextProj;
use crate::components::linear;
use crate::components::modulation::AdaLayerNormContinuous;
use crate::components::norm::NormKind;
use crate::components::patchify::pack_latents;
use crate::loader::DiffusersConfig;
use crate::sample::{synthetic_pooled, synthetic_text};

/// The diffusers config of `SD3Transformer2DModel`; defaults are diffusers' constructor defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Latent size the sin-cos table is scaled for (`base_size = sample_size / patch_size`).
    pub sample_size: usize,
    /// Patch size (2 in the released models).
    pub patch_size: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Number of joint blocks (the last is `context_pre_only`).
    pub num_layers: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the text embeddings (CLIP-L‖CLIP-G‖T5: 4096).
    pub joint_attention_dim: usize,
    /// Width of the projected text stream (equals `heads × head_dim` in every SD3 model).
    pub caption_projection_dim: usize,
    /// Width of the pooled text embedding (CLIP-L‖CLIP-G: 2048).
    pub pooled_projection_dim: usize,
    /// Latent channels out.
    pub out_channels: Option<usize>,
    /// Side of the square sin-cos table the position embedding is cropped from.
    pub pos_embed_max_size: usize,
    /// Blocks with MMDiT-X image self-attention (`attn2`).
    pub dual_attention_layers: Vec<usize>,
    /// `"rms_norm"` for SD3.5, none for SD3.
    pub qk_norm: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sample_size: 128,
            patch_size: 2,
            in_channels: 16,
            num_layers: 18,
            attention_head_dim: 64,
            num_attention_heads: 18,
            joint_attention_dim: 4096,
            caption_projection_dim: 1152,
            pooled_projection_dim: 2048,
            out_channels: Some(16),
            pos_embed_max_size: 96,
            dual_attention_layers: Vec::new(),
            qk_norm: None,
        }
    }
}

impl Config {
    /// `stabilityai/stable-diffusion-3-medium-diffusers`.
    pub fn sd3_medium() -> Self {
        Self {
            num_layers: 24,
            num_attention_heads: 24,
            caption_projection_dim: 1536,
            pos_embed_max_size: 192,
            ..Self::default()
        }
    }

    /// `stabilityai/stable-diffusion-3.5-large` (and -large-turbo).
    pub fn sd35_large() -> Self {
        Self {
            num_layers: 38,
            num_attention_heads: 38,
            caption_projection_dim: 2432,
            pos_embed_max_size: 192,
            qk_norm: Some("rms_norm".into()),
            ..Self::default()
        }
    }

    /// `stabilityai/stable-diffusion-3.5-medium` (MMDiT-X: dual attention in blocks 0–12).
    pub fn sd35_medium() -> Self {
        Self {
            pos_embed_max_size: 384,
            dual_attention_layers: (0..=12).collect(),
            qk_norm: Some("rms_norm".into()),
            ..Self::sd3_medium()
        }
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_sd3.py`).
    pub fn tiny() -> Self {
        Self {
            sample_size: 32,
            patch_size: 1,
            in_channels: 4,
            num_layers: 4,
            attention_head_dim: 8,
            num_attention_heads: 4,
            caption_projection_dim: 32,
            joint_attention_dim: 32,
            pooled_projection_dim: 64,
            out_channels: Some(4),
            pos_embed_max_size: 96,
            dual_attention_layers: Vec::new(),
            qk_norm: None,
        }
    }

    /// Width of the transformer.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    fn qk(&self) -> QkNorm {
        match self.qk_norm.as_deref() {
            Some("rms_norm") => QkNorm::RmsNorm {
                eps: 1e-6,
                affine: true,
            },
            _ => QkNorm::None,
        }
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("sample_size", self.sample_size),
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("num_layers", self.num_layers),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("pos_embed_max_size", self.pos_embed_max_size),
            ("out_channels", self.out_channels()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if self.caption_projection_dim != self.inner_dim() {
            return Err(format!(
                "`caption_projection_dim` {} must equal heads × head_dim {}",
                self.caption_projection_dim,
                self.inner_dim()
            ));
        }
        if !self.inner_dim().is_multiple_of(4) {
            return Err("the width must be a multiple of 4 (2-D sin-cos table)".into());
        }
        match self.qk_norm.as_deref() {
            None | Some("rms_norm") => Ok(()),
            Some(other) => Err(format!(
                "`qk_norm` {other:?} is not supported (None or \"rms_norm\")"
            )),
        }
    }
}

/// diffusers' `JointTransformerBlock` (`attention.py`): Design J over `[img, txt]` (no rotary)
/// with Flux's names, FFNs and norms, SD3's q/k norm, no fp16 clip, MMDiT-X's `attn2` in the
/// `dual_attention_layers`, and a last block that drops the text stream.
#[derive(Debug, Clone)]
pub struct JointTransformerBlock {
    inner: DualStreamJointBlock,
}

impl JointTransformerBlock {
    /// Loads block `transformer_blocks.{i}` from `vb`.
    pub fn new(cfg: &Config, context_pre_only: bool, dual_attention: bool, vb: VarBuilder) -> Result<Self> {
        let knobs = JointBlockConfig {
            qk_norm: cfg.qk(),
            joint_order: JointOrder::ImageFirst,
            clip_f16: ClipF16::None,
            context_pre_only: if context_pre_only {
                ContextPreOnly::DropText
            } else {
                ContextPreOnly::No
            },
            dual_attention,
            ..JointBlockConfig::flux(cfg.inner_dim(), cfg.num_attention_heads, cfg.attention_head_dim)
        };
        Ok(Self {
            inner: DualStreamJointBlock::new(&knobs, vb)?,
        })
    }

    /// Whether the block returns no text stream.
    pub fn context_pre_only(&self) -> bool {
        self.inner.context_pre_only() == ContextPreOnly::DropText
    }
}

#[block_adapter(pattern = Pattern_1)]
impl JointTransformerBlock {
    /// Returns `(encoder_hidden_states, hidden_states)`; the text stream is `None` after the
    /// `context_pre_only` last block, as in diffusers.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor)> {
        self.inner.forward_with(
            hidden_states,
            encoder_hidden_states,
            temb,
            None,
            None,
            AttentionExtras::default(),
        )
    }
}

/// diffusers' `get_2d_sincos_pos_embed(dim, grid, base_size)`: `(grid², dim)` rows in row-major
/// `(row, col)` order; the first half of the channels encodes the column, the second the row.
/// Positions are f32 like diffusers', the angles f64, the result f32.
pub fn sincos_2d_table(dim: usize, grid: usize, base_size: usize, interpolation_scale: f32) -> Vec<f32> {
    let half = dim / 2;
    let quarter = half / 2;
    let omega: Vec<f64> = (0..quarter)
        .map(|i| 1.0 / 10000f64.powf(i as f64 / (half as f64 / 2.0)))
        .collect();
    let pos = |i: usize| f64::from(i as f32 / (grid as f32 / base_size as f32) / interpolation_scale);
    let mut out = Vec::with_capacity(grid * grid * dim);
    for r in 0..grid {
        for c in 0..grid {
            for p in [pos(c), pos(r)] {
                out.extend(omega.iter().map(|w| (p * w).sin() as f32));
                out.extend(omega.iter().map(|w| (p * w).cos() as f32));
            }
        }
    }
    out
}

/// diffusers' `PatchEmbed` with SD3 cropping: `proj` (Conv2d, kernel = stride = patch) as a
/// linear map over packed patches, plus the centre crop of a `max × max` sin-cos table.
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    proj: Linear,
    table: Tensor,
    patch: usize,
    max: usize,
}

impl PatchEmbed {
    /// Loads `proj` (`weight` `(dim, C, p, p)`, `bias`) from `vb` and builds the table.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (d, p, c) = (cfg.inner_dim(), cfg.patch_size, cfg.in_channels);
        let bound = 1.0 / ((c * p * p) as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let w = vb.pp("proj").get_with_hints((d, c, p, p), "weight", init)?;
        let b = vb.pp("proj").get_with_hints(d, "bias", init)?;
        let max = cfg.pos_embed_max_size;
        let table = sincos_2d_table(d, max, cfg.sample_size / p, 1.0);
        Ok(Self {
            proj: Linear::new(w.reshape((d, c * p * p))?, Some(b)),
            table: Tensor::from_vec(table, (max, max, d), vb.device())?.to_dtype(vb.dtype())?,
            patch: p,
            max,
        })
    }

    /// `(B, C, H, W)` latents → `(B, (H/p)·(W/p), dim)` tokens with position embeddings.
    pub fn forward(&self, latent: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = latent.dims4()?;
        let (gh, gw) = (h / self.patch, w / self.patch);
        if gh > self.max || gw > self.max {
            candle_core::bail!("latent grid {gh}x{gw} exceeds `pos_embed_max_size` {}", self.max);
        }
        let x = self.proj.forward(&pack_latents(latent, self.patch)?)?;
        let (top, left) = ((self.max - gh) / 2, (self.max - gw) / 2);
        let d = self.table.dim(2)?;
        let pos = self
            .table
            .narrow(0, top, gh)?
            .narrow(1, left, gw)?
            .reshape((1, gh * gw, d))?;
        x.broadcast_add(&pos.to_dtype(x.dtype())?)
    }
}

/// diffusers' `SD3Transformer2DModel`: one cached list, `transformer_blocks` (Pattern_1).
#[derive(Debug, cachedit_macros::CachedTransformer)]
#[cached(cfg = Batched)]
pub struct SD3Transformer2DModel {
    #[cached(skip)]
    cfg: Config,
    #[cached(skip)]
    dtype: DType,
    pos_embed: PatchEmbed,
    time_text_embed: CombinedTimestepTextProj,
    context_embedder: Linear,
    transformer_blocks: BlockList<JointTransformerBlock>,
    norm_out: AdaLayerNormContinuous,
    proj_out: Linear,
    sample: (usize, usize, usize),
}

impl SD3Transformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.inner_dim();
        let n = cfg.num_layers;
        let blocks = (0..n)
            .map(|i| {
                let dual = cfg.dual_attention_layers.contains(&i);
                JointTransformerBlock::new(&cfg, i == n - 1, dual, vb.pp("transformer_blocks").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let no_affine = NormKind::LayerNorm {
            affine: false,
            bias: false,
        };
        let p = cfg.patch_size;
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: PatchEmbed::new(&cfg, vb.pp("pos_embed"))?,
            time_text_embed: CombinedTimestepTextProj::new(
                d,
                Some(cfg.pooled_projection_dim),
                false,
                vb.pp("time_text_embed"),
            )?,
            context_embedder: linear(
                cfg.joint_attention_dim,
                cfg.caption_projection_dim,
                true,
                vb.pp("context_embedder"),
            )?,
            transformer_blocks: BlockList::new(blocks),
            norm_out: AdaLayerNormContinuous::new(d, d, no_affine, 1e-6, true, vb.pp("norm_out"))?,
            proj_out: linear(d, p * p * cfg.out_channels(), true, vb.pp("proj_out"))?,
            // 512×512 pixels (64×64 latents) with 77 + 256 text tokens by default.
            sample: (64, 64, 333),
            cfg,
        })
    }

    /// `temb` from `timestep` `(B,)` (scheduler scale, 0..1000) and the pooled text embedding.
    pub fn conditioning(&self, timestep: &Tensor, pooled_projections: &Tensor) -> Result<Tensor> {
        self.time_text_embed.forward(
            &timestep.to_dtype(DType::F32)?,
            None,
            Some(pooled_projections),
            self.dtype,
        )
    }

    /// The transformer: `hidden_states` `(B, C, H, W)` latents, `encoder_hidden_states`
    /// `(B, T, joint_attention_dim)`, `pooled_projections` `(B, pooled_projection_dim)`,
    /// `timestep` `(B,)` in the scheduler's scale. Returns `(B, out_channels, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        pooled_projections: &Tensor,
        timestep: &Tensor,
    ) -> Result<Tensor> {
        let (b, _, h, w) = hidden_states.dims4()?;
        let p = self.cfg.patch_size;
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!("latent {h}x{w} is not divisible into {p}x{p} patches");
        }
        let hidden = self.pos_embed.forward(&hidden_states.to_dtype(self.dtype)?)?;
        let temb = self.conditioning(timestep, pooled_projections)?;
        let encoder = self
            .context_embedder
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        let args = JointTransformerBlockArgs { temb: &temb };
        let s = self
            .transformer_blocks
            .forward(Streams::new(hidden, encoder), &args)?;
        let out = self.proj_out.forward(&self.norm_out.forward(&s.hidden, &temb)?)?;
        // (B, h·w, p·p·c) as (h, w, p, q, c) → (B, c, h·p, w·q)
        let c = self.cfg.out_channels();
        out.reshape((b, h / p, w / p, p, p, c))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, c, h, w))
    }
}

/// Conditioning tensor names SD3's `predict` reads.
pub mod names {
    /// `(B, T, joint_attention_dim)` CLIP-L‖CLIP-G (padded) and T5 embeddings.
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// `(B, pooled_projection_dim)` pooled CLIP-L‖CLIP-G embedding.
    pub const POOLED_PROJECTIONS: &str = "pooled_projections";
}

impl Denoiser for SD3Transformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![batch, self.cfg.in_channels, self.sample.0, self.sample.1]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let text = synthetic_text(batch, self.sample.2, self.cfg.joint_attention_dim, seed, device)?;
        let pooled = synthetic_pooled(batch, self.cfg.pooled_projection_dim, seed, device)?;
        Ok(Conditioning::new()
            .with(names::ENCODER_HIDDEN_STATES, text)
            .with(names::POOLED_PROJECTIONS, pooled))
    }

    /// `timestep` in the flow-matching scheduler's scale (`σ · 1000`), passed unchanged as
    /// `StableDiffusion3Pipeline` does.
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        self.forward(
            latents,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            cond.get(names::POOLED_PROJECTIONS)?,
            timestep,
        )?
        .to_dtype(latents.dtype())
    }
}

// The generation size is `(latent height, latent width, text length)`.
crate::family_model!(
    SD3Transformer2DModel,
    config = Config,
    sample = (usize, usize, usize),
    tiny_sample = (8, 8, 16)
);

super::model_accessors!(SD3Transformer2DModel, transformer_blocks: JointTransformerBlock);
