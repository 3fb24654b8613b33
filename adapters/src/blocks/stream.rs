//! One stream of a block: its normalisation, how a modulation set is applied to it, how a
//! branch is added back to it (the residual style), and its FFN. Design J has two of these
//! around one joint attention; the single-stream sequential blocks of AuraFlow and HiDream
//! (design D's self-attention-only form) have one around a self-attention.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::components::attention::{Attention, AttentionExtras};
use crate::components::ffn::{Ffn, FfnKind};
use crate::components::modulation::{ModLayout, ModSet, ModSource, gated_residual};
use crate::components::norm::{Norm, NormKind};
use crate::components::per_sample;
use crate::components::rope::RotaryEmbedding;

/// The normalisation of a stream (no affine parameters in any design family).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamNorm {
    /// LayerNorm (most families; eps 1e-6).
    LayerNorm {
        /// Epsilon.
        eps: f64,
    },
    /// LayerNorm computed in f32 and cast back before the modulation (diffusers'
    /// `FP32LayerNorm`: AuraFlow).
    Fp32LayerNorm {
        /// Epsilon.
        eps: f64,
    },
    /// RMSNorm with the modulation applied in f32 too, and residual branches that are themselves
    /// RMS-normed and added through `tanh(gate)` (Mochi's `MochiRMSNormZero` /
    /// `MochiModulatedRMSNorm`).
    RmsTanh {
        /// Epsilon.
        eps: f64,
    },
}

impl StreamNorm {
    fn build(self, dim: usize, vb: &VarBuilder) -> Result<Norm> {
        let (dtype, dev) = (vb.dtype(), vb.device());
        match self {
            Self::LayerNorm { eps } => Norm::layer_norm_no_affine(dim, eps, dtype, dev),
            Self::Fp32LayerNorm { eps } => Norm::layer_norm_no_affine(dim, eps, dtype, dev)?.in_f32(),
            Self::RmsTanh { eps } => {
                Norm::new(NormKind::RmsNorm { affine: false }, dim, eps, vb.clone())?.in_f32()
            }
        }
    }
}

/// One stream of a block: norm, FFN (none for a `context_pre_only` text stream) and residual
/// style.
#[derive(Debug, Clone)]
pub struct StreamHalf {
    norm: Norm,
    kind: StreamNorm,
    ff: Option<Ffn>,
}

impl StreamHalf {
    /// A stream of width `dim`; its FFN (if `ff`) is loaded from `ff_vb`, the FFN's prefix.
    pub fn new(dim: usize, kind: StreamNorm, ff: Option<FfnKind>, ff_vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: kind.build(dim, &ff_vb)?,
            kind,
            ff: ff.map(|k| Ffn::new(k, dim, ff_vb)).transpose()?,
        })
    }

    /// `norm(x) · (1 + scale) + shift`.
    pub fn modulated(&self, x: &Tensor, m: &ModSet) -> Result<Tensor> {
        let apply = |n: Tensor, scale: &Tensor, shift: Option<&Tensor>| -> Result<Tensor> {
            let n = n.broadcast_mul(&per_sample(&(scale + 1.0)?)?)?;
            match shift {
                Some(s) => n.broadcast_add(&per_sample(s)?),
                None => Ok(n),
            }
        };
        if let StreamNorm::RmsTanh { .. } = self.kind {
            let f32 = |t: &Tensor| t.to_dtype(DType::F32);
            let shift = m.shift.as_ref().map(f32).transpose()?;
            let n = self.norm.forward(&f32(x)?)?;
            return apply(n, &f32(&m.scale)?, shift.as_ref())?.to_dtype(x.dtype());
        }
        apply(self.norm.forward(x)?, &m.scale, m.shift.as_ref())
    }

    /// `x + gate · y` (or Mochi's `x + rms(y) · tanh(gate)`).
    pub fn residual(&self, x: &Tensor, gate: Option<&Tensor>, y: &Tensor) -> Result<Tensor> {
        let gate =
            gate.ok_or_else(|| candle_core::Error::msg("a gate-less modulation has no residual branch"))?;
        if let StreamNorm::RmsTanh { .. } = self.kind {
            let g = per_sample(&gate.tanh()?)?.to_dtype(DType::F32)?;
            let y32 = self.norm.forward(&y.to_dtype(DType::F32)?)?;
            return x + y32.broadcast_mul(&g)?.to_dtype(y.dtype());
        }
        gated_residual(x, gate, y)
    }

    /// The FFN sub-layer: `base + gate · ff(norm(x) · (1 + scale) + shift)`. `base` is `x`
    /// except in AuraFlow, whose attention output only feeds the FFN input.
    pub fn mlp(&self, x: &Tensor, base: &Tensor, m: Option<&ModSet>) -> Result<Tensor> {
        let (Some(ff), Some(m)) = (&self.ff, m) else {
            candle_core::bail!("this stream has no FFN sub-layer");
        };
        self.residual(base, m.gate.as_ref(), &ff.forward(&self.modulated(x, m)?)?)
    }
}

/// One stream with adaLN-zero around a self-attention and an FFN, returning the stream:
/// AuraFlow's and HiDream's single-stream blocks (the self-attention-only form of design D,
/// built from J's stream half so the two families need no block code of their own).
#[derive(Debug, Clone)]
pub struct SelfAttentionStreamBlock {
    modulation: ModSource,
    stream: StreamHalf,
    attn: Attention,
    attn_feeds_ffn_only: bool,
}

impl SelfAttentionStreamBlock {
    /// The block from its parts: a 6-vector adaLN-zero `modulation`, the `stream` (norm, FFN)
    /// and a self-`attn`; `attn_feeds_ffn_only` is AuraFlow's residual quirk.
    pub fn new(
        modulation: ModSource,
        stream: StreamHalf,
        attn: Attention,
        attn_feeds_ffn_only: bool,
    ) -> Self {
        Self {
            modulation,
            stream,
            attn,
            attn_feeds_ffn_only,
        }
    }

    /// The block on `x` `(B, S, D)`.
    pub fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        rotary: Option<&RotaryEmbedding>,
        extras: AttentionExtras,
    ) -> Result<Tensor> {
        let m = ModLayout::Zero6.parse(self.modulation.vectors(temb, ModLayout::Zero6.len())?)?;
        let norm_x = self.stream.modulated(x, &m.attn)?;
        let (attn, _) = self.attn.forward_with(&norm_x, None, rotary, None, extras)?;
        let h = self.stream.residual(x, m.attn.gate.as_ref(), &attn)?;
        let base = if self.attn_feeds_ffn_only { x } else { &h };
        self.stream.mlp(&h, base, m.mlp.as_ref())
    }
}
