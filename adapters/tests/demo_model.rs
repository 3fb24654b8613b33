#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! The committed demo weights load, and a 4-step generation is deterministic and matches the
//! committed expected values (`fixtures/demo/generate_4_steps.json`) within a tolerance that
//! allows for other CPUs' floating-point summation order. `CACHEDIT_BLESS=1` rewrites the
//! fixture (after retraining the demo model).

use cachedit_adapters::demo::{DemoClass, demo_config, generate, load_demo_model};
use candle_core::Device;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/demo/generate_4_steps.json"
);
/// Stride of the values kept in the fixture (every 37th of the 2×3×16×16 outputs).
const STRIDE: usize = 37;

#[test]
fn committed_weights_generate_deterministically_and_as_recorded() {
    let model = load_demo_model(&Device::Cpu).unwrap();
    assert_eq!(model.config(), &demo_config());
    let classes = [
        DemoClass::parse("red circle").unwrap(),
        DemoClass::parse("blue cross").unwrap(),
    ];
    let a = generate(&model, &classes, 4, 11).unwrap();
    let b = generate(&model, &classes, 4, 11).unwrap();
    let va = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(va, b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let sampled: Vec<f32> = va.iter().step_by(STRIDE).copied().collect();
    if std::env::var_os("CACHEDIT_BLESS").is_some() {
        std::fs::write(FIXTURE, serde_json::to_string(&sampled).unwrap()).unwrap();
        return;
    }
    let expected: Vec<f32> = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    assert_eq!(expected.len(), sampled.len());
    for (i, (e, g)) in expected.iter().zip(&sampled).enumerate() {
        assert!(
            (e - g).abs() < 1e-3,
            "value {}: expected {e}, got {g}",
            i * STRIDE
        );
    }
}
