//! Helpers shared by the adapters' integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Result, Tensor};

/// `adapters/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The reference inputs/outputs written by `tools/reference/gen_flux.py`.
pub fn io(name: &str) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(fixture(name).join("io.safetensors"), &Device::Cpu)
}

/// A tensor of the reference file.
pub fn get<'a>(io: &'a HashMap<String, Tensor>, key: &str) -> Result<&'a Tensor> {
    io.get(key)
        .ok_or_else(|| candle_core::Error::msg(format!("fixture has no `{key}`")))
}

/// `(max |a - b|, max |b|)`.
pub fn max_err(a: &Tensor, b: &Tensor) -> Result<(f32, f32)> {
    if a.shape() != b.shape() {
        candle_core::bail!("shape {:?} vs reference {:?}", a.shape(), b.shape());
    }
    let a = a.to_dtype(DType::F32)?;
    let b = b.to_dtype(DType::F32)?;
    let err = (&a - &b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((err, scale))
}

/// Asserts `max |a - b| <= rel · max(max |b|, 1)` and prints the error.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, rel: f32) -> Result<f32> {
    let (err, scale) = max_err(a, b)?;
    println!(
        "{what}: max abs err {err:.3e} (reference scale {scale:.3}, relative {:.3e})",
        err / scale.max(1.0)
    );
    assert!(
        err <= rel * scale.max(1.0),
        "{what}: max abs err {err:e} exceeds {rel:e} x scale {scale}"
    );
    Ok(err)
}

/// Bitwise equality of two tensors.
pub fn assert_bit_identical(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    let a = a.flatten_all()?.to_vec1::<f32>()?;
    let b = b.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(same, "{what}: outputs differ");
    Ok(())
}
