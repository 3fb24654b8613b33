//! The `cachedit` binary end to end: the main job, `run` with a YAML config, traces that match
//! the library API record for record, and clean failures.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::process::{Command, Output};

use cachedit::adapters::families::flux::{Config, FluxTransformer2DModel};
use cachedit::adapters::init::seeded_var_builder;
use cachedit::{
    CacheConfig, DenoiseOptions, Denoiser, DynamicShift, FlowMatchEuler, denoise, enable_cache,
    seeded_normal, set_tracing, take_trace,
};
use candle_core::{DType, Device, Tensor};

fn cachedit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachedit"))
        .args(args)
        .output()
        .expect("run cachedit")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn default_command_reports_speedup_fidelity_and_summary() {
    let o = cachedit(&[
        "demo",
        "--size",
        "tiny",
        "--steps",
        "12",
        "--warmup",
        "2",
        "--threshold",
        "0.3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "baseline",
        "cached",
        "speedup",
        "blocks computed",
        "PSNR",
        "max abs error",
        "Cache Steps",
        "DBCache_F1B0_W2I1M0MC0_R0.3_CFG0",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

/// The main job on the trained demo model (fewer steps, to keep the test short): pixel
/// fidelity and a PNG grid of 2 rows × 4 classes of 16×16 images at scale 8 with 2-pixel gaps.
#[test]
fn default_command_on_the_trained_model_writes_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("grid.png");
    let o = cachedit(&["--steps", "10", "--warmup", "2", "--out", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "trained demo model",
        "speedup",
        "blocks computed",
        "cached-list calls",
        "in-run overhead ratio",
        "latent            PSNR",
        "pixels            PSNR",
        "SSIM",
        "top row: baseline, bottom row: cached",
        "Cache Steps",
        "DBCache_F1B0_W2I1M0MC0",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    // IHDR width and height: 4 columns and 2 rows of 128-pixel tiles, gaps between and around.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (4 * 128 + 5 * 2, 2 * 128 + 3 * 2));
}

#[test]
fn run_with_a_yaml_config_and_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cache.yaml");
    std::fs::write(
        &cfg,
        "cache_config:\n  Fn_compute_blocks: 1\n  residual_diff_threshold: 0.5\n  max_warmup_steps: 2\n",
    )
    .unwrap();
    let o = cachedit(&["run", "--config", cfg.to_str().unwrap(), "--steps", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("DBCache_F1B0_W2I1M0MC0_R0.5"),
        "{}",
        stdout(&o)
    );

    std::fs::write(&cfg, "cache_config:\n  Fn_compute_blocks: 1\n  max_warmup: 2\n").unwrap();
    let o = cachedit(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 3: unknown key `max_warmup`"),
        "{}",
        stderr(&o)
    );

    let o = cachedit(&["run", "--fn", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`Fn_compute_blocks` must be at least 1"),
        "{}",
        stderr(&o)
    );

    let o = cachedit(&["run", "--steps", "many"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects bad flags");
    let o = cachedit(&["run", "--device", "tpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("expected cpu, cuda or cuda:N"));
}

/// `run --inputs ... --trace ...` on the tiny Flux reproduces the trace of the library API.
#[test]
fn cli_trace_matches_the_library_record_for_record() {
    let device = Device::Cpu;
    let model =
        FluxTransformer2DModel::new(Config::tiny(), seeded_var_builder(3, DType::F32, &device)).unwrap();
    let latents = seeded_normal(&model.latent_shape(1), 5, DType::F32, &device).unwrap();
    let cond = model.synthetic_conditioning(1, 5, &device).unwrap();
    let config = CacheConfig {
        fn_compute_blocks: 1,
        max_warmup_steps: 2,
        residual_diff_threshold: 0.5,
        ..Default::default()
    };
    enable_cache(&model, &config).unwrap();
    set_tracing(&model, true);
    let opts = DenoiseOptions {
        steps: 8,
        scheduler: FlowMatchEuler {
            dynamic: Some(DynamicShift::FLUX),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let lib_out = denoise(&model, latents.clone(), &cond, None, &opts, |_, _| {}).unwrap();
    let lib_trace = serde_json::to_value(take_trace(&model)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    let mut tensors: std::collections::HashMap<String, Tensor> =
        cond.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    tensors.insert("latents".into(), latents);
    candle_core::safetensors::save(&tensors, &inputs).unwrap();
    let (trace, output) = (dir.path().join("trace.json"), dir.path().join("out.safetensors"));
    let o = cachedit(&[
        "run",
        "--seed",
        "3",
        "--fn",
        "1",
        "--warmup",
        "2",
        "--threshold",
        "0.5",
        "--steps",
        "8",
        "--inputs",
        inputs.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert_eq!(doc["records"], lib_trace);
    assert!(
        doc["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["cached"] == true),
        "the run caches something"
    );
    assert_eq!(
        max_abs_diff(&saved_latents(&output, &device), &lib_out.latents),
        0.0
    );
}

#[test]
fn bench_prints_a_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = cachedit(&[
        "bench",
        "--quick",
        "--size",
        "tiny",
        "--steps",
        "10",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("| F1B0 R0.08"), "{}", stdout(&o));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        let f = r["computed_fraction"].as_f64().unwrap();
        assert!(f > 0.0 && f <= 1.0, "{r}");
    }
}

#[test]
fn list_prints_the_registered_families() {
    let o = cachedit(&["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (n, names) = cachedit::supported_pipelines();
    assert!(n >= 1, "the binary links the adapters' registrations");
    assert!(
        stdout(&o).contains(&format!("{n} supported families")),
        "{}",
        stdout(&o)
    );
    for name in names {
        assert!(stdout(&o).contains(&name), "{name}");
    }
}

/// `run --family` on non-Flux families through the registry: a pipeline class name resolves by
/// prefix, the registry's CFG layout drives the loop (Chroma: two calls per step, each list
/// traced on both branches; SD3: one batched call), unknown names list the known ones.
#[test]
fn run_drives_any_registered_family_with_its_cfg_layout() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.json");
    let steps = 4;
    let o = cachedit(&[
        "run",
        "--family",
        "ChromaPipeline",
        "--steps",
        &steps.to_string(),
        "--fn",
        "1",
        "--threshold",
        "0.5",
        "--warmup",
        "1",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Chroma (tiny), 4 steps"), "{out}");
    assert!(out.contains("CFG separate x3.5"), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let records = doc["records"].as_array().unwrap();
    // 2 lists x 2 calls (conditional, unconditional) per step.
    assert_eq!(records.len(), steps * 2 * 2, "{doc}");
    let branches: std::collections::BTreeSet<String> =
        records.iter().map(|r| r["branch"].to_string()).collect();
    assert_eq!(branches.len(), 2, "both CFG branches are traced: {branches:?}");

    let o = cachedit(&[
        "run",
        "--family",
        "StableDiffusion3",
        "--steps",
        "3",
        "--fn",
        "1",
        "--shift",
        "3.0",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("StableDiffusion3 (tiny), 3 steps"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("CFG batched"), "{}", stdout(&o));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert_eq!(
        doc["records"].as_array().unwrap().len(),
        3,
        "one batched call per step"
    );

    // Real (diffusers-written) weights of a non-Flux family, and its config.json as a config.
    let chroma = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../adapters/tests/fixtures/chroma_tiny/transformer"
    );
    let o = cachedit(&[
        "run",
        "--family",
        "Chroma",
        "--weights",
        chroma,
        "--steps",
        "2",
        "--fn",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("Chroma ({chroma}), 2 steps")),
        "{}",
        stdout(&o)
    );
    let config = format!("{chroma}/config.json");
    let o = cachedit(&[
        "run",
        "--family",
        "Chroma",
        "--model-config",
        &config,
        "--steps",
        "2",
        "--fn",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cachedit(&["run", "--family", "Mochi", "--weights", chroma, "--steps", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown config key"), "{}", stderr(&o));

    let o = cachedit(&["run", "--family", "NoSuchModel"]);
    assert_eq!(o.status.code(), Some(1));
    for known in ["Flux", "StableDiffusion3", "HiDream"] {
        assert!(stderr(&o).contains(known), "{}", stderr(&o));
    }
    let o = cachedit(&["run", "--family", "StableDiffusion3", "--model-config", "sd9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("stable-diffusion-3.5-medium"),
        "{}",
        stderr(&o)
    );
    let o = cachedit(&["run", "--family", "Mochi", "--model-config", "demo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("demo model is a Flux model"),
        "{}",
        stderr(&o)
    );
}

/// With no cache flags, `run` on a tiny model (fewer blocks than cache-dit's default F8) falls
/// back to F1 and says so, instead of refusing; an explicit `--fn` that does not fit is an error.
#[test]
fn run_with_defaults_fits_the_tiny_models() {
    let o = cachedit(&["run", "--family", "AuraFlow", "--steps", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("using --fn 1"), "{}", stderr(&o));
    assert!(stdout(&o).contains("DBCache_F1B0"), "{}", stdout(&o));
    let o = cachedit(&["run", "--family", "AuraFlow", "--steps", "4", "--fn", "8"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Fn_compute_blocks"), "{}", stderr(&o));
}

/// `--scheduler ddim` swaps the sampler (the schedule's integer timesteps reach the trace's
/// step count), and `--shift` with DDIM is refused.
#[test]
fn run_with_the_ddim_scheduler() {
    let o = cachedit(&[
        "run",
        "--family",
        "Flux",
        "--steps",
        "5",
        "--scheduler",
        "ddim",
        "--fn",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("5 steps"), "{}", stdout(&o));
    let o = cachedit(&["run", "--family", "Flux", "--scheduler", "ddim", "--shift", "3"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--shift"), "{}", stderr(&o));
}

/// `run --family PixArtSigmaPipeline --weights DIR --inputs FILE`: diffusers-written weights (the
/// α-layout tiny fixture: caption projection, micro-conditions) and the transformer's inputs
/// under diffusers' names (`encoder_hidden_states`, `encoder_attention_mask`, `resolution`,
/// `aspect_ratio`; `uncond.*` for the negative prompt) run the registry's batched CFG and DDIM,
/// cached, and give the library's latents and trace exactly.
#[test]
fn run_pixart_from_diffusers_weights_and_inputs_matches_the_library() {
    use cachedit::adapters::FamilyModel;
    use cachedit::adapters::families::pixart::PixArtTransformer2DModel;

    let device = Device::Cpu;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../adapters/tests/fixtures/pixart_tiny_alpha"
    );
    let weights = format!("{fixture}/transformer");
    let io = candle_core::safetensors::load(format!("{fixture}/io.safetensors"), &device).unwrap();
    let first = |k: &str, i: usize| io[k].narrow(0, i, 1).unwrap().contiguous().unwrap();
    let mut tensors = std::collections::HashMap::new();
    tensors.insert("latents".to_string(), first("hidden_states", 0));
    for k in [
        "encoder_hidden_states",
        "encoder_attention_mask",
        "resolution",
        "aspect_ratio",
    ] {
        tensors.insert(k.to_string(), first(k, 0));
    }
    for k in ["encoder_hidden_states", "encoder_attention_mask"] {
        tensors.insert(format!("uncond.{k}"), first(k, 1));
    }
    let cond = tensors
        .iter()
        .filter(|(k, _)| *k != "latents" && !k.starts_with("uncond."))
        .fold(cachedit::Conditioning::new(), |c, (k, v)| {
            c.with(k.clone(), v.clone())
        });
    let mut uncond = cond.clone();
    for k in ["encoder_hidden_states", "encoder_attention_mask"] {
        uncond.insert(k, tensors[&format!("uncond.{k}")].clone());
    }

    let model =
        PixArtTransformer2DModel::from_pretrained(std::path::Path::new(&weights), DType::F32, &device)
            .unwrap();
    let config = CacheConfig {
        fn_compute_blocks: 1,
        max_warmup_steps: 1,
        residual_diff_threshold: 0.5,
        enable_separate_cfg: Some(false),
        ..Default::default()
    };
    let steps = 6;
    let (lib_latents, lib_trace) =
        library_ddim_run(&model, &config, steps, 4.5, &tensors["latents"], &cond, &uncond);
    let (o, doc, cli_latents) = cli_run_with_inputs(
        &tensors,
        steps,
        &[
            "--family",
            "PixArtSigmaPipeline",
            "--weights",
            &weights,
            "--guidance-scale",
            "4.5",
            "--fn",
            "1",
            "--warmup",
            "1",
            "--threshold",
            "0.5",
        ],
    );
    assert!(stdout(&o).contains("PixArt ("), "{}", stdout(&o));
    assert!(stdout(&o).contains("CFG batched x4.5"), "{}", stdout(&o));
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), steps, "one batched call per step: {doc}");
    assert!(
        records.iter().any(|r| r["cached"] == true),
        "the run caches something"
    );
    assert_eq!(doc["records"], lib_trace);
    assert_eq!(max_abs_diff(&cli_latents, &lib_latents), 0.0);
}

/// `run --family DiTPipeline --weights DIR --inputs FILE`: `class_labels` and, for the
/// unconditional branch, `uncond.class_labels` = the null class, as `DiTPipeline` batches them;
/// the CLI's cached run gives the library's latents and trace exactly.
#[test]
fn run_dit_from_diffusers_weights_and_class_labels_matches_the_library() {
    use cachedit::adapters::FamilyModel;
    use cachedit::adapters::families::dit::DiTTransformer2DModel;

    let device = Device::Cpu;
    let weights = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../adapters/tests/fixtures/dit_tiny/transformer"
    );
    let latents = seeded_normal(&[1, 4, 8, 8], 7, DType::F32, &device).unwrap();
    let (label, null) = (
        Tensor::new(&[3i64], &device).unwrap(),
        Tensor::new(&[8i64], &device).unwrap(),
    );
    let cond = cachedit::Conditioning::new().with("class_labels", label.clone());
    let uncond = cachedit::Conditioning::new().with("class_labels", null.clone());
    let model =
        DiTTransformer2DModel::from_pretrained(std::path::Path::new(weights), DType::F32, &device).unwrap();
    let config = CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        max_warmup_steps: 1,
        residual_diff_threshold: 0.5,
        enable_separate_cfg: Some(false),
        ..Default::default()
    };
    let steps = 5;
    let (lib_latents, lib_trace) = library_ddim_run(&model, &config, steps, 4.0, &latents, &cond, &uncond);
    let tensors: std::collections::HashMap<String, Tensor> = [
        ("latents".to_string(), latents),
        ("class_labels".to_string(), label),
        ("uncond.class_labels".to_string(), null),
    ]
    .into_iter()
    .collect();
    let (o, doc, cli_latents) = cli_run_with_inputs(
        &tensors,
        steps,
        &[
            "--family",
            "DiTPipeline",
            "--weights",
            weights,
            "--guidance-scale",
            "4",
            "--fn",
            "1",
            "--bn",
            "0",
            "--warmup",
            "1",
            "--threshold",
            "0.5",
        ],
    );
    assert!(stdout(&o).contains("DiT ("), "{}", stdout(&o));
    assert!(stdout(&o).contains("CFG batched x4"), "{}", stdout(&o));
    assert_eq!(
        doc["records"].as_array().unwrap().len(),
        steps,
        "one batched call per step"
    );
    assert_eq!(doc["records"], lib_trace);
    assert_eq!(max_abs_diff(&cli_latents, &lib_latents), 0.0);
}

/// `bench --dtype bf16` builds the model and its inputs in bf16 (the GPU precision) and runs the
/// grid; `--device cuda` on a CPU-only build is a clear error.
#[test]
fn bench_in_bf16_and_cuda_without_the_feature() {
    let o = cachedit(&[
        "bench",
        "--size",
        "tiny",
        "--steps",
        "8",
        "--only",
        "F1B0 R0.12",
        "--dtype",
        "bf16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("F1B0 R0.12"), "{}", stdout(&o));
    if !cfg!(feature = "cuda") {
        let o = cachedit(&["bench", "--size", "tiny", "--device", "cuda"]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("--features cuda"), "{}", stderr(&o));
    }
}

/// `run --scheduler ddim --inputs` with a `timesteps` tensor steps through those training
/// timesteps: the CLI's final latent is the library's with the same override.
#[test]
fn run_with_ddim_and_given_timesteps_matches_the_library() {
    let device = Device::Cpu;
    let model =
        FluxTransformer2DModel::new(Config::tiny(), seeded_var_builder(3, DType::F32, &device)).unwrap();
    let latents = seeded_normal(&model.latent_shape(1), 5, DType::F32, &device).unwrap();
    let cond = model.synthetic_conditioning(1, 5, &device).unwrap();
    let given = vec![900.0, 600.0, 300.0, 10.0];
    let opts = DenoiseOptions {
        steps: 4,
        scheduler: cachedit::Scheduler::for_kind(cachedit::SchedulerKind::Ddim),
        timesteps: Some(given.clone()),
        ..Default::default()
    };
    let lib_out = denoise(&model, latents.clone(), &cond, None, &opts, |_, _| {}).unwrap();
    assert_eq!(lib_out.timesteps, given);

    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    let mut tensors: std::collections::HashMap<String, Tensor> =
        cond.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    tensors.insert("latents".into(), latents);
    tensors.insert(
        "timesteps".into(),
        Tensor::new(given.as_slice(), &device).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &inputs).unwrap();
    let output = dir.path().join("out.safetensors");
    let o = cachedit(&[
        "run",
        "--seed",
        "3",
        "--no-cache",
        "--steps",
        "4",
        "--scheduler",
        "ddim",
        "--inputs",
        inputs.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        max_abs_diff(&saved_latents(&output, &device), &lib_out.latents),
        0.0
    );
}

/// The library's cached run under the registry's DDIM and batched CFG: the final latents and the
/// trace as JSON, what `cachedit run` must reproduce.
fn library_ddim_run<M: Denoiser + cachedit::CachedTransformer>(
    model: &M,
    config: &CacheConfig,
    steps: usize,
    guidance_scale: f64,
    latents: &Tensor,
    cond: &cachedit::Conditioning,
    uncond: &cachedit::Conditioning,
) -> (Tensor, serde_json::Value) {
    enable_cache(model, config).unwrap();
    set_tracing(model, true);
    let opts = DenoiseOptions {
        steps,
        scheduler: cachedit::Scheduler::for_kind(cachedit::SchedulerKind::Ddim),
        cfg: cachedit::CfgLayout::Batched,
        guidance_scale,
        ..Default::default()
    };
    let out = denoise(model, latents.clone(), cond, Some(uncond), &opts, |_, _| {}).unwrap();
    (out.latents, serde_json::to_value(take_trace(model)).unwrap())
}

/// `cachedit run ARGS --inputs FILE --steps N --trace --output` on `tensors` saved as the inputs
/// file: the (successful) output, the trace document and the final latents.
fn cli_run_with_inputs(
    tensors: &std::collections::HashMap<String, Tensor>,
    steps: usize,
    args: &[&str],
) -> (Output, serde_json::Value, Tensor) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    candle_core::safetensors::save(tensors, &inputs).unwrap();
    let (trace, output) = (dir.path().join("trace.json"), dir.path().join("out.safetensors"));
    let steps = steps.to_string();
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--inputs",
        inputs.to_str().unwrap(),
        "--steps",
        &steps,
        "--trace",
        trace.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let o = cachedit(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let latents = saved_latents(&output, &Device::Cpu);
    (o, doc, latents)
}

/// The `latents` tensor of a `--output` file.
fn saved_latents(path: &std::path::Path, device: &candle_core::Device) -> candle_core::Tensor {
    candle_core::safetensors::load(path, device)
        .unwrap()
        .remove("latents")
        .unwrap()
}

fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
