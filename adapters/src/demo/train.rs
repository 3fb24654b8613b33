//! Rectified-flow training of the demo model (the objective of SD3 / Flux):
//! `x_t = (1 − σ)·x₀ + σ·ε`, the model predicts `ε − x₀`, MSE loss, σ logit-normal, AdamW.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cachedit_runtime::seeded_normal;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use candle_nn::{VarBuilder, VarMap};

use super::{dataset, demo_conditioning, demo_config, pack_images};
use crate::components::DifferentiableOps;
use crate::components::patchify::{image_ids, text_ids};
use crate::families::flux::FluxTransformer2DModel;
use crate::init::SeededBackend;
use crate::loader::{self, LoadError};

/// Name of the weights file [`train_demo`] writes (diffusers' single-file name).
pub const WEIGHTS_NAME: &str = "diffusion_pytorch_model.safetensors";
/// Name of the loss-curve plot [`train_demo`] writes.
pub const LOSS_PLOT_NAME: &str = "loss.png";

/// Options of [`train_demo`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Optimiser steps.
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate (linear warm-up over `warmup_steps`, then cosine decay to 10 %).
    pub learning_rate: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
    /// Seed of the initial weights, the data, the noise and the σ draws.
    pub seed: u64,
    /// Where to write `config.json`, the weights and `loss.png` (nothing written if `None`).
    pub out_dir: Option<PathBuf>,
}

impl Default for TrainOptions {
    /// The settings the committed demo weights were trained with.
    fn default() -> Self {
        Self {
            steps: 500,
            batch_size: 16,
            learning_rate: 2e-3,
            warmup_steps: 50,
            seed: 0,
            out_dir: None,
        }
    }
}

/// What [`train_demo`] produced.
#[derive(Debug)]
pub struct TrainReport {
    /// The loss of every step.
    pub losses: Vec<f32>,
    /// Mean loss over the last 100 steps (or all steps if fewer).
    pub final_loss: f32,
    /// Wall time of the training loop.
    pub wall_time: Duration,
    /// The trained weights with diffusers names.
    pub tensors: HashMap<String, Tensor>,
    /// The files written (empty without `out_dir`).
    pub written: Vec<PathBuf>,
}

/// Errors of [`train_demo`].
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Writing the checkpoint failed.
    #[error(transparent)]
    Save(#[from] LoadError),
    /// Writing the loss plot failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The options are unusable.
    #[error("invalid training options: {0}")]
    Options(String),
}

/// A per-step seed: different streams for data, noise and σ.
fn step_seed(seed: u64, step: usize, stream: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (step as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)
        ^ stream.wrapping_mul(0x94d0_49bb_1331_11eb)
}

fn learning_rate(opts: &TrainOptions, step: usize) -> f64 {
    if step < opts.warmup_steps {
        return opts.learning_rate * (step + 1) as f64 / opts.warmup_steps as f64;
    }
    let span = opts.steps.saturating_sub(opts.warmup_steps).max(1) as f64;
    let t = (step - opts.warmup_steps) as f64 / span;
    opts.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Trains the demo model ([`demo_config`]) on CPU from seeded weights with the rectified-flow
/// objective, calling `progress(step, loss)` after each step (1-based). Deterministic for a
/// given `opts` on a given machine. With `out_dir`, writes `config.json`, the weights
/// ([`WEIGHTS_NAME`], diffusers names) and the loss curve ([`LOSS_PLOT_NAME`]).
pub fn train_demo(
    opts: &TrainOptions,
    mut progress: impl FnMut(usize, f32),
) -> Result<TrainReport, TrainError> {
    if opts.steps == 0 || opts.batch_size == 0 || opts.learning_rate <= 0.0 {
        return Err(TrainError::Options(
            "steps, batch_size and learning_rate must be positive".into(),
        ));
    }
    let device = Device::Cpu;
    let cfg = demo_config();
    // Candle's fused norm / softmax / rope kernels have no backward.
    let _differentiable = DifferentiableOps::enable();

    // Seeded initial weights, moved into a VarMap so the optimiser can update them.
    let (backend, record) = SeededBackend::recording(opts.seed);
    FluxTransformer2DModel::new(
        cfg.clone(),
        VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()),
    )?;
    let varmap = VarMap::new();
    {
        let record = record.lock().unwrap_or_else(|e| e.into_inner());
        let mut data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        for (name, t) in record.iter() {
            data.insert(name.clone(), Var::from_tensor(t)?);
        }
    }
    let model =
        FluxTransformer2DModel::new(cfg.clone(), VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: opts.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    tracing::info!(
        params = varmap.all_vars().iter().map(|v| v.elem_count()).sum::<usize>(),
        steps = opts.steps,
        "training the demo model"
    );

    let img_ids = image_ids(super::GRID, super::GRID, 0.0, &device)?;
    let txt_ids = text_ids(super::TEXT_LEN, &device)?;
    let b = opts.batch_size;
    let mut losses = Vec::with_capacity(opts.steps);
    let start = Instant::now();
    for step in 0..opts.steps {
        let (images, classes) = dataset::batch(b, step_seed(opts.seed, step, 1), &device)?;
        let classes: Vec<_> = classes
            .into_iter()
            .filter_map(dataset::DemoClass::from_index)
            .collect();
        let cond = demo_conditioning(&classes, &device)?;
        let x0 = pack_images(&images)?;
        let eps = seeded_normal(x0.dims(), step_seed(opts.seed, step, 2), DType::F32, &device)?;
        // Logit-normal σ (mean 0, std 1), as SD3 / Flux train.
        let sigma = candle_nn::ops::sigmoid(&seeded_normal(
            &[b],
            step_seed(opts.seed, step, 3),
            DType::F32,
            &device,
        )?)?;
        let s3 = sigma.reshape((b, 1, 1))?;
        let xt = (x0.broadcast_mul(&(1.0 - &s3)?)? + eps.broadcast_mul(&s3)?)?;
        let target = (&eps - &x0)?;
        let pred = model.forward(
            &xt,
            cond.get(crate::families::flux_pipeline::names::ENCODER_HIDDEN_STATES)?,
            cond.get(crate::families::flux_pipeline::names::POOLED_PROJECTIONS)?,
            &sigma,
            &img_ids,
            &txt_ids,
            None,
        )?;
        let loss = (pred - target)?.sqr()?.mean_all()?;
        opt.set_learning_rate(learning_rate(opts, step));
        opt.backward_step(&loss)?;
        let value = loss.to_scalar::<f32>()?;
        losses.push(value);
        if (step + 1) % 100 == 0 {
            tracing::debug!(step = step + 1, loss = value, "demo training");
        }
        progress(step + 1, value);
    }
    let wall_time = start.elapsed();
    let tail = &losses[losses.len().saturating_sub(100)..];
    let final_loss = tail.iter().sum::<f32>() / tail.len() as f32;
    tracing::info!(final_loss, secs = wall_time.as_secs_f64(), "demo training done");

    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let mut written = Vec::new();
    if let Some(dir) = &opts.out_dir {
        loader::save_config(&cfg, "FluxTransformer2DModel", dir)?;
        written.push(dir.join(loader::CONFIG_NAME));
        let path = dir.join(WEIGHTS_NAME);
        candle_core::safetensors::save(&tensors, &path)?;
        written.push(path);
        let path = dir.join(LOSS_PLOT_NAME);
        let smoothed = smooth(&losses, 25);
        super::image::line_plot(&smoothed, 640, 360)
            .save_png(&path)
            .map_err(|source| TrainError::Io {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(TrainReport {
        losses,
        final_loss,
        wall_time,
        tensors,
        written,
    })
}

/// Moving average over a trailing window of `w` values.
fn smooth(values: &[f32], w: usize) -> Vec<f32> {
    (0..values.len())
        .map(|i| {
            let s = &values[i.saturating_sub(w.max(1) - 1)..=i];
            s.iter().sum::<f32>() / s.len() as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FamilyModel;

    #[test]
    fn a_few_steps_train_deterministically_and_write_files() -> Result<(), TrainError> {
        let dir = tempfile::tempdir().map_err(|source| TrainError::Io {
            path: PathBuf::new(),
            source,
        })?;
        let opts = TrainOptions {
            steps: 3,
            batch_size: 2,
            warmup_steps: 1,
            out_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let a = train_demo(&opts, |s, l| seen.push((s, l)))?;
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(a.losses.iter().all(|l| l.is_finite()));
        let b = train_demo(
            &TrainOptions {
                out_dir: None,
                ..opts
            },
            |_, _| {},
        )?;
        assert_eq!(a.losses, b.losses);
        assert_eq!(a.written.len(), 3);
        let model = FluxTransformer2DModel::from_pretrained(dir.path(), DType::F32, &Device::Cpu)?;
        assert_eq!(model.config(), &demo_config());
        assert!(
            train_demo(
                &TrainOptions {
                    steps: 0,
                    ..Default::default()
                },
                |_, _| {}
            )
            .is_err()
        );
        Ok(())
    }
}
