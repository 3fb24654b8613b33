//! The models of the `cachedit` command: the trained demo model's batched generation
//! ([`generate_trained`]) for the main job, and Flux-architecture models with seeded weights at
//! the `bench` sizes ([`demo_model`], [`generate`]), with the baseline-vs-cached figures both
//! report.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cachedit_adapters::FamilyModel;
use cachedit_adapters::demo::{self as trained, DemoClass};
use cachedit_adapters::families::flux::{Config, FluxTransformer2DModel};
use cachedit_adapters::init::SeededBackend;
use cachedit_adapters::sample::SampleShape;
use cachedit_runtime::{
    CacheOptions, CacheStats, CallRecord, Conditioning, DenoiseOptions, Denoiser, DynamicShift,
    FlowMatchEuler, denoise, disable_cache, enable_cache_with_options, seeded_normal, set_tracing, summary,
    take_trace,
};
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// Errors of the demo: the cache configuration or a tensor operation.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The cache configuration was rejected.
    #[error(transparent)]
    Config(#[from] cachedit_runtime::ConfigError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// How large the embedded default model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    /// Attention heads.
    pub heads: usize,
    /// Channels per attention head.
    pub head_dim: usize,
    /// Dual-stream blocks.
    pub double_blocks: usize,
    /// Single-stream blocks.
    pub single_blocks: usize,
    /// Packed latent grid side (image tokens = side²).
    pub grid: usize,
    /// Text tokens.
    pub text_len: usize,
}

impl DemoSize {
    /// The default: hidden 256 (4 heads), 4 double + 8 single blocks, 256 image + 32 text tokens.
    pub const DEFAULT: Self = Self {
        heads: 4,
        head_dim: 64,
        double_blocks: 4,
        single_blocks: 8,
        grid: 16,
        text_len: 32,
    };
    /// A reduced size for tests: hidden 128, 1 + 2 blocks, 64 image + 8 text tokens.
    pub const TINY: Self = Self {
        heads: 2,
        head_dim: 64,
        double_blocks: 1,
        single_blocks: 2,
        grid: 8,
        text_len: 8,
    };
    /// The benchmark size of issue 8: hidden 1024 (8 heads × 128), 8 double + 16 single blocks,
    /// 1024 image tokens (a 64×64 latent packed 2×2) and 512 text tokens.
    pub const LARGE: Self = Self {
        heads: 8,
        head_dim: 128,
        double_blocks: 8,
        single_blocks: 16,
        grid: 32,
        text_len: 512,
    };

    /// The diffusers config of the model at this size.
    pub fn config(&self) -> Config {
        // Flux splits the head's rotary channels 1/8 on the index axis, the rest evenly on the
        // two spatial axes (FLUX.1: 16, 56, 56 of 128).
        let first = self.head_dim / 8;
        let spatial = (self.head_dim - first) / 2;
        Config {
            in_channels: 64,
            num_layers: self.double_blocks,
            num_single_layers: self.single_blocks,
            attention_head_dim: self.head_dim,
            num_attention_heads: self.heads,
            joint_attention_dim: 256,
            pooled_projection_dim: 128,
            guidance_embeds: false,
            axes_dims_rope: vec![first, spatial, spatial],
            ..Config::default()
        }
    }

    /// The generation size (latent grid and text length).
    pub fn sample_shape(&self) -> SampleShape {
        SampleShape {
            grid_h: self.grid,
            grid_w: self.grid,
            text_len: self.text_len,
        }
    }
}

/// How strongly the seeded timestep embedder is damped. Random weights make the timestep
/// embedding decorrelate between steps, so nothing would be cached at realistic thresholds;
/// damping its output layer makes the conditioning drift smoothly, as a trained model's does.
pub const TIMESTEP_DAMPING: f64 = 0.05;

/// The parameters `TIMESTEP_DAMPING` scales: the timestep embedder's output layer.
const DAMPED_PREFIX: &str = "time_text_embed.timestep_embedder.linear_2";

/// Seeded weights with the timestep embedder's output layer scaled by `TIMESTEP_DAMPING`.
struct DampedBackend(SeededBackend);

impl SimpleBackend for DampedBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let t = self.0.get(s, name, h, dtype, dev)?;
        if name.starts_with(DAMPED_PREFIX) {
            t * TIMESTEP_DAMPING
        } else {
            Ok(t)
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

/// The embedded default model: FLUX.1's architecture at `size`, seeded weights (seed `seed`) with
/// a damped timestep embedder, f32 on `device`.
pub fn demo_model(size: DemoSize, seed: u64, device: &Device) -> Result<FluxTransformer2DModel> {
    demo_model_in(size, seed, DType::F32, device)
}

/// [`demo_model`] in `dtype` (bf16/f16 for GPUs): the same seeded values, rounded once.
pub fn demo_model_in(
    size: DemoSize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<FluxTransformer2DModel> {
    let vb = VarBuilder::from_backend(
        Box::new(DampedBackend(SeededBackend::new(seed))),
        dtype,
        device.clone(),
    );
    Ok(FluxTransformer2DModel::new(size.config(), vb)?.with_sample_shape(size.sample_shape()))
}

/// The weights [`demo_model`] builds, by diffusers name, so they can be saved as a checkpoint
/// (`cachedit bench --export`) that diffusers and our loader read back.
pub fn demo_weights(size: DemoSize, seed: u64, device: &Device) -> Result<HashMap<String, Tensor>> {
    let (backend, record) = SeededBackend::recording(seed);
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    FluxTransformer2DModel::new(size.config(), vb)?;
    let mut tensors = match record.lock() {
        Ok(mut map) => std::mem::take(&mut *map),
        Err(_) => candle_core::bail!("the weight recorder's lock was poisoned"),
    };
    // The recorder holds the undamped values; apply the damping `DampedBackend` applies.
    for (name, t) in tensors.iter_mut() {
        if name.starts_with(DAMPED_PREFIX) {
            *t = (&*t * TIMESTEP_DAMPING)?;
        }
    }
    Ok(tensors)
}

/// One timed generation.
#[derive(Debug, Clone)]
pub struct Run {
    /// The final latents.
    pub latents: Tensor,
    /// Wall time of the denoising loop.
    pub wall: Duration,
    /// One record per cached-list call (empty for the baseline).
    pub trace: Vec<CallRecord>,
    /// The cache statistics (empty for the baseline).
    pub stats: Vec<CacheStats>,
}

/// Runs one generation of `model` from seeded noise and conditioning, with the cache configured
/// by `options` (or none), reporting progress as `(step, total)`.
pub fn generate<D: Denoiser + ?Sized>(
    model: &D,
    options: Option<&CacheOptions>,
    steps: usize,
    seed: u64,
    device: &Device,
    progress: impl FnMut(usize, usize),
) -> std::result::Result<Run, DemoError> {
    match options {
        Some(o) => enable_cache_with_options(model, o)?,
        None => disable_cache(model),
    }
    set_tracing(model, true);
    let latents = seeded_normal(&model.latent_shape(1), seed, DType::F32, device)?;
    let cond: Conditioning = model.synthetic_conditioning(1, seed, device)?;
    let opts = DenoiseOptions {
        steps,
        scheduler: FlowMatchEuler {
            dynamic: Some(DynamicShift::FLUX),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let start = Instant::now();
    let out = denoise(model, latents, &cond, None, &opts, progress)?;
    let wall = start.elapsed();
    let trace = take_trace(model);
    set_tracing(model, false);
    let stats = summary(model);
    Ok(Run {
        latents: out.latents,
        wall,
        trace,
        stats,
    })
}

/// The fraction of block executions a run performed, from its trace: a cached call runs only
/// its Fn and Bn blocks. `blocks` is the cached list's length, `fn_bn` its F + B.
pub fn computed_fraction(trace: &[CallRecord], blocks: usize, fn_bn: usize) -> f64 {
    if trace.is_empty() {
        return 1.0;
    }
    let computed: usize = trace.iter().map(|r| if r.cached { fn_bn } else { blocks }).sum();
    computed as f64 / (trace.len() * blocks) as f64
}

/// Fidelity of `x` against the reference `base`: PSNR in dB over the reference's range, and the
/// max abs error.
pub fn fidelity(base: &Tensor, x: &Tensor) -> Result<(f64, f64)> {
    let diff = (base - x)?;
    let mse = diff.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let max_err = diff.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let range = (base.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?
        - base.min_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    .max(f64::MIN_POSITIVE);
    let psnr = if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (range * range / mse).log10()
    };
    Ok((psnr, max_err))
}

/// The classes the main job draws: one per shape, each in a different colour.
pub const TRAINED_CLASSES: [&str; 4] = ["red circle", "green square", "blue triangle", "yellow cross"];

/// One timed generation of the trained demo model: a batch of one image per class.
#[derive(Debug, Clone)]
pub struct TrainedRun {
    /// The run (final latents `(B, 64, 12)`, wall time, trace, statistics).
    pub run: Run,
    /// The images `(B, 3, 16, 16)`, values in about `[-1, 1]`.
    pub images: Tensor,
}

/// Generates one image per entry of `classes` with the trained demo model
/// (`cachedit_adapters::demo::load_demo_model`) in one batched denoising loop over the schedule
/// it was trained for, from noise seeded by `seed`, with the cache configured by `options` (or
/// none), reporting progress as `(step, total)`.
pub fn generate_trained(
    model: &FluxTransformer2DModel,
    classes: &[DemoClass],
    options: Option<&CacheOptions>,
    steps: usize,
    seed: u64,
    progress: impl FnMut(usize, usize),
) -> std::result::Result<TrainedRun, DemoError> {
    match options {
        Some(o) => enable_cache_with_options(model, o)?,
        None => disable_cache(model),
    }
    let device = model.device().clone();
    set_tracing(model, true);
    let cond = trained::demo_conditioning(classes, &device)?;
    let noise = seeded_normal(&model.latent_shape(classes.len()), seed, DType::F32, &device)?;
    let start = Instant::now();
    let out = denoise(
        model,
        noise,
        &cond,
        None,
        &trained::demo_denoise_options(steps),
        progress,
    )?;
    let wall = start.elapsed();
    let trace = take_trace(model);
    set_tracing(model, false);
    let stats = summary(model);
    let images = trained::unpack_images(&out.latents)?;
    Ok(TrainedRun {
        run: Run {
            latents: out.latents,
            wall,
            trace,
            stats,
        },
        images,
    })
}
