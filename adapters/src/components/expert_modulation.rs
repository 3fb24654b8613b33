//! Expert adaLN for shared-weight joint blocks (design X): one conditioning projection gives
//! each stream (image, text) its own shift/scale/gate per sub-layer (attention, FFN), while the
//! attention and FFN weights are shared.
//!
//! - Expert6 ×2 (`CogVideoXLayerNormZero`: CogVideoX, ConsisID; EasyAnimate's variant): `norm1`
//!   and `norm2` each own `linear` (cond → 6·D on `SiLU(temb)`, chunks `shift, scale, gate,
//!   enc_shift, enc_scale, enc_gate`) and one LayerNorm `norm` shared by both streams.
//! - Joint12 (`CogView3PlusAdaLayerNormZeroTextImage`, `CogView4AdaLayerNormZero`): one
//!   `norm1.linear` (cond → 12·D) for both sub-layers and four LayerNorms without parameters.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::linear;
use super::modulation::modulate;
use super::norm::{Norm, NormKind};

/// Order of the twelve chunks of a Joint12 projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joint12Order {
    /// Image six then text six: `shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
    /// gate_mlp, c_shift_msa, …` (CogView3Plus).
    StreamMajor,
    /// Image and text alternating: `shift_msa, c_shift_msa, scale_msa, c_scale_msa, gate_msa,
    /// c_gate_msa, shift_mlp, c_shift_mlp, …` (CogView4).
    Interleaved,
}

/// Which expert modulation a block uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpertModulation {
    /// Two `CogVideoXLayerNormZero`s (`norm1`, `norm2`).
    Expert6 {
        /// Width of the conditioning vector (CogVideoX: `time_embed_dim`, 512).
        cond_dim: usize,
        /// Whether the shared LayerNorms have `weight` and `bias` (`norm_elementwise_affine`).
        affine: bool,
        /// LayerNorm epsilon (`norm_eps`, 1e-5).
        eps: f64,
    },
    /// One 12-chunk `norm1.linear`; LayerNorms without parameters.
    Joint12 {
        /// Width of the conditioning vector.
        cond_dim: usize,
        /// Chunk order.
        order: Joint12Order,
        /// Whether the Linear reads `SiLU(temb)` (CogView3Plus) or `temb` as given (CogView4,
        /// whose model applies SiLU once before the blocks).
        silu: bool,
        /// LayerNorm epsilon (1e-5).
        eps: f64,
    },
}

/// The two sub-layers of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sublayer {
    /// The joint attention.
    Attention,
    /// The feed-forward network.
    Ffn,
}

/// One stream's shift, scale and gate for one sub-layer, each `(B, D)`.
#[derive(Debug, Clone)]
pub struct StreamModulation {
    /// Shift of the normalised input.
    pub shift: Tensor,
    /// Scale of the normalised input.
    pub scale: Tensor,
    /// Gate of the branch's output.
    pub gate: Tensor,
}

/// The modulation of one sub-layer for both streams.
#[derive(Debug, Clone)]
pub struct SublayerModulation {
    /// The image stream's.
    pub image: StreamModulation,
    /// The text stream's.
    pub text: StreamModulation,
}

#[derive(Debug, Clone)]
enum Projection {
    /// `norm1.linear`, `norm2.linear`.
    Expert6([Linear; 2]),
    /// `norm1.linear`.
    Joint12 {
        linear: Linear,
        order: Joint12Order,
        silu: bool,
    },
}

/// Expert adaLN: the projections and the four norms (sub-layer × stream; Expert6 shares one
/// norm between the streams of a sub-layer).
#[derive(Debug, Clone)]
pub struct ExpertAdaLn {
    projection: Projection,
    /// `[attention, ffn]` × `[image, text]`.
    norms: [[Norm; 2]; 2],
}

impl ExpertAdaLn {
    /// Loads the modulation of a block of width `dim` from the block's `vb`.
    pub fn new(kind: ExpertModulation, dim: usize, vb: &VarBuilder) -> Result<Self> {
        match kind {
            ExpertModulation::Expert6 {
                cond_dim,
                affine,
                eps,
            } => {
                let sub = |name: &str| -> Result<(Linear, Norm)> {
                    let vb = vb.pp(name);
                    let kind = NormKind::LayerNorm { affine, bias: affine };
                    Ok((
                        linear(cond_dim, 6 * dim, true, vb.pp("linear"))?,
                        Norm::new(kind, dim, eps, vb.pp("norm"))?,
                    ))
                };
                let (l1, n1) = sub("norm1")?;
                let (l2, n2) = sub("norm2")?;
                Ok(Self {
                    projection: Projection::Expert6([l1, l2]),
                    norms: [[n1.clone(), n1], [n2.clone(), n2]],
                })
            }
            ExpertModulation::Joint12 {
                cond_dim,
                order,
                silu,
                eps,
            } => {
                let ln = || Norm::layer_norm_no_affine(dim, eps, vb.dtype(), vb.device());
                Ok(Self {
                    projection: Projection::Joint12 {
                        linear: linear(cond_dim, 12 * dim, true, vb.pp("norm1.linear"))?,
                        order,
                        silu,
                    },
                    norms: [[ln()?, ln()?], [ln()?, ln()?]],
                })
            }
        }
    }

    /// The modulation of both sub-layers, `[attention, ffn]`, from the conditioning `temb`
    /// `(B, cond_dim)`.
    pub fn modulations(&self, temb: &Tensor) -> Result<[SublayerModulation; 2]> {
        // `at(sublayer, quantity, stream)` picks the chunk (quantity: shift, scale, gate;
        // stream: image, text).
        let pick =
            |c: &[Tensor], at: &dyn Fn(usize, usize, usize) -> usize| -> Result<[SublayerModulation; 2]> {
                let stream = |s: usize, st: usize| StreamModulation {
                    shift: c[at(s, 0, st)].clone(),
                    scale: c[at(s, 1, st)].clone(),
                    gate: c[at(s, 2, st)].clone(),
                };
                Ok([0, 1].map(|s| SublayerModulation {
                    image: stream(s, 0),
                    text: stream(s, 1),
                }))
            };
        match &self.projection {
            Projection::Expert6([l1, l2]) => {
                let silu = candle_nn::ops::silu(temb)?;
                let mut c = l1.forward(&silu)?.chunk(6, 1)?;
                c.extend(l2.forward(&silu)?.chunk(6, 1)?);
                pick(&c, &|s, q, st| 6 * s + 3 * st + q)
            }
            Projection::Joint12 {
                linear,
                order,
                silu: use_silu,
            } => {
                let c = if *use_silu {
                    linear.forward(&candle_nn::ops::silu(temb)?)?
                } else {
                    linear.forward(temb)?
                }
                .chunk(12, 1)?;
                match order {
                    Joint12Order::StreamMajor => pick(&c, &|s, q, st| 6 * st + 3 * s + q),
                    Joint12Order::Interleaved => pick(&c, &|s, q, st| 6 * s + 2 * q + st),
                }
            }
        }
    }

    /// The modulated norms of `(hidden, encoder)` before `sublayer`.
    pub fn apply(
        &self,
        sublayer: Sublayer,
        hidden: &Tensor,
        encoder: &Tensor,
        m: &SublayerModulation,
    ) -> Result<(Tensor, Tensor)> {
        let [img, txt] = &self.norms[sublayer as usize];
        Ok((
            modulate(&img.forward(hidden)?, &m.image.shift, &m.image.scale)?,
            modulate(&txt.forward(encoder)?, &m.text.shift, &m.text.scale)?,
        ))
    }
}
