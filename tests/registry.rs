//! The registry as users see it through the facade: `supported_pipelines()` lists exactly the
//! entries of `registry.yaml` in order (this fails if the adapters' registrations are dropped by
//! the linker: this test names nothing of `cachedit_adapters`), and every registered family
//! builds from its tiny config with seeded weights and runs a short cached denoising loop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use cachedit::{
    BuildRequest, CacheConfig, CfgLayout, DenoiseOptions, Denoiser, FamilyEntry, ForwardPattern,
    enable_cache, lookup, seeded_normal, summary,
};
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

/// `steps` steps of the runtime pipeline from seeded noise, with the CFG layout the registry
/// declares for `entry` (a synthetic unconditional input when it runs CFG).
fn generate(model: &dyn Denoiser, entry: &FamilyEntry, steps: usize) -> Result<Tensor> {
    let device = Device::Cpu;
    let cond = model.synthetic_conditioning(1, 7, &device)?;
    let uncond = model.synthetic_conditioning(1, 8, &device)?;
    let latents = seeded_normal(&model.latent_shape(1), 11, DType::F32, &device)?;
    let opts = DenoiseOptions {
        steps,
        cfg: entry.cfg,
        guidance_scale: 3.5,
        ..Default::default()
    };
    let uncond = (entry.cfg != CfgLayout::None).then_some(&uncond);
    Ok(cachedit::denoise(model, latents, &cond, uncond, &opts, |_, _| {})?.latents)
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

/// Every registered family: its tiny config builds through the registry with the lists and
/// CFG layout its entry declares, and the pipeline (with that layout) gives the uncached result
/// at threshold 0 and caches some step of every list at a permissive threshold.
#[test]
fn every_family_builds_tiny_and_caches_with_its_cfg_layout() -> Result<()> {
    const STEPS: usize = 5;
    for entry in cachedit::families() {
        let build = || entry.build(&BuildRequest::tiny(3)).unwrap();
        let plain = build();
        assert_eq!(plain.cfg_layout(), entry.cfg, "{}: CFG layout", entry.name);
        let lists: Vec<(String, ForwardPattern)> = plain
            .cached_lists()
            .iter()
            .map(|l| (l.name.clone(), l.pattern))
            .collect();
        let declared: Vec<(String, ForwardPattern)> = entry
            .block_lists
            .iter()
            .map(|l| (l.name.to_owned(), l.pattern))
            .collect();
        assert_eq!(lists, declared, "{}: cached lists", entry.name);
        let reference = generate(&*plain, entry, STEPS)?;
        assert_eq!(
            reference.dims(),
            plain.latent_shape(1).as_slice(),
            "{}",
            entry.name
        );
        let finite = reference
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|x| x.is_finite());
        assert!(finite, "{}: non-finite output", entry.name);

        let exact = build();
        enable_cache(&*exact, &cache(0.0)).unwrap();
        let out = generate(&*exact, entry, STEPS)?;
        let diff = (out - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "{}: threshold 0 must compute every step", entry.name);
        assert!(
            summary(&*exact).iter().all(|s| s.cached_steps.is_empty()),
            "{}",
            entry.name
        );

        let cached = build();
        enable_cache(&*cached, &cache(1e3)).unwrap();
        let out = generate(&*cached, entry, STEPS)?;
        assert_eq!(out.dims(), reference.dims());
        let finite = out.flatten_all()?.to_vec1::<f32>()?.iter().all(|x| x.is_finite());
        assert!(finite, "{}: non-finite cached output", entry.name);
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

/// The families built here, in cache-dit's relative order (other families may sit between).
#[test]
fn built_families_are_registered_in_cache_dit_order() {
    let names: Vec<&str> = cachedit::families().iter().map(|e| e.name).collect();
    let ours = [
        "Flux",
        "Mochi",
        "CogVideoX",
        "Wan",
        "HunyuanVideo",
        "QwenImage",
        "StableDiffusion3",
        "DiT",
        "Bria",
        "PixArt",
        "VisualCloze",
        "AuraFlow",
        "Chroma",
        "HiDream",
    ];
    let positions: Vec<usize> = ours
        .iter()
        .map(|n| {
            names
                .iter()
                .position(|m| m == n)
                .unwrap_or_else(|| panic!("{n} not registered"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    for (class, family) in [
        ("StableDiffusion3Pipeline", "StableDiffusion3"),
        ("HunyuanVideoPipeline", "HunyuanVideo"),
        ("QwenImageEditPlusPipeline", "QwenImage"),
        ("AuraFlowPipeline", "AuraFlow"),
        ("VisualClozeGenerationPipeline", "VisualCloze"),
        ("ChromaImg2ImgPipeline", "Chroma"),
        ("HiDreamImagePipeline", "HiDream"),
        ("MochiPipeline", "Mochi"),
        ("CogVideoXImageToVideoPipeline", "CogVideoX"),
        ("WanImageToVideoPipeline", "Wan"),
        ("BriaPipeline", "Bria"),
        ("PixArtAlphaPipeline", "PixArt"),
        ("PixArtSigmaPipeline", "PixArt"),
        ("DiTPipeline", "DiT"),
    ] {
        assert_eq!(lookup(class).unwrap().name, family);
    }
}

/// A named config the family does not declare is an error that lists the ones it does.
#[test]
fn unknown_named_configs_list_the_known_ones() {
    let sd3 = lookup("StableDiffusion3").unwrap();
    let err = sd3
        .build(&BuildRequest {
            config: cachedit::ConfigSource::Named("sd4".into()),
            ..BuildRequest::tiny(0)
        })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("stable-diffusion-3.5-large"), "{err}");
    assert_eq!(
        lookup("HunyuanVideo").unwrap().configs,
        &["HunyuanVideo", "HunyuanVideo-I2V"]
    );
}
