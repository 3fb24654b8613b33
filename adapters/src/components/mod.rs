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

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;
    use crate::families::flux::{Config, FluxTransformer2DModel};
    use crate::init::seeded_var_builder;

    /// The differentiable compositions give the fused kernels' output (to 1e-5) on a whole
    /// Flux forward, and gradients flow through them.
    #[test]
    fn differentiable_ops_agree_with_fused_kernels_and_backprop() -> Result<()> {
        let dev = Device::Cpu;
        let model = FluxTransformer2DModel::new(Config::tiny(), seeded_var_builder(3, DType::F32, &dev))?;
        let x = Var::from_tensor(&cachedit_runtime::seeded_normal(
            &[2, 16, 4],
            1,
            DType::F32,
            &dev,
        )?)?;
        let text = cachedit_runtime::seeded_normal(&[2, 3, 32], 2, DType::F32, &dev)?;
        let pooled = cachedit_runtime::seeded_normal(&[2, 32], 3, DType::F32, &dev)?;
        let t = Tensor::new(&[0.3f32, 0.8], &dev)?;
        let img_ids = patchify::image_ids(4, 4, 0.0, &dev)?;
        let txt_ids = patchify::text_ids(3, &dev)?;
        let run = || model.forward(x.as_tensor(), &text, &pooled, &t, &img_ids, &txt_ids, None);
        let fused = run()?;
        assert!(!differentiable_ops());
        let slow = {
            let _guard = DifferentiableOps::enable();
            assert!(differentiable_ops());
            run()?
        };
        assert!(!differentiable_ops());
        let diff = (&fused - &slow)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "max |fused - differentiable| = {diff}");
        let _guard = DifferentiableOps::enable();
        let grads = run()?.sqr()?.sum_all()?.backward()?;
        let g = grads.get(&x).map(|g| g.abs()?.sum_all()?.to_scalar::<f32>());
        assert!(matches!(g, Some(Ok(v)) if v > 0.0));
        Ok(())
    }
}
