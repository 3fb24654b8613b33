//! `cachedit run --family Wan` end to end: diffusers-written tiny weights, an `--inputs` file
//! with the transformer call's tensors under diffusers' names (`hidden_states`-shaped
//! `latents` `(B, C, F, H, W)`, `encoder_hidden_states`) and `uncond.*` for the negative prompt,
//! run with the registry's separate CFG (two calls per step, each branch cached on its own), and
//! the final latent equal to the library's denoising loop with the same options.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Output};

use cachedit::adapters::FamilyModel;
use cachedit::adapters::families::wan::WanTransformer3DModel;
use cachedit::{
    CacheConfig, CfgLayout, Conditioning, DenoiseOptions, FlowMatchEuler, denoise, enable_cache,
    seeded_normal,
};
use candle_core::{DType, Device, Tensor};

const WEIGHTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../adapters/tests/fixtures/wan_tiny/transformer"
);
const STEPS: usize = 6;

fn cachedit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachedit"))
        .args(args)
        .output()
        .expect("run cachedit")
}

fn text(seed: u64) -> Tensor {
    seeded_normal(&[1, 5, 16], seed, DType::F32, &Device::Cpu).unwrap()
}

/// The inputs file: latents, the prompt's states and, with `negative`, `uncond.*` ones.
fn write_inputs(path: &Path, latents: &Tensor, negative: bool) {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert("latents".into(), latents.clone());
    tensors.insert("encoder_hidden_states".into(), text(11));
    if negative {
        tensors.insert("uncond.encoder_hidden_states".into(), text(12));
    }
    candle_core::safetensors::save(&tensors, path).unwrap();
}

fn records(trace: &Path) -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(trace).unwrap()).unwrap();
    doc["records"].as_array().unwrap().clone()
}

#[test]
fn run_wan_with_separate_cfg_matches_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::Cpu;
    let latents = seeded_normal(&[1, 4, 2, 4, 6], 7, DType::F32, &device).unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    write_inputs(&inputs, &latents, true);
    let (trace, output) = (dir.path().join("trace.json"), dir.path().join("out.safetensors"));
    let o = cachedit(&[
        "run",
        "--family",
        "WanPipeline",
        "--weights",
        WEIGHTS,
        "--inputs",
        inputs.to_str().unwrap(),
        "--steps",
        &STEPS.to_string(),
        "--shift",
        "3.0",
        "--guidance-scale",
        "5.0",
        "--fn",
        "1",
        "--bn",
        "0",
        "--warmup",
        "2",
        "--threshold",
        "0.2",
        "--trace",
        trace.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("CFG separate x5"), "{stdout}");

    // One list, two calls (conditional, unconditional) per step, each branch traced.
    let recs = records(&trace);
    assert_eq!(recs.len(), STEPS * 2, "{recs:?}");
    let branches: BTreeSet<String> = recs.iter().map(|r| r["branch"].to_string()).collect();
    assert_eq!(branches.len(), 2, "{branches:?}");
    assert!(
        recs.iter().any(|r| r["cached"] == true),
        "nothing cached: {recs:?}"
    );

    // The library's loop on the same weights, inputs and options gives the same latent.
    let model = WanTransformer3DModel::from_pretrained(Path::new(WEIGHTS), DType::F32, &device).unwrap();
    enable_cache(
        &model,
        &CacheConfig {
            fn_compute_blocks: 1,
            bn_compute_blocks: 0,
            max_warmup_steps: 2,
            residual_diff_threshold: 0.2,
            ..CacheConfig::default()
        },
    )
    .unwrap();
    let cond = Conditioning::new().with("encoder_hidden_states", text(11));
    let uncond = Conditioning::new().with("encoder_hidden_states", text(12));
    let opts = DenoiseOptions {
        steps: STEPS,
        scheduler: FlowMatchEuler {
            shift: 3.0,
            ..Default::default()
        }
        .into(),
        cfg: CfgLayout::Separate,
        guidance_scale: 5.0,
        ..Default::default()
    };
    let lib = denoise(&model, latents.clone(), &cond, Some(&uncond), &opts, |_, _| {}).unwrap();
    let stats = cachedit::summary(&model);
    assert!(
        !stats[0].cached_steps.is_empty() && !stats[0].cfg_cached_steps.is_empty(),
        "{stats:?}"
    );
    let cli = candle_core::safetensors::load(&output, &device)
        .unwrap()
        .remove("latents")
        .unwrap();
    let diff = (&cli - &lib.latents)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0, "CLI and library latents differ");

    // Without `uncond.*` the loop makes one call per step.
    write_inputs(&inputs, &latents, false);
    let o = cachedit(&[
        "run",
        "--family",
        "Wan",
        "--inputs",
        inputs.to_str().unwrap(),
        "--steps",
        "3",
        "--fn",
        "1",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(records(&trace).len(), 3);
}
