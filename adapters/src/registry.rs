//! Building a registered family from a [`BuildRequest`]: what the registrations generated from
//! `registry.yaml` call. A family's model implements [`FamilyModel`]; [`build_family`] resolves
//! the config (tiny, named, or a diffusers `config.json`) and the weights (seeded, or a
//! diffusers `transformer/` folder through the [`loader`](crate::loader)).
//!
//! `FamilyModel` is also the one loading path of every family: its provided
//! [`from_pretrained`](FamilyModel::from_pretrained) / [`from_checkpoint`](FamilyModel::from_checkpoint)
//! and [`with_sample_shape`](FamilyModel::with_sample_shape) replace per-family copies, so a
//! family only says how to build itself from a `VarBuilder` and where its generation size lives.

use std::path::Path;

use cachedit_runtime::registry::{BuildRequest, BuildResult, ConfigSource, RegistryError, WeightsSource};
use cachedit_runtime::{Denoiser, StaticBlockLists};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::init::seeded_var_builder;
use crate::loader::{self, Checkpoint, DiffusersConfig, LoadError};

/// A model that can be registered in `registry.yaml`: a `Denoiser` with a diffusers config and
/// a constructor over a `VarBuilder` with diffusers parameter names.
pub trait FamilyModel: Denoiser + StaticBlockLists + Sized + 'static {
    /// The model's config (`transformer/config.json`).
    type Config: DiffusersConfig;
    /// The size of one generation `Denoiser` uses (latent grid or frames, text length).
    type SampleShape: Copy + std::fmt::Debug;

    /// Builds the model from `vb`.
    fn build(cfg: Self::Config, vb: VarBuilder) -> candle_core::Result<Self>;

    /// The generation size `Denoiser` uses.
    fn sample_shape(&self) -> Self::SampleShape;

    /// Where the generation size is stored (what [`with_sample_shape`](Self::with_sample_shape)
    /// writes).
    fn sample_shape_mut(&mut self) -> &mut Self::SampleShape;

    /// The generation size of the tiny config when the registry builds it (`None`: the model's
    /// default). Tiny configs are for tests and quick runs, so their size should be too.
    fn tiny_sample_shape() -> Option<Self::SampleShape> {
        None
    }

    /// The model with another generation size.
    fn with_sample_shape(mut self, sample: Self::SampleShape) -> Self {
        *self.sample_shape_mut() = sample;
        self
    }

    /// Loads a diffusers `transformer/` folder (`config.json` + single or sharded safetensors)
    /// in `dtype` on `device`.
    fn from_pretrained(dir: &Path, dtype: DType, device: &Device) -> Result<Self, LoadError> {
        let cfg: Self::Config = loader::read_config(&dir.join(loader::CONFIG_NAME))?;
        Self::from_checkpoint(cfg, Checkpoint::from_dir(dir, dtype, device)?, dtype, device)
    }

    /// Builds the model from checkpoint tensors with diffusers names; the config is validated
    /// first, so an inconsistent config is a [`LoadError::InvalidConfig`] rather than a shape
    /// error deep in the constructor.
    fn from_checkpoint(
        cfg: Self::Config,
        ckpt: Checkpoint,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, LoadError> {
        cfg.validate()
            .map_err(|reason| LoadError::InvalidConfig { path: None, reason })?;
        ckpt.build(dtype, device, |vb| Self::build(cfg, vb))
    }
}

/// Implements [`FamilyModel`] for a model built by `Self::new(cfg, vb)` whose generation size is
/// its `sample` field: one definition instead of the same five items per family.
/// `tiny_sample = EXPR` gives the tiny config a small generation size.
#[macro_export]
macro_rules! family_model {
    ($model:ty, config = $config:ty, sample = $sample:ty $(, tiny_sample = $tiny:expr)? $(,)?) => {
        impl $crate::registry::FamilyModel for $model {
            type Config = $config;
            type SampleShape = $sample;
            fn build(cfg: $config, vb: ::candle_nn::VarBuilder) -> ::candle_core::Result<Self> {
                Self::new(cfg, vb)
            }
            fn sample_shape(&self) -> $sample {
                self.sample
            }
            fn sample_shape_mut(&mut self) -> &mut $sample {
                &mut self.sample
            }
            $(
                /// A small generation size: the tiny config is for tests and quick runs.
                fn tiny_sample_shape() -> Option<$sample> {
                    Some($tiny)
                }
            )?
        }
    };
}

/// A published config of `M`: its name and constructor.
pub type NamedConfig<M> = (&'static str, fn() -> <M as FamilyModel>::Config);

/// Builds `M` as family `family` from `request`: the config from `tiny`, from `configs` (by
/// name) or from a `config.json`; the weights seeded or from a diffusers folder.
pub fn build_family<M: FamilyModel>(
    family: &str,
    request: &BuildRequest,
    tiny: fn() -> M::Config,
    configs: &[NamedConfig<M>],
) -> BuildResult {
    let build_err = |e: LoadError| RegistryError::Build {
        family: family.to_owned(),
        source: Box::new(e),
    };
    let tiny_sample = match request.config {
        ConfigSource::Tiny => M::tiny_sample_shape(),
        _ => None,
    };
    let cfg = match &request.config {
        ConfigSource::Tiny => tiny(),
        ConfigSource::Named(name) => match configs.iter().find(|(n, _)| n == name) {
            Some((_, make)) => make(),
            None => {
                return Err(RegistryError::UnknownConfig {
                    family: family.to_owned(),
                    config: name.clone(),
                    known: configs.iter().map(|(n, _)| (*n).to_owned()).collect(),
                });
            }
        },
        ConfigSource::File(path) => loader::read_config::<M::Config>(path).map_err(build_err)?,
    };
    cfg.validate()
        .map_err(|reason| build_err(LoadError::InvalidConfig { path: None, reason }))?;
    let (dtype, device) = (request.dtype, &request.device);
    let model = match &request.weights {
        WeightsSource::Seeded(seed) => {
            M::build(cfg, seeded_var_builder(*seed, dtype, device)).map_err(|e| build_err(e.into()))?
        }
        WeightsSource::Dir(dir) => Checkpoint::from_dir(dir, dtype, device)
            .and_then(|ckpt| M::from_checkpoint(cfg, ckpt, dtype, device))
            .map_err(build_err)?,
    };
    Ok(Box::new(match tiny_sample {
        Some(sample) => model.with_sample_shape(sample),
        None => model,
    }))
}
