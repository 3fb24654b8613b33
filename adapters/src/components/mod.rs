//! Shared sub-components (families.md §4), written once and configured by knobs.

pub mod attention;
pub mod embeddings;
pub mod ffn;
pub mod modulation;
pub mod norm;
pub mod patchify;
pub mod rope;

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

/// A `Linear` layer (`weight` `(out, in)` and optional `bias`), loaded under `vb` with PyTorch's
/// default-init hints so seeded weights have sensible scales.
pub fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
    let weight = vb.get_with_hints(
        (out_dim, in_dim),
        "weight",
        Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?;
    let bias = if bias {
        Some(vb.get_with_hints(
            out_dim,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// `x[:, None, :]`-style broadcast of a per-sample vector `(B, D)` over the sequence of `x`
/// `(B, S, D)`: returns `(B, 1, D)`.
pub(crate) fn per_sample(v: &Tensor) -> Result<Tensor> {
    v.unsqueeze(1)
}
