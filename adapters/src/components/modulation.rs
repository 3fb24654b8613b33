//! adaLN modulation providers: `AdaLayerNormZero` (6 chunks), `AdaLayerNormZeroSingle` (3),
//! `AdaLayerNormContinuous` (final norm, `scale, shift`), and the `modulate` helper.
//!
//! The block designs take their vectors from a [`ModSource`] (a Linear on `SiLU(temb)`, or
//! vectors handed in by the model: Chroma) read in a [`ModLayout`] (adaLN-zero's 6 chunks,
//! MMDiT-X's 9, Mochi's shift-less 4, a last block's continuous `scale, shift`, …): one source
//! per stream (Flux, SD3, AuraFlow, Mochi) or one for both streams (HiDream's Joint12,
//! Chroma's external slices).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::norm::{Norm, NormKind};
use super::{linear, per_sample};

/// `x * (1 + scale[:, None]) + shift[:, None]` for `x` `(B, S, D)` and `shift`, `scale` `(B, D)`.
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let scale = per_sample(&(scale + 1.0)?)?;
    x.broadcast_mul(&scale)?.broadcast_add(&per_sample(shift)?)
}

/// `x + gate[:, None] * y`, the gated residual of adaLN-zero blocks.
pub fn gated_residual(x: &Tensor, gate: &Tensor, y: &Tensor) -> Result<Tensor> {
    x + y.broadcast_mul(&per_sample(gate)?)?
}

fn chunks(emb: &Tensor, n: usize) -> Result<Vec<Tensor>> {
    emb.chunk(n, 1)
}

/// Where a block's modulation vectors come from.
#[derive(Debug, Clone)]
pub enum ModSource {
    /// `linear(SiLU(temb))` chunked along the channels (diffusers' adaLN Linears).
    Linear(Linear),
    /// `temb` is already the stack of vectors `(B, n, D)` (Chroma's approximator output).
    Vectors,
}

impl ModSource {
    /// A Linear `cond_dim → n · width` loaded from `vb`.
    pub fn linear(cond_dim: usize, n: usize, width: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self::Linear(linear(cond_dim, n * width, bias, vb)?))
    }

    /// The `n` vectors `(B, D)` of this source for `temb`.
    pub fn vectors(&self, temb: &Tensor, n: usize) -> Result<Vec<Tensor>> {
        match self {
            Self::Linear(l) => chunks(&l.forward(&candle_nn::ops::silu(temb)?)?, n),
            Self::Vectors => {
                if temb.rank() != 3 || temb.dim(1)? < n {
                    candle_core::bail!(
                        "external modulation: expected (B, >= {n}, D) vectors, got {:?}",
                        temb.shape()
                    );
                }
                (0..n).map(|i| temb.narrow(1, i, 1)?.squeeze(1)).collect()
            }
        }
    }
}

/// One modulated sub-layer: `norm(x) · (1 + scale) + shift` feeds it and `gate` weighs its
/// output; a shift-less or gate-less provider leaves them out.
#[derive(Debug, Clone)]
pub struct ModSet {
    /// Shift of the input (none: Mochi).
    pub shift: Option<Tensor>,
    /// Scale of the input.
    pub scale: Tensor,
    /// Gate of the output (none: a `context_pre_only` stream).
    pub gate: Option<Tensor>,
}

/// The modulation of one stream in one block.
#[derive(Debug, Clone)]
pub struct StreamMod {
    /// The attention sub-layer.
    pub attn: ModSet,
    /// The FFN sub-layer (none: a `context_pre_only` stream).
    pub mlp: Option<ModSet>,
    /// The second, image-only attention of MMDiT-X blocks.
    pub attn2: Option<ModSet>,
}

/// The order of a provider's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModLayout {
    /// adaLN-zero: `shift, scale, gate` for attention, then for the MLP.
    Zero6,
    /// `SD35AdaLayerNormZeroX`: [`Zero6`](Self::Zero6), then `shift, scale, gate` of `attn2`.
    ZeroX9,
    /// `AdaLayerNormContinuous` (an SD3 last block's text stream): `scale, shift`, no gate.
    Continuous,
    /// `MochiRMSNormZero`: `scale, gate` for attention, then for the MLP (no shifts).
    RmsZero4,
    /// `MochiLayerNormContinuous` (a Mochi last block's text stream): `scale` only.
    ScaleOnly,
    /// `AdaLayerNormZeroSingle` (and Chroma's 3-vector slice): `shift, scale, gate`.
    Single3,
}

impl ModLayout {
    /// How many vectors the layout reads.
    pub const fn len(self) -> usize {
        match self {
            Self::Zero6 => 6,
            Self::ZeroX9 => 9,
            Self::Continuous => 2,
            Self::RmsZero4 => 4,
            Self::ScaleOnly => 1,
            Self::Single3 => 3,
        }
    }

    /// Whether the layout reads no vectors (never: every layout has a scale).
    pub const fn is_empty(self) -> bool {
        false
    }

    /// Reads `v` (exactly [`len`](Self::len) vectors) in this layout.
    pub fn parse(self, v: Vec<Tensor>) -> Result<StreamMod> {
        if v.len() != self.len() {
            candle_core::bail!(
                "{self:?} modulation: expected {} vectors, got {}",
                self.len(),
                v.len()
            );
        }
        let mut it = v.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| candle_core::Error::msg("modulation vectors"))
        };
        let set = |shift, scale, gate| ModSet { shift, scale, gate };
        Ok(match self {
            Self::Zero6 | Self::ZeroX9 | Self::Single3 => {
                let attn = set(Some(next()?), next()?, Some(next()?));
                let mlp = match self {
                    Self::Single3 => None,
                    _ => Some(set(Some(next()?), next()?, Some(next()?))),
                };
                let attn2 = match self {
                    Self::ZeroX9 => Some(set(Some(next()?), next()?, Some(next()?))),
                    _ => None,
                };
                StreamMod { attn, mlp, attn2 }
            }
            Self::Continuous => {
                let scale = next()?;
                StreamMod {
                    attn: set(Some(next()?), scale, None),
                    mlp: None,
                    attn2: None,
                }
            }
            Self::RmsZero4 => StreamMod {
                attn: set(None, next()?, Some(next()?)),
                mlp: Some(set(None, next()?, Some(next()?))),
                attn2: None,
            },
            Self::ScaleOnly => StreamMod {
                attn: set(None, next()?, None),
                mlp: None,
                attn2: None,
            },
        })
    }
}

/// The modulation vectors of the second half of an adaLN-zero block.
#[derive(Debug, Clone)]
pub struct ZeroMlpModulation {
    /// Gate of the attention branch.
    pub gate_msa: Tensor,
    /// Shift of the MLP input.
    pub shift_mlp: Tensor,
    /// Scale of the MLP input.
    pub scale_mlp: Tensor,
    /// Gate of the MLP branch.
    pub gate_mlp: Tensor,
}

/// diffusers' `AdaLayerNormZero(dim)`: `linear` = Linear(cond → 6·dim) on `SiLU(emb)`, chunks
/// `shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp`, LayerNorm (no affine).
#[derive(Debug, Clone)]
pub struct AdaLayerNormZero {
    linear: Linear,
    norm: Norm,
}

impl AdaLayerNormZero {
    /// Loads `linear` from `vb`; `norm` is a LayerNorm without affine and `eps`.
    pub fn new(dim: usize, cond_dim: usize, bias: bool, eps: f64, vb: VarBuilder) -> Result<Self> {
        Self::from_linear(dim, cond_dim, bias, eps, vb.pp("linear"))
    }

    /// The same layer with its Linear loaded directly from `linear_vb`: QwenImage keeps it as
    /// `img_mod.1` / `txt_mod.1` (an `nn.Sequential(SiLU, Linear)`) rather than `norm1.linear`,
    /// with the same chunk order.
    pub fn from_linear(
        dim: usize,
        cond_dim: usize,
        bias: bool,
        eps: f64,
        linear_vb: VarBuilder,
    ) -> Result<Self> {
        let norm = Norm::layer_norm_no_affine(dim, eps, linear_vb.dtype(), linear_vb.device())?;
        Ok(Self {
            linear: linear(cond_dim, 6 * dim, bias, linear_vb)?,
            norm,
        })
    }

    /// The same layer with its LayerNorm computed in f32 (`norm_type="fp32_layer_norm"`: design
    /// D's DiT-style blocks with an f32 norm).
    pub fn with_f32_norm(self) -> Result<Self> {
        Ok(Self {
            norm: self.norm.in_f32()?,
            ..self
        })
    }

    /// The modulated normalised `x` and the vectors for the rest of the block.
    pub fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<(Tensor, ZeroMlpModulation)> {
        let emb = self.linear.forward(&candle_nn::ops::silu(emb)?)?;
        let c = chunks(&emb, 6)?;
        let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp] =
            <[Tensor; 6]>::try_from(c).map_err(|_| candle_core::Error::msg("adaLN: expected 6 chunks"))?;
        let x = modulate(&self.norm.forward(x)?, &shift_msa, &scale_msa)?;
        Ok((
            x,
            ZeroMlpModulation {
                gate_msa,
                shift_mlp,
                scale_mlp,
                gate_mlp,
            },
        ))
    }
}

/// diffusers' `AdaLayerNormZeroSingle(dim)`: Linear(cond → 3·dim) on `SiLU(emb)`, chunks
/// `shift, scale, gate`, LayerNorm (no affine).
#[derive(Debug, Clone)]
pub struct AdaLayerNormZeroSingle {
    linear: Linear,
    norm: Norm,
}

impl AdaLayerNormZeroSingle {
    /// Loads `linear` from `vb`.
    pub fn new(dim: usize, cond_dim: usize, bias: bool, eps: f64, vb: VarBuilder) -> Result<Self> {
        let norm = Norm::layer_norm_no_affine(dim, eps, vb.dtype(), vb.device())?;
        Ok(Self {
            linear: linear(cond_dim, 3 * dim, bias, vb.pp("linear"))?,
            norm,
        })
    }

    /// The modulated normalised `x` and the gate.
    pub fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<(Tensor, Tensor)> {
        let emb = self.linear.forward(&candle_nn::ops::silu(emb)?)?;
        let c = chunks(&emb, 3)?;
        let [shift, scale, gate] =
            <[Tensor; 3]>::try_from(c).map_err(|_| candle_core::Error::msg("adaLN: expected 3 chunks"))?;
        Ok((modulate(&self.norm.forward(x)?, &shift, &scale)?, gate))
    }
}

/// diffusers' `AdaLayerNormContinuous(dim, cond_dim)`: Linear(cond → 2·dim) on `SiLU(cond)`,
/// chunk order **`scale, shift`** (the BFL/SAI originals are `shift, scale`; their loaders swap).
#[derive(Debug, Clone)]
pub struct AdaLayerNormContinuous {
    linear: Linear,
    norm: Norm,
}

impl AdaLayerNormContinuous {
    /// Loads `linear` (and the norm's parameters, when `norm` is affine) from `vb`.
    pub fn new(
        dim: usize,
        cond_dim: usize,
        norm: NormKind,
        eps: f64,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            linear: linear(cond_dim, 2 * dim, bias, vb.pp("linear"))?,
            norm: Norm::new(norm, dim, eps, vb.pp("norm"))?,
        })
    }

    /// `norm(x) * (1 + scale) + shift`.
    pub fn forward(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let emb = self.linear.forward(&candle_nn::ops::silu(cond)?)?;
        let c = chunks(&emb, 2)?;
        let [scale, shift] =
            <[Tensor; 2]>::try_from(c).map_err(|_| candle_core::Error::msg("adaLN: expected 2 chunks"))?;
        modulate(&self.norm.forward(x)?, &shift, &scale)
    }
}
