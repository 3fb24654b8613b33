//! Mochi 1 (`MochiTransformer3DModel`): an asymmetric dual-stream MMDiT (image stream
//! `heads × head_dim`, text stream `pooled_projection_dim`) with one cached list,
//! `transformer_blocks`, Pattern_0. The last block is `context_pre_only`: it returns the text
//! stream unchanged. The pipeline batches conditional and unconditional inputs (CFG batched).
//!
//! The block is design J with Mochi's knobs: `MochiRMSNormZero` modulation (no shifts), RMS
//! norms in f32 with RMS-normed residual branches gated by `tanh(gate)`, a text stream narrower
//! than the image stream, no q/k/v biases, SwiGLU FFNs (`net.0.proj`), learned per-head rotary
//! frequencies on the image tokens, and joint attention over `[img, valid txt]` per sample.

use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::joint::{
    ClipF16, ContextPreOnly, DualStreamJointBlock, JointBlockConfig, JointBlockNames, JointModulation,
};
use crate::blocks::stream::StreamNorm;
use crate::components::attention::{AttentionExtras, JointOrder, QkNorm, scaled_dot_product_attention};
use crate::components::embeddings::{Mlp2, Timesteps};
use crate::components::ffn::{Activation, FfnKind};
use crate::components::linear;
use crate::components::modulation::AdaLayerNormContinuous;
use crate::components::norm::NormKind;
use crate::components::rope::RotaryEmbedding;
use crate::loader::DiffusersConfig;
use crate::sample::VideoSampleShape;
use crate::sample::additive;

/// The diffusers config of `MochiTransformer3DModel`; defaults are diffusers' constructor
/// defaults (= `genmo/mochi-1-preview`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Spatial patch size.
    pub patch_size: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Blocks (the last one is `context_pre_only`).
    pub num_layers: usize,
    /// Width of the text stream.
    pub pooled_projection_dim: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Latent channels out (default `in_channels`).
    pub out_channels: Option<usize>,
    /// q/k normalisation (only `rms_norm`).
    pub qk_norm: String,
    /// Width of the text-encoder states (T5-XXL: 4096).
    pub text_embed_dim: usize,
    /// Sinusoidal channels of the timestep.
    pub time_embed_dim: usize,
    /// FFN activation (only `swiglu`).
    pub activation_fn: String,
    /// Longest prompt (pipeline setting, kept for the config round trip).
    pub max_sequence_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            patch_size: 2,
            num_attention_heads: 24,
            attention_head_dim: 128,
            num_layers: 48,
            pooled_projection_dim: 1536,
            in_channels: 12,
            out_channels: None,
            qk_norm: "rms_norm".into(),
            text_embed_dim: 4096,
            time_embed_dim: 256,
            activation_fn: "swiglu".into(),
            max_sequence_length: 256,
        }
    }
}

impl Config {
    /// `genmo/mochi-1-preview`.
    pub fn mochi_1_preview() -> Self {
        Self::default()
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_mochi.py`).
    pub fn tiny() -> Self {
        Self {
            patch_size: 2,
            num_attention_heads: 2,
            attention_head_dim: 8,
            num_layers: 2,
            pooled_projection_dim: 16,
            in_channels: 4,
            out_channels: None,
            text_embed_dim: 16,
            time_embed_dim: 4,
            max_sequence_length: 16,
            ..Self::default()
        }
    }

    /// Width of the image stream (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels (`out_channels` or `in_channels`).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("patch_size", self.patch_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_layers", self.num_layers),
            ("pooled_projection_dim", self.pooled_projection_dim),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("time_embed_dim", self.time_embed_dim),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if self.attention_head_dim == 0 || self.attention_head_dim % 2 == 1 {
            return Err("`attention_head_dim` must be positive and even".into());
        }
        if self.text_embed_dim == 0 || !self.text_embed_dim.is_multiple_of(8) {
            return Err("`text_embed_dim` must be a positive multiple of 8 (8 pooling heads)".into());
        }
        if self.qk_norm != "rms_norm" || self.activation_fn != "swiglu" {
            return Err("only `qk_norm` \"rms_norm\" and `activation_fn` \"swiglu\" are supported".into());
        }
        Ok(())
    }
}

/// Mochi's rotary tables: `cos`, `sin` `(S, heads, head_dim / 2)` (one frequency set per head),
/// applied to the image tokens only.
#[derive(Debug, Clone)]
pub struct MochiRotary {
    /// `cos` of the angles.
    pub cos: Tensor,
    /// `sin` of the angles.
    pub sin: Tensor,
}

impl MochiRotary {
    /// The per-head table of the joint `[img, txt]` sequence: the text rows are not rotated.
    pub fn joint(&self, text_len: usize) -> Result<RotaryEmbedding> {
        let heads_first = |t: &Tensor| t.permute((1, 0, 2));
        RotaryEmbedding::per_head(heads_first(&self.cos)?, heads_first(&self.sin)?)?
            .with_identity_rows(text_len)
    }
}

/// `MochiTransformerBlock`'s names: `attn1`, and a last block's `norm1_context.linear_1`.
const NAMES: JointBlockNames = JointBlockNames {
    txt_mod_pre_only: "norm1_context.linear_1",
    attn: "attn1",
    ..JointBlockNames::FLUX
};

/// Mochi's design-J knobs: image stream `heads × head_dim`, text stream `context_dim`.
pub fn joint_block_config(heads: usize, head_dim: usize, context_dim: usize, last: bool) -> JointBlockConfig {
    let dim = heads * head_dim;
    let swiglu = |d: usize| FfnKind::FeedForward {
        activation: Activation::SwiGlu,
        inner: (4 * d * 2) / 3,
        bias: false,
    };
    JointBlockConfig {
        context_dim,
        qk_norm: QkNorm::RmsNorm {
            eps: 1e-5,
            affine: true,
        },
        qkv_bias: false,
        norm: StreamNorm::RmsTanh { eps: 1e-6 },
        modulation: JointModulation::RmsZero4,
        ff: swiglu(dim),
        ff_context: swiglu(context_dim),
        joint_order: JointOrder::ImageFirst,
        names: NAMES,
        clip_f16: ClipF16::None,
        context_pre_only: if last {
            ContextPreOnly::KeepText
        } else {
            ContextPreOnly::No
        },
        ..JointBlockConfig::flux(dim, heads, head_dim)
    }
}

/// diffusers' `MochiTransformerBlock`.
#[derive(Debug, Clone)]
pub struct MochiTransformerBlock {
    inner: DualStreamJointBlock,
}

impl MochiTransformerBlock {
    /// Loads the block from `vb` (`transformer_blocks.{i}`); the last block of the model is
    /// `context_pre_only`.
    pub fn new(
        dim: usize,
        heads: usize,
        head_dim: usize,
        context_dim: usize,
        context_pre_only: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        debug_assert_eq!(dim, heads * head_dim);
        let knobs = joint_block_config(heads, head_dim, context_dim, context_pre_only);
        Ok(Self {
            inner: DualStreamJointBlock::new(&knobs, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_0)]
impl MochiTransformerBlock {
    /// Returns `(hidden_states, encoder_hidden_states)`, like diffusers (the last block returns
    /// the text stream unchanged). `encoder_attention_mask` `(B, T)` (1 = valid prompt token,
    /// valid tokens first): padded text tokens are neither attended to nor attend (their output
    /// is zero before `to_add_out`), which equals diffusers' per-sample attention over
    /// `[img, valid txt]`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        image_rotary_emb: Option<&MochiRotary>,
    ) -> Result<(Tensor, Tensor)> {
        let (b, s, _) = hidden_states.dims3()?;
        let t = encoder_hidden_states.dim(1)?;
        let rotary = image_rotary_emb.map(|r| r.joint(t)).transpose()?;
        let keep = match encoder_attention_mask {
            Some(m) => {
                let m = m.to_dtype(DType::F32)?.ne(0f32)?.to_dtype(DType::F32)?;
                Some(Tensor::cat(
                    &[Tensor::ones((b, s), DType::F32, m.device())?, m],
                    1,
                )?)
            }
            None => None,
        };
        let mask = match &keep {
            Some(k) => Some(additive(k, hidden_states.dtype())?.reshape((b, 1, 1, s + t))?),
            None => None,
        };
        let extras = AttentionExtras {
            row_keep: keep.as_ref(),
            ..AttentionExtras::default()
        };
        let (e, h) = self.inner.forward_with(
            hidden_states,
            encoder_hidden_states,
            temb,
            rotary.as_ref(),
            mask.as_ref(),
            extras,
        )?;
        let e = e.ok_or_else(|| candle_core::Error::msg("a Mochi block returned no text stream"))?;
        Ok((h, e))
    }
}

/// diffusers' `MochiAttentionPool`: attention of a masked-mean token over the caption.
#[derive(Debug, Clone)]
pub struct MochiAttentionPool {
    heads: usize,
    to_kv: Linear,
    to_q: Linear,
    to_out: Linear,
}

impl MochiAttentionPool {
    /// Loads the pooler from `vb` (`time_embed.pooler`).
    pub fn new(heads: usize, embed_dim: usize, output_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            heads,
            to_kv: linear(embed_dim, 2 * embed_dim, true, vb.pp("to_kv"))?,
            to_q: linear(embed_dim, embed_dim, true, vb.pp("to_q"))?,
            to_out: linear(embed_dim, output_dim, true, vb.pp("to_out"))?,
        })
    }

    /// Pools `x` `(B, L, D)` with `keep` `(B, L)` (non-zero = valid token) into `(B, output_dim)`.
    pub fn forward(&self, x: &Tensor, keep: &Tensor) -> Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let keep = keep.to_dtype(DType::F32)?.ne(0f32)?.to_dtype(x.dtype())?;
        let w = keep.broadcast_div(&keep.sum_keepdim(1)?.clamp(1f32, f32::MAX)?)?;
        let pooled = x.broadcast_mul(&w.unsqueeze(2)?)?.sum_keepdim(1)?;
        let x = Tensor::cat(&[&pooled, x], 1)?;
        let hd = d / self.heads;
        let kv = self
            .to_kv
            .forward(&x)?
            .reshape((b, l + 1, 2, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let (k, v) = (kv.get(0)?.contiguous()?, kv.get(1)?.contiguous()?);
        let q = self
            .to_q
            .forward(&pooled)?
            .reshape((b, 1, self.heads, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let keep = Tensor::cat(&[Tensor::ones((b, 1), x.dtype(), x.device())?, keep], 1)?;
        let mask = additive(&keep, x.dtype())?.reshape((b, 1, 1, l + 1))?;
        let out = scaled_dot_product_attention(&q, &k, &v, Some(&mask), 1.0 / (hd as f64).sqrt())?;
        self.to_out.forward(&out.reshape((b, d))?)
    }
}

/// diffusers' `MochiTransformer3DModel`.
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Batched)]
pub struct MochiTransformer3DModel {
    cfg: Config,
    dtype: DType,
    patch_embed: Linear,
    time_proj: Timesteps,
    timestep_embedder: Mlp2,
    pooler: MochiAttentionPool,
    caption_proj: Linear,
    pos_frequencies: Tensor,
    transformer_blocks: BlockList<MochiTransformerBlock>,
    norm_out: AdaLayerNormContinuous,
    proj_out: Linear,
    sample: VideoSampleShape,
}

impl MochiTransformer3DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let (d, dc) = (cfg.inner_dim(), cfg.pooled_projection_dim);
        let (heads, hd, p) = (cfg.num_attention_heads, cfg.attention_head_dim, cfg.patch_size);
        let conv = vb.pp("patch_embed").pp("proj");
        let w = conv.get((d, cfg.in_channels, p, p), "weight")?;
        let patch_embed = Linear::new(
            w.reshape((d, cfg.in_channels * p * p))?,
            Some(conv.get(d, "bias")?),
        );
        let te = vb.pp("time_embed");
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let last = i + 1 == cfg.num_layers;
                MochiTransformerBlock::new(d, heads, hd, dc, last, vb.pp("transformer_blocks").pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dtype: vb.dtype(),
            patch_embed,
            time_proj: Timesteps {
                num_channels: cfg.time_embed_dim,
                flip_sin_to_cos: true,
                downscale_freq_shift: 0.0,
                scale: 1.0,
            },
            timestep_embedder: Mlp2::silu(cfg.time_embed_dim, d, d, te.pp("timestep_embedder"))?,
            pooler: MochiAttentionPool::new(8, cfg.text_embed_dim, d, te.pp("pooler"))?,
            caption_proj: linear(cfg.text_embed_dim, dc, true, te.pp("caption_proj"))?,
            pos_frequencies: vb.get((3, heads, hd / 2), "pos_frequencies")?,
            transformer_blocks: BlockList::new(blocks),
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
            proj_out: linear(d, p * p * cfg.out_channels(), true, vb.pp("proj_out"))?,
            sample: VideoSampleShape {
                frames: 7,
                height: 32,
                width: 32,
                text_len: 32,
            },
            cfg,
        })
    }

    /// `(temb, caption)`: the timestep embedding plus the attention-pooled caption, and the
    /// caption projected to the text-stream width (`MochiCombinedTimestepCaptionEmbedding`).
    pub fn time_embed(&self, timestep: &Tensor, text: &Tensor, keep: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = self.time_proj.forward(timestep)?.to_dtype(self.dtype)?;
        let text = text.to_dtype(self.dtype)?;
        let temb = (self.timestep_embedder.forward(&t)? + self.pooler.forward(&text, keep)?)?;
        Ok((temb, self.caption_proj.forward(&text)?))
    }

    /// `MochiRoPE` for a `frames × height × width` patch grid: positions `(t, centred h, centred
    /// w)` scaled to a 192×192 base area, times the learned `pos_frequencies`.
    pub fn rotary(&self, frames: usize, height: usize, width: usize) -> Result<MochiRotary> {
        let scale = ((192.0f64 * 192.0) / (height * width) as f64).sqrt();
        let centres = |n: usize| -> Vec<f32> {
            let (start, stop) = (-(n as f64) * scale / 2.0, n as f64 * scale / 2.0);
            let edge = |i: usize| (start + (stop - start) * i as f64 / n as f64) as f32;
            (0..n).map(|i| (edge(i) + edge(i + 1)) / 2.0).collect()
        };
        let (hs, ws) = (centres(height), centres(width));
        let mut pos = Vec::with_capacity(frames * height * width * 3);
        for f in 0..frames {
            for h in &hs {
                for w in &ws {
                    pos.extend_from_slice(&[f as f32, *h, *w]);
                }
            }
        }
        let dev = self.pos_frequencies.device();
        let pos = Tensor::from_vec(pos, (frames * height * width, 3), dev)?;
        let freqs = self.pos_frequencies.to_dtype(DType::F32)?;
        let (_, heads, half) = freqs.dims3()?;
        let angles = pos
            .matmul(&freqs.reshape((3, heads * half))?)?
            .reshape(((), heads, half))?;
        Ok(MochiRotary {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// The transformer: `hidden_states` `(B, C, F, H, W)`, `encoder_hidden_states`
    /// `(B, T, text_embed_dim)`, `timestep` `(B,)` as the pipeline passes it, and
    /// `encoder_attention_mask` `(B, T)` (non-zero = valid; valid tokens first). Returns
    /// `(B, out_channels, F, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_attention_mask: &Tensor,
    ) -> Result<Tensor> {
        let (b, c, f, h, w) = hidden_states.dims5()?;
        let p = self.cfg.patch_size;
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!("latents {h}x{w} are not divisible into {p}x{p} patches");
        }
        let (hp, wp) = (h / p, w / p);
        let (temb, encoder) = self.time_embed(timestep, encoder_hidden_states, encoder_attention_mask)?;
        let tokens = hidden_states
            .to_dtype(self.dtype)?
            .reshape(vec![b, c, f, hp, p, wp, p])?
            .permute([0, 2, 3, 5, 1, 4, 6])?
            .reshape((b, f * hp * wp, c * p * p))?;
        let hidden = self.patch_embed.forward(&tokens)?;
        let rotary = self.rotary(f, hp, wp)?;
        let s = self.transformer_blocks.forward(
            Streams::new(hidden, encoder),
            &MochiTransformerBlockArgs {
                temb: &temb,
                encoder_attention_mask: Some(encoder_attention_mask),
                image_rotary_emb: Some(&rotary),
            },
        )?;
        let out = self.proj_out.forward(&self.norm_out.forward(&s.hidden, &temb)?)?;
        let oc = out.dim(D::Minus1)? / (p * p);
        out.reshape(vec![b, f, hp, wp, p, p, oc])?
            .permute([0, 6, 1, 2, 4, 3, 5])?
            .reshape((b, oc, f, h, w))
    }
}

crate::family_model!(
    MochiTransformer3DModel,
    config = Config,
    sample = VideoSampleShape,
    tiny_sample = VideoSampleShape {
        frames: 2,
        height: 8,
        width: 8,
        text_len: 8,
    }
);

super::model_accessors!(MochiTransformer3DModel, transformer_blocks: MochiTransformerBlock);
