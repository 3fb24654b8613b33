//! Bria 3.x (`BriaTransformer2DModel`): the Flux architecture without pooled text (the
//! conditioning vector is the timestep embedding only, with its own `time_theta`), no guidance
//! embedding in the released models, and the timestep passed in the scheduler's scale. Design J
//! double blocks then Design S single blocks, with diffusers' parameter names.
//!
//! cache-dit registers both lists as Pattern_0, but both blocks return
//! `(encoder_hidden_states, hidden_states)` (docs/families.md §5): they are Pattern_1 here.

use cachedit_macros::block_adapter;
use cachedit_runtime::{BlockList, CachedListInfo, CachedTransformer, CfgLayout, Streams};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::joint::{DualStreamJointBlock, JointBlockConfig};
use crate::blocks::single::{ParallelSingleStreamBlock, SingleBlockConfig};
use crate::components::embeddings::{Mlp2, timestep_embedding};
use crate::components::linear;
use crate::components::modulation::AdaLayerNormContinuous;
use crate::components::norm::NormKind;
use crate::components::rope::{MultiAxisRope, RotaryEmbedding};
use crate::loader::DiffusersConfig;
use crate::sample::synthetic_text;

/// The diffusers config of `BriaTransformer2DModel`; defaults are diffusers' constructor
/// defaults (`out_channels` is always `in_channels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Patch size of the packed latents (1: the pipeline packs 2×2 patches into channels).
    pub patch_size: usize,
    /// Channels of the input (and output) tokens: 64 = 16 VAE channels × 2×2.
    pub in_channels: usize,
    /// Number of dual-stream blocks.
    pub num_layers: usize,
    /// Number of single-stream blocks.
    pub num_single_layers: usize,
    /// Channels per attention head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the text embeddings (T5-XXL: 4096).
    pub joint_attention_dim: usize,
    /// Unused by diffusers' Bria (no pooled text); kept so configs round-trip.
    pub pooled_projection_dim: Option<usize>,
    /// Whether the model embeds a guidance scale (`guidance_embed`).
    pub guidance_embeds: bool,
    /// Rotary channels per position axis; they sum to `attention_head_dim`.
    pub axes_dims_rope: Vec<usize>,
    /// Base of the rotary frequencies.
    pub rope_theta: f64,
    /// `max_period` of the timestep embedding.
    pub time_theta: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            patch_size: 1,
            in_channels: 64,
            num_layers: 19,
            num_single_layers: 38,
            attention_head_dim: 128,
            num_attention_heads: 24,
            joint_attention_dim: 4096,
            pooled_projection_dim: None,
            guidance_embeds: false,
            axes_dims_rope: vec![16, 56, 56],
            rope_theta: 10000.0,
            time_theta: 10000.0,
        }
    }
}

impl Config {
    /// `briaai/BRIA-3.2` as diffusers' constructor defaults describe it (the hub repository is
    /// gated; the layer counts are diffusers' defaults, not read from its `config.json`).
    pub fn bria_3_2() -> Self {
        Self::default()
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_bria.py`).
    pub fn tiny() -> Self {
        Self {
            patch_size: 1,
            in_channels: 4,
            num_layers: 1,
            num_single_layers: 1,
            attention_head_dim: 8,
            num_attention_heads: 2,
            joint_attention_dim: 32,
            pooled_projection_dim: None,
            guidance_embeds: false,
            axes_dims_rope: vec![0, 4, 4],
            ..Self::default()
        }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
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

/// diffusers' `BriaTransformerBlock` (= Flux's double block).
#[derive(Debug, Clone)]
pub struct BriaTransformerBlock {
    inner: DualStreamJointBlock,
}

impl BriaTransformerBlock {
    /// Loads the block from `vb` (`transformer_blocks.{i}`).
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            inner: DualStreamJointBlock::new(&JointBlockConfig::flux(dim, heads, head_dim), vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_1)]
impl BriaTransformerBlock {
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

/// diffusers' `BriaSingleTransformerBlock` (= Flux's single block).
#[derive(Debug, Clone)]
pub struct BriaSingleTransformerBlock {
    inner: ParallelSingleStreamBlock,
}

impl BriaSingleTransformerBlock {
    /// Loads the block from `vb` (`single_transformer_blocks.{i}`).
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            inner: ParallelSingleStreamBlock::new(&SingleBlockConfig::flux(dim, heads, head_dim), vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_1)]
impl BriaSingleTransformerBlock {
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

/// diffusers' `BriaTimestepProjEmbeddings`: 256 sinusoidal channels (cos first, shift 0,
/// `max_period = time_theta`) → `timestep_embedder` MLP.
#[derive(Debug, Clone)]
pub struct BriaTimestepProjEmbeddings {
    timestep_embedder: Mlp2,
    time_theta: f64,
}

impl BriaTimestepProjEmbeddings {
    /// Loads `timestep_embedder` from `vb`.
    pub fn new(dim: usize, time_theta: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            timestep_embedder: Mlp2::silu(256, dim, dim, vb.pp("timestep_embedder"))?,
            time_theta,
        })
    }

    /// `(B, dim)` in `dtype` from `timestep` `(B,)`.
    pub fn forward(&self, timestep: &Tensor, dtype: DType) -> Result<Tensor> {
        let t = timestep_embedding(timestep, 256, true, 0.0, 1.0, self.time_theta)?;
        self.timestep_embedder.forward(&t.to_dtype(dtype)?)
    }
}

/// diffusers' `BriaTransformer2DModel`; both lists cached separately (Pattern_1 each).
#[derive(Debug)]
pub struct BriaTransformer2DModel {
    cfg: Config,
    dtype: DType,
    pos_embed: MultiAxisRope,
    time_embed: BriaTimestepProjEmbeddings,
    guidance_embed: Option<BriaTimestepProjEmbeddings>,
    context_embedder: Linear,
    x_embedder: Linear,
    transformer_blocks: BlockList<BriaTransformerBlock>,
    single_transformer_blocks: BlockList<BriaSingleTransformerBlock>,
    norm_out: AdaLayerNormContinuous,
    proj_out: Linear,
    pub(crate) sample: crate::sample::SampleShape,
}

impl BriaTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.inner_dim();
        let (heads, head_dim) = (cfg.num_attention_heads, cfg.attention_head_dim);
        let double = (0..cfg.num_layers)
            .map(|i| BriaTransformerBlock::new(d, heads, head_dim, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let single = (0..cfg.num_single_layers)
            .map(|i| {
                BriaSingleTransformerBlock::new(d, heads, head_dim, vb.pp("single_transformer_blocks").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let no_affine = NormKind::LayerNorm {
            affine: false,
            bias: false,
        };
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: MultiAxisRope {
                theta: cfg.rope_theta,
                axes_dim: cfg.axes_dims_rope.clone(),
            },
            time_embed: BriaTimestepProjEmbeddings::new(d, cfg.time_theta, vb.pp("time_embed"))?,
            guidance_embed: if cfg.guidance_embeds {
                // diffusers builds it with the default `time_theta`.
                Some(BriaTimestepProjEmbeddings::new(
                    d,
                    10000.0,
                    vb.pp("guidance_embed"),
                )?)
            } else {
                None
            },
            context_embedder: linear(cfg.joint_attention_dim, d, true, vb.pp("context_embedder"))?,
            x_embedder: linear(cfg.in_channels, d, true, vb.pp("x_embedder"))?,
            transformer_blocks: BlockList::new(double),
            single_transformer_blocks: BlockList::new(single),
            norm_out: AdaLayerNormContinuous::new(d, d, no_affine, 1e-6, true, vb.pp("norm_out"))?,
            proj_out: linear(
                d,
                cfg.patch_size * cfg.patch_size * cfg.in_channels,
                true,
                vb.pp("proj_out"),
            )?,
            sample: Default::default(),
            cfg,
        })
    }

    /// The rotary table of `cat(txt_ids, img_ids)` (`BriaEmbedND`); 3-D ids are read from their
    /// first batch entry.
    pub fn rotary_embedding(&self, img_ids: &Tensor, txt_ids: &Tensor) -> Result<RotaryEmbedding> {
        crate::sample::txt_img_rotary(&self.pos_embed, img_ids, txt_ids)
    }

    /// `temb` from `timestep` (scheduler scale, not rescaled) and, for guidance models, `guidance`.
    pub fn conditioning(&self, timestep: &Tensor, guidance: Option<&Tensor>) -> Result<Tensor> {
        let temb = self
            .time_embed
            .forward(&timestep.to_dtype(self.dtype)?, self.dtype)?;
        match (&self.guidance_embed, guidance) {
            (Some(e), Some(g)) => temb + e.forward(&g.to_dtype(self.dtype)?, self.dtype)?,
            (Some(_), None) => candle_core::bail!("this Bria model embeds guidance: pass `guidance`"),
            (None, Some(_)) => {
                candle_core::bail!("this Bria model has no guidance embedder: pass no `guidance`")
            }
            (None, None) => Ok(temb),
        }
    }

    /// The transformer: `hidden_states` `(B, S, in_channels)` packed latents,
    /// `encoder_hidden_states` `(B, T, joint_attention_dim)`, `timestep` `(B,)` in the
    /// scheduler's scale (0..1000), `img_ids` `(S, 3)`, `txt_ids` `(T, 3)`. Returns
    /// `(B, S, p²·in_channels)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        img_ids: &Tensor,
        txt_ids: &Tensor,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let hidden = self.x_embedder.forward(&hidden_states.to_dtype(self.dtype)?)?;
        let temb = self.conditioning(timestep, guidance)?;
        let encoder = self
            .context_embedder
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        let rotary = self.rotary_embedding(img_ids, txt_ids)?;
        let double_args = BriaTransformerBlockArgs {
            temb: &temb,
            image_rotary_emb: Some(&rotary),
        };
        let single_args = BriaSingleTransformerBlockArgs {
            temb: &temb,
            image_rotary_emb: Some(&rotary),
        };
        let s = self
            .transformer_blocks
            .forward(Streams::new(hidden, encoder), &double_args)?;
        let s = self.single_transformer_blocks.forward(s, &single_args)?;
        let hidden = self.norm_out.forward(&s.hidden, &temb)?;
        self.proj_out.forward(&hidden)
    }
}

impl CachedTransformer for BriaTransformer2DModel {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        vec![
            CachedListInfo::of("transformer_blocks", &self.transformer_blocks),
            CachedListInfo::of("single_transformer_blocks", &self.single_transformer_blocks),
        ]
    }

    /// `BriaPipeline` batches the unconditional and conditional inputs in one call.
    fn cfg_layout(&self) -> CfgLayout {
        CfgLayout::Batched
    }
}

/// Conditioning tensor names Bria's `predict` reads.
pub mod names {
    /// `(B, T, joint_attention_dim)` T5 text embeddings (zero-padded to 128 tokens by the pipeline).
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// `(S, 3)` image position ids (Flux layout).
    pub const IMG_IDS: &str = "img_ids";
    /// `(T, 3)` text position ids (zeros).
    pub const TXT_IDS: &str = "txt_ids";
    /// `(B,)` guidance, only for configs with `guidance_embeds`.
    pub const GUIDANCE: &str = "guidance";
}

impl cachedit_runtime::Denoiser for BriaTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![
            batch,
            self.sample.grid_h * self.sample.grid_w,
            self.cfg.in_channels,
        ]
    }

    fn synthetic_conditioning(
        &self,
        batch: usize,
        seed: u64,
        device: &Device,
    ) -> Result<cachedit_runtime::Conditioning> {
        use crate::components::patchify::{image_ids, text_ids};
        let s = self.sample;
        let text = synthetic_text(batch, s.text_len, self.cfg.joint_attention_dim, seed, device)?;
        let mut c = cachedit_runtime::Conditioning::new()
            .with(names::ENCODER_HIDDEN_STATES, text)
            .with(names::IMG_IDS, image_ids(s.grid_h, s.grid_w, 0.0, device)?)
            .with(names::TXT_IDS, text_ids(s.text_len, device)?);
        if self.cfg.guidance_embeds {
            c.insert(names::GUIDANCE, Tensor::full(5f32, batch, device)?);
        }
        Ok(c)
    }

    /// `timestep` in the scheduler's scale, passed to the transformer unchanged (as
    /// `BriaPipeline` does).
    fn predict(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        cond: &cachedit_runtime::Conditioning,
    ) -> Result<Tensor> {
        self.forward(
            latents,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            timestep,
            cond.get(names::IMG_IDS)?,
            cond.get(names::TXT_IDS)?,
            cond.get_opt(names::GUIDANCE),
        )?
        .to_dtype(latents.dtype())
    }
}

impl cachedit_runtime::StaticBlockLists for BriaTransformer2DModel {
    const BLOCK_LISTS: &'static [(&'static str, cachedit_runtime::ForwardPattern)] = {
        use cachedit_runtime::ForwardPattern;
        &[
            ("transformer_blocks", ForwardPattern::Pattern_1),
            ("single_transformer_blocks", ForwardPattern::Pattern_1),
        ]
    };
}

crate::family_model!(
    BriaTransformer2DModel,
    config = Config,
    sample = crate::sample::SampleShape
);

super::model_accessors!(BriaTransformer2DModel, transformer_blocks: BriaTransformerBlock, single_transformer_blocks: BriaSingleTransformerBlock);
