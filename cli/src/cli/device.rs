//! `--device` and `--dtype`: where a command runs and in which precision.

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};

/// The device and dtype flags shared by `run`, `bench` and the main job.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// f32, bf16 or f16 (f32 on CPU is fastest; bf16 is the usual choice on GPU).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16"])]
    pub dtype: String,
    /// cpu or cuda[:N] (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    /// The device `--device` names, opened.
    pub fn device(&self) -> Result<Device> {
        device(&self.device)
    }

    /// The dtype `--dtype` names.
    pub fn dtype(&self) -> DType {
        match self.dtype.as_str() {
            "bf16" => DType::BF16,
            "f16" => DType::F16,
            _ => DType::F32,
        }
    }
}

/// Opens `cpu`, `cuda` or `cuda:N`.
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
                Device::new_cuda(n).with_context(|| {
                    format!(
                        "--device {spec}: cannot open CUDA device {n} (is an NVIDIA driver for CUDA 13 installed, \
                         and are cuBLAS/cuRAND/cudart 13 on LD_LIBRARY_PATH?)"
                    )
                })
            } else {
                bail!(
                    "--device {spec}: this binary was built without CUDA; build with `--features cuda` (see tools/gpu/build-cuda.sh)"
                )
            }
        }
        _ => bail!("--device {spec}: expected cpu, cuda or cuda:N"),
    }
}
