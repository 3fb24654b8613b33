//! adaLN modulation providers: `AdaLayerNormZero` (6 chunks), `AdaLayerNormZeroSingle` (3),
//! `AdaLayerNormContinuous` (final norm, `scale, shift`), and the `modulate` helper.
//!
//! Other providers of families.md §4 (Joint12, Expert6, TablePlusTemb, RmsZero4, External
//! slices) plug in next to these; blocks take the modulated input and gates, not the provider.

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

impl AdaLayerNormZero {
    /// The same layer with its LayerNorm computed in f32 (`norm_type="fp32_layer_norm"`:
    /// AuraFlow).
    pub fn with_f32_norm(self) -> Result<Self> {
        Ok(Self {
            norm: self.norm.in_f32()?,
            ..self
        })
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
