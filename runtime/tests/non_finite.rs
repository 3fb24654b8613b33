//! NaN and infinities during a run: a non-finite Fn residual stops the run with an error naming
//! the step and block list, while a NaN diff from an all-zero (finite) reference still computes
//! the call, as before; the denoising loop stops at the first non-finite model output.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use cachedit_runtime::{CfgLayout, Conditioning, DenoiseOptions, Denoiser, Streams, denoise, enable_cache};
use candle_core::{Device, Result, Tensor};
use common::*;

#[test]
fn a_nan_diff_from_a_zero_reference_computes_and_does_not_stop() {
    let model = scalar_model(vector_config(0, 0.5));
    // Reference 0: the next diff is 0/0 = NaN, which is not below the threshold.
    assert_eq!(run_scalar_sequence(&model, &[0.0, 0.0, 0.0]).unwrap(), "CCC");
    let trace = model.blocks.cache_handle().last_call().unwrap();
    assert!(trace.diff.is_some_and(f64::is_nan), "{trace:?}");
}

#[test]
fn a_non_finite_probe_stops_with_the_step_and_block_list() {
    for bad in [f32::NAN, f32::INFINITY] {
        let model = scalar_model(vector_config(1, 0.5));
        let err = run_scalar_sequence(&model, &[1.0, 1.0, bad])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("step 2, block list `transformer_blocks`") && err.contains("NaN or infinite"),
            "{err}"
        );
    }
}

/// One cached list whose Fn residual is `base` until `bad_from`, then NaN.
struct Poisoned {
    inner: Model<P3Block>,
    bad_from: f64,
}

impl cachedit_runtime::CachedTransformer for Poisoned {
    fn cached_lists(&self) -> Vec<cachedit_runtime::CachedListInfo<'_>> {
        self.inner.cached_lists()
    }
    fn cfg_layout(&self) -> CfgLayout {
        CfgLayout::None
    }
}

impl Denoiser for Poisoned {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![batch, 4]
    }
    fn synthetic_conditioning(&self, _: usize, _: u64, _: &Device) -> Result<Conditioning> {
        Ok(Conditioning::new())
    }
    fn predict(&self, latents: &Tensor, timestep: &Tensor, _: &Conditioning) -> Result<Tensor> {
        let t = f64::from(timestep.to_vec1::<f32>()?[0]);
        let r = if t <= self.bad_from { f32::NAN } else { 1.0 };
        let adds = Adds::first(self.inner.blocks.len(), scalar(r), 0.5);
        let out = self
            .inner
            .blocks
            .forward(Streams::hidden(latents.clone()), &adds)?;
        Ok(out.hidden)
    }
}

#[test]
fn the_denoising_loop_stops_at_the_first_non_finite_output() {
    let model = Poisoned {
        inner: Model::new(vec![P3Block, P3Block, P3Block]),
        bad_from: 500.0,
    };
    let latents = Tensor::ones((1, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let opts = DenoiseOptions {
        steps: 4,
        sigmas: Some(vec![1.0, 0.75, 0.5, 0.25, 0.0]),
        ..Default::default()
    };
    // No cache: the loop's check names the step (timestep 500 is step 2).
    let err = denoise(
        &model,
        latents.clone(),
        &Conditioning::new(),
        None,
        &opts,
        |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("step 2 (timestep 500)"), "{err}");
    assert!(err.contains("block lists: transformer_blocks"), "{err}");
    // Unchecked and uncached, the NaN runs through to the result, as before.
    let unchecked = DenoiseOptions {
        check_finite: false,
        ..opts.clone()
    };
    let out = denoise(
        &model,
        latents.clone(),
        &Conditioning::new(),
        None,
        &unchecked,
        |_, _| {},
    )
    .unwrap();
    assert!(out.latents.to_vec2::<f32>().unwrap()[0][0].is_nan());
    // With a cache past warmup, the engine catches it first, naming the list.
    enable_cache(&model, &vector_config(1, 0.5)).unwrap();
    let err = denoise(&model, latents, &Conditioning::new(), None, &unchecked, |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("step 2, block list `transformer_blocks`"), "{err}");
    // The guidance scale is checked before anything runs.
    let nan_scale = DenoiseOptions {
        guidance_scale: f64::NAN,
        ..opts
    };
    let latents = Tensor::ones((1, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = denoise(&model, latents, &Conditioning::new(), None, &nan_scale, |_, _| {}).unwrap_err();
    assert!(
        err.to_string().contains("guidance scale must be a finite number"),
        "{err}"
    );
}
