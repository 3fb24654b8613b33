//! `cachedit run`: any family and cache configuration, on seeded or real weights, with the
//! final latent, per-step outputs, a decision trace and a diff plot written to files.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cachedit::{
    BuildRequest, CacheConfig, CacheOptions, CalibratorConfig, CfgLayout, ConfigSource, DenoiseOptions,
    Denoiser, FamilyEntry, FlowMatchEuler, Scheduler, SchedulerKind, WeightsSource, denoise, disable_cache,
    enable_cache_with_options, load_configs, render_summary, seeded_normal, set_tracing, summary, take_trace,
};
use candle_core::{DType, Device, Tensor};
use serde_json::json;

use super::checks;
use super::device::DeviceArgs;
use super::output::{self, Kind, Outputs};
use super::plot;
use super::progress::bar;

/// Options of `cachedit run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The family: a registered name or a pipeline/transformer class name starting with one
    /// (`cachedit list`), e.g. `StableDiffusion3` or `FluxKontextPipeline`.
    #[arg(long, default_value = "Flux")]
    family: String,
    /// The family's config: `tiny`, a published config (`FLUX.1-dev`, or just `dev`: a unique
    /// suffix after `-` is enough), a diffusers `config.json` path, or `demo` (Flux only: the
    /// embedded default model). Ignored with `--weights`.
    #[arg(long, default_value = "tiny")]
    model_config: String,
    /// Classifier-free guidance scale, for families whose pipeline runs CFG (the registry's
    /// `cfg: batched | separate`); `1` runs the conditional branch only.
    #[arg(long, default_value_t = 3.5, value_parser = checks::finite)]
    guidance_scale: f64,
    /// The sampler: `flow-match` or `ddim` (default: the family's, from registry.yaml).
    #[arg(long, value_parser = ["flow-match", "ddim"])]
    scheduler: Option<String>,
    /// A static flow-matching shift (SD3: 3.0) instead of Flux's resolution-dependent one.
    #[arg(long, value_parser = checks::finite)]
    shift: Option<f64>,
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
    #[arg(long, value_parser = checks::finite)]
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
    /// Denoising steps (1 to 10000).
    #[arg(long, default_value_t = 28, value_parser = checks::steps)]
    steps: usize,
    /// Seed of the weights, noise and conditioning.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    hardware: DeviceArgs,
    /// A safetensors file with `latents` and the family's conditioning tensors, and optionally
    /// `sigmas` (steps + 1 values, flow matching) or `timesteps` (steps values: sigma·1000 for
    /// flow matching, training timesteps for DDIM).
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Skip the load-time check for NaN and infinite values in `--inputs` and `--weights` (it
    /// reads every weight once more). Every step's model output is still checked (one sum per
    /// step): a NaN during the run stops it with an error naming the step.
    #[arg(long)]
    no_finite_check: bool,
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

/// The registry entry `--family` names: by class-name prefix as cache-dit looks families up,
/// else by name without regard to case (`flux`).
fn family(name: &str) -> Result<&'static FamilyEntry> {
    match cachedit::lookup(name) {
        Ok(entry) => Ok(entry),
        Err(err) => cachedit::families()
            .iter()
            .copied()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .with_context(|| format!("--family {name}: {err}")),
    }
}

/// `--model-config`'s config source: `tiny`, a `.json` path, or a published config by its
/// name, case-insensitively, or by a unique suffix after a `-` (`dev` for `FLUX.1-dev`).
fn config_source(entry: &FamilyEntry, spec: &str) -> Result<ConfigSource> {
    if spec == "tiny" {
        return Ok(ConfigSource::Tiny);
    }
    if spec.ends_with(".json") {
        return Ok(ConfigSource::File(PathBuf::from(spec)));
    }
    if let Some(name) = entry.configs.iter().find(|n| n.eq_ignore_ascii_case(spec)) {
        return Ok(ConfigSource::Named((*name).to_owned()));
    }
    let suffix = format!("-{}", spec.to_ascii_lowercase());
    let by_suffix: Vec<&&str> = entry
        .configs
        .iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(&suffix))
        .collect();
    match by_suffix.as_slice() {
        [one] => Ok(ConfigSource::Named((**one).to_owned())),
        _ => bail!(
            "--model-config {spec}: family {} has the configs tiny, {}{} (or give a config.json path)",
            entry.name,
            entry.configs.join(", "),
            if entry.name == "Flux" { ", demo" } else { "" }
        ),
    }
}

fn build_model(
    args: &RunArgs,
    entry: &FamilyEntry,
    dtype: DType,
    device: &Device,
) -> Result<Box<dyn Denoiser>> {
    if args.weights.is_none() && args.model_config == "demo" {
        if entry.name != "Flux" {
            bail!(
                "--model-config demo: the embedded demo model is a Flux model, not {}",
                entry.name
            );
        }
        return Ok(Box::new(cachedit::demo::demo_model(
            cachedit::demo::DemoSize::DEFAULT,
            args.seed,
            device,
        )?));
    }
    if let Some(dir) = args.weights.as_ref().filter(|_| !args.no_finite_check) {
        cachedit::inputs::check_weights_dir(dir)
            .with_context(|| format!("checking --weights {}", dir.display()))?;
    }
    let request = match &args.weights {
        Some(dir) => BuildRequest::pretrained(dir, dtype, device.clone()),
        None => BuildRequest {
            config: config_source(entry, &args.model_config)?,
            weights: WeightsSource::Seeded(args.seed),
            dtype,
            device: device.clone(),
        },
    };
    entry.build(&request).with_context(|| match &args.weights {
        Some(dir) => format!("loading {}", dir.display()),
        None => format!("building {} ({})", entry.name, args.model_config),
    })
}

fn cache_options(args: &RunArgs) -> Result<Option<CacheOptions>> {
    if args.no_cache {
        return Ok(None);
    }
    let mut options = match &args.config {
        Some(path) => CacheOptions::from(load_configs(path)?),
        None => CacheOptions::from(CacheConfig::default()),
    };
    if let Some(mask) = &options.cache.steps_computation_mask
        && mask.len() != args.steps
    {
        bail!(
            "the config's `steps_computation_mask` has {} entries but --steps is {}",
            mask.len(),
            args.steps
        );
    }
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

/// The checked targets of `--output`, `--trace` and `--plot`.
struct Targets {
    output: Option<PathBuf>,
    trace: Option<PathBuf>,
    plot: Option<PathBuf>,
}

impl Targets {
    /// Checks every output path before any work, so a bad one fails in a second, not after
    /// the run.
    fn check(args: &RunArgs) -> Result<Self> {
        let check = |flag: &str, path: &Option<PathBuf>, kind: Kind| {
            path.as_deref().map(|p| output::check(flag, p, kind)).transpose()
        };
        Ok(Self {
            output: check("--output", &args.output, Kind::Data)?,
            trace: check("--trace", &args.trace, Kind::Data)?,
            plot: check("--plot", &args.plot, Kind::Png)?,
        })
    }
}

pub fn run(args: &RunArgs) -> Result<()> {
    let targets = Targets::check(args)?;
    let device = args.hardware.device()?;
    let dt = args.hardware.dtype();
    let entry = family(&args.family)?;
    let model = build_model(args, entry, dt, &device)?;
    let model = &*model;
    let (latents, cond, uncond, (sigmas, timesteps)) = match &args.inputs {
        Some(p) => {
            let expected = cachedit::inputs::Expected::of(model, &device)?;
            let opts = cachedit::inputs::ReadOptions {
                expected: &expected,
                dtype: dt,
                steps: args.steps,
                check_finite: !args.no_finite_check,
            };
            let i = cachedit::inputs::read_inputs(p, opts, &device).context("reading --inputs")?;
            // Latents of another size than the configured one run if the family's transformer
            // takes its grid from them; one trial call tells, and its refusal is reported as
            // the inputs' shape error rather than an error deep inside a matmul.
            if i.latents.dims().get(1..) != expected.latents.get(1..) {
                let t = Tensor::ones(i.latents.dim(0)?, dt, &device)?;
                if model.predict(&i.latents, &t, &i.cond).is_err() {
                    cachedit::inputs::check_latents_size(p, i.latents.dims(), &expected.latents)
                        .context("reading --inputs")?;
                }
            }
            (i.latents, i.cond, i.uncond, (i.sigmas, i.timesteps))
        }
        None => (
            seeded_normal(&model.latent_shape(1), args.seed, dt, &device)?,
            model.synthetic_conditioning(1, args.seed, &device)?,
            // A different seed: what the negative (empty) prompt's embeddings would be.
            Some(model.synthetic_conditioning(1, args.seed ^ 0x00c0_ffee, &device)?),
            (None, None),
        ),
    };
    // The call layout the registry declares; CFG only with an unconditional input and a scale
    // that is not 1 (diffusers' pipelines skip the unconditional branch at scale 1 too).
    let cfg = match (entry.cfg, &uncond) {
        (CfgLayout::None, _) | (_, None) => CfgLayout::None,
        _ if args.guidance_scale == 1.0 => CfgLayout::None,
        (layout, Some(_)) => layout,
    };
    let mut options = cache_options(args)?;
    if let Some(o) = options.as_mut()
        && args.fn_blocks.is_none()
        && args.config.is_none()
    {
        // cache-dit's default F8 cannot fit a tiny test model's 1-4 blocks; with nothing asked
        // for explicitly, use F1 (the other common setting) rather than refuse to run.
        let shortest = model.cached_lists().iter().map(|l| l.len).min().unwrap_or(0);
        let fn_bn = o
            .cache
            .fn_compute_blocks
            .saturating_add(o.cache.bn_compute_blocks);
        if fn_bn > shortest && shortest > 0 {
            eprintln!(
                "note: {} has a list of {shortest} blocks, fewer than cache-dit's default \
                 Fn_compute_blocks {}; using --fn 1",
                entry.name, o.cache.fn_compute_blocks
            );
            o.cache.fn_compute_blocks = 1;
        }
    }
    if let Some(o) = options.as_mut() {
        // Separate CFG caches per branch only when the loop makes both calls.
        o.cache
            .enable_separate_cfg
            .get_or_insert(cfg == CfgLayout::Separate);
    }
    match &options {
        Some(o) => enable_cache_with_options(model, o).context("invalid cache configuration")?,
        None => disable_cache(model),
    }
    set_tracing(model, true);
    let kind = match args.scheduler.as_deref() {
        None => entry.scheduler,
        Some("flow-match") => SchedulerKind::FlowMatchEuler,
        Some(_) => SchedulerKind::Ddim,
    };
    let scheduler = match (kind, args.shift) {
        (SchedulerKind::FlowMatchEuler, Some(shift)) => FlowMatchEuler {
            shift,
            ..Default::default()
        }
        .into(),
        (SchedulerKind::Ddim, Some(_)) => bail!("--shift applies to the flow-matching scheduler only"),
        (kind, None) => Scheduler::for_kind(kind),
    };
    let opts = DenoiseOptions {
        steps: args.steps,
        scheduler,
        cfg,
        guidance_scale: args.guidance_scale,
        save_steps: args.save_steps,
        sigmas,
        timesteps,
        ..Default::default()
    };
    let pb = bar("run", args.steps);
    let start = std::time::Instant::now();
    let uncond = uncond.as_ref().filter(|_| cfg != CfgLayout::None);
    let out = denoise(model, latents, &cond, uncond, &opts, |i, _| {
        pb.set_position(i as u64)
    })?;
    let wall = start.elapsed();
    pb.finish_and_clear();
    let trace = take_trace(model);
    let stats = summary(model);

    let name = options
        .as_ref()
        .map(|o| o.cache.strify())
        .unwrap_or_else(|| "NONE".into());
    let cfg_note = match cfg {
        CfgLayout::None => String::new(),
        CfgLayout::Batched => format!(", CFG batched x{}", args.guidance_scale),
        CfgLayout::Separate => format!(", CFG separate x{}", args.guidance_scale),
    };
    let source = match &args.weights {
        Some(dir) => dir.display().to_string(),
        None => args.model_config.clone(),
    };
    println!(
        "{} ({source}), {} steps in {:.2} s{cfg_note}, cache {name}",
        entry.name,
        args.steps,
        wall.as_secs_f64()
    );
    if !stats.is_empty() {
        print!("{}", render_summary(&stats));
    }
    // On an asynchronous device the host time split is not the engine's (see `HostTime`).
    if let Some(line) = super::default_job::engine_line(&stats, wall).filter(|_| device.is_cpu()) {
        println!("engine: {line}");
    }
    // Every output is rendered and staged before any is put in place: all or none.
    let mut outputs = Outputs::default();
    if let (Some(path), Some(target)) = (&args.output, &targets.output) {
        let mut tensors = vec![("latents".to_string(), out.latents.clone())];
        for (i, t) in out.step_outputs.iter().enumerate() {
            tensors.push((format!("step_{i:03}"), t.clone()));
        }
        let bytes =
            safetensors::serialize(tensors, None).with_context(|| format!("writing {}", path.display()))?;
        outputs.stage(path, target, &bytes)?;
    }
    if let (Some(path), Some(target)) = (&args.trace, &targets.trace) {
        let doc = json!({ "config": name, "records": trace });
        outputs.stage(path, target, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    }
    if let (Some(path), Some(target)) = (&args.plot, &targets.plot) {
        let threshold = options.as_ref().map_or(0.0, |o| o.cache.residual_diff_threshold);
        outputs.stage(path, target, &plot::diffs_png(&trace, threshold)?)?;
    }
    for path in outputs.commit()? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
