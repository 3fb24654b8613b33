//! Mochi's asymmetric dual-stream block (`MochiTransformerBlock`) and its pieces: RMS-norm-zero
//! modulation without shift, tanh-gated RMS-normed residual branches, per-head learned rotary
//! frequencies on the image tokens, and joint attention over `[img, valid txt]` per sample.

use cachedit_macros::block_adapter;
use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::components::attention::scaled_dot_product_attention;
use crate::components::ffn::{Activation, FeedForward};
use crate::components::linear;
use crate::components::norm::{Norm, NormKind};

/// RMS norm without affine over the last dimension, computed in f32 and cast back.
pub fn rms(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let ones = Tensor::ones(x.dim(D::Minus1)?, DType::F32, x.device())?;
    candle_nn::ops::rms_norm(&x, &ones, eps as f32)?.to_dtype(dtype)
}

/// Mochi's rotary tables: `cos`, `sin` `(S, heads, head_dim / 2)` (one frequency set per head).
#[derive(Debug, Clone)]
pub struct MochiRotary {
    /// `cos` of the angles.
    pub cos: Tensor,
    /// `sin` of the angles.
    pub sin: Tensor,
}

impl MochiRotary {
    /// Rotates the interleaved pairs of `x` `(B, S, H, Dh)`.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (b, s, h, d) = x.dims4()?;
        let pairs = x.to_dtype(DType::F32)?.reshape((b, s, h, d / 2, 2))?;
        let even = pairs.narrow(4, 0, 1)?.squeeze(4)?;
        let odd = pairs.narrow(4, 1, 1)?.squeeze(4)?;
        let (cos, sin) = (self.cos.unsqueeze(0)?, self.sin.unsqueeze(0)?);
        let re = (even.broadcast_mul(&cos)? - odd.broadcast_mul(&sin)?)?;
        let im = (even.broadcast_mul(&sin)? + odd.broadcast_mul(&cos)?)?;
        Tensor::stack(&[re, im], 4)?
            .reshape((b, s, h, d))?
            .to_dtype(x.dtype())
    }
}

/// diffusers' `MochiAttention` with `MochiAttnProcessor2_0`.
#[derive(Debug, Clone)]
pub struct MochiAttention {
    heads: usize,
    head_dim: usize,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    add_q_proj: Linear,
    add_k_proj: Linear,
    add_v_proj: Linear,
    norms: [Norm; 4],
    to_out: Linear,
    to_add_out: Option<Linear>,
}

impl MochiAttention {
    /// Loads the attention from `vb` (`attn1`).
    pub fn new(
        dim: usize,
        context_dim: usize,
        heads: usize,
        head_dim: usize,
        pre_only: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        let norm = |n: &str| Norm::new(NormKind::RmsNorm { affine: true }, head_dim, 1e-5, vb.pp(n));
        Ok(Self {
            heads,
            head_dim,
            to_q: linear(dim, inner, false, vb.pp("to_q"))?,
            to_k: linear(dim, inner, false, vb.pp("to_k"))?,
            to_v: linear(dim, inner, false, vb.pp("to_v"))?,
            add_q_proj: linear(context_dim, inner, false, vb.pp("add_q_proj"))?,
            add_k_proj: linear(context_dim, inner, false, vb.pp("add_k_proj"))?,
            add_v_proj: linear(context_dim, inner, false, vb.pp("add_v_proj"))?,
            norms: [
                norm("norm_q")?,
                norm("norm_k")?,
                norm("norm_added_q")?,
                norm("norm_added_k")?,
            ],
            to_out: linear(inner, dim, true, vb.pp("to_out.0"))?,
            to_add_out: if pre_only {
                None
            } else {
                Some(linear(inner, context_dim, true, vb.pp("to_add_out"))?)
            },
        })
    }

    /// Joint attention. `text_keep` `(B, T)` (1 = valid prompt token, valid tokens first):
    /// padded text tokens are neither attended to nor attend (their output is zero before
    /// `to_add_out`), which equals diffusers' per-sample attention over `[img, valid txt]`.
    pub fn forward(
        &self,
        hidden: &Tensor,
        encoder: &Tensor,
        rotary: Option<&MochiRotary>,
        text_keep: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (b, s, _) = hidden.dims3()?;
        let t = encoder.dim(1)?;
        let (h, d) = (self.heads, self.head_dim);
        let split = |x: Tensor, n: usize| x.reshape((b, n, h, d));
        let mut q = self.norms[0].forward(&split(self.to_q.forward(hidden)?, s)?)?;
        let mut k = self.norms[1].forward(&split(self.to_k.forward(hidden)?, s)?)?;
        let v = split(self.to_v.forward(hidden)?, s)?;
        if let Some(r) = rotary {
            q = r.apply(&q)?;
            k = r.apply(&k)?;
        }
        let eq = self.norms[2].forward(&split(self.add_q_proj.forward(encoder)?, t)?)?;
        let ek = self.norms[3].forward(&split(self.add_k_proj.forward(encoder)?, t)?)?;
        let ev = split(self.add_v_proj.forward(encoder)?, t)?;
        let heads_first = |a: &Tensor, e: &Tensor| Tensor::cat(&[a, e], 1)?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (
            heads_first(&q, &eq)?,
            heads_first(&k, &ek)?,
            heads_first(&v, &ev)?,
        );
        let (mask, rows) = match text_keep {
            Some(m) => {
                let m = m.to_dtype(DType::F32)?.ne(0f32)?.to_dtype(DType::F32)?;
                let keep = Tensor::cat(&[Tensor::ones((b, s), DType::F32, m.device())?, m], 1)?;
                let add = super::hunyuan_video_refiner::additive(&keep, q.dtype())?;
                (
                    Some(add.reshape((b, 1, 1, s + t))?),
                    Some(keep.to_dtype(q.dtype())?.unsqueeze(2)?),
                )
            }
            None => (None, None),
        };
        let out = scaled_dot_product_attention(&q, &k, &v, mask.as_ref(), 1.0 / (d as f64).sqrt())?;
        let mut out = out.transpose(1, 2)?.reshape((b, s + t, h * d))?;
        if let Some(rows) = rows {
            out = out.broadcast_mul(&rows)?;
        }
        let img = self.to_out.forward(&out.narrow(1, 0, s)?)?;
        let txt = out.narrow(1, s, t)?;
        let txt = match &self.to_add_out {
            Some(p) => p.forward(&txt)?,
            None => txt,
        };
        Ok((img, txt))
    }
}

/// The text stream's conditioning in a block: `MochiRMSNormZero` (4 chunks) or, in the last
/// (`context_pre_only`) block, `MochiLayerNormContinuous` (a scale only).
#[derive(Debug, Clone)]
enum ContextNorm {
    Zero(Linear),
    Continuous(Linear),
}

/// diffusers' `MochiTransformerBlock`.
#[derive(Debug, Clone)]
pub struct MochiTransformerBlock {
    norm1: Linear,
    norm1_context: ContextNorm,
    attn1: MochiAttention,
    ff: FeedForward,
    ff_context: Option<FeedForward>,
    eps: f64,
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
        let ff = |d: usize, name: &str| {
            FeedForward::new(d, d, (4 * d * 2) / 3, Activation::SwiGlu, false, vb.pp(name))
        };
        let n1c = vb.pp("norm1_context");
        Ok(Self {
            norm1: linear(dim, 4 * dim, true, vb.pp("norm1").pp("linear"))?,
            norm1_context: if context_pre_only {
                ContextNorm::Continuous(linear(dim, context_dim, true, n1c.pp("linear_1"))?)
            } else {
                ContextNorm::Zero(linear(dim, 4 * context_dim, true, n1c.pp("linear"))?)
            },
            attn1: MochiAttention::new(
                dim,
                context_dim,
                heads,
                head_dim,
                context_pre_only,
                vb.pp("attn1"),
            )?,
            ff: ff(dim, "ff")?,
            ff_context: if context_pre_only {
                None
            } else {
                Some(ff(context_dim, "ff_context")?)
            },
            eps: 1e-6,
        })
    }

    /// `rms(x) · (1 + scale)`, in f32.
    fn scaled(&self, x: &Tensor, scale: &Tensor) -> Result<Tensor> {
        let s = (scale.to_dtype(DType::F32)?.unsqueeze(1)? + 1.0)?;
        rms(&x.to_dtype(DType::F32)?, self.eps)?
            .broadcast_mul(&s)?
            .to_dtype(x.dtype())
    }

    /// `x + rms(y) · tanh(gate)`.
    fn gated(&self, x: &Tensor, y: &Tensor, gate: &Tensor) -> Result<Tensor> {
        let g = gate.tanh()?.unsqueeze(1)?.to_dtype(DType::F32)?;
        x + rms(&y.to_dtype(DType::F32)?, self.eps)?
            .broadcast_mul(&g)?
            .to_dtype(y.dtype())
    }
}

#[block_adapter(pattern = Pattern_0)]
impl MochiTransformerBlock {
    /// Returns `(hidden_states, encoder_hidden_states)`, like diffusers (the last block returns
    /// the text stream unchanged).
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        image_rotary_emb: Option<&MochiRotary>,
    ) -> Result<(Tensor, Tensor)> {
        let silu = candle_nn::ops::silu(temb)?;
        let m = self.norm1.forward(&silu)?.chunk(4, 1)?;
        let norm_h = self.scaled(hidden_states, &m[0])?;
        let (norm_e, c) = match &self.norm1_context {
            ContextNorm::Zero(l) => {
                let c = l.forward(&silu)?.chunk(4, 1)?;
                (self.scaled(encoder_hidden_states, &c[0])?, Some(c))
            }
            ContextNorm::Continuous(l) => (self.scaled(encoder_hidden_states, &l.forward(&silu)?)?, None),
        };
        let (attn, ctx) = self
            .attn1
            .forward(&norm_h, &norm_e, image_rotary_emb, encoder_attention_mask)?;
        let h = self.gated(hidden_states, &attn, &m[1])?;
        let ff = self.ff.forward(&self.scaled(&h, &m[2])?)?;
        let h = self.gated(&h, &ff, &m[3])?;
        let e = match (c, &self.ff_context) {
            (Some(c), Some(ff_context)) => {
                let e = self.gated(encoder_hidden_states, &ctx, &c[1])?;
                let ff = ff_context.forward(&self.scaled(&e, &c[2])?)?;
                self.gated(&e, &ff, &c[3])?
            }
            _ => encoder_hidden_states.clone(),
        };
        Ok((h, e))
    }
}
