//! Attention whose queries come from the image stream and whose keys and values come from a
//! context sequence of its own width (cross-attention), or from the same sequence
//! (self-attention): diffusers' `Attention` with `cross_attention_dim`, and `WanAttention`.
//!
//! The joint attention of [`super::attention::Attention`] concatenates streams that share a
//! width; design D's layers instead read a context of another width (PixArt: the caption width),
//! normalise q/k over all heads at once (Wan), and may attend to a second, image context
//! (Wan I2V) whose output is added to the text one.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::attention::{QkNorm, scaled_dot_product_attention};
use super::linear;
use super::norm::Norm;
use super::rope::RotaryEmbedding;

/// Over which channels the q/k norm runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkNormScope {
    /// Each head's `head_dim` channels (diffusers' `Attention(qk_norm=...)`).
    PerHead,
    /// All `heads · head_dim` channels, before the split into heads (`rms_norm_across_heads`:
    /// Wan, SkyReelsV2, LTX).
    AcrossHeads,
}

/// Wan I2V's image context: keys and values from `add_k_proj`/`add_v_proj` (k normalised by
/// `norm_added_k`) over the first `context_len - text_len` context tokens; the attention over
/// them is added to the text attention before `to_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedImageContext {
    /// Width of the image-context tokens.
    pub dim: usize,
    /// Number of text tokens at the end of the context (diffusers hard-codes 512).
    pub text_len: usize,
}

/// The shape and layout of a [`CrossAttention`].
#[derive(Debug, Clone, PartialEq)]
pub struct CrossAttentionConfig {
    /// Width of the queries' input (and of the output).
    pub query_dim: usize,
    /// Width of the context the keys and values are projected from (`None`: self-attention,
    /// keys and values from the queries' input).
    pub kv_dim: Option<usize>,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Bias of `to_q`, `to_k`, `to_v` (and of the added projections).
    pub bias: bool,
    /// Bias of `to_out.0`.
    pub out_bias: bool,
    /// q/k normalisation (`norm_q`, `norm_k`, `norm_added_k`).
    pub qk_norm: QkNorm,
    /// Over which channels the q/k norm runs.
    pub qk_norm_scope: QkNormScope,
    /// An image context attended to next to the text one (Wan I2V).
    pub added_image_context: Option<AddedImageContext>,
}

impl CrossAttentionConfig {
    /// diffusers' plain `Attention(query_dim, cross_attention_dim, heads, dim_head, bias)`:
    /// no q/k norm, `to_out.0` with a bias.
    pub fn plain(query_dim: usize, kv_dim: Option<usize>, heads: usize, head_dim: usize, bias: bool) -> Self {
        Self {
            query_dim,
            kv_dim,
            heads,
            head_dim,
            bias,
            out_bias: true,
            qk_norm: QkNorm::None,
            qk_norm_scope: QkNormScope::PerHead,
            added_image_context: None,
        }
    }

    fn inner_dim(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// The image-context projections of [`AddedImageContext`].
#[derive(Debug, Clone)]
struct AddedKv {
    text_len: usize,
    add_k_proj: Linear,
    add_v_proj: Linear,
    norm_added_k: Option<Norm>,
}

/// Self- or cross-attention with diffusers' names `to_q`, `to_k`, `to_v`, `to_out.0`,
/// `norm_q`, `norm_k` (and `add_k_proj`, `add_v_proj`, `norm_added_k`).
#[derive(Debug, Clone)]
pub struct CrossAttention {
    cfg: CrossAttentionConfig,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: Option<Norm>,
    norm_k: Option<Norm>,
    added: Option<AddedKv>,
}

impl CrossAttention {
    /// Loads the layer from `vb`.
    pub fn new(cfg: CrossAttentionConfig, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.inner_dim();
        let kv_dim = cfg.kv_dim.unwrap_or(cfg.query_dim);
        let norm_dim = match cfg.qk_norm_scope {
            QkNormScope::PerHead => cfg.head_dim,
            QkNormScope::AcrossHeads => inner,
        };
        let added = match cfg.added_image_context {
            Some(a) => Some(AddedKv {
                text_len: a.text_len,
                add_k_proj: linear(a.dim, inner, cfg.bias, vb.pp("add_k_proj"))?,
                add_v_proj: linear(a.dim, inner, cfg.bias, vb.pp("add_v_proj"))?,
                norm_added_k: cfg.qk_norm.build(norm_dim, vb.pp("norm_added_k"))?,
            }),
            None => None,
        };
        Ok(Self {
            to_q: linear(cfg.query_dim, inner, cfg.bias, vb.pp("to_q"))?,
            to_k: linear(kv_dim, inner, cfg.bias, vb.pp("to_k"))?,
            to_v: linear(kv_dim, inner, cfg.bias, vb.pp("to_v"))?,
            to_out: linear(inner, cfg.query_dim, cfg.out_bias, vb.pp("to_out.0"))?,
            norm_q: cfg.qk_norm.build(norm_dim, vb.pp("norm_q"))?,
            norm_k: cfg.qk_norm.build(norm_dim, vb.pp("norm_k"))?,
            added,
            cfg,
        })
    }

    /// The layer's configuration.
    pub fn config(&self) -> &CrossAttentionConfig {
        &self.cfg
    }

    /// `(B, S, H·D)` projections to `(B, H, S, D)`, normalised with `norm` in the layer's scope.
    fn heads(&self, x: &Tensor, norm: Option<&Norm>) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let (h, d) = (self.cfg.heads, self.cfg.head_dim);
        let norm_across = |x: &Tensor| match (norm, self.cfg.qk_norm_scope) {
            (Some(n), QkNormScope::AcrossHeads) => n.forward(x),
            _ => Ok(x.clone()),
        };
        let x = norm_across(x)?.reshape((b, s, h, d))?;
        let x = match (norm, self.cfg.qk_norm_scope) {
            (Some(n), QkNormScope::PerHead) => n.forward(&x)?,
            _ => x,
        };
        x.transpose(1, 2)?.contiguous()
    }

    /// Attends from `hidden` `(B, S, query_dim)` to `context` `(B, T, kv_dim)` (to `hidden`
    /// itself when `None`). `rotary` rotates q and k (self-attention: both cover `S`); `mask` is
    /// additive, broadcastable to `(B, H, S, T)`, and applies to the text context only.
    pub fn forward(
        &self,
        hidden: &Tensor,
        context: Option<&Tensor>,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let context = context.unwrap_or(hidden);
        let (text, image) = match &self.added {
            Some(a) => {
                let len = context.dim(1)?;
                let image_len = len.checked_sub(a.text_len).ok_or_else(|| {
                    candle_core::Error::msg(format!(
                        "image-context attention: context has {len} tokens, fewer than the {} text tokens",
                        a.text_len
                    ))
                })?;
                (
                    context.narrow(1, image_len, a.text_len)?,
                    Some((a, context.narrow(1, 0, image_len)?)),
                )
            }
            None => (context.clone(), None),
        };
        let mut q = self.heads(&self.to_q.forward(hidden)?, self.norm_q.as_ref())?;
        let mut k = self.heads(&self.to_k.forward(&text)?, self.norm_k.as_ref())?;
        let v = self.heads(&self.to_v.forward(&text)?, None)?;
        if let Some(r) = rotary {
            q = r.apply(&q)?;
            k = r.apply(&k)?;
        }
        let scale = 1.0 / (self.cfg.head_dim as f64).sqrt();
        let mut out = scaled_dot_product_attention(&q, &k, &v, mask, scale)?;
        if let Some((a, image)) = image {
            let k_img = self.heads(&a.add_k_proj.forward(&image)?, a.norm_added_k.as_ref())?;
            let v_img = self.heads(&a.add_v_proj.forward(&image)?, None)?;
            out = (out + scaled_dot_product_attention(&q, &k_img, &v_img, None, scale)?)?;
        }
        let (b, h, s, d) = out.dims4()?;
        self.to_out.forward(&out.transpose(1, 2)?.reshape((b, s, h * d))?)
    }
}
