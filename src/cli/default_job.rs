//! The main job: baseline and cached generations on the embedded default, side by side.

use anyhow::{Context, Result};
use cachedit::demo::{self, DemoSize, TIMESTEP_DAMPING};
use cachedit::{CacheConfig, CacheOptions, render_summary};
use candle_core::Device;

use super::progress::bar;

/// The embedded default model and its generation: shared by the main job and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Denoising steps.
    #[arg(long, default_value_t = 28)]
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
    #[command(flatten)]
    demo: DemoArgs,
    /// Residual diff threshold of the cached run.
    #[arg(long, default_value_t = 0.12)]
    threshold: f64,
    /// Fn compute blocks of the cached run.
    #[arg(long = "fn", default_value_t = 1)]
    fn_blocks: usize,
    /// Bn compute blocks of the cached run.
    #[arg(long = "bn", default_value_t = 0)]
    bn_blocks: usize,
    /// Warmup steps of the cached run.
    #[arg(long, default_value_t = 8)]
    warmup: usize,
}

pub fn run(args: &DefaultArgs) -> Result<()> {
    let device = Device::Cpu;
    let size = args.demo.demo_size();
    let (steps, seed) = (args.demo.steps, args.demo.seed);
    let model = demo::demo_model(size, seed, &device).context("building the embedded default model")?;
    let blocks = size.double_blocks + size.single_blocks;
    println!(
        "cachedit: FLUX.1-architecture model, hidden {}, {} double + {} single blocks, {} image + {} text tokens, {} steps, f32 on CPU",
        size.heads * size.head_dim,
        size.double_blocks,
        size.single_blocks,
        size.grid * size.grid,
        size.text_len,
        steps
    );
    println!(
        "  weights: seeded (seed {}) with the timestep embedder damped x{TIMESTEP_DAMPING} so features drift smoothly between steps, \
as a trained model's do (random weights would decorrelate every step and nothing would cache)",
        seed
    );

    let config = CacheConfig {
        fn_compute_blocks: args.fn_blocks,
        bn_compute_blocks: args.bn_blocks,
        max_warmup_steps: args.warmup,
        residual_diff_threshold: args.threshold,
        enable_separate_cfg: Some(false),
        ..Default::default()
    };
    let options = CacheOptions::from(config.clone());

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

    let (psnr, max_err) = demo::fidelity(&base.latents, &cached.latents)?;
    let fraction = demo::computed_fraction(&cached.trace, blocks, args.fn_blocks + args.bn_blocks);
    let cached_steps: Vec<usize> = cached.trace.iter().filter(|r| r.cached).map(|r| r.step).collect();
    let speedup = base.wall.as_secs_f64() / cached.wall.as_secs_f64().max(1e-9);

    println!();
    println!("config            {}", config.strify());
    println!("baseline          {:>8.2} s", base.wall.as_secs_f64());
    println!("cached            {:>8.2} s", cached.wall.as_secs_f64());
    println!("speedup           {speedup:>8.2}x");
    println!(
        "blocks computed   {:>8.1} %  ({} of {} steps cached: {:?})",
        fraction * 100.0,
        cached_steps.len(),
        steps,
        cached_steps
    );
    println!(
        "fidelity          PSNR {psnr:.2} dB, max abs error {max_err:.4} (final latent, cached vs baseline)"
    );
    println!();
    print!("{}", render_summary(&cached.stats));
    Ok(())
}
