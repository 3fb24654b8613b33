//! Building a registered family from a [`BuildRequest`]: what the registrations generated from
//! `registry.yaml` call. A family's model implements [`FamilyModel`]; [`build_family`] resolves
//! the config (tiny, named, or a diffusers `config.json`) and the weights (seeded, or a
//! diffusers `transformer/` folder through the [`loader`](crate::loader)).

use cachedit_runtime::registry::{BuildRequest, BuildResult, ConfigSource, RegistryError, WeightsSource};
use cachedit_runtime::{Denoiser, StaticBlockLists};
use candle_nn::VarBuilder;

use crate::init::seeded_var_builder;
use crate::loader::{self, Checkpoint, DiffusersConfig, LoadError};

/// A model that can be registered in `registry.yaml`: a `Denoiser` with a diffusers config and
/// a constructor over a `VarBuilder` with diffusers parameter names.
pub trait FamilyModel: Denoiser + StaticBlockLists + Sized + 'static {
    /// The model's config (`transformer/config.json`).
    type Config: DiffusersConfig;
    /// Builds the model from `vb`.
    fn build(cfg: Self::Config, vb: VarBuilder) -> candle_core::Result<Self>;
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
            .and_then(|ckpt| ckpt.build(dtype, device, |vb| M::build(cfg, vb)))
            .map_err(build_err)?,
    };
    Ok(Box::new(model))
}

/// Makes sure this crate, and so its registrations, is linked: call it (or write
/// `use cachedit_adapters as _;`) from binaries and tests that read the registry without
/// naming anything else of this crate. The `cachedit` facade does it for its users.
#[inline(never)]
pub fn link() {}
