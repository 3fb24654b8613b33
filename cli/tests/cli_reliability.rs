//! The `cachedit` binary given hostile but realistic input (issue 19): limits checked before
//! work, finite numbers, tensor types and shapes, and output files that replace nothing but
//! regular files, all or none. Every case fails fast with a message naming what is wrong.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cachedit::adapters::families::flux::{Config, FluxTransformer2DModel};
use cachedit::adapters::init::seeded_var_builder;
use cachedit::{Denoiser, seeded_normal};
use candle_core::{DType, Device, Tensor};

fn cachedit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachedit"))
        .args(args)
        .output()
        .expect("run cachedit")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `args`, expects exit code `code` within `limit`, and returns stderr.
fn fails(args: &[&str], code: i32, limit: Duration) -> String {
    let start = Instant::now();
    let o = cachedit(args);
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    assert!(took < limit, "{args:?} took {took:?}");
    stderr(&o)
}

const FAST: Duration = Duration::from_secs(20);

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Tiny Flux's inputs (the model `run --seed 3` builds), with `edit` applied to the tensors.
fn inputs_file(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> PathBuf {
    let device = Device::Cpu;
    let model =
        FluxTransformer2DModel::new(Config::tiny(), seeded_var_builder(3, DType::F32, &device)).unwrap();
    let mut tensors: HashMap<String, Tensor> = model
        .synthetic_conditioning(1, 5, &device)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tensors.insert(
        "latents".into(),
        seeded_normal(&model.latent_shape(1), 5, DType::F32, &device).unwrap(),
    );
    edit(&mut tensors);
    let path = dir.join("inputs.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    path
}

fn with_nan(t: &Tensor) -> Tensor {
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[0] = f32::NAN;
    Tensor::from_vec(v, t.shape(), t.device()).unwrap()
}

#[test]
fn step_counts_are_limited_before_anything_is_allocated() {
    for steps in ["18446744073709551615", "1000000000", "10001", "0"] {
        for cmd in [
            &["run", "--steps", steps][..],
            &["demo", "--steps", steps],
            &["--steps", steps],
        ] {
            let err = fails(cmd, 2, FAST);
            assert!(err.contains("expected 1 to 10000"), "{cmd:?}: {err}");
        }
    }
}

#[test]
fn schedules_from_inputs_are_checked_against_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::Cpu;
    let empty = Tensor::zeros(0, DType::F32, &device).unwrap();
    let file = inputs_file(dir.path(), |t| {
        t.insert("sigmas".into(), empty);
    });
    let err = fails(
        &["run", "--seed", "3", "--inputs", p(&file), "--steps", "4"],
        1,
        FAST,
    );
    assert!(err.contains("`sigmas` is empty"), "{err}");
    let file = inputs_file(dir.path(), |t| {
        t.insert(
            "sigmas".into(),
            Tensor::new(&[1.0f32, 0.5, 0.0], &device).unwrap(),
        );
    });
    let err = fails(
        &["run", "--seed", "3", "--inputs", p(&file), "--steps", "4"],
        1,
        FAST,
    );
    assert!(
        err.contains("`sigmas` has 3 values, but --steps 4 needs steps + 1 = 5"),
        "{err}"
    );
}

#[test]
fn a_huge_mask_policy_and_a_huge_key_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cache.yaml");
    std::fs::write(
        &cfg,
        "cache_config:\n  Fn_compute_blocks: 1\n  num_inference_steps: 1000000000000\n  steps_computation_mask: fast\n",
    )
    .unwrap();
    let err = fails(&["run", "--config", p(&cfg)], 1, FAST);
    assert!(err.contains("more than the 10000"), "{err}");

    // An explicit key (`? `): YAML's implicit keys stop at 1024 characters, explicit ones do not.
    let key = "k".repeat(1 << 20);
    std::fs::write(&cfg, format!("cache_config:\n  ? {key}\n  : 1\n")).unwrap();
    let err = fails(&["run", "--config", p(&cfg)], 1, FAST);
    assert!(err.contains("unknown key `kkk"), "{err}");
    assert!(err.contains("bytes in all"), "{err}");
    assert!(err.len() < 1000, "the key is cut short: {} bytes", err.len());

    // A mask that does not cover the run is an error, not a silently partial mask.
    std::fs::write(
        &cfg,
        "cache_config:\n  Fn_compute_blocks: 1\n  num_inference_steps: 28\n  steps_computation_mask: fast\n",
    )
    .unwrap();
    let err = fails(&["run", "--config", p(&cfg), "--steps", "8"], 1, FAST);
    assert!(err.contains("has 28 entries but --steps is 8"), "{err}");
}

#[test]
fn numbers_must_be_finite_and_negative_values_parse() {
    for (flag, value) in [
        ("--shift", "NaN"),
        ("--guidance-scale", "inf"),
        ("--threshold", "nan"),
        ("--threshold", "-1e999"),
    ] {
        let err = fails(&["run", flag, value], 2, FAST);
        assert!(err.contains("expected a finite number"), "{flag} {value}: {err}");
    }
    let err = fails(&["demo", "--threshold", "NaN"], 2, FAST);
    assert!(err.contains("expected a finite number"), "{err}");
    // A negative value needs no `=`: the validation gives the real error.
    let err = fails(&["run", "--threshold", "-1", "--steps", "2"], 1, FAST);
    assert!(
        err.contains("`residual_diff_threshold` must be a number >= 0, found -1"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cache.yaml");
    for value in [".inf", "-.inf", ".nan", "1e999"] {
        std::fs::write(
            &cfg,
            format!("cache_config:\n  Fn_compute_blocks: 1\n  residual_diff_threshold: {value}\n"),
        )
        .unwrap();
        let err = fails(&["run", "--config", p(&cfg), "--steps", "2"], 1, FAST);
        assert!(err.contains("finite") || err.contains("NaN"), "{value}: {err}");
    }
}

#[test]
fn nan_inputs_are_refused_at_load_and_caught_during_the_run_when_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["latents", "encoder_hidden_states"] {
        let file = inputs_file(dir.path(), |t| {
            let bad = with_nan(&t[name]);
            t.insert(name.into(), bad);
        });
        let err = fails(
            &["run", "--seed", "3", "--steps", "2", "--inputs", p(&file)],
            1,
            FAST,
        );
        assert!(
            err.contains(&format!("tensor `{name}` holds NaN or infinite values")),
            "{err}"
        );
        let err = fails(
            &[
                "run",
                "--seed",
                "3",
                "--steps",
                "2",
                "--inputs",
                p(&file),
                "--no-finite-check",
            ],
            1,
            FAST,
        );
        assert!(
            err.contains("step 0 (timestep") && err.contains("model output holds NaN"),
            "{err}"
        );
    }
}

#[test]
fn integer_and_misshapen_inputs_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let file = inputs_file(dir.path(), |t| {
        let ints = t["latents"].to_dtype(DType::I64).unwrap();
        t.insert("latents".into(), ints);
    });
    let err = fails(&["run", "--seed", "3", "--inputs", p(&file)], 1, FAST);
    assert!(
        err.contains("tensor `latents` is I64, expected a float tensor"),
        "{err}"
    );

    let file = inputs_file(dir.path(), |t| {
        let dims = t["latents"].dims().to_vec();
        let wrong = Tensor::zeros((dims[0], dims[1], 7), DType::F32, &Device::Cpu).unwrap();
        t.insert("latents".into(), wrong);
    });
    let err = fails(&["run", "--seed", "3", "--inputs", p(&file)], 1, FAST);
    assert!(
        err.contains("tensor `latents` has shape [1, 256, 7], expected [B, 256, 4]"),
        "{err}"
    );

    let file = inputs_file(dir.path(), |t| {
        let e = &t["encoder_hidden_states"];
        let wrong = Tensor::zeros((2, e.dim(1).unwrap(), 5), DType::F32, &Device::Cpu).unwrap();
        t.insert("encoder_hidden_states".into(), wrong);
    });
    let err = fails(&["run", "--seed", "3", "--inputs", p(&file)], 1, FAST);
    assert!(
        err.contains("tensor `encoder_hidden_states` has shape [2, 32, 5], expected [1, *, 32]"),
        "{err}"
    );
}

/// A copy of the Chroma fixture's weights folder with one tensor replaced by `edit`.
fn weights_copy(dir: &Path, edit: impl FnOnce(&Tensor) -> Tensor) -> (PathBuf, String) {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/tests/fixtures/chroma_tiny/transformer");
    let dst = dir.join("transformer");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join("config.json"), dst.join("config.json")).unwrap();
    let file = "diffusion_pytorch_model.safetensors";
    let mut tensors = candle_core::safetensors::load(src.join(file), &Device::Cpu).unwrap();
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let name = names[0].clone();
    let bad = edit(&tensors[&name]);
    tensors.insert(name.clone(), bad);
    candle_core::safetensors::save(&tensors, dst.join(file)).unwrap();
    (dst, name)
}

#[test]
fn nan_and_integer_weights_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (weights, name) = weights_copy(dir.path(), |t| with_nan(&t.to_dtype(DType::F32).unwrap()));
    let args = [
        "run",
        "--family",
        "Chroma",
        "--weights",
        p(&weights),
        "--steps",
        "2",
        "--fn",
        "1",
    ];
    let err = fails(&args, 1, FAST);
    assert!(
        err.contains(&format!("tensor `{name}` holds NaN or infinite values")),
        "{err}"
    );
    let mut unchecked = args.to_vec();
    unchecked.push("--no-finite-check");
    let err = fails(&unchecked, 1, FAST);
    assert!(err.contains("step 0 (timestep"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let (weights, name) = weights_copy(dir.path(), |t| t.to_dtype(DType::U8).unwrap());
    let args = [
        "run",
        "--family",
        "Chroma",
        "--weights",
        p(&weights),
        "--steps",
        "2",
        "--fn",
        "1",
    ];
    let err = fails(&args, 1, FAST);
    assert!(
        err.contains(&format!("tensor `{name}` is U8, expected a float tensor")),
        "{err}"
    );
}

#[test]
fn outputs_never_replace_special_files() {
    let dir = tempfile::tempdir().unwrap();
    // A directory, even one named like a PNG.
    let folder = dir.path().join("plot.png");
    std::fs::create_dir(&folder).unwrap();
    let out = dir.path().join("out.safetensors");
    let err = fails(
        &["run", "--steps", "2", "--output", p(&out), "--plot", p(&folder)],
        1,
        FAST,
    );
    assert!(err.contains("is a directory; refusing to replace it"), "{err}");
    assert!(!out.exists(), "nothing is written when one output is refused");
    assert!(folder.is_dir());

    // A FIFO (writing would block or replace it).
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let err = fails(&["run", "--steps", "2", "--trace", p(&fifo)], 1, FAST);
        assert!(err.contains("is a FIFO; refusing to replace it"), "{err}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    // Images: the extension must be .png, checked before the run.
    let err = fails(
        &["--steps", "2", "--out", p(&dir.path().join("grid.jpg"))],
        1,
        FAST,
    );
    assert!(err.contains("only PNG images are written"), "{err}");
    let err = fails(
        &["run", "--steps", "2", "--plot", p(&dir.path().join("plot.jpg"))],
        1,
        FAST,
    );
    assert!(err.contains("only PNG images are written"), "{err}");

    // A dangling symlink is refused.
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("missing/file"), &dangling).unwrap();
    let err = fails(&["run", "--steps", "2", "--output", p(&dangling)], 1, FAST);
    assert!(err.contains("symlink to nothing that exists"), "{err}");
}

#[test]
fn outputs_write_through_symlinks_with_the_umask_or_the_existing_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.json");
    std::fs::write(&real, "old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (out, plot) = (dir.path().join("out.safetensors"), dir.path().join("plot.png"));
    let script = format!(
        "umask 027; exec '{}' run --steps 3 --fn 1 --trace '{}' --output '{}' --plot '{}'",
        env!("CARGO_BIN_EXE_cachedit"),
        p(&link),
        p(&out),
        p(&plot)
    );
    let o = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link stays"
    );
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert!(doc["records"].is_array());
    let mode = |f: &Path| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&real), 0o640, "an existing file keeps its mode");
    assert_eq!(mode(&out), 0o640, "a new file gets 0666 minus the umask 027");
    assert_eq!(&std::fs::read(&plot).unwrap()[1..4], b"PNG");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("cachedit-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn error_chains_print_each_cause_once() {
    // A weights folder whose checkpoint lacks what the config asks for: the loader's error
    // repeats its cause in its own message.
    let dir = tempfile::tempdir().unwrap();
    let (weights, _) = weights_copy(dir.path(), |t| t.clone());
    std::fs::remove_file(weights.join("diffusion_pytorch_model.safetensors")).unwrap();
    std::fs::write(
        weights.join("diffusion_pytorch_model.safetensors"),
        b"not safetensors",
    )
    .unwrap();
    let err = fails(
        &[
            "run",
            "--family",
            "Chroma",
            "--weights",
            p(&weights),
            "--no-finite-check",
        ],
        1,
        FAST,
    );
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    let parts: Vec<&str> = line.trim_start_matches("error: ").split(": ").collect();
    for (i, a) in parts.iter().enumerate() {
        for b in &parts[i + 1..] {
            assert!(a.len() < 8 || !b.contains(a), "`{a}` repeated in: {line}");
        }
    }
}

/// Found by the fuzzer: a size near `u64::MAX` in a config.json overflowed a sum in validation.
#[test]
fn config_json_sizes_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/tests/fixtures/chroma_tiny/transformer/config.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    json["axes_dims_rope"] = serde_json::json!([u64::MAX, 4, 8]);
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, json.to_string()).unwrap();
    let err = fails(&["run", "--family", "Chroma", "--model-config", p(&cfg)], 1, FAST);
    assert!(
        err.contains("`axes_dims_rope` holds 18446744073709551615, more than the largest size accepted"),
        "{err}"
    );
}
