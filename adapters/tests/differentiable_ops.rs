//! The differentiable compositions of `components` (what training uses) give the fused kernels'
//! output on a whole Flux forward, and gradients flow through them. An integration test rather
//! than a unit test of `components`, so that the components module never imports a family.

use cachedit_adapters::components::{DifferentiableOps, differentiable_ops, patchify};
use cachedit_adapters::families::flux::{Config, FluxTransformer2DModel};
use cachedit_adapters::seeded_var_builder;
use candle_core::{DType, Device, Result, Tensor, Var};

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
