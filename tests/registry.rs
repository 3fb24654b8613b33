//! The registry as users see it through the facade: `supported_pipelines()` lists exactly the
//! entries of `registry.yaml` in order (this fails if the adapters' registrations are dropped by
//! the linker: this test names nothing of `cachedit_adapters`), and every registered family
//! builds from its tiny config with seeded weights and runs a short cached denoising loop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use cachedit::{BuildRequest, CacheConfig, Denoiser, enable_cache, lookup, seeded_normal, summary};
use candle_core::{DType, Device, Result, Tensor};
use serde::Deserialize;

#[derive(Deserialize)]
struct Yaml {
    families: Vec<YamlFamily>,
}

#[derive(Deserialize)]
struct YamlFamily {
    name: String,
}

fn yaml_names() -> Vec<String> {
    let yaml: Yaml = serde_saphyr::from_str(include_str!("../registry.yaml")).expect("registry.yaml parses");
    yaml.families.into_iter().map(|f| f.name).collect()
}

#[test]
fn supported_pipelines_are_the_yaml_entries_in_order() {
    let names = yaml_names();
    let (count, listed) = cachedit::supported_pipelines();
    assert_eq!(count, names.len(), "registrations dropped or extra: {listed:?}");
    let expected: Vec<String> = names.iter().map(|n| format!("{n}*")).collect();
    assert_eq!(listed, expected);
    assert!(cachedit::runtime::registry::duplicates().is_empty());
    for name in &names {
        let entry = lookup(name).unwrap();
        assert_eq!(&entry.name, name);
        assert_eq!(entry.source_crate, cachedit::runtime::registry::PRIMARY_CRATE);
        entry.default_cache_config().unwrap();
    }
}

#[test]
fn lookup_by_class_name_prefix() {
    assert_eq!(lookup("FluxKontextPipeline").unwrap().name, "Flux");
    assert_eq!(lookup("FluxTransformer2DModel").unwrap().name, "Flux");
    let err = lookup("NoSuchPipeline").unwrap_err().to_string();
    assert!(
        err.contains("no registered family matches `NoSuchPipeline`"),
        "{err}"
    );
    let flux = lookup("Flux").unwrap();
    let err = flux
        .build(&BuildRequest {
            config: cachedit::ConfigSource::Named("FLUX.2".into()),
            ..BuildRequest::tiny(0)
        })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("family `Flux` has no config `FLUX.2`"), "{err}");
}

/// `steps` flow-matching Euler steps from seeded noise: `x += (sigma_next - sigma) * v`.
fn denoise(model: &dyn Denoiser, steps: usize) -> Result<Tensor> {
    let device = Device::Cpu;
    let cond = model.synthetic_conditioning(1, 7, &device)?;
    let mut x = seeded_normal(&model.latent_shape(1), 11, DType::F32, &device)?;
    for i in 0..steps {
        let sigma = 1.0 - i as f64 / steps as f64;
        let sigma_next = 1.0 - (i + 1) as f64 / steps as f64;
        let t = Tensor::new(&[(sigma * 1000.0) as f32], &device)?;
        let v = model.predict(&x, &t, &cond)?;
        x = (x + (v * (sigma_next - sigma))?)?;
    }
    Ok(x)
}

fn cache(threshold: f64) -> CacheConfig {
    CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        max_warmup_steps: 1,
        residual_diff_threshold: threshold,
        ..Default::default()
    }
}

#[test]
fn every_family_builds_tiny_and_caches() -> Result<()> {
    const STEPS: usize = 6;
    for entry in cachedit::families() {
        let build = || entry.build(&BuildRequest::tiny(3)).unwrap();
        let reference = denoise(&*build(), STEPS)?;

        let exact = build();
        enable_cache(&*exact, &cache(0.0)).unwrap();
        let out = denoise(&*exact, STEPS)?;
        let diff = (out - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "{}: threshold 0 must compute every step", entry.name);
        assert!(
            summary(&*exact).iter().all(|s| s.cached_steps.is_empty()),
            "{}",
            entry.name
        );

        let cached = build();
        enable_cache(&*cached, &cache(1e3)).unwrap();
        let out = denoise(&*cached, STEPS)?;
        assert_eq!(out.dims(), reference.dims());
        let stats = summary(&*cached);
        assert_eq!(stats.len(), entry.block_lists.len(), "{}", entry.name);
        assert!(
            stats.iter().all(|s| !s.cached_steps.is_empty()),
            "{}: a permissive threshold must cache some steps: {stats:?}",
            entry.name
        );
    }
    Ok(())
}
