//! Normalisation layers: LayerNorm (affine / no-affine) and RMSNorm (affine / no-affine), on
//! Candle's fused kernels.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Which normalisation, over the last dimension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormKind {
    /// `(x - mean) / sqrt(var + eps) * weight + bias`.
    LayerNorm {
        /// Whether `weight` (and `bias`, if `bias`) are parameters; otherwise 1 and 0.
        affine: bool,
        /// Whether an affine LayerNorm has a `bias`.
        bias: bool,
    },
    /// `x / sqrt(mean(x²) + eps) * weight`.
    RmsNorm {
        /// Whether `weight` is a parameter; otherwise 1.
        affine: bool,
    },
}

/// A LayerNorm or RMSNorm over the last dimension (diffusers' `nn.LayerNorm`, `nn.RMSNorm`,
/// `RMSNorm`; parameter names `weight`, `bias`).
#[derive(Debug, Clone)]
pub struct Norm {
    kind: NormKind,
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f32,
    /// Normalise in f32 and cast back (diffusers' `FP32LayerNorm`, `fp32_layer_norm`).
    upcast: bool,
}

impl Norm {
    /// Builds a norm over `dim` channels; parameters (if any) are read from `vb`.
    pub fn new(kind: NormKind, dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let (weight, bias) = match kind {
            NormKind::LayerNorm { affine: true, bias } => {
                let w = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
                let b = if bias {
                    vb.get_with_hints(dim, "bias", Init::Const(0.0))?
                } else {
                    Tensor::zeros(dim, vb.dtype(), vb.device())?
                };
                (w, Some(b))
            }
            NormKind::LayerNorm { affine: false, .. } => (
                Tensor::ones(dim, vb.dtype(), vb.device())?,
                Some(Tensor::zeros(dim, vb.dtype(), vb.device())?),
            ),
            NormKind::RmsNorm { affine: true } => (vb.get_with_hints(dim, "weight", Init::Const(1.0))?, None),
            NormKind::RmsNorm { affine: false } => (Tensor::ones(dim, vb.dtype(), vb.device())?, None),
        };
        Ok(Self {
            kind,
            weight,
            bias,
            eps: eps as f32,
            upcast: false,
        })
    }

    /// A LayerNorm without parameters (diffusers' `elementwise_affine=False`).
    pub fn layer_norm_no_affine(dim: usize, eps: f64, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            kind: NormKind::LayerNorm {
                affine: false,
                bias: false,
            },
            weight: Tensor::ones(dim, dtype, device)?,
            bias: Some(Tensor::zeros(dim, dtype, device)?),
            eps: eps as f32,
            upcast: false,
        })
    }

    /// The same norm computed in f32 and cast back to the input's dtype, as diffusers'
    /// `FP32LayerNorm` (AuraFlow's every LayerNorm) does: in bf16/f16 the statistics of wide
    /// rows lose too much precision otherwise. A no-op change for f32 inputs.
    pub fn in_f32(self) -> Result<Self> {
        Ok(Self {
            weight: self.weight.to_dtype(DType::F32)?,
            bias: self.bias.map(|b| b.to_dtype(DType::F32)).transpose()?,
            upcast: true,
            ..self
        })
    }

    /// The kind of norm.
    pub fn kind(&self) -> NormKind {
        self.kind
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        if self.upcast && dtype != DType::F32 {
            return self.normalise(&x.to_dtype(DType::F32)?)?.to_dtype(dtype);
        }
        self.normalise(x)
    }
}

impl Norm {
    fn normalise(&self, x: &Tensor) -> Result<Tensor> {
        // The fused kernels need a contiguous input; `contiguous` is free when it already is.
        let x = x.contiguous()?;
        if super::differentiable_ops() {
            return match &self.bias {
                Some(b) => candle_nn::ops::layer_norm_slow(&x, &self.weight, b, self.eps),
                None => candle_nn::ops::rms_norm_slow(&x, &self.weight, self.eps),
            };
        }
        match &self.bias {
            Some(b) => candle_nn::ops::layer_norm(&x, &self.weight, b, self.eps),
            None => candle_nn::ops::rms_norm(&x, &self.weight, self.eps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `in_f32` normalises a bf16 input in f32 and rounds once at the end (diffusers'
    /// `FP32LayerNorm`), and leaves f32 inputs exactly as the plain norm computes them.
    #[test]
    fn f32_layer_norm_rounds_once() -> Result<()> {
        let dev = Device::Cpu;
        let x = (Tensor::arange(0f32, 64.0, &dev)?.reshape((2, 32))?.sin()? * 300.0)?;
        let plain = Norm::layer_norm_no_affine(32, 1e-5, DType::F32, &dev)?;
        let f32_norm = Norm::layer_norm_no_affine(32, 1e-5, DType::BF16, &dev)?.in_f32()?;
        let want = plain.forward(&x)?.to_dtype(DType::BF16)?;
        let got = f32_norm.forward(&x.to_dtype(DType::BF16)?)?;
        assert_eq!(got.dtype(), DType::BF16);
        let x16 = x.to_dtype(DType::BF16)?;
        let want16 = plain.forward(&x16.to_dtype(DType::F32)?)?.to_dtype(DType::BF16)?;
        assert_eq!(
            got.to_dtype(DType::F32)?.to_vec2::<f32>()?,
            want16.to_dtype(DType::F32)?.to_vec2::<f32>()?
        );
        let err = (got.to_dtype(DType::F32)? - want.to_dtype(DType::F32)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(err < 0.05, "{err}");
        let same = f32_norm.forward(&x)?;
        assert_eq!(same.to_vec2::<f32>()?, plain.forward(&x)?.to_vec2::<f32>()?);
        Ok(())
    }
}
