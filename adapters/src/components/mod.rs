//! Shared sub-components (docs/families.md §4), written once and configured by knobs.

pub mod ada_norm_single;
pub mod attention;
pub mod cross_attention;
pub mod embeddings;
pub mod expert_modulation;
pub mod ffn;
pub mod label_embedding;
pub mod modulation;
pub mod norm;
pub mod patch_embed;
pub mod patchify;
pub mod rope;
pub mod scale_shift_table;

use std::cell::Cell;

use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

thread_local! {
    static DIFFERENTIABLE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the components on this thread run differentiable compositions of basic ops instead
/// of Candle's fused kernels (`softmax_last_dim`, `rms_norm`, `layer_norm`, `rope_i`, `rope`),
/// which have no backward pass in Candle 0.11. Off by default; see [`DifferentiableOps`].
pub fn differentiable_ops() -> bool {
    DIFFERENTIABLE.with(Cell::get)
}

/// A guard that switches the components on the current thread to differentiable compositions
/// of basic ops (for training with `Tensor::backward`) until it is dropped. The two paths agree
/// to float rounding; the fused one is faster, so inference leaves this off.
#[derive(Debug)]
pub struct DifferentiableOps {
    previous: bool,
}

impl DifferentiableOps {
    /// Turns differentiable ops on for this thread until the guard is dropped.
    pub fn enable() -> Self {
        let previous = DIFFERENTIABLE.with(|d| d.replace(true));
        Self { previous }
    }
}

impl Drop for DifferentiableOps {
    fn drop(&mut self) {
        DIFFERENTIABLE.with(|d| d.set(self.previous));
    }
}

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
