//! Seeded Gaussian noise. Candle's CPU device cannot be seeded, so initial latents and synthetic
//! conditioning come from our own generator: same seed, same tensor, on every device.

use candle_core::{DType, Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A standard normal tensor of `shape` from `seed` (Box-Muller over a seeded `StdRng`), in f32
/// converted to `dtype` on `device`.
pub fn seeded_normal(shape: &[usize], seed: u64, dtype: DType, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        v.push((r * theta.cos()) as f32);
        v.push((r * theta.sin()) as f32);
    }
    v.truncate(n);
    Tensor::from_vec(v, shape, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_roughly_standard() {
        let a = seeded_normal(&[4096], 7, DType::F32, &Device::Cpu).unwrap();
        let b = seeded_normal(&[4096], 7, DType::F32, &Device::Cpu).unwrap();
        let c = seeded_normal(&[4096], 8, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        assert_ne!(a.to_vec1::<f32>().unwrap(), c.to_vec1::<f32>().unwrap());
        let mean = a.mean_all().unwrap().to_scalar::<f32>().unwrap();
        let var = a.sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.1, "{mean} {var}");
    }
}
