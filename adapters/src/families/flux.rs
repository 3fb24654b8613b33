//! FLUX.1 (`FluxTransformer2DModel`, also Fill/Kontext/VisualCloze): Design J double blocks
//! followed by Design S single blocks, with diffusers' parameter names.

use cachedit_macros::block_adapter;
use cachedit_runtime::{
    BlockList, CachedListInfo, CachedTransformer, ForwardPattern, StaticBlockLists, Streams,
};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::ListLayout;
use crate::blocks::joint::{DualStreamJointBlock, JointBlockConfig};
use crate::blocks::single::{ParallelSingleStreamBlock, SingleBlockConfig};
use crate::components::embeddings::CombinedTimestepTextProj;
use crate::components::linear;
use crate::components::modulation::AdaLayerNormContinuous;
use crate::components::norm::NormKind;
use crate::components::rope::{MultiAxisRope, RotaryEmbedding};
use crate::loader::DiffusersConfig;

/// The diffusers config of `FluxTransformer2DModel` (`transformer/config.json`); defaults are
/// diffusers' constructor defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Patch size of the packed latents (1: the pipeline packs 2×2 patches into channels).
    pub patch_size: usize,
    /// Channels of the input tokens (64 = 16 VAE channels × 2×2; Fill: 384).
    pub in_channels: usize,
    /// Channels of the output tokens (default `in_channels`; Fill: 64).
    pub out_channels: Option<usize>,
    /// Number of dual-stream (double) blocks.
    pub num_layers: usize,
    /// Number of single-stream blocks.
    pub num_single_layers: usize,
    /// Channels per attention head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the text embeddings (T5-XXL: 4096).
    pub joint_attention_dim: usize,
    /// Width of the pooled text embedding (CLIP-L: 768).
    pub pooled_projection_dim: usize,
    /// Whether the model embeds a guidance scale (FLUX.1-dev).
    pub guidance_embeds: bool,
    /// Rotary channels per position axis; they sum to `attention_head_dim`.
    pub axes_dims_rope: Vec<usize>,
    /// How the two block lists are cached (not part of the diffusers config).
    #[serde(skip)]
    pub list_layout: ListLayout,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            patch_size: 1,
            in_channels: 64,
            out_channels: None,
            num_layers: 19,
            num_single_layers: 38,
            attention_head_dim: 128,
            num_attention_heads: 24,
            joint_attention_dim: 4096,
            pooled_projection_dim: 768,
            guidance_embeds: false,
            axes_dims_rope: vec![16, 56, 56],
            list_layout: ListLayout::Chained,
        }
    }
}

impl Config {
    /// FLUX.1-dev (guidance-distilled).
    pub fn dev() -> Self {
        Self {
            guidance_embeds: true,
            ..Self::default()
        }
    }

    /// FLUX.1-schnell (timestep-distilled, no guidance embedding).
    pub fn schnell() -> Self {
        Self::default()
    }

    /// FLUX.1-Fill-dev (and VisualCloze): image + mask conditioning concatenated on channels.
    pub fn fill() -> Self {
        Self {
            in_channels: 384,
            out_channels: Some(64),
            ..Self::dev()
        }
    }

    /// FLUX.1-Kontext-dev: the dev architecture; the reference image is concatenated along the
    /// sequence with ids whose first axis is 1, so no architectural change.
    pub fn kontext() -> Self {
        Self::dev()
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_flux.py`).
    pub fn tiny() -> Self {
        Self {
            patch_size: 1,
            in_channels: 4,
            out_channels: None,
            num_layers: 1,
            num_single_layers: 1,
            attention_head_dim: 16,
            num_attention_heads: 2,
            joint_attention_dim: 32,
            pooled_projection_dim: 32,
            guidance_embeds: false,
            axes_dims_rope: vec![4, 4, 8],
            list_layout: ListLayout::Chained,
        }
    }

    /// The same config with another cached-list layout.
    pub fn with_list_layout(self, list_layout: ListLayout) -> Self {
        Self { list_layout, ..self }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels (`out_channels` or `in_channels`).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }
}

impl DiffusersConfig for Config {
    const FIELDS: &'static [&'static str] = &[
        "patch_size",
        "in_channels",
        "out_channels",
        "num_layers",
        "num_single_layers",
        "attention_head_dim",
        "num_attention_heads",
        "joint_attention_dim",
        "pooled_projection_dim",
        "guidance_embeds",
        "axes_dims_rope",
    ];

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
            ("pooled_projection_dim", self.pooled_projection_dim),
            ("out_channels", self.out_channels()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        // Checked: a value near usize::MAX from config.json would wrap (or panic) in a plain sum.
        let sum = self
            .axes_dims_rope
            .iter()
            .try_fold(0usize, |a, &d| a.checked_add(d));
        if sum != Some(self.attention_head_dim) || self.axes_dims_rope.iter().any(|d| d % 2 == 1) {
            return Err(format!(
                "`axes_dims_rope` {:?} must be even and sum to `attention_head_dim` {}",
                self.axes_dims_rope, self.attention_head_dim
            ));
        }
        Ok(())
    }
}

/// diffusers' `FluxTransformerBlock`: Design J with Flux's knobs.
#[derive(Debug, Clone)]
pub struct FluxTransformerBlock {
    inner: DualStreamJointBlock,
}

impl FluxTransformerBlock {
    /// Loads the block from `vb` (`transformer_blocks.{i}`).
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = JointBlockConfig::flux(dim, heads, head_dim);
        Ok(Self {
            inner: DualStreamJointBlock::new(&cfg, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_1)]
impl FluxTransformerBlock {
    /// Returns `(encoder_hidden_states, hidden_states)`, like diffusers.
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

/// diffusers' `FluxSingleTransformerBlock` (≥ 0.35 signature): Design S with Flux's knobs.
#[derive(Debug, Clone)]
pub struct FluxSingleTransformerBlock {
    inner: ParallelSingleStreamBlock,
}

impl FluxSingleTransformerBlock {
    /// Loads the block from `vb` (`single_transformer_blocks.{i}`).
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = SingleBlockConfig::flux(dim, heads, head_dim);
        Ok(Self {
            inner: ParallelSingleStreamBlock::new(&cfg, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_1)]
impl FluxSingleTransformerBlock {
    /// Concatenates `[txt, img]`, runs the block, splits back; returns
    /// `(encoder_hidden_states, hidden_states)`, like diffusers.
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

/// diffusers' `FluxTransformer2DModel`.
#[derive(Debug)]
pub struct FluxTransformer2DModel {
    cfg: Config,
    dtype: DType,
    pos_embed: MultiAxisRope,
    time_text_embed: CombinedTimestepTextProj,
    context_embedder: Linear,
    x_embedder: Linear,
    transformer_blocks: BlockList<FluxTransformerBlock>,
    single_transformer_blocks: BlockList<FluxSingleTransformerBlock>,
    norm_out: AdaLayerNormContinuous,
    proj_out: Linear,
    sample: crate::sample::SampleShape,
}

impl FluxTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.inner_dim();
        let (heads, head_dim) = (cfg.num_attention_heads, cfg.attention_head_dim);
        let double = (0..cfg.num_layers)
            .map(|i| FluxTransformerBlock::new(d, heads, head_dim, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let single = (0..cfg.num_single_layers)
            .map(|i| {
                FluxSingleTransformerBlock::new(d, heads, head_dim, vb.pp("single_transformer_blocks").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = cfg.patch_size * cfg.patch_size * cfg.out_channels();
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: MultiAxisRope {
                theta: 10000.0,
                axes_dim: cfg.axes_dims_rope.clone(),
            },
            time_text_embed: CombinedTimestepTextProj::new(
                d,
                Some(cfg.pooled_projection_dim),
                cfg.guidance_embeds,
                vb.pp("time_text_embed"),
            )?,
            context_embedder: linear(cfg.joint_attention_dim, d, true, vb.pp("context_embedder"))?,
            x_embedder: linear(cfg.in_channels, d, true, vb.pp("x_embedder"))?,
            transformer_blocks: BlockList::new(double),
            single_transformer_blocks: BlockList::new(single),
            norm_out: AdaLayerNormContinuous::new(
                d,
                d,
                NormKind::LayerNorm {
                    affine: false,
                    bias: false,
                },
                1e-6,
                true,
                vb.pp("norm_out"),
            )?,
            proj_out: linear(d, out, true, vb.pp("proj_out"))?,
            sample: Default::default(),
            cfg,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.proj_out.weight().device()
    }

    /// The rotary table of `cat(txt_ids, img_ids)` (`FluxPosEmbed`).
    pub fn rotary_embedding(&self, img_ids: &Tensor, txt_ids: &Tensor) -> Result<RotaryEmbedding> {
        crate::sample::txt_img_rotary(&self.pos_embed, img_ids, txt_ids)
    }

    /// The conditioning vector `temb` from the raw timestep (in `[0, 1]`), guidance and pooled
    /// text embedding (diffusers multiplies timestep and guidance by 1000 first).
    pub fn conditioning(
        &self,
        timestep: &Tensor,
        guidance: Option<&Tensor>,
        pooled_projections: &Tensor,
    ) -> Result<Tensor> {
        let scaled = |t: &Tensor| -> Result<Tensor> { t.to_dtype(self.dtype)? * 1000.0 };
        let guidance = match (self.cfg.guidance_embeds, guidance) {
            (true, Some(g)) => Some(scaled(g)?),
            (true, None) => candle_core::bail!("this Flux model embeds guidance: pass `guidance`"),
            (false, Some(_)) => {
                candle_core::bail!("this Flux model has no guidance embedder: pass no `guidance`")
            }
            (false, None) => None,
        };
        self.time_text_embed.forward(
            &scaled(timestep)?,
            guidance.as_ref(),
            Some(pooled_projections),
            self.dtype,
        )
    }

    /// The transformer: `hidden_states` `(B, S, in_channels)` packed latents,
    /// `encoder_hidden_states` `(B, T, joint_attention_dim)`, `pooled_projections`
    /// `(B, pooled_projection_dim)`, `timestep` `(B,)` in `[0, 1]`, `img_ids` `(S, 3)`,
    /// `txt_ids` `(T, 3)` (3-D ids are read from their first batch entry, as diffusers does),
    /// `guidance` `(B,)` for guidance-distilled models. Returns `(B, S, p²·out_channels)`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        pooled_projections: &Tensor,
        timestep: &Tensor,
        img_ids: &Tensor,
        txt_ids: &Tensor,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let hidden = self.x_embedder.forward(&hidden_states.to_dtype(self.dtype)?)?;
        let temb = self.conditioning(timestep, guidance, pooled_projections)?;
        let encoder = self
            .context_embedder
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        let rotary = self.rotary_embedding(img_ids, txt_ids)?;
        let double_args = FluxTransformerBlockArgs {
            temb: &temb,
            image_rotary_emb: Some(&rotary),
        };
        let single_args = FluxSingleTransformerBlockArgs {
            temb: &temb,
            image_rotary_emb: Some(&rotary),
        };
        let s = Streams::new(hidden, encoder);
        let s = match self.cfg.list_layout {
            ListLayout::Chained => self.transformer_blocks.forward_chained(
                &double_args,
                &self.single_transformer_blocks,
                &single_args,
                s,
            )?,
            ListLayout::Separate => {
                let s = self.transformer_blocks.forward(s, &double_args)?;
                self.single_transformer_blocks.forward(s, &single_args)?
            }
        };
        let hidden = self.norm_out.forward(&s.hidden, &temb)?;
        self.proj_out.forward(&hidden)
    }
}

/// The default (chained) layout: one Pattern_1 list `transformer_blocks`, as in cache-dit.
impl StaticBlockLists for FluxTransformer2DModel {
    const BLOCK_LISTS: &'static [(&'static str, ForwardPattern)] =
        &[("transformer_blocks", ForwardPattern::Pattern_1)];
}

crate::family_model!(
    FluxTransformer2DModel,
    config = Config,
    sample = crate::sample::SampleShape
);

// Written by hand rather than derived: the list layout is chosen at run time.
impl CachedTransformer for FluxTransformer2DModel {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        match self.cfg.list_layout {
            ListLayout::Chained => vec![CachedListInfo::chained(
                "transformer_blocks",
                &self.transformer_blocks,
                &self.single_transformer_blocks,
            )],
            ListLayout::Separate => vec![
                CachedListInfo::of("transformer_blocks", &self.transformer_blocks),
                CachedListInfo::of("single_transformer_blocks", &self.single_transformer_blocks),
            ],
        }
    }
}

super::model_accessors!(FluxTransformer2DModel, transformer_blocks: FluxTransformerBlock, single_transformer_blocks: FluxSingleTransformerBlock);
