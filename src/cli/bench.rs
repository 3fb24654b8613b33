//! `cachedit bench`: the baseline and a grid of cache configurations on the seeded demo model
//! (`--size default|tiny|large`), measured in one process, as a table and JSON (with the thread
//! count and each run's cached steps). `--export DIR` writes the model as a diffusers folder and
//! its inputs, for `tools/reference/bench_torch.py` to run the same generation with PyTorch and
//! cache-dit (BENCHMARKS.md).
//!
//! The overhead ratio compares a cached run with the time its computed blocks should take
//! (measured / ideal, on wall time and, separately, on the process's CPU time: on a shared
//! machine the CPU time leaves out the time other processes held the cores). The ideal comes
//! from `cost_model`, fitted on the baseline and two always-cached floor runs in the same
//! process, with the floors' own engine time taken out. Every run is bracketed by short
//! uncached speed probes, and the ideal is scaled to the machine speed the run saw: on a
//! shared machine that speed drifts by several percent within minutes, more than the overhead
//! being measured. A third number needs no model: the engine's own host time inside the run
//! (`cachedit::runtime::host_time`), as `time / (time - engine)`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use cachedit::adapters::families::flux::FluxTransformer2DModel;
use cachedit::demo::{self, Run};
use cachedit::export::{self, BenchInputs};
use cachedit::{
    CacheConfig, CacheOptions, CalibratorConfig, DenoiseOptions, MaskPolicy, denoise, disable_cache,
    enable_cache_with_options, set_tracing, steps_mask, summary, take_trace,
};
use candle_core::DType;
use serde_json::json;

use super::cost_model::{CostModel, Executions, Layout, Reference};
use super::default_job::DemoArgs;
use super::device::DeviceArgs;
use super::output::{self, Kind, Outputs};
use super::progress::bar;

/// Options of `cachedit bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    demo: DemoArgs,
    #[command(flatten)]
    hardware: DeviceArgs,
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
    /// With `--export`: write the folder and inputs, then stop without benchmarking.
    #[arg(long, requires = "export")]
    export_only: bool,
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

/// Replaces the JSON file in one rename, so a reader never sees half of it.
fn write_json(path: &std::path::Path, target: &std::path::Path, doc: &serde_json::Value) -> Result<()> {
    let mut out = Outputs::default();
    out.stage(path, target, serde_json::to_string_pretty(doc)?.as_bytes())?;
    out.commit()?;
    Ok(())
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let json_target = args
        .json
        .as_deref()
        .map(|p| output::check("--json", p, Kind::Data))
        .transpose()?;
    let device = args.hardware.device()?;
    let dtype = args.hardware.dtype();
    if args.export.is_some() && dtype != DType::F32 {
        bail!("--export writes the f32 checkpoint PyTorch reads; run it with --dtype f32");
    }
    let size = args.demo.demo_size();
    let model = match &args.export {
        Some(dir) => {
            let m = export::export_model(size, args.demo.seed, dir, &device)
                .with_context(|| format!("exporting the model to {}", dir.display()))?;
            println!("wrote {} (and read it back)", dir.display());
            m
        }
        None => demo::demo_model_in(size, args.demo.seed, dtype, &device)?,
    };
    let n = size.double_blocks + size.single_blocks;
    let s = args.demo.steps;
    let inputs = BenchInputs::seeded(&model, s, args.demo.seed, &device)?.to_dtype(dtype)?;
    if let Some(dir) = &args.export {
        let path = dir.join(export::INPUTS_NAME);
        inputs.save(&path)?;
        println!("wrote {}", path.display());
        if args.export_only {
            return Ok(());
        }
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
    let timed = |label: &str, options: Option<&CacheOptions>| -> Result<Timed> {
        let pb = bar(label, s);
        let cpu0 = process_cpu_seconds();
        let mut step_ms = Vec::with_capacity(s);
        let mut last = Instant::now();
        let run = generate(&model, options, &inputs, |i, _| {
            pb.set_position(i as u64);
            step_ms.push(last.elapsed().as_secs_f64() * 1e3);
            last = Instant::now();
        })?;
        let cpu = process_cpu_seconds() - cpu0;
        pb.finish_and_clear();
        Ok(Timed { run, cpu, step_ms })
    };
    // Warm caches and allocator, then the three reference runs, each followed by a speed probe.
    let short = BenchInputs {
        sigmas: inputs.sigmas[..inputs.sigmas.len().min(3)].to_vec(),
        ..inputs.clone()
    };
    // A few uncached steps between runs measure how fast the machine is running right then; a
    // run's speed is the mean of the probes before and after it. On a shared machine that
    // speed drifts by several percent within minutes, more than the overhead to be measured.
    let warm = generate(&model, None, &short, |_, _| {})?;
    // At least two steps and about a second, so that the CPU clock's 10 ms ticks do not matter.
    let step_estimate = warm.wall.as_secs_f64() / (short.sigmas.len() - 1) as f64;
    let probe_steps = ((1.0 / step_estimate.max(1e-6)).ceil() as usize).clamp(2, s);
    let probe_inputs = BenchInputs {
        sigmas: inputs.sigmas[..=probe_steps].to_vec(),
        ..inputs.clone()
    };
    let probe = || -> Result<Probe> {
        let cpu0 = process_cpu_seconds();
        let r = generate(&model, None, &probe_inputs, |_, _| {})?;
        let steps = probe_steps as f64;
        Ok(Probe {
            wall: r.wall.as_secs_f64() / steps,
            cpu: (process_cpu_seconds() - cpu0) / steps,
        })
    };
    // The first steps of a process run slower (its heap still growing, caches cold: about 12 %
    // over the first four steps at the default size), so one discarded probe finishes the
    // warm-up.
    probe()?;
    let mut probes = vec![probe()?];
    let base = timed("baseline", None)?;
    probes.push(probe()?);
    // The floors cache every step after the first, computing Fn blocks only: one block, and
    // every double block (at least two, so that the floors differ), which separates the two
    // kinds' costs.
    let fn_doubles = size.double_blocks.max(2);
    let floor_options = |fn_blocks| {
        CacheOptions::from(CacheConfig {
            fn_compute_blocks: fn_blocks,
            max_warmup_steps: 1,
            residual_diff_threshold: 1.0,
            enable_separate_cfg: Some(false),
            ..Default::default()
        })
    };
    let floor = timed("floor", Some(&floor_options(1)))?;
    probes.push(probe()?);
    let floor_doubles = timed("floor (double blocks)", Some(&floor_options(fn_doubles)))?;
    probes.push(probe()?);
    // Speed of the run between probes i and i + 1, relative to the baseline's.
    let speed = |probes: &[Probe], i: usize| Probe::between(&probes[i], &probes[i + 1]);
    let base_speed = speed(&probes, 0);
    let relative = |p: Probe| Probe {
        wall: p.wall / base_speed.wall,
        cpu: p.cpu / base_speed.cpu,
    };
    let reference_speeds = [base_speed, speed(&probes, 1), speed(&probes, 2)].map(relative);
    let layout = Layout {
        double: size.double_blocks,
        single: size.single_blocks,
    };
    // The baseline runs uncached, so it leaves no trace: every block of every step.
    let all = Executions {
        double: (size.double_blocks * s) as f64,
        single: (size.single_blocks * s) as f64,
    };
    let references = [
        (&base, all, reference_speeds[0]),
        (
            &floor,
            layout.executions(&floor.run.trace, 1, 0),
            reference_speeds[1],
        ),
        (
            &floor_doubles,
            layout.executions(&floor_doubles.run.trace, fn_doubles, 0),
            reference_speeds[2],
        ),
    ];
    // The floors' own engine time is taken out, so that the ideal holds blocks only, and each
    // reference is brought to the baseline's machine speed.
    let fit = |seconds: fn(&Timed) -> f64, speed: fn(&Probe) -> f64| {
        CostModel::fit(references.map(|(t, executions, s)| Reference {
            executions,
            seconds: (seconds(t) - t.engine_seconds()) / speed(&s),
        }))
    };
    let wall_model = fit(|t| t.run.wall.as_secs_f64(), |p| p.wall);
    let cpu_model = fit(|t| t.cpu, |p| p.cpu);
    let (t_base, c_base) = (base.run.wall.as_secs_f64(), base.cpu);

    println!(
        "baseline {t_base:.3} s (CPU {c_base:.3} s); per block execution: double {:.2} ms, single {:.2} ms (CPU {:.2} / {:.2} ms); unskippable {:.3} s (CPU {:.3} s) ({n} blocks x {s} steps)",
        wall_model.double_block * 1e3,
        wall_model.single_block * 1e3,
        cpu_model.double_block * 1e3,
        cpu_model.single_block * 1e3,
        wall_model.unskippable,
        cpu_model.unskippable,
    );
    println!();
    println!(
        "| config                 | time (s) | CPU (s) | speedup | blocks computed | overhead | overhead CPU | rel. step | engine (ms) | in-run overhead | PSNR (dB) | max abs err | cached steps |"
    );
    println!(
        "|------------------------|----------|---------|---------|-----------------|----------|--------------|-----------|-------------|-----------------|-----------|-------------|--------------|"
    );
    let reference = |t: &Timed, speed: Probe| json!({ "time_s": t.run.wall.as_secs_f64(), "cpu_s": t.cpu, "engine_s": t.engine_seconds(), "step_ms": t.step_ms, "relative_step_time": speed.wall, "relative_step_cpu": speed.cpu });
    let model = |m: &CostModel| json!({ "double_block_ms": m.double_block * 1e3, "single_block_ms": m.single_block * 1e3, "unskippable_s": m.unskippable });
    let mut doc = json!({ "size": args.demo.size, "threads": threads, "seed": args.demo.seed,
        "hidden": size.heads * size.head_dim, "image_tokens": size.grid * size.grid, "text_tokens": size.text_len,
        "double_blocks": size.double_blocks, "single_blocks": size.single_blocks,
        "baseline_s": t_base, "baseline_cpu_s": c_base,
        "baseline": reference(&base, reference_speeds[0]), "floor": reference(&floor, reference_speeds[1]),
        "floor_doubles": reference(&floor_doubles, reference_speeds[2]),
        "cost_model": model(&wall_model), "cost_model_cpu": model(&cpu_model),
        "steps": s, "blocks": n, "runs": [] });
    let cases = grid(s, args.quick)
        .into_iter()
        .filter(|c| args.only.is_empty() || args.only.contains(&c.name));
    for case in cases {
        let timed_run = timed(&case.name, Some(&case.options))?;
        probes.push(probe()?);
        let run_speed = relative(speed(&probes, probes.len() - 2));
        let r = &timed_run.run;
        let (f, b) = (
            case.options.cache.fn_compute_blocks,
            case.options.cache.bn_compute_blocks,
        );
        let ran = layout.executions(&r.trace, f, b);
        let (t, c) = (r.wall.as_secs_f64(), timed_run.cpu);
        let (raw, raw_cpu) = (t / wall_model.ideal(ran), c / cpu_model.ideal(ran));
        // The ideal at the machine speed the run saw.
        let (overhead, overhead_cpu) = (raw / run_speed.wall, raw_cpu / run_speed.cpu);
        let engine = timed_run.engine_seconds();
        // On an asynchronous device the blocks' compute is waited for inside the engine's
        // read-back, so the host split is not the engine's cost there (`HostTime`).
        let in_run = if device.is_cpu() {
            t / (t - engine)
        } else {
            f64::NAN
        };
        let (psnr, max_err) = demo::fidelity(&base.run.latents, &r.latents)?;
        let cached: Vec<usize> = r.trace.iter().filter(|c| c.cached).map(|c| c.step).collect();
        let frac = ran.total() / all.total();
        println!(
            "| {:<22} | {t:>8.3} | {c:>7.3} | {:>6.2}x | {:>14.1}% | {overhead:>8.3} | {overhead_cpu:>12.3} | {:>9.3} | {:>11.2} | {in_run:>15.4} | {psnr:>9.2} | {max_err:>11.4} | {:>12} |",
            case.name,
            t_base / t,
            frac * 100.0,
            run_speed.wall,
            engine * 1e3,
            cached.len()
        );
        let row = json!({
            "config": case.name, "name": case.options.cache.strify(), "time_s": t, "cpu_s": c, "speedup": t_base / t,
            "computed_fraction": frac, "double_blocks_run": ran.double, "single_blocks_run": ran.single,
            "overhead_ratio": overhead, "overhead_ratio_cpu": overhead_cpu,
            "overhead_ratio_unbracketed": raw, "overhead_ratio_cpu_unbracketed": raw_cpu,
            "relative_step_time": run_speed.wall, "relative_step_cpu": run_speed.cpu,
            "engine_s": engine, "overhead_ratio_in_run": in_run,
            "psnr_db": psnr, "max_abs_err": max_err,
            "cached_steps": cached, "fn": f, "bn": b, "threshold": case.options.cache.residual_diff_threshold,
            "taylorseer_order": case.order,
            "mask": case.mask,
            "step_ms": timed_run.step_ms,
        });
        if let Some(runs) = doc["runs"].as_array_mut() {
            runs.push(row);
        }
        // Rewritten after every config: a long run stopped early keeps what it measured.
        if let (Some(path), Some(target)) = (&args.json, &json_target) {
            write_json(path, target, &doc)?;
        }
    }
    if let (Some(path), Some(target)) = (&args.json, &json_target) {
        write_json(path, target, &doc)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Per-step time of a speed probe (a few uncached steps), or a run's speed relative to another's.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// Wall seconds per step (or their ratio).
    wall: f64,
    /// CPU seconds per step (or their ratio).
    cpu: f64,
}

impl Probe {
    /// The speed of a run between two probes: their mean.
    fn between(before: &Probe, after: &Probe) -> Self {
        Self {
            wall: (before.wall + after.wall) / 2.0,
            cpu: (before.cpu + after.cpu) / 2.0,
        }
    }
}

/// One timed generation.
struct Timed {
    run: Run,
    /// Process CPU seconds it used.
    cpu: f64,
    /// Wall time of each step, in ms.
    step_ms: Vec<f64>,
}

impl Timed {
    /// The cache engine's own host time in the run (all cached lists): its calls' time outside
    /// their blocks.
    fn engine_seconds(&self) -> f64 {
        self.run
            .stats
            .iter()
            .map(|st| st.host_time.engine().as_secs_f64())
            .sum()
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
