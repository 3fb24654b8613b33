//! Attention with the knobs of docs/families.md §4: separate or fused q/k/v projections under
//! diffusers' or HiDream's names, biases, q/k norms (per head, or across heads), rotary tables,
//! an optional additive mask, key scaling and query-row masking, and joint text+image attention
//! through the "added" (context) projections.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::linear;
use super::norm::{Norm, NormKind};
use super::rope::RotaryEmbedding;

/// The q/k normalisation applied per head (over `head_dim`) after the projections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QkNorm {
    /// No normalisation.
    None,
    /// An RMSNorm per head (Flux, SD3.5, QwenImage, HunyuanVideo).
    RmsNorm {
        /// Epsilon.
        eps: f64,
        /// Whether the norm has a `weight`.
        affine: bool,
    },
    /// A LayerNorm per head (CogVideoX, CogView).
    LayerNorm {
        /// Epsilon.
        eps: f64,
        /// Whether the norm has `weight` and `bias`.
        affine: bool,
    },
    /// A LayerNorm per head without parameters, computed in f32 (diffusers' `fp32_layer_norm`:
    /// AuraFlow).
    Fp32LayerNorm {
        /// Epsilon.
        eps: f64,
    },
    /// An affine RMSNorm across heads (over `heads × head_dim`), applied before the split into
    /// heads (HiDream's `q_rms_norm`).
    RmsAcrossHeads {
        /// Epsilon.
        eps: f64,
    },
}

impl QkNorm {
    /// The norm over `head_dim` channels (or any width: the whole inner width for norms
    /// across heads), parameters read from `vb`; `None` for [`QkNorm::None`].
    pub(crate) fn build(self, head_dim: usize, vb: VarBuilder) -> Result<Option<Norm>> {
        let kind = match self {
            Self::None => return Ok(None),
            Self::RmsAcrossHeads { eps } => (NormKind::RmsNorm { affine: true }, eps),
            Self::RmsNorm { eps, affine } => (NormKind::RmsNorm { affine }, eps),
            Self::LayerNorm { eps, affine } => (NormKind::LayerNorm { affine, bias: affine }, eps),
            Self::Fp32LayerNorm { eps } => {
                return Norm::layer_norm_no_affine(head_dim, eps, vb.dtype(), vb.device())?
                    .in_f32()
                    .map(Some);
            }
        };
        Norm::new(kind.0, head_dim, kind.1, vb).map(Some)
    }
}

/// Where the text ("context") tokens go in the joint sequence. RoPE tables and masks are laid
/// out in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JointOrder {
    /// `[txt, img]`: Flux, QwenImage, AuraFlow.
    TextFirst,
    /// `[img, txt]`: SD3, HunyuanVideo, HiDream, Mochi.
    ImageFirst,
}

/// Where an attention layer's parameters live in the checkpoint (image stream, then the text
/// stream's "added" projections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionNames {
    /// `to_q`, `to_k`, `to_v`, fused `to_qkv`, output `to_out.0`, q/k norms.
    pub image: StreamNames,
    /// `add_q_proj`, `add_k_proj`, `add_v_proj`, fused `to_added_qkv`, output `to_add_out`,
    /// q/k norms `norm_added_q`, `norm_added_k`.
    pub context: StreamNames,
}

/// The parameter names of one stream's projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamNames {
    /// Separate q, k, v projections and the fused one.
    pub qkv: [&'static str; 4],
    /// Output projection.
    pub out: &'static str,
    /// q and k norms.
    pub norm_qk: [&'static str; 2],
}

impl AttentionNames {
    /// diffusers' `Attention` / `FluxAttention` names.
    pub const DIFFUSERS: Self = Self {
        image: StreamNames {
            qkv: ["to_q", "to_k", "to_v", "to_qkv"],
            out: "to_out.0",
            norm_qk: ["norm_q", "norm_k"],
        },
        context: StreamNames {
            qkv: ["add_q_proj", "add_k_proj", "add_v_proj", "to_added_qkv"],
            out: "to_add_out",
            norm_qk: ["norm_added_q", "norm_added_k"],
        },
    };

    /// `HiDreamAttention`: `to_q`, …, `to_out`, `q_rms_norm`, and the text stream's `*_t`.
    pub const HIDREAM: Self = Self {
        image: StreamNames {
            qkv: ["to_q", "to_k", "to_v", "to_qkv"],
            out: "to_out",
            norm_qk: ["q_rms_norm", "k_rms_norm"],
        },
        context: StreamNames {
            qkv: ["to_q_t", "to_k_t", "to_v_t", "to_qkv_t"],
            out: "to_out_t",
            norm_qk: ["q_rms_norm_t", "k_rms_norm_t"],
        },
    };
}

/// Per-call inputs of an attention layer besides the streams, rotary table and additive mask.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttentionExtras<'a> {
    /// `(B, S)` factors multiplying the image stream's keys (HiDream's `hidden_states_masks`).
    pub key_scale: Option<&'a Tensor>,
    /// `(B, S_joint)` factors multiplying the attention output rows before the output
    /// projections (Mochi: padded text tokens attend to nothing, their output is zero).
    pub row_keep: Option<&'a Tensor>,
}

/// The shape and layout of an attention layer.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionConfig {
    /// Width of the image stream.
    pub query_dim: usize,
    /// Number of heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Bias of `to_q`, `to_k`, `to_v`.
    pub bias: bool,
    /// Bias of `to_out.0` / `to_add_out`.
    pub out_bias: bool,
    /// q/k normalisation (`norm_q`, `norm_k`, `norm_added_q`, `norm_added_k`).
    pub qk_norm: QkNorm,
    /// Width of the text stream when the layer has added projections (`add_{q,k,v}_proj`).
    pub added_kv_proj_dim: Option<usize>,
    /// Bias of the added projections.
    pub added_proj_bias: bool,
    /// No output projection (`to_out`): Flux's single-stream blocks project after the MLP concat.
    pub pre_only: bool,
    /// No text output projection (`to_add_out`): SD3's last block.
    pub context_pre_only: bool,
    /// Fused `to_qkv` / `to_added_qkv` projections instead of separate ones.
    pub fused_qkv: bool,
    /// Order of the joint sequence.
    pub joint_order: JointOrder,
    /// Parameter names.
    pub names: AttentionNames,
}

impl AttentionConfig {
    /// Flux's attention: biases everywhere, RMS q/k norms with `eps`, `[txt, img]`.
    pub fn flux(dim: usize, heads: usize, head_dim: usize, added: bool, pre_only: bool, eps: f64) -> Self {
        Self {
            query_dim: dim,
            heads,
            head_dim,
            bias: true,
            out_bias: true,
            qk_norm: QkNorm::RmsNorm { eps, affine: true },
            added_kv_proj_dim: added.then_some(dim),
            added_proj_bias: true,
            pre_only,
            context_pre_only: false,
            fused_qkv: false,
            joint_order: JointOrder::TextFirst,
            names: AttentionNames::DIFFUSERS,
        }
    }

    fn inner_dim(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// q/k/v projections: separate (`to_q`, `to_k`, `to_v`) or fused (`to_qkv`).
#[derive(Debug, Clone)]
enum Qkv {
    Separate(Linear, Linear, Linear),
    Fused(Linear),
}

impl Qkv {
    fn new(
        fused: bool,
        in_dim: usize,
        inner: usize,
        bias: bool,
        names: [&'static str; 4],
        vb: &VarBuilder,
    ) -> Result<Self> {
        if fused {
            return Ok(Self::Fused(linear(in_dim, 3 * inner, bias, vb.pp(names[3]))?));
        }
        Ok(Self::Separate(
            linear(in_dim, inner, bias, vb.pp(names[0]))?,
            linear(in_dim, inner, bias, vb.pp(names[1]))?,
            linear(in_dim, inner, bias, vb.pp(names[2]))?,
        ))
    }

    fn project(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        match self {
            Self::Separate(q, k, v) => Ok((q.forward(x)?, k.forward(x)?, v.forward(x)?)),
            Self::Fused(qkv) => {
                let y = qkv.forward(x)?;
                let n = y.dim(D::Minus1)? / 3;
                Ok((
                    y.narrow(D::Minus1, 0, n)?,
                    y.narrow(D::Minus1, n, n)?,
                    y.narrow(D::Minus1, 2 * n, n)?,
                ))
            }
        }
    }
}

/// One stream's projections and q/k norms.
#[derive(Debug, Clone)]
struct StreamProj {
    qkv: Qkv,
    norm_q: Option<Norm>,
    norm_k: Option<Norm>,
    /// The norms run over the whole width before the split into heads.
    across_heads: bool,
}

impl StreamProj {
    fn new(
        cfg: &AttentionConfig,
        in_dim: usize,
        bias: bool,
        names: StreamNames,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let inner = cfg.inner_dim();
        let across_heads = matches!(cfg.qk_norm, QkNorm::RmsAcrossHeads { .. });
        let width = if across_heads { inner } else { cfg.head_dim };
        let norm = |name| cfg.qk_norm.build(width, vb.pp(name));
        Ok(Self {
            qkv: Qkv::new(cfg.fused_qkv, in_dim, inner, bias, names.qkv, vb)?,
            norm_q: norm(names.norm_qk[0])?,
            norm_k: norm(names.norm_qk[1])?,
            across_heads,
        })
    }

    /// `(q, k, v)` as `(B, S, H, D)`, q and k normalised.
    fn forward(&self, x: &Tensor, heads: usize, head_dim: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, s, _) = x.dims3()?;
        let (mut q, mut k, v) = self.qkv.project(x)?;
        let split = |t: Tensor| t.reshape((b, s, heads, head_dim));
        if !self.across_heads {
            (q, k) = (split(q)?, split(k)?);
        }
        if let Some(n) = &self.norm_q {
            q = n.forward(&q)?;
        }
        if let Some(n) = &self.norm_k {
            k = n.forward(&k)?;
        }
        if self.across_heads {
            (q, k) = (split(q)?, split(k)?);
        }
        Ok((q, k, split(v)?))
    }
}

/// diffusers' `Attention` / `FluxAttention` family with the knobs of [`AttentionConfig`].
#[derive(Debug, Clone)]
pub struct Attention {
    cfg: AttentionConfig,
    image: StreamProj,
    context: Option<StreamProj>,
    to_out: Option<Linear>,
    to_add_out: Option<Linear>,
}

impl Attention {
    /// Loads the layer from `vb` with diffusers' names.
    pub fn new(cfg: AttentionConfig, vb: VarBuilder) -> Result<Self> {
        let (inner, names) = (cfg.inner_dim(), cfg.names);
        let image = StreamProj::new(&cfg, cfg.query_dim, cfg.bias, names.image, &vb)?;
        let context = match cfg.added_kv_proj_dim {
            Some(dim) => Some(StreamProj::new(
                &cfg,
                dim,
                cfg.added_proj_bias,
                names.context,
                &vb,
            )?),
            None => None,
        };
        let to_out = if cfg.pre_only {
            None
        } else {
            Some(linear(
                inner,
                cfg.query_dim,
                cfg.out_bias,
                vb.pp(names.image.out),
            )?)
        };
        let to_add_out = match cfg.added_kv_proj_dim {
            Some(dim) if !cfg.context_pre_only => {
                Some(linear(inner, dim, cfg.out_bias, vb.pp(names.context.out))?)
            }
            _ => None,
        };
        Ok(Self {
            cfg,
            image,
            context,
            to_out,
            to_add_out,
        })
    }

    /// The layer's configuration.
    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }

    /// Self-attention over `hidden` `(B, S, query_dim)`, or joint attention over `hidden` and
    /// `encoder` (text, `(B, T, added_kv_proj_dim)`) concatenated in `joint_order`. `rotary`
    /// covers the whole (joint) sequence; `mask` is additive, broadcastable to `(B, H, S, S)`.
    /// Returns the image part and, for joint attention, the text part, each through its output
    /// projection when the layer has one.
    pub fn forward(
        &self,
        hidden: &Tensor,
        encoder: Option<&Tensor>,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.forward_with(hidden, encoder, rotary, mask, AttentionExtras::default())
    }

    /// [`forward`](Self::forward) with the [`AttentionExtras`] some families need.
    pub fn forward_with(
        &self,
        hidden: &Tensor,
        encoder: Option<&Tensor>,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
        extras: AttentionExtras,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (h, d) = (self.cfg.heads, self.cfg.head_dim);
        let (q, k, v) = self.image.forward(hidden, h, d)?;
        let k = match extras.key_scale {
            Some(m) => {
                let (b, s) = m.dims2()?;
                k.broadcast_mul(&m.to_dtype(k.dtype())?.reshape((b, s, 1, 1))?)?
            }
            None => k,
        };
        let joint = match (encoder, &self.context) {
            (Some(e), Some(ctx)) => Some((e.dim(1)?, ctx.forward(e, h, d)?)),
            (Some(_), None) => candle_core::bail!("attention has no added projections for an encoder stream"),
            (None, _) => None,
        };
        let (q, k, v, text_len) = match joint {
            None => (q, k, v, 0),
            Some((t, (eq, ek, ev))) => {
                let cat = |a: &Tensor, b: &Tensor| match self.cfg.joint_order {
                    JointOrder::TextFirst => Tensor::cat(&[a, b], 1),
                    JointOrder::ImageFirst => Tensor::cat(&[b, a], 1),
                };
                (cat(&eq, &q)?, cat(&ek, &k)?, cat(&ev, &v)?, t)
            }
        };
        // (B, S, H, D) -> (B, H, S, D)
        let mut q = q.transpose(1, 2)?.contiguous()?;
        let mut k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        if let Some(r) = rotary {
            q = r.apply(&q)?;
            k = r.apply(&k)?;
        }
        let out = scaled_dot_product_attention(&q, &k, &v, mask, 1.0 / (d as f64).sqrt())?;
        let (b, _, s, _) = out.dims4()?;
        let mut out = out.transpose(1, 2)?.reshape((b, s, h * d))?;
        if let Some(keep) = extras.row_keep {
            out = out.broadcast_mul(&keep.to_dtype(out.dtype())?.unsqueeze(2)?)?;
        }
        if encoder.is_none() {
            return match &self.to_out {
                Some(p) => Ok((p.forward(&out)?, None)),
                None => Ok((out, None)),
            };
        }
        let image_len = s - text_len;
        let (txt, img) = match self.cfg.joint_order {
            JointOrder::TextFirst => (out.narrow(1, 0, text_len)?, out.narrow(1, text_len, image_len)?),
            JointOrder::ImageFirst => (out.narrow(1, image_len, text_len)?, out.narrow(1, 0, image_len)?),
        };
        let img = match &self.to_out {
            Some(p) => p.forward(&img)?,
            None => img,
        };
        let txt = match &self.to_add_out {
            Some(p) => p.forward(&txt)?,
            None => txt,
        };
        Ok((img, Some(txt)))
    }
}

/// Heads per chunk of [`scaled_dot_product_attention`] on CPU are chosen so that one chunk's
/// logits stay under this many bytes.
const ATTENTION_CHUNK_BYTES: usize = 8 << 20;

/// `softmax(q kᵀ · scale + mask) v` for `(B, H, S, D)` inputs; the softmax runs in f32 for
/// half-precision inputs.
///
/// On CPU the heads are processed a few at a time when the whole `(B, H, S, S)` logits would be
/// large (Flux at 1024 image + 512 text tokens: 75 MB per block, twice, logits and softmax).
/// Buffers that large are above glibc's largest mmap threshold, so every block mapped and
/// zeroed fresh pages for them (16 % of the baseline's time was the kernel clearing pages);
/// per-chunk buffers are reused from the heap and stay closer to the caches. The chunks are
/// written in `(B, S, H, D)` order and returned as its `(B, H, S, D)` view, so the usual
/// `transpose(1, 2)` + `reshape` that follows is free.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let (b, h, s_q, _) = q.dims4()?;
    let s_k = k.dim(2)?;
    let per_head = b * s_q * s_k * q.dtype().size_in_bytes().max(4);
    let chunk = (ATTENTION_CHUNK_BYTES / per_head.max(1)).max(1);
    // Chunks broadcast a mask of rank <= 2 or `(B, 1, S, S)` as the whole would; other masks
    // (per head, or rank 3 broadcasting against the heads) take the unchunked path.
    let mask_ok = mask.is_none_or(|m| m.rank() <= 2 || (m.rank() == 4 && m.dims()[1] == 1));
    if chunk >= h || !mask_ok || !q.device().is_cpu() {
        return attention_block(q, k, v, mask, scale);
    }
    let mut outs = Vec::with_capacity(h.div_ceil(chunk));
    for start in (0..h).step_by(chunk) {
        let n = chunk.min(h - start);
        let part = |t: &Tensor| t.narrow(1, start, n)?.contiguous();
        let out = attention_block(&part(q)?, &part(k)?, &part(v)?, mask, scale)?;
        outs.push(out.transpose(1, 2)?);
    }
    Tensor::cat(&outs, 2)?.transpose(1, 2)
}

/// [`scaled_dot_product_attention`] over all the heads of its inputs at once.
fn attention_block(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let dtype = q.dtype();
    let mut logits = (q * scale)?.matmul(&k.t()?)?;
    if let Some(m) = mask {
        logits = logits.broadcast_add(&m.to_dtype(dtype)?)?;
    }
    let probs = if super::differentiable_ops() {
        candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?.to_dtype(dtype)?
    } else if dtype == DType::F32 || dtype == DType::F64 {
        candle_nn::ops::softmax_last_dim(&logits)?
    } else {
        candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?)?.to_dtype(dtype)?
    };
    probs.matmul(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cachedit_runtime::seeded_normal;
    use candle_core::{DType, Device};

    /// Long enough sequences take the chunked path; it agrees with attention over all heads at
    /// once, with and without a `(B, 1, S, S)` mask, and leaves a view the caller's
    /// `transpose(1, 2)` makes contiguous.
    #[test]
    fn chunked_attention_matches_whole() {
        let (b, h, s, d) = (1, 3, 1200, 8);
        let t = |seed| seeded_normal(&[b, h, s, d], seed, DType::F32, &Device::Cpu).unwrap();
        let (q, k, v) = (t(1), t(2), t(3));
        let mask = (seeded_normal(&[b, 1, s, s], 4, DType::F32, &Device::Cpu).unwrap() * 0.5).unwrap();
        for m in [None, Some(&mask)] {
            let chunked = super::scaled_dot_product_attention(&q, &k, &v, m, 0.3).unwrap();
            let whole = super::attention_block(&q, &k, &v, m, 0.3).unwrap();
            assert!(chunked.transpose(1, 2).unwrap().is_contiguous());
            let err = (chunked - whole).unwrap().abs().unwrap().max_all().unwrap();
            assert!(err.to_scalar::<f32>().unwrap() < 1e-5);
        }
    }
}
