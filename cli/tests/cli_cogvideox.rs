//! `cachedit run --family CogVideoX... --weights DIR --inputs FILE` on a diffusers-written tiny
//! CogVideoX-5B-I2V-style transformer, with the pipeline's argument names: the CLI resolves the
//! I2V pipeline class to the family, runs one batched CFG call per step (DDIM, the family's
//! sampler), and its final latent is the library's for the same inputs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::collections::HashMap;
use std::process::{Command, Output};

use cachedit::adapters::FamilyModel;
use cachedit::adapters::families::cogvideox::CogVideoXTransformer3DModel;
use cachedit::adapters::families::cogvideox_pipeline::names;
use cachedit::{CfgLayout, Conditioning, DenoiseOptions, Scheduler, SchedulerKind, denoise, seeded_normal};
use candle_core::{DType, Device, Tensor};

fn cachedit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachedit"))
        .args(args)
        .output()
        .expect("run cachedit")
}

const WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../adapters/tests/fixtures/cogvideox_tiny_i2v/transformer"
);

#[test]
fn run_cogvideox_i2v_with_pipeline_argument_names_matches_the_library() {
    let device = Device::Cpu;
    let model = CogVideoXTransformer3DModel::from_pretrained(WEIGHTS.as_ref(), DType::F32, &device).unwrap();
    // the config's sample size: the learned position table covers exactly that grid
    let shape = [1, 2, 4, 8, 12];
    let normal = |shape: &[usize], seed| seeded_normal(shape, seed, DType::F32, &device).unwrap();
    let latents = normal(&shape, 1);
    let image = normal(&shape, 2);
    let (text, negative) = (normal(&[1, 8, 8], 3), normal(&[1, 8, 8], 4));
    let cond = Conditioning::new()
        .with(names::ENCODER_HIDDEN_STATES, text.clone())
        .with(names::IMAGE_LATENTS, image.clone());
    let uncond = Conditioning::new()
        .with(names::ENCODER_HIDDEN_STATES, negative.clone())
        .with(names::IMAGE_LATENTS, image.clone());
    let opts = DenoiseOptions {
        steps: 3,
        scheduler: Scheduler::for_kind(SchedulerKind::Ddim),
        cfg: CfgLayout::Batched,
        guidance_scale: 6.0,
        ..Default::default()
    };
    let lib = denoise(&model, latents.clone(), &cond, Some(&uncond), &opts, |_, _| {}).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    let tensors: HashMap<String, Tensor> = [
        ("latents", latents),
        ("encoder_hidden_states", text),
        ("image_latents", image),
        ("uncond.encoder_hidden_states", negative),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    candle_core::safetensors::save(&tensors, &inputs).unwrap();
    let (trace, output) = (dir.path().join("trace.json"), dir.path().join("out.safetensors"));
    let o = cachedit(&[
        "run",
        "--family",
        "CogVideoXImageToVideoPipeline",
        "--weights",
        WEIGHTS,
        "--inputs",
        inputs.to_str().unwrap(),
        "--guidance-scale",
        "6",
        "--steps",
        "3",
        // threshold 0 traces every call and computes every step: the uncached result
        "--fn",
        "1",
        "--threshold",
        "0",
        "--trace",
        trace.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(out.contains("CogVideoX ("), "{out}");
    assert!(out.contains("CFG batched"), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "one batched call per step: {doc}");
    assert!(records.iter().all(|r| r["cached"] == false), "{doc}");
    let cli = candle_core::safetensors::load(&output, &device)
        .unwrap()
        .remove("latents")
        .unwrap();
    let diff = (cli - &lib.latents).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}

/// The tiny config through the registry with cache on: a pipeline class name resolves to the
/// family and the cached run reports cached steps.
#[test]
fn run_cogvideox_tiny_with_cache() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let o = cachedit(&[
        "run",
        "--family",
        "CogVideoXPipeline",
        "--steps",
        "6",
        "--fn",
        "1",
        "--warmup",
        "1",
        "--threshold",
        "1000",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 6, "{doc}");
    assert!(records.iter().any(|r| r["cached"] == true), "{doc}");
}
