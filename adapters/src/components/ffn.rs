//! Feed-forward networks. diffusers' `FeedForward` (`net.0.proj` in-projection, `net.2`
//! out-projection) with its activations; other naming schemes (`w1/w2/w3`, `linear_1/2/3`,
//! `gate_up_proj/down_proj`) and MoE are further constructors over the same forward.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::linear;

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
            Self::GeluTanh => x.gelu(),
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
