//! The family that the library crate `cachedit_downstream_example` registers, seen from this
//! separate crate after `link()`: registered next to cachedit's own, after them, with the block
//! lists of its model, and it builds and caches.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use cachedit::{BlockListDecl, BuildRequest, ConfigSource, ForwardPattern, enable_cache, lookup, summary};

#[test]
fn registered_after_cachedits_families() {
    cachedit_downstream_example::link();
    let (count, names) = cachedit::supported_pipelines();
    assert_eq!(names.last().map(String::as_str), Some("ToyDiT*"));
    assert!(names.contains(&"Flux*".to_owned()));
    assert_eq!(names.first().map(String::as_str), Some("Flux*"));
    assert_eq!(count, names.len());
    let toy = lookup("ToyDiTPipeline").unwrap();
    assert_eq!(toy.source_crate, "cachedit-downstream-example");
    assert_eq!(toy.configs, ["Toy-large"]);
    assert!(cachedit::runtime::registry::duplicates().is_empty());
}

/// The YAML entry has no `block_lists`: the registration took the model's, which
/// `#[derive(CachedTransformer)]` derived from its one `BlockList<ToyBlock>` field.
#[test]
fn block_lists_come_from_the_model() {
    cachedit_downstream_example::link();
    let toy = lookup("ToyDiT").unwrap();
    assert_eq!(
        toy.block_lists,
        [BlockListDecl {
            name: "blocks",
            pattern: ForwardPattern::Pattern_3
        }]
    );
    let model = toy.build(&BuildRequest::tiny(1)).unwrap();
    let lists = model.cached_lists();
    assert_eq!(lists.len(), 1);
    assert_eq!(
        (lists[0].name.as_str(), lists[0].pattern),
        ("blocks", ForwardPattern::Pattern_3)
    );
}

#[test]
fn builds_and_caches_with_its_defaults() {
    cachedit_downstream_example::link();
    let toy = lookup("ToyDiT").unwrap();
    let model = toy.build(&BuildRequest::tiny(1)).unwrap();
    assert_eq!(model.latent_shape(2), [2, 4, 8]);
    let large = toy
        .build(&BuildRequest {
            config: ConfigSource::Named("Toy-large".into()),
            ..BuildRequest::tiny(1)
        })
        .unwrap();
    assert_eq!(large.latent_shape(1), [1, 4, 64]);
    let mut config = toy.default_cache_config().unwrap();
    assert_eq!(config.fn_compute_blocks, 1);
    config.max_warmup_steps = 0;
    config.residual_diff_threshold = 1e3;
    enable_cache(&*model, &config).unwrap();
    let device = candle_core::Device::Cpu;
    let cond = model.synthetic_conditioning(1, 0, &device).unwrap();
    let mut x = cachedit::seeded_normal(&model.latent_shape(1), 2, candle_core::DType::F32, &device).unwrap();
    for step in 0..4 {
        let t = candle_core::Tensor::new(&[1000.0f32 - 250.0 * step as f32], &device).unwrap();
        x = model.predict(&x, &t, &cond).unwrap();
    }
    assert!(!summary(&*model)[0].cached_steps.is_empty());
}
