#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! `demo::ssim` against scikit-image (`tools/reference/gen_ssim.py` wrote the fixture).

use cachedit_adapters::demo::ssim::{ssim, ssim_tensors};
use candle_core::{Device, Tensor};

#[test]
fn ssim_matches_scikit_image() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ssim/cases.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let floats = |key: &str| -> Vec<f32> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let dim = |key: &str| case[key].as_u64().unwrap() as usize;
        let (a, b) = (floats("a"), floats("b"));
        let (c, h, w) = (dim("channels"), dim("height"), dim("width"));
        let range = case["data_range"].as_f64().unwrap();
        let expected = case["ssim"].as_f64().unwrap();
        let got = ssim(&a, &b, c, h, w, range).unwrap();
        assert!(
            (got - expected).abs() < 1e-6,
            "{}: cachedit {got}, scikit-image {expected}",
            case["name"]
        );
        // The batched tensor form gives the same number.
        let ta = Tensor::from_vec(a, (1, c, h, w), &Device::Cpu).unwrap();
        let tb = Tensor::from_vec(b, (1, c, h, w), &Device::Cpu).unwrap();
        assert!((ssim_tensors(&ta, &tb, range).unwrap() - got).abs() < 1e-12);
    }
}
