//! HiDream-I1's blocks: the double-stream block (one `adaLN_modulation` for both streams,
//! separate image/text projections `to_*`/`to_*_t`, joint attention over `[img, txt]`, image
//! MoE FFN, text SwiGLU FFN) and the single-stream block (6-chunk adaLN, self-attention, MoE),
//! with diffusers' `HiDreamBlock` wrapper names (`*.block.*`).

use candle_core::{D, DType, IndexOp, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::components::attention::scaled_dot_product_attention;
use crate::components::linear;
use crate::components::norm::{Norm, NormKind};
use crate::components::rope::RotaryEmbedding;

/// diffusers' `HiDreamImageFeedForwardSwiGLU`: `w2(silu(w1 x) · w3 x)`, hidden width
/// `int(2h/3)` rounded up to a multiple of 256.
#[derive(Debug, Clone)]
pub struct SwiGlu {
    w1: Linear,
    w2: Linear,
    w3: Linear,
}

impl SwiGlu {
    /// Loads the FFN from `vb` for a nominal `hidden_dim`.
    pub fn new(dim: usize, hidden_dim: usize, vb: VarBuilder) -> Result<Self> {
        let h = (2 * hidden_dim) / 3;
        let h = 256 * h.div_ceil(256);
        Ok(Self {
            w1: linear(dim, h, false, vb.pp("w1"))?,
            w2: linear(h, dim, false, vb.pp("w2"))?,
            w3: linear(dim, h, false, vb.pp("w3"))?,
        })
    }
}

impl Module for SwiGlu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.w2
            .forward(&(candle_nn::ops::silu(&self.w1.forward(x)?)? * self.w3.forward(x)?)?)
    }
}

/// diffusers' `MOEFeedForwardSwiGLU` at inference: softmax gate, top-k experts weighted by
/// their (unnormalised) scores, plus a shared expert. Only the routed tokens run through each
/// expert.
#[derive(Debug, Clone)]
pub struct MoeSwiGlu {
    gate: Tensor,
    experts: Vec<SwiGlu>,
    shared_experts: SwiGlu,
    top_k: usize,
}

impl MoeSwiGlu {
    /// Loads the MoE from `vb` (`ff_i`).
    pub fn new(dim: usize, hidden_dim: usize, routed: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            gate: vb.pp("gate").get((routed, dim), "weight")?,
            experts: (0..routed)
                .map(|e| SwiGlu::new(dim, hidden_dim, vb.pp("experts").pp(e)))
                .collect::<Result<_>>()?,
            shared_experts: SwiGlu::new(dim, hidden_dim / 2, vb.pp("shared_experts"))?,
            top_k,
        })
    }
}

impl Module for MoeSwiGlu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.shape().clone();
        let d = x.dim(D::Minus1)?;
        let flat = x.reshape(((), d))?;
        let scores = candle_nn::ops::softmax_last_dim(&flat.matmul(&self.gate.t()?)?)?;
        let rows = scores.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        // per expert: (token, weight) of the tokens routed to it
        let mut routed = vec![(Vec::<u32>::new(), Vec::<f32>::new()); self.experts.len()];
        for (t, row) in rows.iter().enumerate() {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            for &e in order.iter().take(self.top_k) {
                routed[e].0.push(t as u32);
                routed[e].1.push(row[e]);
            }
        }
        let mut y = flat.zeros_like()?;
        for (expert, (tokens, weights)) in self.experts.iter().zip(routed) {
            if tokens.is_empty() {
                continue;
            }
            let n = tokens.len();
            let idx = Tensor::from_vec(tokens, n, x.device())?;
            let w = Tensor::from_vec(weights, (n, 1), x.device())?.to_dtype(x.dtype())?;
            let out = expert.forward(&flat.index_select(&idx, 0)?)?.broadcast_mul(&w)?;
            y = y.index_add(&idx, &out, 0)?;
        }
        (y + self.shared_experts.forward(&flat)?)?.reshape(shape)
    }
}

/// The image FFN: MoE, or a plain SwiGLU when `num_routed_experts` is 0.
#[derive(Debug, Clone)]
enum ImageFfn {
    Moe(MoeSwiGlu),
    Dense(SwiGlu),
}

impl ImageFfn {
    fn new(dim: usize, routed: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        Ok(if routed > 0 {
            Self::Moe(MoeSwiGlu::new(dim, 4 * dim, routed, top_k, vb)?)
        } else {
            Self::Dense(SwiGlu::new(dim, 4 * dim, vb)?)
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Moe(m) => m.forward(x),
            Self::Dense(f) => f.forward(x),
        }
    }
}

/// One stream's projections of `HiDreamAttention` (`to_q{s}`, …, `q_rms_norm{s}` across heads).
#[derive(Debug, Clone)]
struct Projections {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    q_norm: Norm,
    k_norm: Norm,
}

impl Projections {
    fn new(dim: usize, suffix: &str, vb: &VarBuilder) -> Result<Self> {
        let n = |name: &str| {
            Norm::new(
                NormKind::RmsNorm { affine: true },
                dim,
                1e-5,
                vb.pp(format!("{name}{suffix}")),
            )
        };
        let l = |name: &str| linear(dim, dim, true, vb.pp(format!("{name}{suffix}")));
        Ok(Self {
            q: l("to_q")?,
            k: l("to_k")?,
            v: l("to_v")?,
            out: l("to_out")?,
            q_norm: n("q_rms_norm")?,
            k_norm: n("k_rms_norm")?,
        })
    }

    /// `(q, k, v)` as `(B, S, H, Dh)`.
    fn qkv(&self, x: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, s, d) = x.dims3()?;
        let split = |t: Tensor| t.reshape((b, s, heads, d / heads));
        Ok((
            split(self.q_norm.forward(&self.q.forward(x)?)?)?,
            split(self.k_norm.forward(&self.k.forward(x)?)?)?,
            split(self.v.forward(x)?)?,
        ))
    }
}

/// `HiDreamAttnProcessor`: image keys times the image mask, `[img, txt]` joint attention,
/// rotary over the whole joint sequence.
fn attention(
    heads: usize,
    (q, k, v): (Tensor, Tensor, Tensor),
    rotary: Option<&RotaryEmbedding>,
) -> Result<Tensor> {
    let (b, s, h, d) = q.dims4()?;
    let hf = |t: Tensor| t.transpose(1, 2)?.contiguous();
    let (mut q, mut k, v) = (hf(q)?, hf(k)?, hf(v)?);
    if let Some(r) = rotary {
        q = r.apply(&q)?;
        k = r.apply(&k)?;
    }
    let out = scaled_dot_product_attention(&q, &k, &v, None, 1.0 / (d as f64).sqrt())?;
    debug_assert_eq!(h, heads);
    out.transpose(1, 2)?.reshape((b, s, h * d))
}

/// `k · mask` with `mask` `(B, S)`.
fn mask_keys(k: Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    match mask {
        Some(m) => {
            let (b, s) = m.dims2()?;
            k.broadcast_mul(&m.to_dtype(k.dtype())?.reshape((b, s, 1, 1))?)
        }
        None => Ok(k),
    }
}

/// `LN(x) · (1 + scale) + shift` with `(B, 1, D)` modulation.
fn modulate(norm: &Norm, x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    norm.forward(x)?
        .broadcast_mul(&(scale + 1.0)?)?
        .broadcast_add(shift)
}

/// The `n` chunks of `adaLN_modulation(temb)[:, None]`, each `(B, 1, D)`.
fn modulation(linear: &Linear, temb: &Tensor, n: usize) -> Result<Vec<Tensor>> {
    linear
        .forward(&candle_nn::ops::silu(temb)?)?
        .unsqueeze(1)?
        .chunk(n, D::Minus1)
}

/// diffusers' `HiDreamImageTransformerBlock` (under `double_stream_blocks.{i}.block`).
#[derive(Debug, Clone)]
pub struct HiDreamImageTransformerBlock {
    heads: usize,
    ada_ln: Linear,
    norm: Norm,
    image: Projections,
    text: Projections,
    ff_i: ImageFfn,
    ff_t: SwiGlu,
}

impl HiDreamImageTransformerBlock {
    /// Loads the block from `vb` (`double_stream_blocks.{i}.block`).
    pub fn new(dim: usize, heads: usize, routed: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        let attn = vb.pp("attn1");
        Ok(Self {
            heads,
            ada_ln: linear(dim, 12 * dim, true, vb.pp("adaLN_modulation.1"))?,
            norm: Norm::layer_norm_no_affine(dim, 1e-6, vb.dtype(), vb.device())?,
            image: Projections::new(dim, "", &attn)?,
            text: Projections::new(dim, "_t", &attn)?,
            ff_i: ImageFfn::new(dim, routed, top_k, vb.pp("ff_i"))?,
            ff_t: SwiGlu::new(dim, 4 * dim, vb.pp("ff_t"))?,
        })
    }

    /// Returns `(hidden_states, encoder_hidden_states)`, like diffusers' `HiDreamBlock`.
    /// `hidden_states_masks` `(B, S_img)` (non-square images) multiplies the image keys;
    /// `image_rotary_emb` covers `[img, txt]`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        hidden_states_masks: Option<&Tensor>,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<(Tensor, Tensor)> {
        let m = modulation(&self.ada_ln, temb, 12)?;
        let norm_h = modulate(&self.norm, hidden_states, &m[0], &m[1])?;
        let norm_e = modulate(&self.norm, encoder_hidden_states, &m[6], &m[7])?;
        let (qi, ki, vi) = self.image.qkv(&norm_h, self.heads)?;
        let ki = mask_keys(ki, hidden_states_masks)?;
        let (qt, kt, vt) = self.text.qkv(&norm_e, self.heads)?;
        let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 1);
        let out = attention(
            self.heads,
            (cat(&qi, &qt)?, cat(&ki, &kt)?, cat(&vi, &vt)?),
            image_rotary_emb,
        )?;
        let (s, t) = (hidden_states.dim(1)?, encoder_hidden_states.dim(1)?);
        let attn_i = self.image.out.forward(&out.narrow(1, 0, s)?)?;
        let attn_t = self.text.out.forward(&out.narrow(1, s, t)?)?;
        let h = (hidden_states + attn_i.broadcast_mul(&m[2])?)?;
        let e = (encoder_hidden_states + attn_t.broadcast_mul(&m[8])?)?;
        let ff_i = self.ff_i.forward(&modulate(&self.norm, &h, &m[3], &m[4])?)?;
        let ff_t = self.ff_t.forward(&modulate(&self.norm, &e, &m[9], &m[10])?)?;
        Ok((
            (h + ff_i.broadcast_mul(&m[5])?)?,
            (e + ff_t.broadcast_mul(&m[11])?)?,
        ))
    }
}

/// diffusers' `HiDreamImageSingleTransformerBlock` (under `single_stream_blocks.{i}.block`).
#[derive(Debug, Clone)]
pub struct HiDreamImageSingleTransformerBlock {
    heads: usize,
    ada_ln: Linear,
    norm: Norm,
    attn: Projections,
    ff_i: ImageFfn,
}

impl HiDreamImageSingleTransformerBlock {
    /// Loads the block from `vb` (`single_stream_blocks.{i}.block`).
    pub fn new(dim: usize, heads: usize, routed: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            heads,
            ada_ln: linear(dim, 6 * dim, true, vb.pp("adaLN_modulation.1"))?,
            norm: Norm::layer_norm_no_affine(dim, 1e-6, vb.dtype(), vb.device())?,
            attn: Projections::new(dim, "", &vb.pp("attn1"))?,
            ff_i: ImageFfn::new(dim, routed, top_k, vb.pp("ff_i"))?,
        })
    }

    /// The block on the whole sequence, like diffusers' `HiDreamBlock`; `hidden_states_masks`
    /// `(B, S)` multiplies the keys.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        hidden_states_masks: Option<&Tensor>,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<Tensor> {
        let m = modulation(&self.ada_ln, temb, 6)?;
        let (q, k, v) = self
            .attn
            .qkv(&modulate(&self.norm, hidden_states, &m[0], &m[1])?, self.heads)?;
        let k = mask_keys(k, hidden_states_masks)?;
        let out = self
            .attn
            .out
            .forward(&attention(self.heads, (q, k, v), image_rotary_emb)?)?;
        let h = (hidden_states + out.broadcast_mul(&m[2])?)?;
        let ff = self.ff_i.forward(&modulate(&self.norm, &h, &m[3], &m[4])?)?;
        h + ff.broadcast_mul(&m[5])?
    }
}

/// `x[:, ..len]` for `len` ≤ the sequence length.
pub(crate) fn truncate(x: &Tensor, len: usize) -> Result<Tensor> {
    x.i((.., ..len))
}
