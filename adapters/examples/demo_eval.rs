//! Samples the embedded demo model and measures caching on it:
//! `cargo run --release -p cachedit-adapters --example demo_eval [out_dir]`.
//!
//! Writes `samples.png` (each of the 16 classes with seeds 0-7, one class per row; rows grouped
//! by shape: circle, square, triangle, cross, each in red, green, blue, yellow) and
//! `samples_cached.png` (the same with the default cache config of `cargo run`), and prints,
//! for DBCache F1B0 at several thresholds and warmups, with and without TaylorSeer (order 1),
//! the steps cached, the fraction of blocks computed, and pixel PSNR / SSIM against the uncached
//! samples (seeds 0-7, all 16 classes).

use std::path::PathBuf;

use cachedit_adapters::demo::image::{grid, psnr_tensors, tensor_to_images};
use cachedit_adapters::demo::ssim::ssim_tensors;
use cachedit_adapters::demo::{DemoClass, generate, load_demo_model};
use cachedit_runtime::{
    CacheConfig, CacheOptions, CalibratorConfig, disable_cache, enable_cache_with_options, summary,
};
use candle_core::{Device, Tensor};

const STEPS: usize = 28;
const SEEDS: u64 = 8;
/// Blocks of the demo model's cached list (2 double + 2 single).
const BLOCKS: f64 = 4.0;

fn all_seeds(
    model: &cachedit_adapters::families::flux::FluxTransformer2DModel,
    classes: &[DemoClass],
) -> Result<(Vec<Tensor>, Vec<usize>), Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let mut cached = Vec::new();
    for seed in 0..SEEDS {
        out.push(generate(model, classes, STEPS, seed)?.clamp(-1f32, 1f32)?);
        cached.push(summary(model).first().map_or(0, |s| s.cached_steps.len()));
    }
    Ok((out, cached))
}

fn save_grid(per_seed: &[Tensor], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let seeds: Vec<_> = per_seed.iter().map(tensor_to_images).collect::<Result<_, _>>()?;
    let mut images = Vec::new();
    for c in 0..DemoClass::COUNT {
        for s in &seeds {
            images.push(s[c].clone());
        }
    }
    grid(&images, SEEDS as usize, 4, 2).save_png(path)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    let model = load_demo_model(&Device::Cpu)?;
    let classes: Vec<DemoClass> = (0..DemoClass::COUNT).filter_map(DemoClass::from_index).collect();
    let start = std::time::Instant::now();
    disable_cache(&model);
    let (reference, _) = all_seeds(&model, &classes)?;
    let secs = start.elapsed().as_secs_f64() / SEEDS as f64;
    std::fs::create_dir_all(&out)?;
    save_grid(&reference, &out.join("samples.png"))?;
    println!("uncached: {secs:.2}s per 16-image batch of {STEPS} steps");
    let base = Tensor::cat(&reference, 0)?;

    println!(
        "| calibrator | threshold | warmup | cached steps (mean) | blocks computed | pixel PSNR (dB) | SSIM |"
    );
    println!("|---|---|---|---|---|---|---|");
    for taylor in [false, true] {
        for warmup in [4usize, 8] {
            for threshold in [0.08, 0.12, 0.16, 0.24, 0.32] {
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
                let (cached, n) = all_seeds(&model, &classes)?;
                disable_cache(&model);
                let mean_cached = n.iter().sum::<usize>() as f64 / n.len() as f64;
                let computed = (STEPS as f64 - mean_cached * (BLOCKS - 1.0) / BLOCKS) / STEPS as f64;
                let cached_all = Tensor::cat(&cached, 0)?;
                let psnr = psnr_tensors(&base, &cached_all, 2.0)?;
                let ssim = ssim_tensors(&base, &cached_all, 2.0)?;
                println!(
                    "| {} | {threshold} | {warmup} | {mean_cached:.1}/{STEPS} | {:.1} % | {psnr:.2} | {ssim:.4} |",
                    if taylor { "TaylorSeer(1)" } else { "none" },
                    computed * 100.0
                );
                if !taylor && warmup == 4 && threshold == 0.24 {
                    save_grid(&cached, &out.join("samples_cached.png"))?;
                }
            }
        }
    }
    Ok(())
}
