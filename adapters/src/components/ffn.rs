//! Feed-forward networks. diffusers' `FeedForward` (`net.0.proj` in-projection, `net.2`
//! out-projection) with its activations; LLaMA-style SwiGLU with separate projections under
//! AuraFlow's and HiDream's names ([`SplitGlu`]); HiDream's mixture of experts ([`MoeSwiGlu`]);
//! and [`FfnKind`]/[`Ffn`], the FFN knob of the block designs.

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::{differentiable_ops, linear};

/// `sqrt(2/π)`, the tanh approximation's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU with the tanh approximation on f32 CPU tensors, as `x · sigmoid(2u)`, which equals
/// `0.5·x·(1 + tanh(u))` (`u = sqrt(2/π)·(x + 0.044715·x³)`). Candle's `gelu` calls `tanhf`
/// per element, which glibc computes through `expm1f`: that was about a fifth of the Flux
/// baseline's CPU time. One `expf` per element is several times cheaper and agrees to float
/// rounding.
struct GeluTanhSigmoid;

impl CustomOp1 for GeluTanhSigmoid {
    fn name(&self) -> &'static str {
        "gelu-tanh-sigmoid"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(data), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("gelu-tanh-sigmoid: expects a contiguous f32 tensor")
        };
        let out = data[start..end]
            .iter()
            .map(|&v| {
                let u = SQRT_2_OVER_PI * v * (1.0 + 0.044_715 * v * v);
                // exp overflows to +inf for very negative u, giving -0.0: GELU's limit.
                v / (1.0 + (-2.0 * u).exp())
            })
            .collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// GELU with the tanh approximation (`gelu-approximate`, PyTorch's `approximate="tanh"`): a
/// faster f32 CPU kernel where it applies, Candle's `gelu` otherwise (other dtypes and devices,
/// and under [`super::DifferentiableOps`], since the fast kernel has no backward pass).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && !differentiable_ops() {
        x.contiguous()?.apply_op1_no_bwd(&GeluTanhSigmoid)
    } else {
        x.gelu()
    }
}

/// The activation of a feed-forward network (diffusers' `activation_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu-approximate`: GELU with the tanh approximation.
    GeluTanh,
    /// `gelu`: exact (erf) GELU.
    Gelu,
    /// `geglu`: in-projection to `2·inner`, `x * gelu(gate)` (gate = second half).
    GeGlu,
    /// `swiglu`: in-projection to `2·inner`, `x * silu(gate)` (gate = second half).
    SwiGlu,
    /// `linear-silu`: SiLU after the in-projection.
    LinearSilu,
}

impl Activation {
    /// Whether the in-projection produces `[x | gate]` of twice the inner width.
    pub const fn is_gated(self) -> bool {
        matches!(self, Self::GeGlu | Self::SwiGlu)
    }

    /// Applies the activation to the in-projection's output.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::GeluTanh => gelu_tanh(x),
            Self::Gelu => x.gelu_erf(),
            Self::LinearSilu => candle_nn::ops::silu(x),
            Self::GeGlu | Self::SwiGlu => {
                let inner = x.dim(candle_core::D::Minus1)? / 2;
                let h = x.narrow(candle_core::D::Minus1, 0, inner)?;
                let gate = x.narrow(candle_core::D::Minus1, inner, inner)?;
                let gate = if self == Self::GeGlu {
                    gate.gelu_erf()?
                } else {
                    candle_nn::ops::silu(&gate)?
                };
                h * gate
            }
        }
    }
}

/// The width of a LLaMA-style SwiGLU hidden layer for a nominal `hidden_dim`: `int(2h/3)`
/// rounded up to a multiple of `multiple` (AuraFlow's and HiDream's `find_multiple(.., 256)`).
pub fn swiglu_width(hidden_dim: usize, multiple: usize) -> usize {
    let h = (2 * hidden_dim) / 3;
    multiple.max(1) * h.div_ceil(multiple.max(1))
}

/// Where a [`SplitGlu`]'s three Linears live in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitGluNames {
    /// The gate projection (through the activation).
    pub gate: &'static str,
    /// The value projection.
    pub up: &'static str,
    /// The output projection.
    pub down: &'static str,
}

impl SplitGluNames {
    /// `AuraFlowFeedForward`: `out_projection(silu(linear_1 x) · linear_2 x)`.
    pub const AURAFLOW: Self = Self {
        gate: "linear_1",
        up: "linear_2",
        down: "out_projection",
    };

    /// `HiDreamImageFeedForwardSwiGLU`: `w2(silu(w1 x) · w3 x)`.
    pub const HIDREAM: Self = Self {
        gate: "w1",
        up: "w3",
        down: "w2",
    };
}

/// A gated FFN whose gate and value projections are separate Linears (LLaMA-style SwiGLU):
/// `down(act(gate x) · up x)`. diffusers' `FeedForward` fuses them into `net.0.proj` instead;
/// the checkpoints of AuraFlow (and HiDream) keep them apart, so they are loaded as they are.
#[derive(Debug, Clone)]
pub struct SplitGlu {
    gate: Linear,
    up: Linear,
    down: Linear,
    activation: Activation,
}

impl SplitGlu {
    /// `dim → inner → dim_out` with `activation` on the gate (`SwiGlu`: SiLU, `GeGlu`: GELU).
    pub fn new(
        dim: usize,
        dim_out: usize,
        inner: usize,
        activation: Activation,
        bias: bool,
        names: SplitGluNames,
        vb: VarBuilder,
    ) -> Result<Self> {
        if !activation.is_gated() {
            candle_core::bail!("a split GLU needs a gated activation, not {activation:?}");
        }
        Ok(Self {
            gate: linear(dim, inner, bias, vb.pp(names.gate))?,
            up: linear(dim, inner, bias, vb.pp(names.up))?,
            down: linear(inner, dim_out, bias, vb.pp(names.down))?,
            activation,
        })
    }
}

impl Module for SplitGlu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate.forward(x)?;
        let gate = match self.activation {
            Activation::GeGlu => gate.gelu_erf()?,
            _ => candle_nn::ops::silu(&gate)?,
        };
        self.down.forward(&(gate * self.up.forward(x)?)?)
    }
}

/// diffusers' `FeedForward(dim, dim_out, mult, activation_fn)`: `net.0.proj` → activation →
/// `net.2`.
#[derive(Debug, Clone)]
pub struct FeedForward {
    proj_in: Linear,
    proj_out: Linear,
    activation: Activation,
}

impl FeedForward {
    /// `dim → inner → dim_out` (`inner` doubled in the in-projection for gated activations).
    pub fn new(
        dim: usize,
        dim_out: usize,
        inner: usize,
        activation: Activation,
        bias: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let proj_width = if activation.is_gated() { 2 * inner } else { inner };
        Ok(Self {
            proj_in: linear(dim, proj_width, bias, vb.pp("net.0.proj"))?,
            proj_out: linear(inner, dim_out, bias, vb.pp("net.2"))?,
            activation,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.apply(&self.proj_in.forward(x)?)?;
        self.proj_out.forward(&h)
    }
}

/// diffusers' `MOEFeedForwardSwiGLU` at inference (HiDream's image FFN): softmax gate, top-k
/// experts weighted by their (unnormalised) scores, plus a shared expert of half the width.
/// Only the routed tokens run through each expert.
#[derive(Debug, Clone)]
pub struct MoeSwiGlu {
    gate: Tensor,
    experts: Vec<SplitGlu>,
    shared_experts: SplitGlu,
    top_k: usize,
}

impl MoeSwiGlu {
    /// `routed` experts of nominal hidden width `hidden` (`gate`, `experts.{e}`,
    /// `shared_experts`, each `w1/w2/w3` without bias), `top_k` per token.
    pub fn new(dim: usize, hidden: usize, routed: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        let expert = |h: usize, vb: VarBuilder| {
            let inner = swiglu_width(h, 256);
            SplitGlu::new(
                dim,
                dim,
                inner,
                Activation::SwiGlu,
                false,
                SplitGluNames::HIDREAM,
                vb,
            )
        };
        Ok(Self {
            gate: vb.pp("gate").get((routed, dim), "weight")?,
            experts: (0..routed)
                .map(|e| expert(hidden, vb.pp("experts").pp(e)))
                .collect::<Result<_>>()?,
            shared_experts: expert(hidden / 2, vb.pp("shared_experts"))?,
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

/// Which feed-forward network a block stream uses, and its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfnKind {
    /// diffusers' `FeedForward` (`net.0.proj`, `net.2`).
    FeedForward {
        /// Activation.
        activation: Activation,
        /// Inner width (doubled in the in-projection for gated activations).
        inner: usize,
        /// Biases of both Linears.
        bias: bool,
    },
    /// A SwiGLU with separate gate/value projections ([`SplitGlu`]), no biases.
    SplitGlu {
        /// Where its Linears live.
        names: SplitGluNames,
        /// Inner width.
        inner: usize,
    },
    /// HiDream's MoE ([`MoeSwiGlu`]) of nominal hidden width `hidden`, or a plain SwiGLU of
    /// that width (`w1/w2/w3`) when `routed` is 0.
    Moe {
        /// Nominal hidden width of an expert.
        hidden: usize,
        /// Routed experts.
        routed: usize,
        /// Experts per token.
        top_k: usize,
    },
}

/// A block's feed-forward network, built from an [`FfnKind`].
#[derive(Debug, Clone)]
pub enum Ffn {
    /// diffusers' `FeedForward`.
    FeedForward(FeedForward),
    /// A SwiGLU with separate projections.
    Split(SplitGlu),
    /// A mixture of experts.
    Moe(MoeSwiGlu),
}

impl Ffn {
    /// `dim → dim` FFN of `kind`, loaded from `vb`.
    pub fn new(kind: FfnKind, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(match kind {
            FfnKind::FeedForward {
                activation,
                inner,
                bias,
            } => Self::FeedForward(FeedForward::new(dim, dim, inner, activation, bias, vb)?),
            FfnKind::SplitGlu { names, inner } => Self::Split(SplitGlu::new(
                dim,
                dim,
                inner,
                Activation::SwiGlu,
                false,
                names,
                vb,
            )?),
            FfnKind::Moe {
                hidden, routed: 0, ..
            } => Self::Split(SplitGlu::new(
                dim,
                dim,
                swiglu_width(hidden, 256),
                Activation::SwiGlu,
                false,
                SplitGluNames::HIDREAM,
                vb,
            )?),
            FfnKind::Moe {
                hidden,
                routed,
                top_k,
            } => Self::Moe(MoeSwiGlu::new(dim, hidden, routed, top_k, vb)?),
        })
    }
}

impl Module for Ffn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::FeedForward(f) => f.forward(x),
            Self::Split(f) => f.forward(x),
            Self::Moe(f) => f.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use candle_core::{Device, Tensor};

    /// The fast kernel agrees with Candle's tanh formula over GELU's whole range, including the
    /// tails where `exp` overflows.
    #[test]
    fn fast_gelu_matches_candle() {
        let xs: Vec<f32> = (-4000..=4000)
            .map(|i| i as f32 * 0.01)
            .chain([-1e4, 1e4, 0.0])
            .collect();
        let x = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let fast = super::gelu_tanh(&x).unwrap().to_vec1::<f32>().unwrap();
        let slow = x.gelu().unwrap().to_vec1::<f32>().unwrap();
        for ((a, b), v) in fast.iter().zip(&slow).zip(&xs) {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + v.abs()),
                "x={v}: fast {a}, candle {b}"
            );
        }
    }
}
