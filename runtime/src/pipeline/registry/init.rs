//! Deterministic weights for tests and demos: a seeded `SimpleBackend`.
//!
//! Candle's CPU RNG cannot be seeded (`Device::Cpu.set_seed` fails) and `VarMap` init is not
//! reproducible, so each tensor gets its own `StdRng` seeded from `hash(seed, name)`: the same
//! seed and name always give the same values, whatever order the model asks for them in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// FNV-1a over the seed and the name: stable across Rust versions and platforms (unlike
/// `DefaultHasher`).
fn name_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A `SimpleBackend` that makes every requested tensor from a seeded RNG:
/// - `Init::Const(c)` → all `c` (norm scales are requested with `Const(1)`);
/// - names ending in `.scale` (BFL q/k norms) → 1;
/// - `Init::Uniform { lo, up }` → uniform in `[lo, up)`;
/// - `Init::Randn { mean, stdev }` → normal;
/// - `Init::Kaiming` (any) → fan-in uniform `±1/sqrt(fan_in)` (PyTorch's `Linear` default).
///
/// Optionally records every tensor it made, so a seeded model can be saved as a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct SeededBackend {
    seed: u64,
    record: Option<Arc<Mutex<HashMap<String, Tensor>>>>,
}

impl SeededBackend {
    /// A backend for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, record: None }
    }

    /// A backend for `seed` that records every tensor it makes into the returned map.
    pub fn recording(seed: u64) -> (Self, Arc<Mutex<HashMap<String, Tensor>>>) {
        let record = Arc::new(Mutex::new(HashMap::new()));
        (
            Self {
                seed,
                record: Some(record.clone()),
            },
            record,
        )
    }

    fn values(&self, shape: &Shape, name: &str, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        let mut rng = StdRng::seed_from_u64(name_seed(self.seed, name));
        let uniform = |rng: &mut StdRng, lo: f64, up: f64| -> Vec<f32> {
            (0..n)
                .map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32)
                .collect()
        };
        if name.ends_with(".scale") {
            return vec![1.0; n];
        }
        match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| {
                    // Box-Muller; `1 - u` keeps the log argument in (0, 1].
                    let u1 = 1.0 - rng.random::<f64>();
                    let u2 = rng.random::<f64>();
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    (mean + stdev * z) as f32
                })
                .collect(),
            Init::Kaiming { .. } => {
                let fan_in = match shape.dims() {
                    [] | [_] => n,
                    [_, rest @ ..] => rest.iter().product(),
                };
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                uniform(&mut rng, -bound, bound)
            }
        }
    }
}

impl SimpleBackend for SeededBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let values = self.values(&s, name, h);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        if let Some(record) = &self.record {
            record
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string(), t.clone());
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("seeded weights need a shape: `{name}` was requested without one")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A `VarBuilder` over [`SeededBackend`] for `seed`.
pub fn seeded_var_builder(seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(SeededBackend::new(seed)), dtype, device.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_name_give_the_same_values_in_any_order() -> Result<()> {
        let dev = Device::Cpu;
        let a = seeded_var_builder(7, DType::F32, &dev);
        let b = seeded_var_builder(7, DType::F32, &dev);
        let x1 = a.get_with_hints((4, 3), "x", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let y2 = b.get_with_hints((4, 3), "y", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let x2 = b.get_with_hints((4, 3), "x", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        assert_eq!(x1.to_vec2::<f32>()?, x2.to_vec2::<f32>()?);
        assert_ne!(x1.to_vec2::<f32>()?, y2.to_vec2::<f32>()?);
        let bound = 1.0 / 3f32.sqrt();
        assert!(
            x1.flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .all(|v| v.abs() <= bound)
        );
        let c = seeded_var_builder(8, DType::F32, &dev).get_with_hints(
            (4, 3),
            "x",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        assert_ne!(x1.to_vec2::<f32>()?, c.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn constants_and_scales() -> Result<()> {
        let vb = seeded_var_builder(1, DType::F32, &Device::Cpu);
        let w = vb.get_with_hints(5, "norm.weight", Init::Const(1.0))?;
        assert_eq!(w.to_vec1::<f32>()?, vec![1.0; 5]);
        let s = vb.get_with_hints(5, "q.scale", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        assert_eq!(s.to_vec1::<f32>()?, vec![1.0; 5]);
        let z = vb.get(5, "zero")?;
        assert_eq!(z.to_vec1::<f32>()?, vec![0.0; 5]);
        Ok(())
    }
}
