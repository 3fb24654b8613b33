//! The main job: baseline and cached generations on the embedded trained demo model, side by
//! side, with pixel-space fidelity and a PNG grid (or on seeded weights with `--size`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use cachedit::adapters::demo::{self as trained, DemoClass};
use cachedit::demo::{self, DemoSize, TIMESTEP_DAMPING};
use cachedit::{CacheConfig, CacheOptions, CalibratorConfig, render_summary};
use candle_core::Device;

use super::output::{self, Kind, Outputs};
use super::progress::bar;

/// The embedded default model and its generation: shared by the main job and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Denoising steps (1 to 10000).
    #[arg(long, default_value_t = 28, value_parser = super::checks::steps)]
    pub steps: usize,
    /// Seed of the weights, noise and conditioning.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Model size: `default` (hidden 256, 4+8 blocks, 256 image tokens), `tiny` (for tests) or
    /// `large` (hidden 1024, 8+16 blocks, 1024 image + 512 text tokens: the benchmark size).
    #[arg(long, default_value = "default", value_parser = ["default", "tiny", "large"])]
    pub size: String,
}

impl DemoArgs {
    /// The model size named by `--size`.
    pub fn demo_size(&self) -> DemoSize {
        match self.size.as_str() {
            "tiny" => DemoSize::TINY,
            "large" => DemoSize::LARGE,
            _ => DemoSize::DEFAULT,
        }
    }
}

/// Options of the main job.
#[derive(Debug, Clone, clap::Args)]
pub struct DefaultArgs {
    /// Denoising steps (1 to 10000).
    #[arg(long, default_value_t = 28, value_parser = super::checks::steps)]
    steps: usize,
    /// Seed of the noise (and, with `--size`, of the seeded weights and conditioning).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run on a model with seeded (untrained) weights of this size instead of the trained demo
    /// model: `tiny` (for tests), `default` or `large` (the sizes of `cachedit bench`).
    #[arg(long, value_parser = ["default", "tiny", "large"])]
    size: Option<String>,
    /// Where the trained model's PNG grid goes (top row baseline, bottom row cached); must end
    /// in `.png`.
    #[arg(long, default_value = "cachedit-default.png")]
    out: PathBuf,
    /// Residual diff threshold of the cached run (default: 0.24 on the trained model, 0.12 on
    /// seeded weights).
    #[arg(long, value_parser = super::checks::finite)]
    threshold: Option<f64>,
    /// Fn compute blocks of the cached run.
    #[arg(long = "fn", default_value_t = 1)]
    fn_blocks: usize,
    /// Bn compute blocks of the cached run.
    #[arg(long = "bn", default_value_t = 0)]
    bn_blocks: usize,
    /// Warmup steps of the cached run (default: 4 on the trained model, 8 on seeded weights).
    #[arg(long)]
    warmup: Option<usize>,
    /// TaylorSeer order for the cached run (0: off).
    #[arg(long, default_value_t = 0)]
    taylorseer: usize,
}

/// Defaults of the cached run on the trained model (see the README's caching table).
const TRAINED_THRESHOLD: f64 = 0.24;
const TRAINED_WARMUP: usize = 4;
/// Defaults of the cached run on seeded weights.
const SEEDED_THRESHOLD: f64 = 0.12;
const SEEDED_WARMUP: usize = 8;

impl DefaultArgs {
    fn cache_options(&self, threshold: f64, warmup: usize) -> (CacheConfig, CacheOptions) {
        let config = CacheConfig {
            fn_compute_blocks: self.fn_blocks,
            bn_compute_blocks: self.bn_blocks,
            max_warmup_steps: self.warmup.unwrap_or(warmup),
            residual_diff_threshold: self.threshold.unwrap_or(threshold),
            enable_separate_cfg: Some(false),
            ..Default::default()
        };
        let options = CacheOptions {
            cache: config.clone(),
            calibrator: (self.taylorseer > 0).then(|| CalibratorConfig::taylorseer(self.taylorseer)),
            modifiers: Vec::new(),
        };
        (config, options)
    }
}

/// Runs the main job: on the trained demo model, or on seeded weights with `--size`.
pub fn run(args: &DefaultArgs) -> Result<()> {
    match &args.size {
        Some(size) => run_seeded(args, size),
        None => run_trained(args),
    }
}

fn print_timing(
    config: &CacheConfig,
    base: &demo::Run,
    cached: &demo::Run,
    steps: usize,
    blocks: usize,
    fn_bn: usize,
) {
    let fraction = demo::computed_fraction(&cached.trace, blocks, fn_bn);
    let cached_steps: Vec<usize> = cached.trace.iter().filter(|r| r.cached).map(|r| r.step).collect();
    let speedup = base.wall.as_secs_f64() / cached.wall.as_secs_f64().max(1e-9);
    println!();
    println!("config            {}", config.strify());
    println!("baseline          {:>8.3} s", base.wall.as_secs_f64());
    println!("cached            {:>8.3} s", cached.wall.as_secs_f64());
    println!("speedup           {speedup:>8.2}x");
    println!(
        "blocks computed   {:>8.1} %  ({} of {} steps cached: {:?})",
        fraction * 100.0,
        cached_steps.len(),
        steps,
        cached_steps
    );
    if let Some(line) = engine_line(&cached.stats, cached.wall) {
        println!("engine            {line}");
    }
}

/// The cache engine's own host time in a run of `wall` (its calls' time outside their blocks),
/// as a line for the terminal; `None` without a cache.
pub fn engine_line(stats: &[cachedit::CacheStats], wall: std::time::Duration) -> Option<String> {
    if stats.is_empty() {
        return None;
    }
    let calls: usize = stats.iter().map(|s| s.host_time.calls).sum();
    let engine: f64 = stats.iter().map(|s| s.host_time.engine().as_secs_f64()).sum();
    let wall = wall.as_secs_f64();
    Some(format!(
        "{:.2} ms host time in {calls} cached-list calls ({:.2} % of the run; in-run overhead ratio {:.4})",
        engine * 1e3,
        engine / wall.max(1e-12) * 100.0,
        wall / (wall - engine).max(1e-12)
    ))
}

fn run_trained(args: &DefaultArgs) -> Result<()> {
    // Before the two generations: a bad path fails at once.
    let out_target = output::check("--out", &args.out, Kind::Png)?;
    let device = Device::Cpu;
    let steps = args.steps;
    let model = trained::load_demo_model(&device).context("loading the embedded trained demo model")?;
    let cfg = model.config().clone();
    let classes = demo::TRAINED_CLASSES
        .iter()
        .map(|name| DemoClass::parse(name).with_context(|| format!("demo class {name:?}")))
        .collect::<Result<Vec<_>>>()?;
    println!(
        "cachedit: trained demo model (FLUX.1 architecture, hidden {}, {} double + {} single blocks, {} image + {} text tokens: \
{s}x{s} RGB shapes in {p}x{p}-pixel patches), {steps} Euler steps, f32 on CPU",
        cfg.num_attention_heads * cfg.attention_head_dim,
        cfg.num_layers,
        cfg.num_single_layers,
        trained::GRID * trained::GRID,
        trained::TEXT_LEN,
        s = trained::dataset::IMAGE_SIZE,
        p = trained::PATCH,
    );
    println!(
        "  weights: trained by cachedit on its procedural shapes (adapters/assets/demo, embedded); one batch of {} samples: {}; noise seed {}",
        classes.len(),
        demo::TRAINED_CLASSES.join(", "),
        args.seed
    );
    let (config, options) = args.cache_options(TRAINED_THRESHOLD, TRAINED_WARMUP);

    let pb = bar("baseline", steps);
    let base = demo::generate_trained(&model, &classes, None, steps, args.seed, |i, _| {
        pb.set_position(i as u64)
    })?;
    pb.finish_and_clear();
    let pb = bar("cached", steps);
    let cached = demo::generate_trained(&model, &classes, Some(&options), steps, args.seed, |i, _| {
        pb.set_position(i as u64)
    })?;
    pb.finish_and_clear();

    let blocks = cfg.num_layers + cfg.num_single_layers;
    print_timing(
        &config,
        &base.run,
        &cached.run,
        steps,
        blocks,
        args.fn_blocks.saturating_add(args.bn_blocks),
    );
    if options.calibrator.is_some() {
        println!("calibrator        TaylorSeer, order {}", args.taylorseer);
    }
    let (psnr, max_err) = demo::fidelity(&base.run.latents, &cached.run.latents)?;
    println!(
        "latent            PSNR {psnr:.2} dB, max abs error {max_err:.4} (final latents, cached vs baseline, over the baseline's range)"
    );
    // Pixels are the latents unpacked (no VAE), clamped to the image range [-1, 1] as the
    // PNG shows them; PSNR and SSIM use data range 2.
    let clamp = |t: &candle_core::Tensor| t.clamp(-1f32, 1f32);
    let (pb_img, pc_img) = (clamp(&base.images)?, clamp(&cached.images)?);
    let pixel_psnr = trained::image::psnr_tensors(&pb_img, &pc_img, 2.0)?;
    let pixel_ssim = trained::ssim::ssim_tensors(&pb_img, &pc_img, 2.0)?;
    println!(
        "pixels            PSNR {pixel_psnr:.2} dB, SSIM {pixel_ssim:.4} (images in [-1, 1], data range 2, f64; mean SSIM over the {} samples)",
        classes.len()
    );
    let mut tiles = trained::image::tensor_to_images(&pb_img)?;
    tiles.extend(trained::image::tensor_to_images(&pc_img)?);
    let mut outputs = Outputs::default();
    outputs.stage(
        &args.out,
        &out_target,
        &trained::image::grid(&tiles, classes.len(), 8, 2).to_png(),
    )?;
    outputs.commit()?;
    println!(
        "image             {} (top row: baseline, bottom row: cached; columns: {})",
        args.out.display(),
        demo::TRAINED_CLASSES.join(", ")
    );
    println!();
    print!("{}", render_summary(&cached.run.stats));
    Ok(())
}

fn run_seeded(args: &DefaultArgs, size: &str) -> Result<()> {
    let device = Device::Cpu;
    let demo_args = DemoArgs {
        steps: args.steps,
        seed: args.seed,
        size: size.to_string(),
    };
    let size = demo_args.demo_size();
    let (steps, seed) = (args.steps, args.seed);
    let model = demo::demo_model(size, seed, &device).context("building the seeded-weights model")?;
    let blocks = size.double_blocks + size.single_blocks;
    println!(
        "cachedit: FLUX.1-architecture model with SEEDED (untrained) weights, hidden {}, {} double + {} single blocks, {} image + {} text tokens, {} steps, f32 on CPU",
        size.heads * size.head_dim,
        size.double_blocks,
        size.single_blocks,
        size.grid * size.grid,
        size.text_len,
        steps
    );
    println!(
        "  weights: seeded (seed {}) with the timestep embedder damped x{TIMESTEP_DAMPING} so features drift smoothly between steps, \
as a trained model's do (random weights would decorrelate every step and nothing would cache); no images",
        seed
    );
    let (config, options) = args.cache_options(SEEDED_THRESHOLD, SEEDED_WARMUP);

    let pb = bar("baseline", steps);
    let base = demo::generate(&model, None, steps, seed, &device, |i, _| {
        pb.set_position(i as u64)
    })?;
    pb.finish_and_clear();
    let pb = bar("cached", steps);
    let cached = demo::generate(&model, Some(&options), steps, seed, &device, |i, _| {
        pb.set_position(i as u64)
    })?;
    pb.finish_and_clear();

    print_timing(
        &config,
        &base,
        &cached,
        steps,
        blocks,
        args.fn_blocks.saturating_add(args.bn_blocks),
    );
    let (psnr, max_err) = demo::fidelity(&base.latents, &cached.latents)?;
    println!(
        "fidelity          PSNR {psnr:.2} dB, max abs error {max_err:.4} (final latent, cached vs baseline)"
    );
    println!();
    print!("{}", render_summary(&cached.stats));
    Ok(())
}
