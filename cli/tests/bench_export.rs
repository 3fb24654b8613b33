//! `cachedit bench --export`: the seeded benchmark model written as a diffusers folder reads
//! back as the same model, and the inputs file holds what `tools/reference/bench_torch.py`
//! reads; `bench` itself runs end to end on the tiny size and writes its JSON.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::collections::HashMap;
use std::process::Command;

use cachedit::demo::{DemoSize, demo_model};
use cachedit::export::{BenchInputs, INPUTS_NAME, export_model};
use candle_core::{DType, Device, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn exported_model_reads_back_as_the_seeded_one() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::Cpu;
    let size = DemoSize::TINY;
    let loaded = export_model(size, 3, dir.path(), &device).unwrap();
    let seeded = demo_model(size, 3, &device).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["_class_name"], "FluxTransformer2DModel");
    assert_eq!(config["num_layers"], 1);
    assert_eq!(config["axes_dims_rope"], serde_json::json!([8, 28, 28]));

    let inputs = BenchInputs::seeded(&seeded, 4, 3, &device).unwrap();
    let t = Tensor::new(&[0.7f32], &device).unwrap();
    let run = |m: &cachedit::adapters::families::flux::FluxTransformer2DModel| {
        m.forward(
            &inputs.latents,
            inputs.cond.get("encoder_hidden_states").unwrap(),
            inputs.cond.get("pooled_projections").unwrap(),
            &t,
            inputs.cond.get("img_ids").unwrap(),
            inputs.cond.get("txt_ids").unwrap(),
            None,
        )
        .unwrap()
    };
    // Bit-identical: the same f32 weights (the damped embedder included) and the same ops.
    assert_eq!(max_abs_diff(&run(&loaded), &run(&seeded)), 0.0);

    let path = dir.path().join(INPUTS_NAME);
    inputs.save(&path).unwrap();
    let back: HashMap<String, Tensor> = candle_core::safetensors::load(&path, &device).unwrap();
    for name in [
        "latents",
        "encoder_hidden_states",
        "pooled_projections",
        "img_ids",
        "txt_ids",
    ] {
        assert!(back.contains_key(name), "{name} missing from {INPUTS_NAME}");
    }
    let sigmas = back["sigmas"].to_vec1::<f64>().unwrap();
    assert_eq!(back["sigmas"].dtype(), DType::F64);
    assert_eq!(sigmas, inputs.sigmas);
    assert_eq!(sigmas.len(), 5);
    assert_eq!(sigmas[4], 0.0);
    assert_eq!(max_abs_diff(&back["latents"], &inputs.latents), 0.0);
}

/// `cachedit bench --size tiny ARGS PATH`.
fn bench_tiny(args: &[&str], path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cachedit"))
        .args(["bench", "--size", "tiny"])
        .args(args)
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn bench_tiny_writes_json_with_threads_and_cached_steps() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = bench_tiny(
        &["--steps", "12", "--quick", "--only", "F1B0 R0.2", "--json"],
        &json,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(doc["threads"].as_u64().unwrap() >= 1);
    assert_eq!(doc["steps"], 12);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "--only keeps one config");
    assert_eq!(runs[0]["config"], "F1B0 R0.2");
    // Warmup 8 of 12 steps: only steps 8..12 can be cached.
    let cached: Vec<u64> = runs[0]["cached_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(cached.iter().all(|&s| (8..12).contains(&s)), "{cached:?}");
    let frac = runs[0]["computed_fraction"].as_f64().unwrap();
    assert!((frac - (12 * 3 - 2 * cached.len()) as f64 / 36.0).abs() < 1e-12);
    // By kind: F1 keeps the one double block on every step; a cached step skips both singles.
    assert_eq!(runs[0]["double_blocks_run"], 12.0);
    assert_eq!(
        runs[0]["single_blocks_run"].as_f64().unwrap(),
        (2 * (12 - cached.len())) as f64
    );
    // The engine's own host time is measured inside the run and is a sliver of it.
    let (engine, time) = (
        runs[0]["engine_s"].as_f64().unwrap(),
        runs[0]["time_s"].as_f64().unwrap(),
    );
    assert!(engine > 0.0 && engine < time, "engine {engine} s of {time} s");
    let in_run = runs[0]["overhead_ratio_in_run"].as_f64().unwrap();
    assert!((in_run - time / (time - engine)).abs() < 1e-12);
    assert_eq!(runs[0]["step_ms"].as_array().unwrap().len(), 12);
    for reference in ["baseline", "floor", "floor_doubles"] {
        assert_eq!(
            doc[reference]["step_ms"].as_array().unwrap().len(),
            12,
            "{reference}"
        );
    }
    assert!(doc["cost_model"]["double_block_ms"].as_f64().unwrap().is_finite());
}

#[test]
fn bench_export_only_writes_the_folder_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench_tiny(&["--steps", "4", "--export-only", "--export"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["config.json", "diffusion_pytorch_model.safetensors", INPUTS_NAME] {
        assert!(dir.path().join(file).is_file(), "{file} not written");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("| config"),
        "no benchmark after --export-only: {stdout}"
    );
}
