//! Design J: the dual-stream joint (MMDiT) block. Per-stream modulated norm → per-stream q/k/v
//! (+ q/k norm) → joint attention over text and image → per-stream output projection → gated
//! residual → per-stream modulated norm → per-stream FFN → gated residual.
//!
//! Families: Flux, VisualCloze, Bria, Chroma, HunyuanVideo, QwenImage, SD3, AuraFlow (joint
//! blocks), HiDream (double blocks), Mochi. Their differences are the knobs of
//! [`JointBlockConfig`] (docs/families.md §4): the modulation provider ([`JointModulation`]), the
//! stream widths (Mochi's text stream is narrower), the stream norm and residual style
//! ([`StreamNorm`]), each stream's FFN ([`FfnKind`]), the q/k norm, biases, parameter names,
//! a `context_pre_only` last block ([`ContextPreOnly`]), SD3.5-medium's second image attention
//! (`attn2`), AuraFlow's residual quirk and the fp16 clip. QwenImage's per-stream rotary
//! tables are one joint table here (its `[txt, img]` concatenation of the two), since rotation
//! is per position.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::stream::{StreamHalf, StreamNorm};
use crate::components::attention::{
    Attention, AttentionConfig, AttentionExtras, AttentionNames, JointOrder, QkNorm,
};
use crate::components::ffn::{Activation, FfnKind};
use crate::components::modulation::{ModLayout, ModSource, StreamMod};
use crate::components::rope::RotaryEmbedding;

/// Where a joint block's modulation vectors come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JointModulation {
    /// One adaLN-zero Linear per stream, 6 chunks each (Flux, SD3, AuraFlow, QwenImage, HV).
    AdaLnZero {
        /// Whether the Linears have a bias (AuraFlow: no).
        bias: bool,
    },
    /// One Linear for both streams, 12 chunks: the image's six, then the text's (HiDream).
    Joint12,
    /// `temb` is `(B, 12, D)`: six image vectors, then six text vectors (Chroma).
    External,
    /// `MochiRMSNormZero` per stream: `scale, gate` twice, no shifts.
    RmsZero4,
}

/// What the last block of a `context_pre_only` model does with the text stream: it feeds the
/// attention but has no output projection, gate or FFN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextPreOnly {
    /// A normal block.
    No,
    /// The text stream ends here: the block returns none (SD3).
    DropText,
    /// The text stream is returned unchanged (Mochi).
    KeepText,
}

/// Which streams diffusers clips to ±65504 when they are f16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipF16 {
    /// Neither.
    None,
    /// The text stream (Flux, Chroma).
    Text,
    /// Both streams (QwenImage).
    Both,
}

/// The knobs of a dual-stream joint block.
#[derive(Debug, Clone, PartialEq)]
pub struct JointBlockConfig {
    /// Width of the image stream.
    pub dim: usize,
    /// Width of the text stream (Mochi: narrower than the image stream).
    pub context_dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// q/k normalisation.
    pub qk_norm: QkNorm,
    /// Bias of the q/k/v projections of both streams.
    pub qkv_bias: bool,
    /// Bias of the output projections.
    pub out_bias: bool,
    /// The stream norm (and with it the residual style).
    pub norm: StreamNorm,
    /// The modulation provider.
    pub modulation: JointModulation,
    /// The image stream's FFN.
    pub ff: FfnKind,
    /// The text stream's FFN.
    pub ff_context: FfnKind,
    /// Order of the joint sequence.
    pub joint_order: JointOrder,
    /// Parameter names of the modulation, attention and FFN sub-modules.
    pub names: JointBlockNames,
    /// The fp16 overflow guard.
    pub clip_f16: ClipF16,
    /// Whether this is a `context_pre_only` (last) block.
    pub context_pre_only: ContextPreOnly,
    /// MMDiT-X: a second, image-only self-attention `attn2` (SD3.5-medium).
    pub dual_attention: bool,
    /// AuraFlow: the attention output only feeds the FFN input, `h = x + g_mlp · ff(norm2(x +
    /// g_msa · attn))`; it is never added to the residual stream itself.
    pub attn_feeds_ffn_only: bool,
}

/// Where a joint block's modulation Linears, attention and FFNs live in the checkpoint; the math
/// is the same, only diffusers' names differ by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JointBlockNames {
    /// The image stream's modulation Linear (HiDream: the one shared Linear).
    pub img_mod: &'static str,
    /// The text stream's modulation Linear.
    pub txt_mod: &'static str,
    /// The text stream's modulation Linear in a `context_pre_only` block.
    pub txt_mod_pre_only: &'static str,
    /// The image stream's FFN.
    pub img_mlp: &'static str,
    /// The text stream's FFN.
    pub txt_mlp: &'static str,
    /// The attention.
    pub attn: &'static str,
    /// The attention's parameters.
    pub attn_names: AttentionNames,
}

impl JointBlockNames {
    /// `FluxTransformerBlock` (and SD3's `JointTransformerBlock`, AuraFlow, Chroma):
    /// `norm1.linear`, `norm1_context.linear`, `attn`, `ff`, `ff_context`.
    pub const FLUX: Self = Self {
        img_mod: "norm1.linear",
        txt_mod: "norm1_context.linear",
        txt_mod_pre_only: "norm1_context.linear",
        img_mlp: "ff",
        txt_mlp: "ff_context",
        attn: "attn",
        attn_names: AttentionNames::DIFFUSERS,
    };

    /// `QwenImageTransformerBlock`: `img_mod.1`, `txt_mod.1` (after the `SiLU` at index 0),
    /// `img_mlp`, `txt_mlp`.
    pub const QWEN_IMAGE: Self = Self {
        img_mod: "img_mod.1",
        txt_mod: "txt_mod.1",
        img_mlp: "img_mlp",
        txt_mlp: "txt_mlp",
        ..Self::FLUX
    };
}

impl JointBlockConfig {
    /// FLUX.1's double block: RMS q/k norms (eps 1e-6), GELU-tanh ×4, `[txt, img]`, biases,
    /// adaLN-zero, LayerNorms with eps 1e-6, the text stream clipped in fp16.
    pub fn flux(dim: usize, heads: usize, head_dim: usize) -> Self {
        let ff = FfnKind::FeedForward {
            activation: Activation::GeluTanh,
            inner: 4 * dim,
            bias: true,
        };
        Self {
            dim,
            context_dim: dim,
            heads,
            head_dim,
            qk_norm: QkNorm::RmsNorm {
                eps: 1e-6,
                affine: true,
            },
            qkv_bias: true,
            out_bias: true,
            norm: StreamNorm::LayerNorm { eps: 1e-6 },
            modulation: JointModulation::AdaLnZero { bias: true },
            ff,
            ff_context: ff,
            joint_order: JointOrder::TextFirst,
            names: JointBlockNames::FLUX,
            clip_f16: ClipF16::Text,
            context_pre_only: ContextPreOnly::No,
            dual_attention: false,
            attn_feeds_ffn_only: false,
        }
    }

    /// QwenImage's block: Flux's math under `img_mod`/`txt_mod`/`img_mlp`/`txt_mlp` names,
    /// clipping both streams in fp16.
    pub fn qwen_image(dim: usize, heads: usize, head_dim: usize) -> Self {
        Self {
            names: JointBlockNames::QWEN_IMAGE,
            clip_f16: ClipF16::Both,
            ..Self::flux(dim, heads, head_dim)
        }
    }

    /// The image and text layouts of the modulation vectors.
    fn layouts(&self) -> (ModLayout, ModLayout) {
        let rms = self.modulation == JointModulation::RmsZero4;
        let img = match (rms, self.dual_attention) {
            (true, _) => ModLayout::RmsZero4,
            (false, true) => ModLayout::ZeroX9,
            (false, false) => ModLayout::Zero6,
        };
        let txt = match (rms, self.context_pre_only) {
            (true, ContextPreOnly::No) => ModLayout::RmsZero4,
            (true, _) => ModLayout::ScaleOnly,
            (false, ContextPreOnly::No) => ModLayout::Zero6,
            (false, _) => ModLayout::Continuous,
        };
        (img, txt)
    }

    fn attention(&self) -> AttentionConfig {
        AttentionConfig {
            query_dim: self.dim,
            heads: self.heads,
            head_dim: self.head_dim,
            bias: self.qkv_bias,
            out_bias: self.out_bias,
            qk_norm: self.qk_norm,
            added_kv_proj_dim: Some(self.context_dim),
            added_proj_bias: self.qkv_bias,
            pre_only: false,
            context_pre_only: self.context_pre_only != ContextPreOnly::No,
            fused_qkv: false,
            joint_order: self.joint_order,
            names: self.names.attn_names,
        }
    }
}

/// The block's modulation sources: one per stream, or one shared (image vectors first).
#[derive(Debug, Clone)]
enum Sources {
    PerStream(ModSource, ModSource),
    Shared(ModSource),
}

/// A dual-stream joint block with diffusers' parameter names (those of [`JointBlockNames`]).
#[derive(Debug, Clone)]
pub struct DualStreamJointBlock {
    sources: Sources,
    layouts: (ModLayout, ModLayout),
    img: StreamHalf,
    txt: StreamHalf,
    attn: Attention,
    attn2: Option<Attention>,
    context_pre_only: ContextPreOnly,
    attn_feeds_ffn_only: bool,
    clip_f16: ClipF16,
}

impl DualStreamJointBlock {
    /// Loads the block from `vb`.
    pub fn new(cfg: &JointBlockConfig, vb: VarBuilder) -> Result<Self> {
        let (d, dc, n) = (cfg.dim, cfg.context_dim, cfg.names);
        let layouts = cfg.layouts();
        let pre_only = cfg.context_pre_only != ContextPreOnly::No;
        let per_stream = |bias: bool| -> Result<Sources> {
            let txt_name = if pre_only { n.txt_mod_pre_only } else { n.txt_mod };
            Ok(Sources::PerStream(
                ModSource::linear(d, layouts.0.len(), d, bias, vb.pp(n.img_mod))?,
                ModSource::linear(d, layouts.1.len(), dc, bias, vb.pp(txt_name))?,
            ))
        };
        let sources = match cfg.modulation {
            JointModulation::AdaLnZero { bias } => per_stream(bias)?,
            JointModulation::RmsZero4 => per_stream(true)?,
            JointModulation::Joint12 => Sources::Shared(ModSource::linear(d, 12, d, true, vb.pp(n.img_mod))?),
            JointModulation::External => Sources::Shared(ModSource::Vectors),
        };
        let attn_cfg = cfg.attention();
        let attn2 = if cfg.dual_attention {
            let c = AttentionConfig {
                added_kv_proj_dim: None,
                context_pre_only: false,
                ..attn_cfg.clone()
            };
            Some(Attention::new(c, vb.pp("attn2"))?)
        } else {
            None
        };
        Ok(Self {
            sources,
            layouts,
            img: StreamHalf::new(d, cfg.norm, Some(cfg.ff), vb.pp(n.img_mlp))?,
            txt: StreamHalf::new(
                dc,
                cfg.norm,
                (!pre_only).then_some(cfg.ff_context),
                vb.pp(n.txt_mlp),
            )?,
            attn: Attention::new(attn_cfg, vb.pp(n.attn))?,
            attn2,
            context_pre_only: cfg.context_pre_only,
            attn_feeds_ffn_only: cfg.attn_feeds_ffn_only,
            clip_f16: cfg.clip_f16,
        })
    }

    /// Whether the block is `context_pre_only`.
    pub fn context_pre_only(&self) -> ContextPreOnly {
        self.context_pre_only
    }

    fn modulation(&self, temb: &Tensor) -> Result<(StreamMod, StreamMod)> {
        let (img, txt) = self.layouts;
        match &self.sources {
            Sources::PerStream(i, t) => Ok((
                img.parse(i.vectors(temb, img.len())?)?,
                txt.parse(t.vectors(temb, txt.len())?)?,
            )),
            Sources::Shared(s) => {
                let mut v = s.vectors(temb, img.len() + txt.len())?;
                let t = v.split_off(img.len());
                Ok((img.parse(v)?, txt.parse(t)?))
            }
        }
    }

    /// One block: returns `(encoder_hidden_states, hidden_states)` (Pattern_1 order). Errors on
    /// a block that drops the text stream (see [`forward_with`](Self::forward_with)).
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (e, h) = self.forward_with(
            hidden_states,
            encoder_hidden_states,
            temb,
            rotary,
            mask,
            AttentionExtras::default(),
        )?;
        let e = e.ok_or_else(|| candle_core::Error::msg("this block returns no text stream"))?;
        Ok((e, h))
    }

    /// One block with the attention's [`AttentionExtras`]: `(encoder, hidden)`, the text stream
    /// none after a [`ContextPreOnly::DropText`] block.
    pub fn forward_with(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
        extras: AttentionExtras,
    ) -> Result<(Option<Tensor>, Tensor)> {
        let (mi, mt) = self.modulation(temb)?;
        let norm_h = self.img.modulated(hidden_states, &mi.attn)?;
        let norm_e = self.txt.modulated(encoder_hidden_states, &mt.attn)?;
        let (attn_out, ctx_out) = self
            .attn
            .forward_with(&norm_h, Some(&norm_e), rotary, mask, extras)?;

        let mut h = self
            .img
            .residual(hidden_states, mi.attn.gate.as_ref(), &attn_out)?;
        if let (Some(attn2), Some(m2)) = (&self.attn2, &mi.attn2) {
            let (out2, _) = attn2.forward(&self.img.modulated(hidden_states, m2)?, None, None, None)?;
            h = self.img.residual(&h, m2.gate.as_ref(), &out2)?;
        }
        let base = if self.attn_feeds_ffn_only {
            hidden_states
        } else {
            &h
        };
        let h = self.img.mlp(&h, base, mi.mlp.as_ref())?;

        let e = match self.context_pre_only {
            ContextPreOnly::DropText => None,
            ContextPreOnly::KeepText => Some(encoder_hidden_states.clone()),
            ContextPreOnly::No => {
                let ctx_out = ctx_out
                    .ok_or_else(|| candle_core::Error::msg("joint attention returned no text part"))?;
                let e = self
                    .txt
                    .residual(encoder_hidden_states, mt.attn.gate.as_ref(), &ctx_out)?;
                let base = if self.attn_feeds_ffn_only {
                    encoder_hidden_states
                } else {
                    &e
                };
                Some(self.txt.mlp(&e, base, mt.mlp.as_ref())?)
            }
        };
        Ok(match self.clip_f16 {
            ClipF16::None => (e, h),
            ClipF16::Text => (e.map(super::clip_f16).transpose()?, h),
            ClipF16::Both => (e.map(super::clip_f16).transpose()?, super::clip_f16(h)?),
        })
    }
}
