//! The denoising pipeline's call layouts: separate CFG makes the conditional then the
//! unconditional call of each step, which the cache sees as cache-dit does (docs/algorithm.md §14 vector F);
//! contexts are re-created per pipeline call unless persistent.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

mod common;

use cachedit_runtime::{
    BlockList, CacheConfig, CachedListInfo, CachedTransformer, CfgLayout, Conditioning, DenoiseOptions,
    Denoiser, Streams, denoise, enable_cache, set_tracing, summary, take_trace,
};
use candle_core::{Device, Result, Tensor};
use common::*;

/// A model whose Fn residual at step `s` is `base + slope·s`, read from its conditioning, so the
/// cond and uncond calls of vector F can be told apart; its prediction is zero.
struct Toy {
    blocks: BlockList<P3Block>,
    layout: CfgLayout,
    steps: usize,
}

impl CachedTransformer for Toy {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        vec![CachedListInfo::of("blocks", &self.blocks)]
    }
    fn cfg_layout(&self) -> CfgLayout {
        self.layout
    }
}

impl Denoiser for Toy {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![batch, 1]
    }
    fn synthetic_conditioning(&self, _: usize, _: u64, _: &Device) -> Result<Conditioning> {
        Ok(Conditioning::new())
    }
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        // sigma_i = 1 - i/steps, timestep = 1000·sigma.
        let t = timestep.to_vec1::<f32>()?[0] as f64;
        let s = ((1.0 - t / 1000.0) * self.steps as f64).round() as f32;
        let base = cond.get("base")?.to_vec1::<f32>()?[0];
        let slope = cond.get("slope")?.to_vec1::<f32>()?[0];
        let adds = Adds::first(3, scalar(base + slope * s), 1.0);
        self.blocks.forward(Streams::hidden(scalar(0.0)), &adds)?;
        latents.zeros_like()
    }
}

fn cond(base: f32, slope: f32) -> Conditioning {
    Conditioning::new()
        .with("base", scalar(base))
        .with("slope", scalar(slope))
}

fn run(model: &Toy, persistent: bool) -> String {
    let opts = DenoiseOptions {
        steps: model.steps,
        cfg: model.layout,
        guidance_scale: 3.5,
        persistent,
        sigmas: Some(
            (0..=model.steps)
                .map(|i| 1.0 - i as f64 / model.steps as f64)
                .collect(),
        ),
        ..Default::default()
    };
    set_tracing(model, true);
    denoise(
        model,
        scalar(0.0).reshape((1, 1)).unwrap(),
        &cond(1.0, 0.01),
        Some(&cond(2.0, 0.5)),
        &opts,
        |_, _| {},
    )
    .unwrap();
    take_trace(model)
        .iter()
        .map(|r| if r.cached { 'S' } else { 'C' })
        .collect()
}

#[test]
fn separate_cfg_layout_reproduces_vector_f() {
    let model = Toy {
        blocks: BlockList::new(vec![P3Block, P3Block, P3Block]),
        layout: CfgLayout::Separate,
        steps: 8,
    };
    enable_cache(&model, &vector_config(2, 0.1)).unwrap();
    assert_eq!(run(&model, false), "CCCCSCSCSCSCSCSC");
    let s = &summary(&model)[0];
    assert_eq!(s.cached_steps, vec![2, 3, 4, 5, 6, 7]);
    assert!(s.cfg_cached_steps.is_empty());
    // Pipeline mode: a second generation starts fresh and decides the same.
    assert_eq!(run(&model, false), "CCCCSCSCSCSCSCSC");
    // Persistent mode keeps the contexts: warmup is over, so step 0 of the next call is cached.
    assert!(run(&model, true).starts_with("S"));
}

#[test]
fn no_cfg_layout_makes_one_call_per_step() {
    let model = Toy {
        blocks: BlockList::new(vec![P3Block, P3Block, P3Block]),
        layout: CfgLayout::None,
        steps: 6,
    };
    enable_cache(
        &model,
        &CacheConfig {
            ..vector_config(2, 0.1)
        },
    )
    .unwrap();
    assert_eq!(run(&model, false), "CCSSSS");
}
