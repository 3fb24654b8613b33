//! The embedded default of the `cachedit` command: a Flux-architecture model, its inputs, and
//! the baseline-vs-cached comparison it reports.

use std::time::{Duration, Instant};

use cachedit_adapters::FamilyModel;
use cachedit_adapters::families::flux::{Config, FluxTransformer2DModel};
use cachedit_adapters::families::flux_pipeline::SampleShape;
use cachedit_adapters::init::SeededBackend;
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
    /// Attention heads (64 channels each).
    pub heads: usize,
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
        double_blocks: 4,
        single_blocks: 8,
        grid: 16,
        text_len: 32,
    };
    /// A reduced size for tests: hidden 128, 1 + 2 blocks, 64 image + 8 text tokens.
    pub const TINY: Self = Self {
        heads: 2,
        double_blocks: 1,
        single_blocks: 2,
        grid: 8,
        text_len: 8,
    };
}

/// How strongly the seeded timestep embedder is damped. Random weights make the timestep
/// embedding decorrelate between steps, so nothing would be cached at realistic thresholds;
/// damping its output layer makes the conditioning drift smoothly, as a trained model's does.
pub const TIMESTEP_DAMPING: f64 = 0.05;

/// Seeded weights with the timestep embedder's output layer scaled by `TIMESTEP_DAMPING`.
struct DampedBackend(SeededBackend);

impl SimpleBackend for DampedBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let t = self.0.get(s, name, h, dtype, dev)?;
        if name.starts_with("time_text_embed.timestep_embedder.linear_2") {
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
    let cfg = Config {
        in_channels: 64,
        num_layers: size.double_blocks,
        num_single_layers: size.single_blocks,
        attention_head_dim: 64,
        num_attention_heads: size.heads,
        joint_attention_dim: 256,
        pooled_projection_dim: 128,
        guidance_embeds: false,
        axes_dims_rope: vec![8, 28, 28],
        ..Config::default()
    };
    let vb = VarBuilder::from_backend(
        Box::new(DampedBackend(SeededBackend::new(seed))),
        DType::F32,
        device.clone(),
    );
    Ok(
        FluxTransformer2DModel::new(cfg, vb)?.with_sample_shape(SampleShape {
            grid_h: size.grid,
            grid_w: size.grid,
            text_len: size.text_len,
        }),
    )
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
        },
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
