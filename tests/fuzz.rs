//! Mutation fuzzing of everything that parses user input, on stable Rust as a normal test: the
//! YAML config loader, the registry parser, config validation, the config.json and safetensors
//! loaders, the weights check and the `--inputs` reader. Each target runs its corpus
//! (`tests/fuzz/corpus/<target>/`) as it is, then mutations of it (bit flips, interesting bytes
//! and tokens, insertions, deletions, splices); any panic or a case slower than
//! [`SLOW`] fails the test, and the input is saved for replay.
//!
//! `CACHEDIT_FUZZ_ITERS=100000 cargo test --release --test fuzz` runs longer; the default keeps
//! `cargo test` within seconds. `CACHEDIT_FUZZ_SEED` changes the mutations.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cachedit::inputs::{Expected, ReadOptions, check_weights_bytes, read_inputs_bytes};
use cachedit::{CacheConfig, CalibratorConfig, MaskPolicy, load_configs_str, steps_mask};
use candle_core::{DType, Device};

/// A case slower than this is a hang (a limit missing before a loop or an allocation).
const SLOW: Duration = Duration::from_secs(10);

/// splitmix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'-', b'9', b':', b'\n', b'[', b'{', b'"', b' ', b'.',
];
const TOKENS: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "!!str ",
    "NaN",
    ".nan",
    ".inf",
    "-.inf",
    "-1",
    "0",
    "18446744073709551615",
    "99999999999999999999",
    "1e999",
    "-0",
    "\"",
    "null",
    "true",
    "Fn_compute_blocks",
    "steps_computation_mask",
    "num_inference_steps",
    "fast",
    "\u{feff}",
    "é",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], binary: bool) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        // Binary formats keep their structure in a header: aim there half of the time.
        let span = if binary && rng.below(2) == 0 {
            out.len().min(256)
        } else {
            out.len()
        };
        let pos = rng.below(span + 1).min(out.len());
        match rng.below(8) {
            0 if pos < out.len() => out[pos] ^= 1 << rng.below(8),
            1 if pos < out.len() => out[pos] = BYTES[rng.below(BYTES.len())],
            2 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(pos..pos, bytes);
            }
            3 => {
                let end = (pos + 1 + rng.below(16)).min(out.len());
                out.drain(pos..end);
            }
            4 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(32)).min(out.len());
                let chunk = out[start..end].to_vec();
                out.splice(pos..pos, chunk);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(pos);
                out.extend_from_slice(&other[from..]);
            }
            6 => {
                // A number where one was: the extremes limits must catch.
                let digits = out.iter().skip(pos).position(u8::is_ascii_digit);
                if let Some(d) = digits {
                    let start = pos + d;
                    let end = start + out[start..].iter().take_while(|b| b.is_ascii_digit()).count();
                    let token = TOKENS[rng.below(TOKENS.len())].as_bytes().to_vec();
                    out.splice(start..end, token);
                }
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes().to_vec();
                out.splice(pos..pos, token);
            }
        }
    }
    out
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn iterations() -> usize {
    std::env::var("CACHEDIT_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150)
}

/// Runs `check` on the corpus of `target` and on mutations of it.
fn fuzz(target: &str, binary: bool, check: impl Fn(&[u8])) {
    let corpus = corpus(target);
    let seed = std::env::var("CACHEDIT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(19);
    let mut rng = Rng(seed ^ target.len() as u64);
    let mut cases: Vec<Vec<u8>> = corpus.clone();
    for i in 0..iterations() {
        let base = &corpus[i % corpus.len()];
        cases.push(mutate(&mut rng, base, &corpus, binary));
    }
    for (i, case) in cases.iter().enumerate() {
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| check(case)));
        let took = start.elapsed();
        if result.is_err() || took > SLOW {
            let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{target}-{i}"));
            std::fs::write(&saved, case).unwrap();
            panic!(
                "{target}: case {i} {} (input saved to {})",
                if result.is_err() {
                    "panicked".to_string()
                } else {
                    format!("took {took:?}")
                },
                saved.display()
            );
        }
    }
}

fn validate_all(cache: &CacheConfig, calibrator: Option<&CalibratorConfig>) {
    let _ = cache.validate();
    let _ = cache.validate_for_list("blocks", 4);
    let _ = cache.strify();
    for step in [0, 1, 7, 1000, usize::MAX] {
        let _ = cache.is_warmup_step(step);
    }
    if let Some(c) = calibrator {
        let _ = c.validate();
    }
}

#[test]
fn yaml_config_loader_and_validation() {
    fuzz("config_yaml", false, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(loaded) = load_configs_str(&text, Path::new("fuzz.yaml")) {
            validate_all(&loaded.cache, loaded.calibrator.as_ref());
            for m in &loaded.modifiers {
                let mut cache = loaded.cache.clone();
                m.cache.apply(&mut cache);
                validate_all(&cache, m.calibrator.as_ref());
            }
        }
    });
}

#[test]
fn registry_parser() {
    fuzz("registry_yaml", false, |bytes| {
        let _ = cachedit_codegen::registry::parse(&String::from_utf8_lossy(bytes), "registry.yaml");
    });
}

/// Structured configs from the fuzz bytes: every field from a set of extremes.
#[test]
fn config_validation_on_extreme_values() {
    const SIZES: &[usize] = &[0, 1, 2, 3, 8, 28, 10_000, 10_001, usize::MAX];
    const FLOATS: &[f64] = &[
        0.0,
        -0.0,
        0.08,
        1.0,
        -1.0,
        1e300,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    const INTS: &[i64] = &[-1, 0, 1, i64::MAX, i64::MIN];
    fuzz("config_validation", true, |bytes| {
        let mut b = bytes.iter().copied().cycle();
        let mut pick = |n: usize| b.next().map_or(0, |x| x as usize % n);
        let mask_len = SIZES[pick(SIZES.len())].min(20_000);
        let cache = CacheConfig {
            cache_type: if pick(2) == 0 {
                cachedit::CacheType::DBCache
            } else {
                cachedit::CacheType::DBPrune
            },
            fn_compute_blocks: SIZES[pick(SIZES.len())],
            bn_compute_blocks: SIZES[pick(SIZES.len())],
            residual_diff_threshold: FLOATS[pick(FLOATS.len())],
            max_accumulated_residual_diff_threshold: Some(FLOATS[pick(FLOATS.len())]),
            max_warmup_steps: SIZES[pick(SIZES.len())],
            warmup_interval: SIZES[pick(SIZES.len())],
            max_cached_steps: INTS[pick(INTS.len())],
            max_continuous_cached_steps: INTS[pick(INTS.len())],
            num_inference_steps: Some(SIZES[pick(SIZES.len())]),
            steps_computation_mask: Some((0..mask_len).map(|i| (i % 3) as u8).collect()),
            force_refresh_step_hint: Some(SIZES[pick(SIZES.len())]),
            max_dynamic_prune_threshold: Some(FLOATS[pick(FLOATS.len())]),
            dynamic_prune_threshold_relax_ratio: FLOATS[pick(FLOATS.len())],
            non_prune_block_ids: vec![SIZES[pick(SIZES.len())]],
            ..Default::default()
        };
        let calibrator = match pick(3) {
            0 => CalibratorConfig::taylorseer(SIZES[pick(SIZES.len())]),
            1 => CalibratorConfig::foca(),
            _ => CalibratorConfig::dmd(),
        };
        validate_all(&cache, Some(&calibrator));
        let steps = SIZES[pick(SIZES.len())];
        let start = Instant::now();
        let _ = steps_mask(steps, MaskPolicy::ALL[pick(4)]);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "steps_mask({steps}) is slow"
        );
    });
}

#[test]
fn config_json_loader() {
    use cachedit::adapters::families::{
        auraflow, bria, chroma, flux, hidream, hunyuan_video, mochi, qwen_image, sd3,
    };
    use cachedit::adapters::loader::parse_config;
    fuzz("config_json", false, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let path = Path::new("config.json");
        let _ = parse_config::<auraflow::Config>(&text, path);
        let _ = parse_config::<bria::Config>(&text, path);
        let _ = parse_config::<chroma::Config>(&text, path);
        let _ = parse_config::<flux::Config>(&text, path);
        let _ = parse_config::<hidream::Config>(&text, path);
        let _ = parse_config::<hunyuan_video::Config>(&text, path);
        let _ = parse_config::<mochi::Config>(&text, path);
        let _ = parse_config::<qwen_image::Config>(&text, path);
        let _ = parse_config::<sd3::Config>(&text, path);
    });
}

#[test]
fn safetensors_loader_and_weights_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.safetensors");
    fuzz("safetensors", true, |bytes| {
        let _ = check_weights_bytes(bytes, &file);
        std::fs::write(&file, bytes).unwrap();
        let _ =
            cachedit::adapters::Checkpoint::from_files(std::slice::from_ref(&file), DType::F32, &Device::Cpu);
    });
}

#[test]
fn inputs_reader() {
    use cachedit::adapters::families::flux::{Config, FluxTransformer2DModel};
    let device = Device::Cpu;
    let model = FluxTransformer2DModel::new(
        Config::tiny(),
        cachedit::adapters::seeded_var_builder(3, DType::F32, &device),
    )
    .unwrap();
    let expected = Expected::of(&model, &device).unwrap();
    fuzz("inputs", true, |bytes| {
        for steps in [1, 4, 10_000] {
            let opts = ReadOptions {
                expected: &expected,
                dtype: DType::F32,
                steps,
                check_finite: steps != 4,
            };
            let _ = read_inputs_bytes(bytes, Path::new("inputs.safetensors"), opts, &device);
        }
    });
}

/// Writes the seed corpus (run once with `--ignored`; the files are committed).
#[test]
#[ignore]
fn write_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    put(
        "config_yaml",
        "nested.yaml",
        b"cache_config:\n  Fn_compute_blocks: 1\n  Bn_compute_blocks: 0\n  residual_diff_threshold: 0.12\n  max_warmup_steps: 4\n  num_inference_steps: 28\n  steps_computation_mask: fast\n  enable_taylorseer: true\n  taylorseer_order: 1\nparams_modifiers:\n  - list: single_transformer_blocks\n    cache_config: { residual_diff_threshold: 0.2 }\n",
    );
    put(
        "config_yaml",
        "flat.yaml",
        b"Fn_compute_blocks: 8\nBn_compute_blocks: 0\nresidual_diff_threshold: 0.08\nmax_cached_steps: -1\nsteps_computation_mask: [1, 1, 1, 0, 1, 0, 1, 1]\nenable_dmd: true\ndmd_history: 6\n",
    );
    put(
        "config_yaml",
        "prune.yaml",
        b"cache_config:\n  cache_type: DBPrune\n  Fn_compute_blocks: 1\n  enable_dynamic_prune_threshold: true\n  non_prune_block_ids: [0, 3]\n  force_refresh_step_hint: 10\n  force_refresh_step_policy: repeat\n",
    );
    let registry = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("registry.yaml")).unwrap();
    put("registry_yaml", "registry.yaml", &registry);
    put("config_validation", "seed0", &[0u8; 32]);
    put("config_validation", "seed1", &(0u8..64).collect::<Vec<_>>());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/tests/fixtures");
    for family in [
        "auraflow_tiny",
        "bria_tiny",
        "chroma_tiny",
        "flux_tiny",
        "hidream_tiny",
        "hunyuan_video_tiny",
        "mochi_tiny",
        "qwen_image_tiny",
        "sd3_tiny",
    ] {
        let json = std::fs::read(fixtures.join(family).join("transformer/config.json")).unwrap();
        put("config_json", &format!("{family}.json"), &json);
    }
    let device = Device::Cpu;
    let small: std::collections::HashMap<String, candle_core::Tensor> = [
        (
            "a".to_string(),
            candle_core::Tensor::new(&[[1f32, 2.], [3., 4.]], &device).unwrap(),
        ),
        (
            "b".to_string(),
            candle_core::Tensor::new(&[1u8, 2, 3], &device).unwrap(),
        ),
        (
            "c".to_string(),
            candle_core::Tensor::new(&[0.5f32], &device)
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap(),
        ),
    ]
    .into_iter()
    .collect();
    let path = root.join("safetensors/small.safetensors");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    candle_core::safetensors::save(&small, &path).unwrap();
    use cachedit::Denoiser;
    use cachedit::adapters::families::flux::{Config, FluxTransformer2DModel};
    let model = FluxTransformer2DModel::new(
        Config::tiny(),
        cachedit::adapters::seeded_var_builder(3, DType::F32, &device),
    )
    .unwrap();
    let mut tensors: std::collections::HashMap<String, candle_core::Tensor> = model
        .synthetic_conditioning(1, 5, &device)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tensors.insert(
        "latents".into(),
        cachedit::seeded_normal(&model.latent_shape(1), 5, DType::F32, &device).unwrap(),
    );
    tensors.insert(
        "sigmas".into(),
        candle_core::Tensor::new(&[1f32, 0.75, 0.5, 0.25, 0.0], &device).unwrap(),
    );
    let path = root.join("inputs/flux_tiny.safetensors");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
}
