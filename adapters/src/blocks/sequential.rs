//! Design D: the sequential block. Modulated norm → self-attention → gated residual →
//! [optional pre-norm → cross-attention to the text → residual] → modulated norm → FFN → gated
//! residual. Returns the image stream only; the text is read, never written (Pattern_2 when the
//! family's forward names `encoder_hidden_states` second, else Pattern_3).
//!
//! | knob | value: families |
//! |---|---|
//! | [`SequentialModulation`] | `Table(Flat)` (block `scale_shift_table` `(6, D)` + model temb `(B, 6·D)`): PixArt, Sana, Allegro, LTX · `Table(Batched)` (`(1, 6, D)` + temb `(B, 6, D)` or `(B, S, 6, D)`): Wan 2.1/2.2, SkyReelsV2 · `AdaLnZero` (`norm1.linear` on `SiLU(temb)`): DiT (temb from the block's `norm1.emb`, see [`crate::components::label_embedding`]) |
//! | `norm1`, `ff_norm` ([`LayerNormSpec`]) | no affine, eps 1e-6: PixArt (`ff_norm` = `norm2`) · no affine, `norm1` eps 1e-6 (inside adaLN-zero) and `norm3` eps 1e-5: DiT · FP32 no affine eps 1e-6, `ff_norm` = `norm3`: Wan |
//! | `qk_norm` + scope | none: PixArt, DiT · RMS across heads eps 1e-6 (affine): Wan (both attentions) |
//! | self-attention rotary | none: PixArt, DiT · 3D interleaved, passed in: Wan |
//! | [`CrossAttentionSpec`] | none: DiT · `kv_dim` = caption width, no pre-norm, masked by the caption padding: PixArt · `kv_dim` = D, FP32 LN affine pre-norm `norm2` when `cross_attn_norm`: Wan · + image context (`add_k_proj`, `add_v_proj`, `norm_added_k`): Wan I2V |
//! | FFN | GELU-tanh, `ff.net.{0.proj,2}`, inner 4·D: PixArt, DiT · GELU-tanh, `ffn.net.{0.proj,2}`, `ffn_dim`: Wan |
//! | `fp32_residual` | false: PixArt, DiT · true: Wan (modulation, norms and gated residuals in f32, cast back) |
//!
//! Checked against diffusers' `BasicTransformerBlock` (`ada_norm_single`, `ada_norm_zero`) and
//! `WanTransformerBlock` by `adapters/tests/design_blocks.rs`. Knobs for the other Design D
//! families (linear attention, GQA, GLUMBConv/SwiGLU FFNs, RMS norms, shift-only,
//! adaLN-LoRA and continuous modulations, long skips, causal masks) are still to add with them.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::components::attention::QkNorm;
use crate::components::cross_attention::{
    AddedImageContext, CrossAttention, CrossAttentionConfig, QkNormScope,
};
use crate::components::ffn::{Activation, FeedForward};
use crate::components::modulation::AdaLayerNormZero;
use crate::components::norm::{Norm, NormKind};
use crate::components::rope::RotaryEmbedding;
use crate::components::scale_shift_table::{
    ScaleShiftTable, TableShape, gated_residual_broadcast, modulate_broadcast,
};

/// A LayerNorm's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormSpec {
    /// Epsilon.
    pub eps: f64,
    /// Whether it has `weight` and `bias`.
    pub affine: bool,
    /// Whether it normalises in f32 (diffusers' `FP32LayerNorm`).
    pub fp32: bool,
}

impl LayerNormSpec {
    /// A LayerNorm without parameters.
    pub const fn plain(eps: f64) -> Self {
        Self {
            eps,
            affine: false,
            fp32: false,
        }
    }

    fn build(self, dim: usize, vb: VarBuilder) -> Result<Norm> {
        let kind = NormKind::LayerNorm {
            affine: self.affine,
            bias: self.affine,
        };
        let norm = Norm::new(kind, dim, self.eps, vb)?;
        if self.fp32 { norm.in_f32() } else { Ok(norm) }
    }
}

/// Where a sequential block's modulation comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SequentialModulation {
    /// adaLN-single: the block's `scale_shift_table` plus the model's timestep projection.
    Table(TableShape),
    /// adaLN-zero: `norm1.linear` (cond → 6·D) on `SiLU(temb)`.
    AdaLnZero {
        /// Width of the conditioning vector.
        cond_dim: usize,
    },
}

/// The cross-attention sub-layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossAttentionSpec {
    /// Width of the text tokens the keys and values are projected from.
    pub kv_dim: usize,
    /// The norm before the cross-attention (Wan's `norm2`); `None`: the stream as it is
    /// (PixArt).
    pub pre_norm: Option<LayerNormSpec>,
    /// An image context attended to next to the text (Wan I2V).
    pub added_image_context: Option<AddedImageContext>,
}

/// Parameter names that differ between the families' checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequentialBlockNames {
    /// The FFN (`ff`; Wan: `ffn`).
    pub ff: &'static str,
    /// The norm before the FFN (PixArt: `norm2`; DiT, Wan: `norm3`).
    pub ff_norm: &'static str,
    /// The norm before the cross-attention (Wan: `norm2`).
    pub cross_norm: &'static str,
}

impl SequentialBlockNames {
    /// `BasicTransformerBlock` with `norm_type="ada_norm_single"`: FFN norm `norm2`.
    pub const ADA_NORM_SINGLE: Self = Self {
        ff: "ff",
        ff_norm: "norm2",
        cross_norm: "norm2",
    };

    /// `BasicTransformerBlock` with `norm_type="ada_norm_zero"` (or `"layer_norm"`).
    pub const BASIC: Self = Self {
        ff: "ff",
        ff_norm: "norm3",
        cross_norm: "norm2",
    };

    /// `WanTransformerBlock`.
    pub const WAN: Self = Self {
        ff: "ffn",
        ff_norm: "norm3",
        cross_norm: "norm2",
    };
}

/// The knobs of a sequential block.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialBlockConfig {
    /// Width of the stream.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Modulation provider.
    pub modulation: SequentialModulation,
    /// The norm before the self-attention (for `AdaLnZero`: its epsilon and f32 flag).
    pub norm1: LayerNormSpec,
    /// The norm before the FFN.
    pub ff_norm: LayerNormSpec,
    /// Bias of the attention projections.
    pub attention_bias: bool,
    /// Bias of the attention output projections.
    pub attention_out_bias: bool,
    /// q/k normalisation of both attentions.
    pub qk_norm: QkNorm,
    /// Over which channels the q/k norm runs.
    pub qk_norm_scope: QkNormScope,
    /// The cross-attention, if any.
    pub cross: Option<CrossAttentionSpec>,
    /// FFN activation.
    pub ff_activation: Activation,
    /// FFN inner width.
    pub ff_inner: usize,
    /// Bias of the FFN.
    pub ff_bias: bool,
    /// Modulation, norms and gated residuals in f32, cast back to the stream's dtype.
    pub fp32_residual: bool,
    /// Checkpoint names.
    pub names: SequentialBlockNames,
}

impl SequentialBlockConfig {
    /// PixArt-α/Σ (`BasicTransformerBlock`, `ada_norm_single`): table + temb `(B, 6·D)`,
    /// LayerNorms without affine (eps 1e-6), cross-attention to the caption (`kv_dim` wide)
    /// without a pre-norm, GELU-tanh ×4, biases on.
    pub fn pixart(dim: usize, heads: usize, head_dim: usize, kv_dim: usize) -> Self {
        Self {
            dim,
            heads,
            head_dim,
            modulation: SequentialModulation::Table(TableShape::Flat),
            norm1: LayerNormSpec::plain(1e-6),
            ff_norm: LayerNormSpec::plain(1e-6),
            attention_bias: true,
            attention_out_bias: true,
            qk_norm: QkNorm::None,
            qk_norm_scope: QkNormScope::PerHead,
            cross: Some(CrossAttentionSpec {
                kv_dim,
                pre_norm: None,
                added_image_context: None,
            }),
            ff_activation: Activation::GeluTanh,
            ff_inner: 4 * dim,
            ff_bias: true,
            fp32_residual: false,
            names: SequentialBlockNames::ADA_NORM_SINGLE,
        }
    }

    /// DiT (`BasicTransformerBlock`, `ada_norm_zero`): `norm1.linear` on `SiLU(temb)` with
    /// `temb` `(B, D)` from `norm1.emb`, `norm1` eps 1e-6, `norm3` eps `norm_eps` (1e-5), no
    /// cross-attention, GELU-tanh ×4, biases on.
    pub fn dit(dim: usize, heads: usize, head_dim: usize, norm_eps: f64) -> Self {
        Self {
            modulation: SequentialModulation::AdaLnZero { cond_dim: dim },
            ff_norm: LayerNormSpec::plain(norm_eps),
            cross: None,
            names: SequentialBlockNames::BASIC,
            ..Self::pixart(dim, heads, head_dim, dim)
        }
    }

    /// Wan 2.1/2.2 (`WanTransformerBlock`): table `(1, 6, D)` + temb, FP32 LayerNorms (eps
    /// `eps`), RMS q/k norms across heads, cross-attention to the (already projected) text
    /// with the affine FP32 `norm2` when `cross_attn_norm`, GELU-tanh to `ffn_dim`, and the
    /// residual arithmetic in f32.
    pub fn wan(dim: usize, heads: usize, ffn_dim: usize, cross_attn_norm: bool, eps: f64) -> Self {
        let fp32 = LayerNormSpec {
            eps,
            affine: false,
            fp32: true,
        };
        Self {
            dim,
            heads,
            head_dim: dim / heads,
            modulation: SequentialModulation::Table(TableShape::Batched),
            norm1: fp32,
            ff_norm: fp32,
            attention_bias: true,
            attention_out_bias: true,
            qk_norm: QkNorm::RmsNorm { eps, affine: true },
            qk_norm_scope: QkNormScope::AcrossHeads,
            cross: Some(CrossAttentionSpec {
                kv_dim: dim,
                pre_norm: cross_attn_norm.then_some(LayerNormSpec { affine: true, ..fp32 }),
                added_image_context: None,
            }),
            ff_activation: Activation::GeluTanh,
            ff_inner: ffn_dim,
            ff_bias: true,
            fp32_residual: true,
            names: SequentialBlockNames::WAN,
        }
    }

    /// The same config with Wan I2V's image context (`added_kv_proj_dim`; diffusers takes the
    /// last 512 context tokens as the text).
    pub fn with_image_context(mut self, dim: usize, text_len: usize) -> Self {
        if let Some(c) = &mut self.cross {
            c.added_image_context = Some(AddedImageContext { dim, text_len });
        }
        self
    }
}

#[derive(Debug, Clone)]
enum Modulator {
    /// The table and `norm1`.
    Table(ScaleShiftTable, Norm),
    /// adaLN-zero, `norm1` inside.
    Zero(AdaLayerNormZero),
}

/// A sequential block with diffusers' parameter names: `attn1`, `attn2`, the
/// [`SequentialBlockNames`] FFN and norms, and `scale_shift_table` or `norm1.linear`.
#[derive(Debug, Clone)]
pub struct SequentialBlock {
    fp32_residual: bool,
    modulator: Modulator,
    attn1: CrossAttention,
    cross_norm: Option<Norm>,
    attn2: Option<CrossAttention>,
    ff_norm: Norm,
    ff: FeedForward,
}

impl SequentialBlock {
    /// Loads the block from `vb`.
    pub fn new(cfg: &SequentialBlockConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.dim;
        let modulator = match cfg.modulation {
            SequentialModulation::Table(shape) => Modulator::Table(
                ScaleShiftTable::new(d, shape, vb.clone())?,
                cfg.norm1.build(d, vb.pp("norm1"))?,
            ),
            SequentialModulation::AdaLnZero { cond_dim } => {
                let zero = AdaLayerNormZero::new(d, cond_dim, true, cfg.norm1.eps, vb.pp("norm1"))?;
                Modulator::Zero(if cfg.norm1.fp32 {
                    zero.with_f32_norm()?
                } else {
                    zero
                })
            }
        };
        let attention = |kv_dim| CrossAttentionConfig {
            out_bias: cfg.attention_out_bias,
            qk_norm: cfg.qk_norm,
            qk_norm_scope: cfg.qk_norm_scope,
            ..CrossAttentionConfig::plain(d, kv_dim, cfg.heads, cfg.head_dim, cfg.attention_bias)
        };
        let (cross_norm, attn2) = match &cfg.cross {
            Some(c) => (
                c.pre_norm
                    .map(|n| n.build(d, vb.pp(cfg.names.cross_norm)))
                    .transpose()?,
                Some(CrossAttention::new(
                    CrossAttentionConfig {
                        added_image_context: c.added_image_context,
                        ..attention(Some(c.kv_dim))
                    },
                    vb.pp("attn2"),
                )?),
            ),
            None => (None, None),
        };
        Ok(Self {
            fp32_residual: cfg.fp32_residual,
            modulator,
            attn1: CrossAttention::new(attention(None), vb.pp("attn1"))?,
            cross_norm,
            attn2,
            ff_norm: cfg.ff_norm.build(d, vb.pp(cfg.names.ff_norm))?,
            ff: FeedForward::new(
                d,
                d,
                cfg.ff_inner,
                cfg.ff_activation,
                cfg.ff_bias,
                vb.pp(cfg.names.ff),
            )?,
        })
    }

    /// Whether the block has a cross-attention.
    pub fn has_cross_attention(&self) -> bool {
        self.attn2.is_some()
    }

    /// One block over `hidden` `(B, S, D)`. `encoder` is the text `(B, T, kv_dim)` of the
    /// cross-attention; `temb` the modulation input ([`SequentialModulation`]); `rotary` the
    /// self-attention's table; `self_mask` / `cross_mask` additive masks broadcastable to
    /// `(B, H, S, S)` / `(B, H, S, T)`.
    pub fn forward(
        &self,
        hidden: &Tensor,
        encoder: Option<&Tensor>,
        temb: &Tensor,
        rotary: Option<&RotaryEmbedding>,
        self_mask: Option<&Tensor>,
        cross_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let dtype = hidden.dtype();
        let compute = if self.fp32_residual { DType::F32 } else { dtype };
        let h = hidden.to_dtype(compute)?;
        let (norm_h, [gate_msa, shift_mlp, scale_mlp, gate_mlp]) = match &self.modulator {
            Modulator::Table(table, norm1) => {
                let m = table.forward(temb, self.fp32_residual.then_some(DType::F32))?;
                let x = modulate_broadcast(&norm1.forward(&h)?, &m.shift_msa, &m.scale_msa)?;
                (x, [m.gate_msa, m.shift_mlp, m.scale_mlp, m.gate_mlp])
            }
            Modulator::Zero(zero) => {
                let (x, m) = zero.forward(&h, &temb.to_dtype(compute)?)?;
                let per_sample = |t: Tensor| t.unsqueeze(1);
                let rest = [m.gate_msa, m.shift_mlp, m.scale_mlp, m.gate_mlp].map(per_sample);
                let [a, b, c, d] = rest;
                (x, [a?, b?, c?, d?])
            }
        };

        let attn = self
            .attn1
            .forward(&norm_h.to_dtype(dtype)?, None, rotary, self_mask)?;
        let mut h = gated_residual_broadcast(&h, &gate_msa, &attn.to_dtype(compute)?)?.to_dtype(dtype)?;

        if let Some(attn2) = &self.attn2 {
            let encoder = encoder.ok_or_else(|| {
                candle_core::Error::msg("sequential block: cross-attention needs encoder_hidden_states")
            })?;
            let x = match &self.cross_norm {
                Some(n) => n.forward(&h.to_dtype(compute)?)?.to_dtype(dtype)?,
                None => h.clone(),
            };
            h = (h + attn2.forward(&x, Some(encoder), None, cross_mask)?)?;
        }

        let h = h.to_dtype(compute)?;
        let ff_in = modulate_broadcast(&self.ff_norm.forward(&h)?, &shift_mlp, &scale_mlp)?;
        let ff = self.ff.forward(&ff_in.to_dtype(dtype)?)?;
        gated_residual_broadcast(&h, &gate_mlp, &ff.to_dtype(compute)?)?.to_dtype(dtype)
    }
}
