//! HunyuanVideo 1.0 (`HunyuanVideoTransformer3DModel`): a token refiner for the text, then
//! Design J double blocks and Design S single blocks with the joint sequence in `[img, txt]`
//! order, rotary embedding on the image tokens only and a joint padding mask. Both lists return
//! `(hidden, encoder)` (cache-dit Pattern_0 + Pattern_0).
//!
//! The image-only rotary embedding is a joint table whose text rows are the identity (cos 1,
//! sin 0): rotating by a zero angle leaves the text queries/keys bit-for-bit unchanged.
//! The I2V `token_replace` variant (first-frame modulation from `t = 0`) is not implemented.

use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::hunyuan_video_refiner::HunyuanVideoTokenRefiner;
use crate::blocks::joint::{DualStreamJointBlock, JointBlockConfig};
use crate::blocks::single::{ParallelSingleStreamBlock, SingleBlockConfig};
use crate::components::attention::JointOrder;
use crate::components::embeddings::CombinedTimestepTextProj;
use crate::components::ffn::{Activation, FfnKind};
use crate::components::linear;
use crate::components::modulation::AdaLayerNormContinuous;
use crate::components::norm::NormKind;
use crate::components::rope::{MultiAxisRope, RotaryEmbedding};
use crate::loader::DiffusersConfig;
use crate::sample::{VideoSampleShape, additive};

/// The diffusers config of `HunyuanVideoTransformer3DModel`; defaults are diffusers'
/// constructor defaults (= `hunyuanvideo-community/HunyuanVideo`, T2V).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Latent channels in (T2V 16; I2V `latent_concat`: 33).
    pub in_channels: usize,
    /// Latent channels out.
    pub out_channels: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Dual-stream blocks.
    pub num_layers: usize,
    /// Single-stream blocks.
    pub num_single_layers: usize,
    /// Token-refiner blocks.
    pub num_refiner_layers: usize,
    /// FFN / MLP width ratio.
    pub mlp_ratio: f64,
    /// Spatial patch size.
    pub patch_size: usize,
    /// Temporal patch size.
    pub patch_size_t: usize,
    /// q/k normalisation (only `rms_norm`).
    pub qk_norm: String,
    /// Whether the model embeds a guidance scale.
    pub guidance_embeds: bool,
    /// Width of the text-encoder states (Llava-Llama-3: 4096).
    pub text_embed_dim: usize,
    /// Width of the pooled CLIP-L embedding.
    pub pooled_projection_dim: usize,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary channels per axis `(t, h, w)`; they sum to `attention_head_dim`.
    pub rope_axes_dim: Vec<usize>,
    /// `None` (T2V) or `"latent_concat"` (I2V); `"token_replace"` is not supported.
    pub image_condition_type: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            in_channels: 16,
            out_channels: 16,
            num_attention_heads: 24,
            attention_head_dim: 128,
            num_layers: 20,
            num_single_layers: 40,
            num_refiner_layers: 2,
            mlp_ratio: 4.0,
            patch_size: 2,
            patch_size_t: 1,
            qk_norm: "rms_norm".into(),
            guidance_embeds: true,
            text_embed_dim: 4096,
            pooled_projection_dim: 768,
            rope_theta: 256.0,
            rope_axes_dim: vec![16, 56, 56],
            image_condition_type: None,
        }
    }
}

impl Config {
    /// `hunyuanvideo-community/HunyuanVideo` (T2V, guidance-distilled).
    pub fn t2v() -> Self {
        Self::default()
    }

    /// `hunyuanvideo-community/HunyuanVideo-I2V` (33 channels: noise, image latents, mask;
    /// `latent_concat`, no guidance embedder).
    pub fn i2v() -> Self {
        Self {
            in_channels: 33,
            guidance_embeds: false,
            image_condition_type: Some("latent_concat".into()),
            ..Self::default()
        }
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_hunyuan_video.py`).
    pub fn tiny() -> Self {
        Self {
            in_channels: 4,
            out_channels: 4,
            num_attention_heads: 2,
            attention_head_dim: 10,
            num_layers: 1,
            num_single_layers: 1,
            num_refiner_layers: 1,
            patch_size: 1,
            patch_size_t: 1,
            guidance_embeds: true,
            text_embed_dim: 16,
            pooled_projection_dim: 8,
            rope_axes_dim: vec![2, 4, 4],
            ..Self::default()
        }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }
}

impl DiffusersConfig for Config {
    const FIELDS: &'static [&'static str] = &[
        "in_channels",
        "out_channels",
        "num_attention_heads",
        "attention_head_dim",
        "num_layers",
        "num_single_layers",
        "num_refiner_layers",
        "mlp_ratio",
        "patch_size",
        "patch_size_t",
        "qk_norm",
        "guidance_embeds",
        "text_embed_dim",
        "pooled_projection_dim",
        "rope_theta",
        "rope_axes_dim",
        "image_condition_type",
    ];

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("num_attention_heads", self.num_attention_heads),
            ("attention_head_dim", self.attention_head_dim),
            ("patch_size", self.patch_size),
            ("patch_size_t", self.patch_size_t),
            ("text_embed_dim", self.text_embed_dim),
            ("pooled_projection_dim", self.pooled_projection_dim),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if self.qk_norm != "rms_norm" {
            return Err(format!(
                "`qk_norm` {:?} is not supported (only \"rms_norm\")",
                self.qk_norm
            ));
        }
        match self.image_condition_type.as_deref() {
            None | Some("latent_concat") => {}
            Some(other) => return Err(format!("`image_condition_type` {other:?} is not supported")),
        }
        if !self.mlp_ratio.is_finite() || self.mlp_ratio <= 0.0 {
            return Err("`mlp_ratio` must be a finite positive number".into());
        }
        // Checked: a value near usize::MAX from config.json would wrap (or panic) in a plain sum.
        let sum = self
            .rope_axes_dim
            .iter()
            .try_fold(0usize, |a, &d| a.checked_add(d));
        if self.rope_axes_dim.len() != 3
            || sum != Some(self.attention_head_dim)
            || self.rope_axes_dim.iter().any(|d| d % 2 == 1)
        {
            return Err(format!(
                "`rope_axes_dim` {:?} must be three even sizes summing to `attention_head_dim` {}",
                self.rope_axes_dim, self.attention_head_dim
            ));
        }
        Ok(())
    }
}

/// The joint rotary table of `[img, txt]` from the image table: `text_len` identity rows appended.
pub fn joint_rotary(image: &RotaryEmbedding, text_len: usize) -> Result<RotaryEmbedding> {
    image.with_identity_rows(text_len)
}

/// diffusers' `HunyuanVideoTransformerBlock`: Design J with `[img, txt]` joint order.
#[derive(Debug, Clone)]
pub struct HunyuanVideoTransformerBlock {
    inner: DualStreamJointBlock,
}

impl HunyuanVideoTransformerBlock {
    /// Loads the block from `vb` (`transformer_blocks.{i}`).
    pub fn new(heads: usize, head_dim: usize, mlp_ratio: f64, vb: VarBuilder) -> Result<Self> {
        let d = heads * head_dim;
        let ff = FfnKind::FeedForward {
            activation: Activation::GeluTanh,
            inner: (d as f64 * mlp_ratio) as usize,
            bias: true,
        };
        let cfg = JointBlockConfig {
            ff,
            ff_context: ff,
            joint_order: JointOrder::ImageFirst,
            ..JointBlockConfig::flux(d, heads, head_dim)
        };
        Ok(Self {
            inner: DualStreamJointBlock::new(&cfg, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_0)]
impl HunyuanVideoTransformerBlock {
    /// Returns `(hidden_states, encoder_hidden_states)`, like diffusers. `attention_mask` is
    /// additive over the joint `[img, txt]` keys; `freqs_cis` is the joint table of
    /// [`joint_rotary`].
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        attention_mask: Option<&Tensor>,
        freqs_cis: Option<&RotaryEmbedding>,
    ) -> Result<(Tensor, Tensor)> {
        let (e, h) = self.inner.forward(
            hidden_states,
            encoder_hidden_states,
            temb,
            freqs_cis,
            attention_mask,
        )?;
        Ok((h, e))
    }
}

/// diffusers' `HunyuanVideoSingleTransformerBlock`: Design S on `[img, txt]`.
#[derive(Debug, Clone)]
pub struct HunyuanVideoSingleTransformerBlock {
    inner: ParallelSingleStreamBlock,
}

impl HunyuanVideoSingleTransformerBlock {
    /// Loads the block from `vb` (`single_transformer_blocks.{i}`).
    pub fn new(heads: usize, head_dim: usize, mlp_ratio: f64, vb: VarBuilder) -> Result<Self> {
        let d = heads * head_dim;
        let cfg = SingleBlockConfig {
            mlp_hidden: (d as f64 * mlp_ratio) as usize,
            concat_order: JointOrder::ImageFirst,
            ..SingleBlockConfig::flux(d, heads, head_dim)
        };
        Ok(Self {
            inner: ParallelSingleStreamBlock::new(&cfg, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_0)]
impl HunyuanVideoSingleTransformerBlock {
    /// Concatenates `[img, txt]`, runs the block, splits back; returns `(hidden_states,
    /// encoder_hidden_states)`, like diffusers.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        attention_mask: Option<&Tensor>,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<(Tensor, Tensor)> {
        let (e, h) = self.inner.forward(
            hidden_states,
            encoder_hidden_states,
            temb,
            image_rotary_emb,
            attention_mask,
        )?;
        Ok((h, e))
    }
}

/// diffusers' `HunyuanVideoTransformer3DModel` (T2V and `latent_concat` I2V).
#[derive(Debug, CachedTransformer)]
pub struct HunyuanVideoTransformer3DModel {
    cfg: Config,
    dtype: DType,
    x_embedder: Linear,
    context_embedder: HunyuanVideoTokenRefiner,
    time_text_embed: CombinedTimestepTextProj,
    rope: MultiAxisRope,
    transformer_blocks: BlockList<HunyuanVideoTransformerBlock>,
    single_transformer_blocks: BlockList<HunyuanVideoSingleTransformerBlock>,
    norm_out: AdaLayerNormContinuous,
    proj_out: Linear,
    sample: VideoSampleShape,
}

impl HunyuanVideoTransformer3DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.inner_dim();
        let (heads, head_dim, r) = (cfg.num_attention_heads, cfg.attention_head_dim, cfg.mlp_ratio);
        let (p, pt) = (cfg.patch_size, cfg.patch_size_t);
        let conv = vb.pp("x_embedder").pp("proj");
        let w = conv.get((d, cfg.in_channels, pt, p, p), "weight")?;
        let x_embedder = Linear::new(
            w.reshape((d, cfg.in_channels * pt * p * p))?,
            Some(conv.get(d, "bias")?),
        );
        let double = (0..cfg.num_layers)
            .map(|i| HunyuanVideoTransformerBlock::new(heads, head_dim, r, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let single = (0..cfg.num_single_layers)
            .map(|i| {
                HunyuanVideoSingleTransformerBlock::new(
                    heads,
                    head_dim,
                    r,
                    vb.pp("single_transformer_blocks").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dtype: vb.dtype(),
            x_embedder,
            context_embedder: HunyuanVideoTokenRefiner::new(
                cfg.text_embed_dim,
                heads,
                head_dim,
                cfg.num_refiner_layers,
                r,
                vb.pp("context_embedder"),
            )?,
            time_text_embed: CombinedTimestepTextProj::new(
                d,
                Some(cfg.pooled_projection_dim),
                cfg.guidance_embeds,
                vb.pp("time_text_embed"),
            )?,
            rope: MultiAxisRope {
                theta: cfg.rope_theta,
                axes_dim: cfg.rope_axes_dim.clone(),
            },
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
            proj_out: linear(d, pt * p * p * cfg.out_channels, true, vb.pp("proj_out"))?,
            sample: VideoSampleShape::default(),
            cfg,
        })
    }

    /// The text refiner (`context_embedder`).
    pub fn context_embedder(&self) -> &HunyuanVideoTokenRefiner {
        &self.context_embedder
    }

    /// The image rotary table for a `frames × height × width` patch grid
    /// (`HunyuanVideoRotaryPosEmbed`), positions in `(t, h, w)` raster order.
    pub fn image_rotary(
        &self,
        frames: usize,
        height: usize,
        width: usize,
        device: &Device,
    ) -> Result<RotaryEmbedding> {
        let mut ids = Vec::with_capacity(frames * height * width * 3);
        for f in 0..frames {
            for h in 0..height {
                for w in 0..width {
                    ids.extend_from_slice(&[f as f32, h as f32, w as f32]);
                }
            }
        }
        let ids = Tensor::from_vec(ids, (frames * height * width, 3), device)?;
        self.rope.forward(&ids, device)
    }

    /// `temb` from `timestep` `(B,)` (scheduler scale, 0..1000), `pooled_projections` and,
    /// for guidance-embedding models, `guidance` `(B,)` (scale × 1000).
    pub fn conditioning(
        &self,
        timestep: &Tensor,
        pooled: &Tensor,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let guidance = match (self.cfg.guidance_embeds, guidance) {
            (true, Some(g)) => Some(g),
            (true, None) => candle_core::bail!("this HunyuanVideo model embeds guidance: pass `guidance`"),
            (false, _) => None,
        };
        self.time_text_embed.forward(
            timestep,
            guidance,
            Some(&pooled.to_dtype(self.dtype)?),
            self.dtype,
        )
    }

    /// The transformer: `hidden_states` `(B, C, F, H, W)` latents, `timestep` `(B,)` in the
    /// scheduler's scale (0..1000), `encoder_hidden_states` `(B, T, text_embed_dim)`,
    /// `encoder_attention_mask` `(B, T)` (non-zero = valid token; valid tokens first),
    /// `pooled_projections` `(B, pooled_projection_dim)`, `guidance` `(B,)` for
    /// guidance-embedding models. Returns `(B, out_channels, F, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        pooled_projections: &Tensor,
        guidance: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, c, f, h, w) = hidden_states.dims5()?;
        let (p, pt) = (self.cfg.patch_size, self.cfg.patch_size_t);
        if !f.is_multiple_of(pt) || !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!("latents {f}x{h}x{w} are not divisible into {pt}x{p}x{p} patches");
        }
        let (fp, hp, wp) = (f / pt, h / p, w / p);
        let tokens = hidden_states
            .to_dtype(self.dtype)?
            .reshape(vec![b, c, fp, pt, hp, p, wp, p])?
            .permute([0, 2, 4, 6, 1, 3, 5, 7])?
            .reshape((b, fp * hp * wp, c * pt * p * p))?;
        let hidden = self.x_embedder.forward(&tokens)?;
        let temb = self.conditioning(timestep, pooled_projections, guidance)?;
        let text = encoder_hidden_states.to_dtype(self.dtype)?;
        let encoder = self
            .context_embedder
            .forward(&text, timestep, encoder_attention_mask)?;
        let t = encoder.dim(1)?;
        let n = hidden.dim(1)?;
        let keep = match encoder_attention_mask {
            Some(m) => {
                let valid = m
                    .to_dtype(DType::F32)?
                    .ne(0f32)?
                    .to_dtype(DType::F32)?
                    .sum_keepdim(1)?;
                let idx = Tensor::arange(0u32, (n + t) as u32, hidden.device())?
                    .to_dtype(DType::F32)?
                    .unsqueeze(0)?;
                idx.broadcast_lt(&(valid + n as f64)?)?
            }
            None => Tensor::ones((b, n + t), DType::U8, hidden.device())?,
        };
        let mask = additive(&keep, self.dtype)?.reshape((b, 1, 1, n + t))?;
        let rotary = joint_rotary(&self.image_rotary(fp, hp, wp, hidden.device())?, t)?;
        let s = self.transformer_blocks.forward(
            Streams::new(hidden, encoder),
            &HunyuanVideoTransformerBlockArgs {
                temb: &temb,
                attention_mask: Some(&mask),
                freqs_cis: Some(&rotary),
            },
        )?;
        let s = self.single_transformer_blocks.forward(
            s,
            &HunyuanVideoSingleTransformerBlockArgs {
                temb: &temb,
                attention_mask: Some(&mask),
                image_rotary_emb: Some(&rotary),
            },
        )?;
        let out = self.proj_out.forward(&self.norm_out.forward(&s.hidden, &temb)?)?;
        let oc = self.cfg.out_channels;
        out.reshape(vec![b, fp, hp, wp, oc, pt, p, p])?
            .permute([0, 4, 1, 5, 2, 6, 3, 7])?
            .reshape((b, oc, f, h, w))
    }
}

impl cachedit_runtime::StaticBlockLists for HunyuanVideoTransformer3DModel {
    const BLOCK_LISTS: &'static [(&'static str, cachedit_runtime::ForwardPattern)] = {
        use cachedit_runtime::ForwardPattern;
        &[
            ("transformer_blocks", ForwardPattern::Pattern_0),
            ("single_transformer_blocks", ForwardPattern::Pattern_0),
        ]
    };
}

crate::family_model!(
    HunyuanVideoTransformer3DModel,
    config = Config,
    sample = VideoSampleShape,
    tiny_sample = VideoSampleShape {
        frames: 2,
        height: 8,
        width: 8,
        text_len: 8,
    }
);

super::model_accessors!(HunyuanVideoTransformer3DModel, transformer_blocks: HunyuanVideoTransformerBlock, single_transformer_blocks: HunyuanVideoSingleTransformerBlock);
