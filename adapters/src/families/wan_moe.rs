//! Wan 2.2 A14B: two Wan transformers in one pipeline, `transformer` for the high-noise steps
//! and `transformer_2` for the low-noise ones, switched where `WanPipeline` switches them: the
//! step's timestep `t` (0-1000 scale) goes to `transformer` when `t >= boundary_ratio · 1000`,
//! else to `transformer_2`. As in cache-dit's Wan adapter (a `BlockAdapter` over both
//! transformers), each transformer's `blocks` is its own cached list with its own context
//! (`transformer.blocks`, `transformer_2.blocks`): the low-noise expert counts its own steps and
//! warmup from its first call and never reuses the high-noise expert's residuals. CFG is run as
//! two calls per step (separate), each branch with its own cache state in each context.
//!
//! The guidance scale is the loop's, for both experts (diffusers' default when
//! `guidance_scale_2` is not given).

use std::path::Path;

use cachedit_macros::CachedTransformer;
use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::wan::WanTransformer3DModel;
use crate::loader::LoadError;
use crate::registry::FamilyModel;

/// Wan 2.2 A14B's boundary ratios (`model_index.json`): text-to-video.
pub const T2V_A14B_BOUNDARY_RATIO: f64 = 0.875;
/// Wan 2.2 A14B's boundary ratios (`model_index.json`): image-to-video.
pub const I2V_A14B_BOUNDARY_RATIO: f64 = 0.9;

/// The scheduler's training timesteps (`num_train_timesteps`), the scale of the boundary.
const NUM_TRAIN_TIMESTEPS: f64 = 1000.0;

/// Which transformer a step runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanExpert {
    /// `transformer` (high noise).
    High,
    /// `transformer_2` (low noise).
    Low,
}

/// The transformers of a Wan 2.2 pipeline and its boundary.
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Separate)]
pub struct WanMoeTransformers {
    /// The high-noise expert.
    #[cached(nested)]
    transformer: WanTransformer3DModel,
    /// The low-noise expert (`None`: a Wan 2.2 pipeline with one transformer, e.g. TI2V-5B).
    #[cached(nested)]
    transformer_2: Option<WanTransformer3DModel>,
    /// `boundary_ratio · num_train_timesteps` (`None`: `transformer` for every step).
    boundary_timestep: Option<f64>,
}

impl WanMoeTransformers {
    /// The two experts and the pipeline's `boundary_ratio`. Without a ratio (or without
    /// `transformer_2`) every step runs on `transformer`, as in diffusers.
    pub fn new(
        transformer: WanTransformer3DModel,
        transformer_2: Option<WanTransformer3DModel>,
        boundary_ratio: Option<f64>,
    ) -> Result<Self> {
        if let Some(r) = boundary_ratio
            && !(0.0..=1.0).contains(&r)
        {
            candle_core::bail!("boundary_ratio {r} is outside [0, 1]");
        }
        if let Some(t2) = &transformer_2
            && t2.config().out_channels() != transformer.config().out_channels()
        {
            candle_core::bail!(
                "transformer_2 has {} output channels, transformer {}",
                t2.config().out_channels(),
                transformer.config().out_channels()
            );
        }
        Ok(Self {
            transformer,
            transformer_2,
            boundary_timestep: boundary_ratio.map(|r| r * NUM_TRAIN_TIMESTEPS),
        })
    }

    /// Loads a diffusers pipeline folder: `transformer/`, `transformer_2/` if present, and the
    /// `boundary_ratio` of `model_index.json` (absent or `null`: none).
    pub fn from_pipeline_dir(
        dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<Self, LoadError> {
        let index = dir.join("model_index.json");
        let json = std::fs::read_to_string(&index).map_err(|source| LoadError::Io {
            path: index.clone(),
            source,
        })?;
        let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| LoadError::CorruptFile {
            path: index.clone(),
            reason: format!("invalid JSON: {e}"),
        })?;
        let ratio = match &value["boundary_ratio"] {
            serde_json::Value::Null => None,
            v => Some(v.as_f64().ok_or_else(|| LoadError::InvalidConfig {
                path: Some(index.clone()),
                reason: format!("`boundary_ratio` is {v}, not a number"),
            })?),
        };
        let transformer = WanTransformer3DModel::from_pretrained(&dir.join("transformer"), dtype, device)?;
        let second = dir.join("transformer_2");
        let transformer_2 = second
            .join("config.json")
            .exists()
            .then(|| WanTransformer3DModel::from_pretrained(&second, dtype, device))
            .transpose()?;
        Self::new(transformer, transformer_2, ratio).map_err(|e| LoadError::InvalidConfig {
            path: Some(index),
            reason: e.to_string(),
        })
    }

    /// The expert `WanPipeline` runs timestep `t` on.
    pub fn expert_for(&self, t: f64) -> WanExpert {
        match (self.boundary_timestep, &self.transformer_2) {
            (Some(boundary), Some(_)) if t < boundary => WanExpert::Low,
            _ => WanExpert::High,
        }
    }

    /// The transformer of `expert` (`transformer` when there is no `transformer_2`).
    pub fn expert(&self, expert: WanExpert) -> &WanTransformer3DModel {
        match (expert, &self.transformer_2) {
            (WanExpert::Low, Some(t2)) => t2,
            _ => &self.transformer,
        }
    }
}

impl Denoiser for WanMoeTransformers {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        self.transformer.latent_shape(batch)
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        self.transformer.synthetic_conditioning(batch, seed, device)
    }

    /// The step's expert on `timestep` (one value for the batch, as the pipeline passes
    /// `t.expand(B)`).
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let t = timestep
            .to_dtype(DType::F64)?
            .flatten_all()?
            .get(0)?
            .to_scalar::<f64>()?;
        self.expert(self.expert_for(t)).predict(latents, timestep, cond)
    }
}
