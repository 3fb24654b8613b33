//! What a build is asked and answers: a [`BuildRequest`] (config and weights sources, dtype,
//! device) and a [`BuildResult`], or a [`RegistryError`].

use std::path::PathBuf;

use candle_core::{DType, Device};

use crate::pipeline::denoiser::Denoiser;

/// Where a family's config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The tiny test config (`tiny:` in `registry.yaml`).
    Tiny,
    /// A published config by name (a key of `configs:`, e.g. `FLUX.1-dev`).
    Named(String),
    /// A diffusers `config.json`.
    File(PathBuf),
}

/// Where a family's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// Deterministic weights from a seed (tests and demos).
    Seeded(u64),
    /// A diffusers `transformer/` folder (single or sharded safetensors).
    Dir(PathBuf),
}

/// What to build: config, weights, dtype and device.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// Which config.
    pub config: ConfigSource,
    /// Which weights.
    pub weights: WeightsSource,
    /// The dtype of the weights and activations.
    pub dtype: DType,
    /// Where the model lives.
    pub device: Device,
}

impl BuildRequest {
    /// The tiny config with seeded weights, in f32 on the CPU: what tests use.
    pub fn tiny(seed: u64) -> Self {
        Self {
            config: ConfigSource::Tiny,
            weights: WeightsSource::Seeded(seed),
            dtype: DType::F32,
            device: Device::Cpu,
        }
    }

    /// A diffusers `transformer/` folder: its `config.json` and its weights.
    pub fn pretrained(dir: impl Into<PathBuf>, dtype: DType, device: Device) -> Self {
        let dir = dir.into();
        Self {
            config: ConfigSource::File(dir.join("config.json")),
            weights: WeightsSource::Dir(dir),
            dtype,
            device,
        }
    }
}

/// What a family's build function returns.
pub type BuildResult = Result<Box<dyn Denoiser>, RegistryError>;

/// Why a registry query or a build failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No registered prefix matches the name.
    #[error("no registered family matches `{name}` (supported: {})", known.join(", "))]
    UnknownFamily {
        /// The name looked up.
        name: String,
        /// The registered families.
        known: Vec<String>,
    },
    /// Two registrations share a name.
    #[error("family `{name}` is registered more than once (by {})", crates.join(", "))]
    DuplicateFamily {
        /// The name.
        name: String,
        /// The crates registering it, one per registration.
        crates: Vec<String>,
    },
    /// A `ConfigSource::Named` the family does not declare.
    #[error("family `{family}` has no config `{config}` (known: {})", known.join(", "))]
    UnknownConfig {
        /// The family.
        family: String,
        /// The requested config.
        config: String,
        /// The declared configs.
        known: Vec<String>,
    },
    /// The family's `defaults` do not form a valid `CacheConfigPatch`.
    #[error("registry.yaml entry `{family}`: invalid `defaults`: {reason}")]
    InvalidDefaults {
        /// The family.
        family: String,
        /// Why.
        reason: String,
    },
    /// Loading or building the model failed.
    #[error("building family `{family}` failed: {source}")]
    Build {
        /// The family.
        family: String,
        /// The underlying error (a loader or Candle error).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
