//! Design X: shared-weight joint attention with expert adaLN. Each stream gets its own
//! modulated norm; one attention (`attn1`, the same q/k/v/out weights for both streams) runs
//! over the concatenation `[txt, img]`, rotary on the image tokens only; per-stream gated
//! residuals; per-stream modulated norms; one FFN over both streams; per-stream gated
//! residuals. Returns `(hidden_states, encoder_hidden_states)` (Pattern_0).
//!
//! | knob | value: families |
//! |---|---|
//! | [`ExpertModulation`] | `Expert6` ×2 (`norm1`, `norm2`: Linear on SiLU, LN shared by the streams) affine eps 1e-5: CogVideoX, ConsisID · `Joint12 { StreamMajor, silu: true }`: CogView3Plus · `Joint12 { Interleaved, silu: false }`: CogView4 (LNs without parameters, eps 1e-5) |
//! | `qk_norm` (per head) | LN affine eps 1e-6: CogVideoX, ConsisID · LN no affine eps 1e-6: CogView3Plus · eps 1e-5: CogView4 |
//! | image rotary | none: CogVideoX-2B, CogView3Plus (sincos PE at patchify) · 3D interleaved: CogVideoX-5B/1.5, ConsisID · 2D half-split: CogView4 (the table's [`crate::components::rope::RopeStyle`]) |
//! | mask | none · CogView4's text padding, [`cogview4_joint_mask`] |
//! | FFN | GELU-tanh ×4 `ff`, applied once to `[txt, img]` (CogVideoX, CogView3Plus), which equals CogView4's two calls on the streams since the FFN is per token |
//! | `clip_f16` | CogView3Plus clips both streams in fp16 |
//!
//! Checked against diffusers' `CogVideoXBlock`, `CogView3PlusTransformerBlock` and
//! `CogView4TransformerBlock` by `adapters/tests/design_blocks.rs`. Still to add with their
//! families: EasyAnimate's separate text weights (`add_*_proj`,
//! `norm_added_*`, `to_add_out`, `txt_ff`) and FP32 norms, ConsisID's face hook.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::components::attention::{Attention, AttentionConfig, QkNorm};
use crate::components::expert_modulation::{ExpertAdaLn, ExpertModulation, Joint12Order, Sublayer};
use crate::components::ffn::{Activation, FeedForward};
use crate::components::modulation::gated_residual;
use crate::components::rope::RotaryEmbedding;

/// The knobs of a shared-weight joint block.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedJointBlockConfig {
    /// Width of both streams.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Expert modulation.
    pub modulation: ExpertModulation,
    /// Per-head q/k normalisation.
    pub qk_norm: QkNorm,
    /// Bias of `to_q`, `to_k`, `to_v`.
    pub attention_bias: bool,
    /// Bias of `to_out.0`.
    pub attention_out_bias: bool,
    /// FFN activation.
    pub ff_activation: Activation,
    /// FFN inner width.
    pub ff_inner: usize,
    /// Bias of the FFN.
    pub ff_bias: bool,
    /// Clip both outputs to the f16 range when they are f16.
    pub clip_f16: bool,
}

impl SharedJointBlockConfig {
    /// CogVideoX 1.0/1.5 (`CogVideoXBlock`): Expert6 with affine LNs (eps 1e-5) on a
    /// `time_embed_dim`-wide temb, LN q/k norms (affine, eps 1e-6), biases on, GELU-tanh ×4.
    pub fn cogvideox(dim: usize, heads: usize, head_dim: usize, time_embed_dim: usize) -> Self {
        Self {
            dim,
            heads,
            head_dim,
            modulation: ExpertModulation::Expert6 {
                cond_dim: time_embed_dim,
                affine: true,
                eps: 1e-5,
            },
            qk_norm: QkNorm::LayerNorm {
                eps: 1e-6,
                affine: true,
            },
            attention_bias: true,
            attention_out_bias: true,
            ff_activation: Activation::GeluTanh,
            ff_inner: 4 * dim,
            ff_bias: true,
            clip_f16: false,
        }
    }

    /// CogView3Plus (`CogView3PlusTransformerBlock`): Joint12 image-six-then-text-six on SiLU,
    /// LN q/k norms without affine (eps 1e-6), fp16 clipping.
    pub fn cogview3plus(dim: usize, heads: usize, head_dim: usize, time_embed_dim: usize) -> Self {
        Self {
            modulation: ExpertModulation::Joint12 {
                cond_dim: time_embed_dim,
                order: Joint12Order::StreamMajor,
                silu: true,
                eps: 1e-5,
            },
            qk_norm: QkNorm::LayerNorm {
                eps: 1e-6,
                affine: false,
            },
            clip_f16: true,
            ..Self::cogvideox(dim, heads, head_dim, time_embed_dim)
        }
    }

    /// CogView4 (`CogView4TransformerBlock`): Joint12 interleaved without SiLU (the model applies
    /// it once), LN q/k norms without affine (eps 1e-5).
    pub fn cogview4(dim: usize, heads: usize, head_dim: usize, time_embed_dim: usize) -> Self {
        Self {
            modulation: ExpertModulation::Joint12 {
                cond_dim: time_embed_dim,
                order: Joint12Order::Interleaved,
                silu: false,
                eps: 1e-5,
            },
            qk_norm: QkNorm::LayerNorm {
                eps: 1e-5,
                affine: false,
            },
            clip_f16: false,
            ..Self::cogvideox(dim, heads, head_dim, time_embed_dim)
        }
    }
}

/// A shared-weight joint block with diffusers' names: `norm1`, `norm2` (Expert6) or
/// `norm1.linear` (Joint12), `attn1`, `ff`.
#[derive(Debug, Clone)]
pub struct SharedJointBlock {
    clip_f16: bool,
    adaln: ExpertAdaLn,
    attn1: Attention,
    ff: FeedForward,
}

impl SharedJointBlock {
    /// Loads the block from `vb`.
    pub fn new(cfg: &SharedJointBlockConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.dim;
        let attn = AttentionConfig {
            bias: cfg.attention_bias,
            out_bias: cfg.attention_out_bias,
            qk_norm: cfg.qk_norm,
            ..AttentionConfig::flux(d, cfg.heads, cfg.head_dim, false, false, 1e-6)
        };
        Ok(Self {
            clip_f16: cfg.clip_f16,
            adaln: ExpertAdaLn::new(cfg.modulation, d, &vb)?,
            attn1: Attention::new(attn, vb.pp("attn1"))?,
            ff: FeedForward::new(d, d, cfg.ff_inner, cfg.ff_activation, cfg.ff_bias, vb.pp("ff"))?,
        })
    }

    /// One block over `hidden` `(B, S, D)` and `encoder` `(B, T, D)` with conditioning `temb`
    /// `(B, cond_dim)`. `image_rotary` covers the `S` image tokens; `mask` is additive over the
    /// joint `[txt, img]` sequence, broadcastable to `(B, H, T+S, T+S)`. Returns
    /// `(hidden_states, encoder_hidden_states)`.
    pub fn forward(
        &self,
        hidden: &Tensor,
        encoder: &Tensor,
        temb: &Tensor,
        image_rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (t, s) = (encoder.dim(1)?, hidden.dim(1)?);
        let [msa, mlp] = self.adaln.modulations(temb)?;
        let (nh, ne) = self.adaln.apply(Sublayer::Attention, hidden, encoder, &msa)?;
        let rotary = image_rotary.map(|r| identity_prefixed(r, t)).transpose()?;
        let (out, _) = self
            .attn1
            .forward(&Tensor::cat(&[&ne, &nh], 1)?, None, rotary.as_ref(), mask)?;
        let h = gated_residual(hidden, &msa.image.gate, &out.narrow(1, t, s)?)?;
        let e = gated_residual(encoder, &msa.text.gate, &out.narrow(1, 0, t)?)?;

        let (nh, ne) = self.adaln.apply(Sublayer::Ffn, &h, &e, &mlp)?;
        let ff = self.ff.forward(&Tensor::cat(&[&ne, &nh], 1)?)?;
        let h = gated_residual(&h, &mlp.image.gate, &ff.narrow(1, t, s)?)?;
        let e = gated_residual(&e, &mlp.text.gate, &ff.narrow(1, 0, t)?)?;
        if self.clip_f16 {
            Ok((super::clip_f16(h)?, super::clip_f16(e)?))
        } else {
            Ok((h, e))
        }
    }
}

/// The image table `r` extended over `text_len` leading text tokens that it leaves as they
/// are (angle 0: `cos` 1, `sin` 0, an exact identity), so one rotation of the joint sequence
/// rotates the image tokens only.
pub fn identity_prefixed(r: &RotaryEmbedding, text_len: usize) -> Result<RotaryEmbedding> {
    let (cos, sin) = r.tables();
    let half = cos.dim(1)?;
    let ones = Tensor::ones((text_len, half), cos.dtype(), cos.device())?;
    let zeros = Tensor::zeros((text_len, half), sin.dtype(), sin.device())?;
    RotaryEmbedding::new(
        Tensor::cat(&[&ones, cos], 0)?,
        Tensor::cat(&[&zeros, sin], 0)?,
        r.style(),
    )
}

/// CogView4's joint mask from a text padding mask `text_mask` `(B, T)` (1 for real tokens, 0
/// for padding) and `image_len` image tokens, as diffusers' `CogView4AttnProcessor` builds it:
/// `m = [text_mask, 1…]`, `(m mᵀ > 0)` as a **float** `(B, 1, T+S, T+S)` tensor. PyTorch's
/// `scaled_dot_product_attention` adds a float mask to the logits, so this is an additive mask
/// of 1 (both tokens real) and 0 (either padded), not an exclusion; kept as diffusers computes
/// it so that outputs match.
pub fn cogview4_joint_mask(text_mask: &Tensor, image_len: usize) -> Result<Tensor> {
    let (b, _) = text_mask.dims2()?;
    let m = Tensor::cat(
        &[
            &text_mask.to_dtype(DType::F32)?,
            &Tensor::ones((b, image_len), DType::F32, text_mask.device())?,
        ],
        1,
    )?
    .unsqueeze(2)?;
    let outer = m.matmul(&m.transpose(1, 2)?)?;
    outer.gt(0f64)?.to_dtype(DType::F32)?.unsqueeze(1)
}
