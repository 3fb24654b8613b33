//! `cachedit run`: any family and cache configuration, on seeded or real weights, with the
//! final latent, per-step outputs, a decision trace and a diff plot written to files.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cachedit::adapters::families::flux::{Config as FluxConfig, FluxTransformer2DModel};
use cachedit::adapters::init::seeded_var_builder;
use cachedit::{
    CacheConfig, CacheOptions, CalibratorConfig, Conditioning, DenoiseOptions, Denoiser, DynamicShift,
    FlowMatchEuler, denoise, disable_cache, enable_cache_with_options, load_configs, render_summary,
    seeded_normal, set_tracing, summary, take_trace,
};
use candle_core::{DType, Device, Tensor};
use serde_json::json;

use super::plot;
use super::progress::bar;

/// Options of `cachedit run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The family (cache-dit's name).
    #[arg(long, default_value = "Flux")]
    family: String,
    /// The family's named config: `tiny`, `dev`, `schnell`, or `demo` (the embedded default).
    #[arg(long, default_value = "tiny")]
    model_config: String,
    /// A diffusers `transformer/` folder (config.json + safetensors) to load instead of seeded
    /// weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// A cache-dit YAML config (`cache_config:` ...). Flags below override its keys.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run without any cache.
    #[arg(long, conflicts_with = "config")]
    no_cache: bool,
    /// Fn_compute_blocks.
    #[arg(long = "fn")]
    fn_blocks: Option<usize>,
    /// Bn_compute_blocks.
    #[arg(long = "bn")]
    bn_blocks: Option<usize>,
    /// residual_diff_threshold.
    #[arg(long)]
    threshold: Option<f64>,
    /// max_warmup_steps.
    #[arg(long)]
    warmup: Option<usize>,
    /// max_cached_steps.
    #[arg(long)]
    max_cached: Option<i64>,
    /// max_continuous_cached_steps.
    #[arg(long)]
    max_continuous: Option<i64>,
    /// TaylorSeer calibrator of this order.
    #[arg(long)]
    taylorseer: Option<usize>,
    /// Denoising steps.
    #[arg(long, default_value_t = 28)]
    steps: usize,
    /// Seed of the weights, noise and conditioning.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// f32, bf16 or f16 (f32 on CPU is fastest).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16"])]
    dtype: String,
    /// cpu or cuda[:N] (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// A safetensors file with `latents` and the family's conditioning tensors, and optionally
    /// `sigmas` (steps + 1 values) or `timesteps` (steps values, sigma·1000).
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Write the final latent (`latents`) here, as safetensors.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Also write every step's model output (`step_000`, ...) to `--output`.
    #[arg(long, requires = "output")]
    save_steps: bool,
    /// Write one JSON record per cached-list call: step, branch, cached, reason, diff, threshold.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Plot the per-step diffs against the threshold, cached steps marked, as PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn device(spec: &str) -> Result<Device> {
    match spec.split_once(':').map_or((spec, None), |(a, b)| (a, Some(b))) {
        ("cpu", None) => Ok(Device::Cpu),
        ("cuda", ordinal) => {
            let n: usize = ordinal
                .map(str::parse)
                .transpose()
                .context("--device cuda:N needs a number")?
                .unwrap_or(0);
            if cfg!(feature = "cuda") {
                Ok(Device::new_cuda(n)?)
            } else {
                bail!(
                    "--device {spec}: this binary was built without CUDA; build with `--features cuda` (see tools/gpu/build-cuda.sh)"
                )
            }
        }
        _ => bail!("--device {spec}: expected cpu, cuda or cuda:N"),
    }
}

fn dtype(spec: &str) -> DType {
    match spec {
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        _ => DType::F32,
    }
}

fn build_model(args: &RunArgs, dtype: DType, device: &Device) -> Result<FluxTransformer2DModel> {
    if !"Flux".eq_ignore_ascii_case(&args.family) && !args.family.starts_with("Flux") {
        bail!(
            "--family {}: unknown family (run `cachedit list` for the supported ones)",
            args.family
        );
    }
    if let Some(dir) = &args.weights {
        return FluxTransformer2DModel::from_pretrained(dir, dtype, device)
            .with_context(|| format!("loading {}", dir.display()));
    }
    if args.model_config == "demo" {
        return Ok(cachedit::demo::demo_model(
            cachedit::demo::DemoSize::DEFAULT,
            args.seed,
            device,
        )?);
    }
    let cfg = match args.model_config.as_str() {
        "tiny" => FluxConfig::tiny(),
        "dev" => FluxConfig::dev(),
        "schnell" => FluxConfig::schnell(),
        other => bail!("--model-config {other}: expected tiny, dev, schnell or demo"),
    };
    Ok(FluxTransformer2DModel::new(
        cfg,
        seeded_var_builder(args.seed, dtype, device),
    )?)
}

fn cache_options(args: &RunArgs) -> Result<Option<CacheOptions>> {
    if args.no_cache {
        return Ok(None);
    }
    let mut options = match &args.config {
        Some(path) => CacheOptions::from(load_configs(path)?),
        None => CacheOptions::from(CacheConfig::default()),
    };
    let c = &mut options.cache;
    c.fn_compute_blocks = args.fn_blocks.unwrap_or(c.fn_compute_blocks);
    c.bn_compute_blocks = args.bn_blocks.unwrap_or(c.bn_compute_blocks);
    c.residual_diff_threshold = args.threshold.unwrap_or(c.residual_diff_threshold);
    c.max_warmup_steps = args.warmup.unwrap_or(c.max_warmup_steps);
    c.max_cached_steps = args.max_cached.unwrap_or(c.max_cached_steps);
    c.max_continuous_cached_steps = args.max_continuous.unwrap_or(c.max_continuous_cached_steps);
    if let Some(order) = args.taylorseer {
        options.calibrator = Some(CalibratorConfig::taylorseer(order));
    }
    Ok(Some(options))
}

/// Reads `--inputs`: the latents, conditioning tensors and an optional schedule.
fn read_inputs(
    path: &PathBuf,
    device: &Device,
    dt: DType,
) -> Result<(Tensor, Conditioning, Option<Vec<f64>>)> {
    let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(path, device)
        .with_context(|| format!("reading --inputs {}", path.display()))?;
    let mut cond = Conditioning::new();
    let (mut latents, mut sigmas) = (None, None);
    for (name, t) in tensors {
        match name.as_str() {
            "latents" => latents = Some(t.to_dtype(dt)?),
            "sigmas" => sigmas = Some(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?),
            "timesteps" => {
                let mut s: Vec<f64> = t
                    .to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1::<f64>()?
                    .iter()
                    .map(|x| x / 1000.0)
                    .collect();
                s.push(0.0);
                sigmas.get_or_insert(s);
            }
            _ => {
                cond.insert(name, t);
            }
        }
    }
    let latents = latents.with_context(|| format!("--inputs {} has no `latents` tensor", path.display()))?;
    Ok((latents, cond, sigmas))
}

pub fn run(args: &RunArgs) -> Result<()> {
    let device = device(&args.device)?;
    let dt = dtype(&args.dtype);
    let model = build_model(args, dt, &device)?;
    let options = cache_options(args)?;
    match &options {
        Some(o) => enable_cache_with_options(&model, o).context("invalid cache configuration")?,
        None => disable_cache(&model),
    }
    set_tracing(&model, true);
    let (latents, cond, sigmas) = match &args.inputs {
        Some(p) => read_inputs(p, &device, dt)?,
        None => (
            seeded_normal(&model.latent_shape(1), args.seed, dt, &device)?,
            model.synthetic_conditioning(1, args.seed, &device)?,
            None,
        ),
    };
    let opts = DenoiseOptions {
        steps: args.steps,
        scheduler: FlowMatchEuler {
            dynamic: Some(DynamicShift::FLUX),
            ..Default::default()
        },
        save_steps: args.save_steps,
        sigmas,
        ..Default::default()
    };
    let pb = bar("run", args.steps);
    let start = std::time::Instant::now();
    let out = denoise(&model, latents, &cond, None, &opts, |i, _| {
        pb.set_position(i as u64)
    })?;
    let wall = start.elapsed();
    pb.finish_and_clear();
    let trace = take_trace(&model);
    let stats = summary(&model);

    let name = options
        .as_ref()
        .map(|o| o.cache.strify())
        .unwrap_or_else(|| "NONE".into());
    println!(
        "{} ({}), {} steps in {:.2} s, cache {name}",
        args.family,
        args.model_config,
        args.steps,
        wall.as_secs_f64()
    );
    if !stats.is_empty() {
        print!("{}", render_summary(&stats));
    }
    if let Some(path) = &args.output {
        let mut tensors = vec![("latents".to_string(), out.latents.clone())];
        for (i, t) in out.step_outputs.iter().enumerate() {
            tensors.push((format!("step_{i:03}"), t.clone()));
        }
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, path).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.trace {
        let doc = json!({ "config": name, "records": trace });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let threshold = options.as_ref().map_or(0.0, |o| o.cache.residual_diff_threshold);
        plot::diffs_png(&trace, threshold, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
