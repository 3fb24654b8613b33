//! Design J: the dual-stream joint (MMDiT) block. Per-stream adaLN-zero → per-stream q/k/v
//! (+ q/k norm) → joint attention over text and image → per-stream output projection → gated
//! residual → per-stream modulated norm → per-stream FFN → gated residual.
//!
//! Families: Flux, VisualCloze, Bria and Chroma (Flux layout), HunyuanVideo, QwenImage, SD3,
//! AuraFlow, HiDream, Mochi. Knobs still to add for them (families.md §4): modulation providers
//! other than adaLN-zero (Joint12, External slices, RmsZero4), asymmetric stream widths (Mochi),
//! `context_pre_only` last blocks (SD3, Mochi), SwiGLU/MoE FFNs under other names, and HiDream's
//! `*_t` names. QwenImage's per-stream rotary tables are one joint table here (its `[txt, img]`
//! concatenation of the two), since rotation is per position.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::components::attention::{Attention, AttentionConfig, JointOrder, QkNorm};
use crate::components::ffn::{Activation, FeedForward};
use crate::components::modulation::{AdaLayerNormZero, gated_residual, modulate};
use crate::components::norm::Norm;
use crate::components::rope::RotaryEmbedding;

/// The knobs of a dual-stream joint block.
#[derive(Debug, Clone, PartialEq)]
pub struct JointBlockConfig {
    /// Width of both streams.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// q/k normalisation.
    pub qk_norm: QkNorm,
    /// Epsilon of the stream LayerNorms (no affine).
    pub norm_eps: f64,
    /// FFN activation (both streams).
    pub ff_activation: Activation,
    /// FFN inner width.
    pub ff_inner: usize,
    /// Order of the joint sequence.
    pub joint_order: JointOrder,
    /// Parameter names of the modulation and FFN sub-modules.
    pub names: JointBlockNames,
    /// Whether the fp16 overflow guard clips the image stream too (QwenImage), not only the
    /// text stream (Flux).
    pub clip_hidden_f16: bool,
}

/// Where a joint block's modulation Linears and FFNs live in the checkpoint; the math is the
/// same, only diffusers' names differ by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JointBlockNames {
    /// The image stream's adaLN-zero Linear.
    pub img_mod: &'static str,
    /// The text stream's adaLN-zero Linear.
    pub txt_mod: &'static str,
    /// The image stream's FFN.
    pub img_mlp: &'static str,
    /// The text stream's FFN.
    pub txt_mlp: &'static str,
}

impl JointBlockNames {
    /// `FluxTransformerBlock`: `norm1.linear`, `norm1_context.linear`, `ff`, `ff_context`.
    pub const FLUX: Self = Self {
        img_mod: "norm1.linear",
        txt_mod: "norm1_context.linear",
        img_mlp: "ff",
        txt_mlp: "ff_context",
    };

    /// `QwenImageTransformerBlock`: `img_mod.1`, `txt_mod.1` (after the `SiLU` at index 0),
    /// `img_mlp`, `txt_mlp`.
    pub const QWEN_IMAGE: Self = Self {
        img_mod: "img_mod.1",
        txt_mod: "txt_mod.1",
        img_mlp: "img_mlp",
        txt_mlp: "txt_mlp",
    };
}

impl JointBlockConfig {
    /// FLUX.1's double block: RMS q/k norms (eps 1e-6), GELU-tanh ×4, `[txt, img]`.
    pub fn flux(dim: usize, heads: usize, head_dim: usize) -> Self {
        Self {
            dim,
            heads,
            head_dim,
            qk_norm: QkNorm::RmsNorm {
                eps: 1e-6,
                affine: true,
            },
            norm_eps: 1e-6,
            ff_activation: Activation::GeluTanh,
            ff_inner: 4 * dim,
            joint_order: JointOrder::TextFirst,
            names: JointBlockNames::FLUX,
            clip_hidden_f16: false,
        }
    }

    /// QwenImage's block: Flux's math (RMS q/k norms with eps 1e-6, GELU-tanh ×4, `[txt, img]`)
    /// under `img_mod`/`txt_mod`/`img_mlp`/`txt_mlp` names, clipping both streams in fp16.
    pub fn qwen_image(dim: usize, heads: usize, head_dim: usize) -> Self {
        Self {
            names: JointBlockNames::QWEN_IMAGE,
            clip_hidden_f16: true,
            ..Self::flux(dim, heads, head_dim)
        }
    }
}

/// A dual-stream joint block with diffusers' parameter names: `attn` plus the modulation and
/// FFN names of [`JointBlockNames`] (Flux: `norm1`, `norm1_context`, `ff`, `ff_context`).
#[derive(Debug, Clone)]
pub struct DualStreamJointBlock {
    clip_hidden_f16: bool,
    norm1: AdaLayerNormZero,
    norm1_context: AdaLayerNormZero,
    attn: Attention,
    norm2: Norm,
    ff: FeedForward,
    norm2_context: Norm,
    ff_context: FeedForward,
}

impl DualStreamJointBlock {
    /// Loads the block from `vb`.
    pub fn new(cfg: &JointBlockConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.dim;
        let attn_cfg = AttentionConfig {
            qk_norm: cfg.qk_norm,
            joint_order: cfg.joint_order,
            ..AttentionConfig::flux(d, cfg.heads, cfg.head_dim, true, false, 1e-6)
        };
        let ln = || Norm::layer_norm_no_affine(d, cfg.norm_eps, vb.dtype(), vb.device());
        let n = cfg.names;
        let ff = |name: &str| FeedForward::new(d, d, cfg.ff_inner, cfg.ff_activation, true, vb.pp(name));
        Ok(Self {
            clip_hidden_f16: cfg.clip_hidden_f16,
            norm1: AdaLayerNormZero::from_linear(d, d, true, cfg.norm_eps, vb.pp(n.img_mod))?,
            norm1_context: AdaLayerNormZero::from_linear(d, d, true, cfg.norm_eps, vb.pp(n.txt_mod))?,
            attn: Attention::new(attn_cfg, vb.pp("attn"))?,
            norm2: ln()?,
            ff: ff(n.img_mlp)?,
            norm2_context: ln()?,
            ff_context: ff(n.txt_mlp)?,
        })
    }

    /// One block: returns `(encoder_hidden_states, hidden_states)` (Pattern_1 order).
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (norm_h, m) = self.norm1.forward(hidden_states, temb)?;
        let (norm_e, c) = self.norm1_context.forward(encoder_hidden_states, temb)?;
        let (attn_out, ctx_out) = self.attn.forward(&norm_h, Some(&norm_e), rotary, mask)?;
        let ctx_out =
            ctx_out.ok_or_else(|| candle_core::Error::msg("joint attention returned no text part"))?;

        let h = gated_residual(hidden_states, &m.gate_msa, &attn_out)?;
        let ff_in = modulate(&self.norm2.forward(&h)?, &m.shift_mlp, &m.scale_mlp)?;
        let h = gated_residual(&h, &m.gate_mlp, &self.ff.forward(&ff_in)?)?;

        let e = gated_residual(encoder_hidden_states, &c.gate_msa, &ctx_out)?;
        let ff_in = modulate(&self.norm2_context.forward(&e)?, &c.shift_mlp, &c.scale_mlp)?;
        let e = gated_residual(&e, &c.gate_mlp, &self.ff_context.forward(&ff_in)?)?;
        let h = if self.clip_hidden_f16 {
            super::clip_f16(h)?
        } else {
            h
        };
        Ok((super::clip_f16(e)?, h))
    }
}
