#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Wan 2.2 A14B's two experts on seeded tiny transformers: the step's transformer is chosen at
//! the boundary as `WanPipeline` chooses it (`t >= boundary_ratio · 1000` → `transformer`), both
//! are cached, each with its own context (own step count and warmup, own residuals, own CFG
//! branch states), and the pipeline folder loads with its `boundary_ratio`.

mod harness;

use cachedit_adapters::families::wan::{Config, WanTransformer3DModel};
use cachedit_adapters::families::wan_moe::{T2V_A14B_BOUNDARY_RATIO, WanExpert, WanMoeTransformers};
use harness::prelude::*;

const SHAPE: Shape<WanTransformer3DModel> = Shape::<WanTransformer3DModel> {
    frames: 2,
    height: 4,
    width: 6,
    text_len: 6,
};
/// Three steps at or above the boundary (875), five below it.
const TIMESTEPS: [f32; 8] = [1000.0, 937.5, 875.0, 874.5, 800.0, 700.0, 600.0, 500.0];
const HIGH_STEPS: usize = 3;

fn expert(seed: u64) -> Result<WanTransformer3DModel> {
    let cfg = Config {
        num_layers: 3,
        ..Config::tiny()
    };
    let vb = seeded_var_builder(seed, DType::F32, &Device::Cpu);
    Ok(WanTransformer3DModel::build(cfg, vb)?.with_sample_shape(SHAPE))
}

fn moe() -> Result<WanMoeTransformers> {
    WanMoeTransformers::new(expert(1)?, Some(expert(2)?), Some(T2V_A14B_BOUNDARY_RATIO))
}

fn t(v: f32) -> Result<Tensor> {
    Tensor::new(&[v], &Device::Cpu)
}

/// diffusers' loop: per step the conditional then the unconditional call on the step's
/// expert, the latents moving a little each step. Every call's output, in call order.
fn run(m: &WanMoeTransformers) -> Result<Vec<Tensor>> {
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(1, 5, &dev)?;
    let uncond = m.synthetic_conditioning(1, 6, &dev)?;
    let shape = m.latent_shape(1);
    let noise = seeded_normal(&shape, 1, DType::F32, &dev)?;
    let target = seeded_normal(&shape, 2, DType::F32, &dev)?;
    let mut out = Vec::new();
    for &step_t in &TIMESTEPS {
        let s = f64::from(step_t) / 1000.0;
        let x = ((&noise * s)? + (&target * (1.0 - s))?)?;
        for c in [&cond, &uncond] {
            out.push(m.predict(&x, &t(step_t)?, c)?);
        }
    }
    Ok(out)
}

#[test]
fn the_switch_happens_at_the_boundary_as_in_diffusers() -> Result<()> {
    let m = moe()?;
    for (v, want) in [
        (1000.0, WanExpert::High),
        (875.0, WanExpert::High),
        (874.999, WanExpert::Low),
        (1.0, WanExpert::Low),
    ] {
        assert_eq!(m.expert_for(v), want, "t = {v}");
    }
    let dev = Device::Cpu;
    let cond = m.synthetic_conditioning(1, 5, &dev)?;
    let x = seeded_normal(&m.latent_shape(1), 1, DType::F32, &dev)?;
    for (v, want, other) in [
        (875.0, WanExpert::High, WanExpert::Low),
        (874.5, WanExpert::Low, WanExpert::High),
    ] {
        let got = m.predict(&x, &t(v)?, &cond)?;
        assert_bit_identical(
            &format!("t = {v}"),
            &got,
            &m.expert(want).predict(&x, &t(v)?, &cond)?,
        )?;
        let (apart, _) = max_err(&got, &m.expert(other).predict(&x, &t(v)?, &cond)?)?;
        assert!(apart > 1e-3, "the two experts should differ ({apart})");
    }
    // Without a boundary (or a second transformer) every step runs on `transformer`.
    let single = WanMoeTransformers::new(expert(1)?, Some(expert(2)?), None)?;
    assert_eq!(single.expert_for(1.0), WanExpert::High);
    let one = WanMoeTransformers::new(expert(1)?, None, Some(0.9))?;
    assert_eq!(one.expert_for(1.0), WanExpert::High);
    assert_eq!(one.cached_lists().len(), 1);
    assert!(WanMoeTransformers::new(expert(1)?, None, Some(1.5)).is_err());
    Ok(())
}

/// Both experts cached, each with its own context: cache-everything settings (Fn 1, Bn 0,
/// warmup 1, a threshold nothing exceeds) cache the high-noise expert's steps 1-2 and the
/// low-noise expert's own steps 1-4 on both CFG branches. The low-noise expert's first call
/// (pipeline step 3) is its own warmup step, computed exactly: with one shared context it
/// would have been cached from the high-noise expert's residual.
#[test]
fn both_experts_are_cached_with_independent_contexts() -> Result<()> {
    let m = moe()?;
    assert_eq!(m.cfg_layout(), CfgLayout::Separate);
    let names: Vec<(String, ForwardPattern)> = m
        .cached_lists()
        .into_iter()
        .map(|l| (l.name, l.pattern))
        .collect();
    assert_eq!(
        names,
        [
            ("transformer.blocks".to_string(), ForwardPattern::Pattern_2),
            ("transformer_2.blocks".to_string(), ForwardPattern::Pattern_2)
        ]
    );

    let plain = run(&m)?;
    enable_cache(
        &m,
        &CacheConfig {
            fn_compute_blocks: 1,
            bn_compute_blocks: 0,
            max_warmup_steps: 1,
            residual_diff_threshold: 1e6,
            ..CacheConfig::default()
        },
    )
    .map_err(candle_core::Error::wrap)?;
    let cached = run(&m)?;
    let stats = summary(&m);
    for s in &stats {
        println!(
            "{}: cached {:?} / uncond {:?}, diffs {:?}",
            s.list, s.cached_steps, s.cfg_cached_steps, s.residual_diffs
        );
        assert!(s.separate_cfg, "{}", s.list);
    }
    assert_eq!(stats[0].list, "transformer.blocks");
    assert_eq!(stats[0].cached_steps, [1, 2]);
    assert_eq!(stats[0].cfg_cached_steps, [1, 2]);
    assert_eq!(stats[1].list, "transformer_2.blocks");
    assert_eq!(stats[1].cached_steps, [1, 2, 3, 4]);
    assert_eq!(stats[1].cfg_cached_steps, [1, 2, 3, 4]);

    for (call, (a, b)) in plain.iter().zip(&cached).enumerate() {
        let (step, branch) = (call / 2, ["cond", "uncond"][call % 2]);
        let (err, _) = max_err(b, a)?;
        // Each expert's first step (0 and HIGH_STEPS) is computed; every later one is cached.
        if step == 0 || step == HIGH_STEPS {
            assert_eq!(err, 0.0, "step {step} ({branch}) must be computed exactly");
        } else {
            assert!(err > 0.0, "step {step} ({branch}) should come from the cache");
        }
    }
    disable_cache(&m);
    Ok(())
}

/// A pipeline folder (`model_index.json` with `boundary_ratio`, `transformer/`,
/// `transformer_2/`) loads both experts; a missing `transformer_2/` leaves one.
#[test]
fn pipeline_folder_loads_both_experts_and_the_boundary() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tiny = fixture("wan_tiny").join("transformer");
    for sub in ["transformer", "transformer_2"] {
        std::fs::create_dir_all(dir.path().join(sub))?;
        for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
            std::fs::copy(tiny.join(f), dir.path().join(sub).join(f))?;
        }
    }
    std::fs::write(
        dir.path().join("model_index.json"),
        r#"{"_class_name": "WanPipeline", "boundary_ratio": 0.875}"#,
    )?;
    let load = || WanMoeTransformers::from_pipeline_dir(dir.path(), DType::F32, &Device::Cpu);
    let m = load().map_err(candle_core::Error::wrap)?;
    assert_eq!(m.cached_lists().len(), 2);
    assert_eq!(m.expert_for(874.0), WanExpert::Low);

    std::fs::remove_dir_all(dir.path().join("transformer_2"))?;
    let m = load().map_err(candle_core::Error::wrap)?;
    assert_eq!(m.cached_lists().len(), 1);
    assert_eq!(m.expert_for(1.0), WanExpert::High);

    std::fs::write(
        dir.path().join("model_index.json"),
        r#"{"boundary_ratio": "high"}"#,
    )?;
    let err = load().unwrap_err().to_string();
    assert!(err.contains("boundary_ratio"), "{err}");
    Ok(())
}
