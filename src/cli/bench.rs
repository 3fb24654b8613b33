//! `cachedit bench`: the baseline and a grid of cache configurations on the seeded demo model
//! (`--size default|tiny|large`), measured in one process, as a table and JSON (with the thread
//! count and each run's cached steps). `--export DIR` writes the model as a diffusers folder and
//! its inputs, for `tools/reference/bench_torch.py` to run the same generation with PyTorch and
//! cache-dit (BENCHMARKS.md).
//!
//! The overhead ratio compares a cached run with the time its computed blocks should take. A
//! run's time is modelled as `E + b·blocks_run`: `E` is what no cache can skip (embedders, final
//! layer, scheduler), `b` the time of one block execution. Both come from two reference runs in
//! the same process: the baseline (`N·S` block executions) and an always-cached run (`F1B0`,
//! threshold 1, warmup 1: `N + S - 1`). Ideal = `E + b·(blocks the config ran)`; overhead ratio
//! = measured / ideal. Engine costs inside the always-cached run (the diff is skipped there, the
//! residual add is not) are folded into `E`, so the ratio slightly understates them. The model
//! is fitted twice, on wall time and on the process's CPU time: on a shared machine the CPU
//! time leaves out the time other processes held the cores.

use std::time::Instant;

use anyhow::{Context, Result};
use cachedit::adapters::families::flux::FluxTransformer2DModel;
use cachedit::demo::{self, Run};
use cachedit::export::{self, BenchInputs};
use cachedit::{
    CacheConfig, CacheOptions, CalibratorConfig, DenoiseOptions, MaskPolicy, denoise, disable_cache,
    enable_cache_with_options, set_tracing, steps_mask, summary, take_trace,
};
use candle_core::Device;
use serde_json::json;

use super::default_job::DemoArgs;
use super::progress::bar;

/// Options of `cachedit bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    demo: DemoArgs,
    /// Only F1B0 at three thresholds (a quick check).
    #[arg(long)]
    quick: bool,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write the model as a diffusers folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`) and its inputs (`inputs.safetensors`: latents,
    /// conditioning, sigmas) here, then benchmark the model read back from it, so that
    /// `tools/reference/bench_torch.py DIR` runs the same weights and inputs.
    #[arg(long)]
    export: Option<std::path::PathBuf>,
    /// Run only the grid configs of these names (e.g. `--only "F1B0 R0.12"`), for the large
    /// size where the whole grid takes long.
    #[arg(long)]
    only: Vec<String>,
}

/// One timed generation of `model` from `inputs`, with the cache configured by `options`.
fn generate(
    model: &FluxTransformer2DModel,
    options: Option<&CacheOptions>,
    inputs: &BenchInputs,
    progress: impl FnMut(usize, usize),
) -> Result<Run> {
    match options {
        Some(o) => enable_cache_with_options(model, o)?,
        None => disable_cache(model),
    }
    set_tracing(model, true);
    let opts = DenoiseOptions {
        steps: inputs.sigmas.len() - 1,
        sigmas: Some(inputs.sigmas.clone()),
        ..Default::default()
    };
    let start = Instant::now();
    let out = denoise(model, inputs.latents.clone(), &inputs.cond, None, &opts, progress)?;
    let wall = start.elapsed();
    let trace = take_trace(model);
    set_tracing(model, false);
    Ok(Run {
        latents: out.latents,
        wall,
        trace,
        stats: summary(model),
    })
}

struct Case {
    name: String,
    options: CacheOptions,
    /// TaylorSeer order (0: none).
    order: usize,
    /// The step mask policy, if any.
    mask: Option<&'static str>,
}

fn grid(steps: usize, quick: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    let layouts: &[(usize, usize)] = if quick {
        &[(1, 0)]
    } else {
        &[(1, 0), (8, 0), (1, 1)]
    };
    let thresholds: &[f64] = if quick {
        &[0.08, 0.12, 0.2]
    } else {
        &[0.05, 0.08, 0.12, 0.2, 0.3]
    };
    for &(f, b) in layouts {
        for &r in thresholds {
            for order in if quick { vec![0] } else { vec![0, 1, 2] } {
                let cache = CacheConfig {
                    fn_compute_blocks: f,
                    bn_compute_blocks: b,
                    residual_diff_threshold: r,
                    enable_separate_cfg: Some(false),
                    ..Default::default()
                };
                let calibrator = (order > 0).then(|| CalibratorConfig::taylorseer(order));
                let name = format!(
                    "F{f}B{b} R{r}{}",
                    if order > 0 {
                        format!(" T{order}")
                    } else {
                        String::new()
                    }
                );
                cases.push(Case {
                    name,
                    options: CacheOptions {
                        cache,
                        calibrator,
                        modifiers: Vec::new(),
                    },
                    order,
                    mask: None,
                });
            }
        }
    }
    if let Ok(mask) = steps_mask(steps, MaskPolicy::Medium) {
        let cache = CacheConfig {
            fn_compute_blocks: 1,
            residual_diff_threshold: 0.12,
            steps_computation_mask: Some(mask),
            num_inference_steps: Some(steps),
            enable_separate_cfg: Some(false),
            ..Default::default()
        };
        cases.push(Case {
            name: "F1B0 R0.12 mask=medium".into(),
            options: cache.into(),
            order: 0,
            mask: Some("medium"),
        });
    }
    cases
}

fn blocks_run(run: &Run, blocks: usize, fn_bn: usize) -> usize {
    run.trace
        .iter()
        .map(|r| if r.cached { fn_bn } else { blocks })
        .sum()
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let device = Device::Cpu;
    let size = args.demo.demo_size();
    let model = match &args.export {
        Some(dir) => {
            let m = export::export_model(size, args.demo.seed, dir, &device)
                .with_context(|| format!("exporting the model to {}", dir.display()))?;
            println!("wrote {} (and read it back)", dir.display());
            m
        }
        None => demo::demo_model(size, args.demo.seed, &device)?,
    };
    let n = size.double_blocks + size.single_blocks;
    let s = args.demo.steps;
    let inputs = BenchInputs::seeded(&model, s, args.demo.seed, &device)?;
    if let Some(dir) = &args.export {
        let path = dir.join(export::INPUTS_NAME);
        inputs.save(&path)?;
        println!("wrote {}", path.display());
    }
    let threads = candle_core::utils::get_num_threads();
    println!(
        "hidden {}, {} double + {} single blocks, {} image + {} text tokens, {s} steps, {threads} threads",
        size.heads * size.head_dim,
        size.double_blocks,
        size.single_blocks,
        size.grid * size.grid,
        size.text_len
    );
    let timed = |label: &str, options: Option<&CacheOptions>| -> Result<(Run, f64)> {
        let pb = bar(label, s);
        let cpu0 = process_cpu_seconds();
        let r = generate(&model, options, &inputs, |i, _| pb.set_position(i as u64))?;
        let cpu = process_cpu_seconds() - cpu0;
        pb.finish_and_clear();
        Ok((r, cpu))
    };
    // Warm caches and allocator with two steps, then the two reference runs.
    let short = BenchInputs {
        sigmas: inputs.sigmas[..inputs.sigmas.len().min(3)].to_vec(),
        ..inputs.clone()
    };
    generate(&model, None, &short, |_, _| {})?;
    let (base, c_base) = timed("baseline", None)?;
    let always = CacheOptions::from(CacheConfig {
        fn_compute_blocks: 1,
        max_warmup_steps: 1,
        residual_diff_threshold: 1.0,
        enable_separate_cfg: Some(false),
        ..Default::default()
    });
    let (floor, c_floor) = timed("floor", Some(&always))?;
    let (t_base, t_floor) = (base.wall.as_secs_f64(), floor.wall.as_secs_f64());
    let (all_blocks, floor_blocks) = ((n * s) as f64, blocks_run(&floor, n, 1) as f64);
    let wall_model = CostModel::fit(t_base, t_floor, all_blocks, floor_blocks);
    let cpu_model = CostModel::fit(c_base, c_floor, all_blocks, floor_blocks);

    println!(
        "baseline {t_base:.3} s (CPU {c_base:.3} s); per block execution {:.2} ms; unskippable {:.3} s ({n} blocks x {s} steps)",
        wall_model.b * 1e3,
        wall_model.e,
    );
    println!();
    println!(
        "| config                 | time (s) | CPU (s) | speedup | blocks computed | overhead | overhead CPU | PSNR (dB) | max abs err | cached steps |"
    );
    println!(
        "|------------------------|----------|---------|---------|-----------------|----------|--------------|-----------|-------------|--------------|"
    );
    let mut rows = Vec::new();
    let cases = grid(s, args.quick)
        .into_iter()
        .filter(|c| args.only.is_empty() || args.only.contains(&c.name));
    for case in cases {
        let (r, c) = timed(&case.name, Some(&case.options))?;
        let fn_bn = case.options.cache.fn_compute_blocks + case.options.cache.bn_compute_blocks;
        let ran = blocks_run(&r, n, fn_bn) as f64;
        let t = r.wall.as_secs_f64();
        let (overhead, overhead_cpu) = (t / wall_model.ideal(ran), c / cpu_model.ideal(ran));
        let (psnr, max_err) = demo::fidelity(&base.latents, &r.latents)?;
        let cached: Vec<usize> = r.trace.iter().filter(|c| c.cached).map(|c| c.step).collect();
        let frac = ran / all_blocks;
        println!(
            "| {:<22} | {t:>8.3} | {c:>7.3} | {:>6.2}x | {:>14.1}% | {overhead:>8.3} | {overhead_cpu:>12.3} | {psnr:>9.2} | {max_err:>11.4} | {:>12} |",
            case.name,
            t_base / t,
            frac * 100.0,
            cached.len()
        );
        rows.push(json!({
            "config": case.name, "name": case.options.cache.strify(), "time_s": t, "cpu_s": c, "speedup": t_base / t,
            "computed_fraction": frac, "overhead_ratio": overhead, "overhead_ratio_cpu": overhead_cpu,
            "psnr_db": psnr, "max_abs_err": max_err,
            "cached_steps": cached, "fn": fn_bn - case.options.cache.bn_compute_blocks,
            "bn": case.options.cache.bn_compute_blocks, "threshold": case.options.cache.residual_diff_threshold,
            "taylorseer_order": case.order,
            "mask": case.mask,
        }));
    }
    if let Some(path) = &args.json {
        let doc = json!({ "size": args.demo.size, "threads": threads, "seed": args.demo.seed,
            "hidden": size.heads * size.head_dim, "image_tokens": size.grid * size.grid, "text_tokens": size.text_len,
            "baseline_s": t_base, "baseline_cpu_s": c_base, "floor_s": t_floor, "floor_cpu_s": c_floor,
            "block_ms": wall_model.b * 1e3, "unskippable_s": wall_model.e,
            "block_cpu_ms": cpu_model.b * 1e3, "unskippable_cpu_s": cpu_model.e,
            "steps": s, "blocks": n, "runs": rows });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A run's time as `e + b·blocks`, fitted on the baseline and the always-cached floor run.
struct CostModel {
    /// What no cache can skip (embedders, final layer, scheduler), in seconds.
    e: f64,
    /// One block execution, in seconds.
    b: f64,
}

impl CostModel {
    fn fit(t_base: f64, t_floor: f64, base_blocks: f64, floor_blocks: f64) -> Self {
        let b = (t_base - t_floor) / (base_blocks - floor_blocks).max(1.0);
        Self {
            e: (t_base - b * base_blocks).max(0.0),
            b,
        }
    }

    fn ideal(&self, blocks: f64) -> f64 {
        self.e + self.b * blocks
    }
}

/// CPU time (user + system, all threads) this process has used, from `/proc/self/stat`; 0 where
/// it cannot be read (then the CPU columns read 0 and NaN). On a shared machine it measures the
/// work done where wall time also counts the time other processes held the cores.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15
    // (proc(5)), in clock ticks of 1/100 s on Linux.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
