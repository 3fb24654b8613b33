//! Samples the embedded demo model and measures caching on it:
//! `cargo run --release -p cachedit-adapters --example demo_eval [out_dir]`.
//!
//! Writes `samples.png` (each class with seeds 0-3, two classes per row of 8) and
//! `samples_cached.png` (seed 0, F1B0 R0.16 W4), and prints, for DBCache F1B0 at several thresholds and warmups, with
//! and without TaylorSeer (order 1), the fraction of steps cached and the PSNR against the
//! uncached samples.

use std::path::PathBuf;

use cachedit_adapters::demo::image::{grid, psnr_tensors, tensor_to_images};
use cachedit_adapters::demo::{DemoClass, generate, load_demo_model};
use cachedit_runtime::{
    CacheConfig, CacheOptions, CalibratorConfig, disable_cache, enable_cache_with_options, summary,
};
use candle_core::Device;

const STEPS: usize = 28;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    let model = load_demo_model(&Device::Cpu)?;
    let classes: Vec<DemoClass> = (0..DemoClass::COUNT).filter_map(DemoClass::from_index).collect();
    // One row per class, four seeds per row: batch the 16 classes per seed.
    let mut per_seed = Vec::new();
    let start = std::time::Instant::now();
    for seed in 0..4u64 {
        per_seed.push(generate(&model, &classes, STEPS, seed)?);
    }
    let uncached_secs = start.elapsed().as_secs_f64() / 4.0;
    let mut images = Vec::new();
    let seeds: Vec<_> = per_seed.iter().map(tensor_to_images).collect::<Result<_, _>>()?;
    for c in 0..classes.len() {
        for s in &seeds {
            images.push(s[c].clone());
        }
    }
    std::fs::create_dir_all(&out)?;
    grid(&images, 8, 3, 2).save_png(&out.join("samples.png"))?;
    println!("uncached: {uncached_secs:.2}s per 16-image batch of {STEPS} steps");
    let reference = &per_seed[0];

    println!("| calibrator | threshold | warmup | cached steps | fraction | PSNR (dB) | time (s) |");
    println!("|---|---|---|---|---|---|---|");
    for taylor in [false, true] {
        for warmup in [4usize, 8] {
            for threshold in [0.08, 0.12, 0.16, 0.24] {
                let options = CacheOptions {
                    cache: CacheConfig {
                        fn_compute_blocks: 1,
                        bn_compute_blocks: 0,
                        residual_diff_threshold: threshold,
                        max_warmup_steps: warmup,
                        ..Default::default()
                    },
                    calibrator: taylor.then(|| CalibratorConfig::taylorseer(1)),
                    modifiers: Vec::new(),
                };
                enable_cache_with_options(&model, &options)?;
                let t = std::time::Instant::now();
                let cached = generate(&model, &classes, STEPS, 0)?;
                let secs = t.elapsed().as_secs_f64();
                let stats = summary(&model);
                let n = stats.first().map_or(0, |s| s.cached_steps.len());
                let psnr = psnr_tensors(reference, &cached, 2.0)?;
                println!(
                    "| {} | {threshold} | {warmup} | {n}/{STEPS} | {:.2} | {psnr:.2} | {secs:.2} |",
                    if taylor { "TaylorSeer(1)" } else { "none" },
                    n as f64 / STEPS as f64
                );
                if !taylor && warmup == 4 && threshold == 0.16 {
                    grid(&tensor_to_images(&cached)?, 8, 3, 2).save_png(&out.join("samples_cached.png"))?;
                }
                disable_cache(&model);
            }
        }
    }
    Ok(())
}
