//! Writes the seeded benchmark model and its inputs as files PyTorch reads: a diffusers
//! `transformer/` folder and an inputs file, so `tools/reference/bench_torch.py` runs the same
//! weights, noise, conditioning and schedule as `cachedit bench`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cachedit_adapters::families::flux::FluxTransformer2DModel;
use cachedit_adapters::loader::{self, LoadError};
use cachedit_adapters::registry::FamilyModel;
use cachedit_runtime::{Conditioning, Denoiser, DynamicShift, FlowMatchEuler, seeded_normal};
use candle_core::{DType, Device, Tensor};

use crate::demo::{self, DemoSize};

/// The inputs file's name inside the export folder.
pub const INPUTS_NAME: &str = "inputs.safetensors";

/// Errors of writing or reading an export folder.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model folder could not be written or read back.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A tensor file could not be written or read.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: candle_core::Error,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// One generation's inputs: packed noise latents, the conditioning and the `steps + 1` sigmas.
#[derive(Debug, Clone)]
pub struct BenchInputs {
    /// `(1, S, C)` packed noise.
    pub latents: Tensor,
    /// Flux's conditioning tensors (`encoder_hidden_states`, `pooled_projections`, ids).
    pub cond: Conditioning,
    /// The schedule, ending in 0.
    pub sigmas: Vec<f64>,
}

impl BenchInputs {
    /// The seeded inputs of `model` for `steps` steps: what `demo::generate` uses, with Flux's
    /// resolution-shifted schedule written out.
    pub fn seeded(
        model: &FluxTransformer2DModel,
        steps: usize,
        seed: u64,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let shape = model.latent_shape(1);
        let sched = FlowMatchEuler {
            dynamic: Some(DynamicShift::FLUX),
            ..Default::default()
        };
        Ok(Self {
            latents: seeded_normal(&shape, seed, DType::F32, device)?,
            cond: model.synthetic_conditioning(1, seed, device)?,
            sigmas: sched.sigmas(steps, shape[1]),
        })
    }

    /// Writes the inputs as safetensors: `latents`, the conditioning tensors by name, and
    /// `sigmas` in f64.
    pub fn save(&self, path: &Path) -> Result<(), ExportError> {
        let mut map: HashMap<String, Tensor> =
            self.cond.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        map.insert("latents".into(), self.latents.clone());
        let n = self.sigmas.len();
        map.insert(
            "sigmas".into(),
            Tensor::from_vec(self.sigmas.clone(), n, self.latents.device())?,
        );
        candle_core::safetensors::save(&map, path).map_err(|source| ExportError::File {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Writes the demo model at `size` (seed `seed`) as a diffusers folder in `dir`
/// (`config.json` + `diffusion_pytorch_model.safetensors`), reads it back with our loader, and
/// returns the loaded model with the size's sample shape: the benchmark then runs exactly the
/// weights diffusers loads.
pub fn export_model(
    size: DemoSize,
    seed: u64,
    dir: &Path,
    device: &Device,
) -> Result<FluxTransformer2DModel, ExportError> {
    let tensors = demo::demo_weights(size, seed, device)?;
    std::fs::create_dir_all(dir).map_err(|source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    loader::save_config(&size.config(), "FluxTransformer2DModel", dir)?;
    let path = dir.join(loader::WEIGHTS_NAME);
    candle_core::safetensors::save(&tensors, &path).map_err(|source| ExportError::File { path, source })?;
    Ok(FluxTransformer2DModel::from_pretrained(dir, DType::F32, device)?
        .with_sample_shape(size.sample_shape()))
}
