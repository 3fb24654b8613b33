//! The user-facing API over anything that exposes its block lists: `enable_cache`,
//! `disable_cache`, `refresh_context`, `summary`, and tracing.

use crate::cache::block::{BlockList, CachedBlock};
use crate::cache::config::cache::CacheConfig;
use crate::cache::config::calibrator::CalibratorConfig;
use crate::cache::config::error::ConfigError;
use crate::cache::config::modifier::ParamsModifier;
use crate::cache::config::options::CacheOptions;
use crate::cache::context::CacheContext;
use crate::cache::handle::CacheHandle;
use crate::cache::pattern::ForwardPattern;
use crate::cache::record::CallRecord;
use crate::cache::stats::CacheStats;

/// How a model's pipeline runs classifier-free guidance, which decides whether each step makes
/// one transformer call or two (docs/algorithm.md §9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CfgLayout {
    /// No CFG (guidance-distilled models): one call per step.
    #[default]
    None,
    /// Conditional and unconditional inputs batched into one call per step.
    Batched,
    /// Two calls per step, conditional first: cache-dit's `enable_separate_cfg`.
    Separate,
}

/// One cached list of a model, as `enable_cache` sees it.
pub struct CachedListInfo<'a> {
    /// The list's name (its field name, or the first field's for a chained list); contexts and
    /// statistics are named after it.
    pub name: String,
    /// The blocks' forward pattern.
    pub pattern: ForwardPattern,
    /// The number of blocks (across all fields of a chained list).
    pub len: usize,
    /// The blocks' type name, for the summary.
    pub block_type: &'static str,
    /// Where the list's cache context lives.
    pub handle: &'a CacheHandle,
}

impl<'a> CachedListInfo<'a> {
    /// Describes a `BlockList` field under `name`.
    pub fn of<B: CachedBlock>(name: impl Into<String>, list: &'a BlockList<B>) -> Self {
        Self {
            name: name.into(),
            pattern: B::PATTERN,
            len: list.len(),
            block_type: short_type_name::<B>(),
            handle: list.cache_handle(),
        }
    }
}

impl<'a> CachedListInfo<'a> {
    /// Describes two fields run as ONE cached list with `BlockList::forward_chained` (cache-dit's
    /// FLUX.1 layout): Fn/Bn count across both, the cache lives in the first list.
    pub fn chained<A: CachedBlock, B: CachedBlock>(
        name: impl Into<String>,
        first: &'a BlockList<A>,
        second: &'a BlockList<B>,
    ) -> Self {
        let mut info = Self::of(name, first);
        info.len += second.len();
        info
    }
}

/// The last path segment of a type's name (`FluxTransformerBlock`).
pub fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// A model whose block lists can be cached. `#[derive(CachedTransformer)]` (the macros crate)
/// writes it; a hand-written impl lists the `BlockList` fields.
pub trait CachedTransformer {
    /// The model's cached lists, in order.
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>>;
    /// How the model's pipeline runs CFG; resolves `enable_separate_cfg: None`.
    fn cfg_layout(&self) -> CfgLayout {
        CfgLayout::None
    }
    /// The model's own per-list overrides, used when `enable_cache` is given none (cache-dit's
    /// registered `params_modifiers`).
    fn default_modifiers(&self) -> Vec<ParamsModifier> {
        Vec::new()
    }
}

/// An optional transformer (Wan 2.2's `transformer_2`) has the lists of the one it holds, if any.
impl<T: CachedTransformer> CachedTransformer for Option<T> {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        self.as_ref().map(T::cached_lists).unwrap_or_default()
    }
    fn cfg_layout(&self) -> CfgLayout {
        self.as_ref().map(T::cfg_layout).unwrap_or_default()
    }
    fn default_modifiers(&self) -> Vec<ParamsModifier> {
        self.as_ref().map(T::default_modifiers).unwrap_or_default()
    }
}

/// Attaches a cache with `config` to every cached list of `model` (persistent contexts:
/// transformer-only use; a pipeline calls `refresh_context` before each generation), with the
/// model's `default_modifiers` applied. The configuration is validated against every list
/// first, so on error nothing is attached.
pub fn enable_cache<M: CachedTransformer + ?Sized>(
    model: &M,
    config: &CacheConfig,
) -> Result<(), ConfigError> {
    enable_cache_with_options(model, &CacheOptions::from(config.clone()))
}

/// Like `enable_cache`, with the options of each list chosen by `config_for` (cache-dit's
/// per-list `ParamsModifier`s build on this).
pub fn enable_cache_with<M, F>(model: &M, config_for: F) -> Result<(), ConfigError>
where
    M: CachedTransformer + ?Sized,
    F: Fn(&CachedListInfo<'_>) -> CacheConfig,
{
    enable_cache_calibrated(model, |info| (config_for(info), None))
}

/// Like `enable_cache_with`, each list also getting a calibrator (or none) from `options_for`.
pub fn enable_cache_calibrated<M, F>(model: &M, options_for: F) -> Result<(), ConfigError>
where
    M: CachedTransformer + ?Sized,
    F: Fn(&CachedListInfo<'_>) -> (CacheConfig, Option<CalibratorConfig>),
{
    let lists = model.cached_lists();
    let separate = model.cfg_layout() == CfgLayout::Separate;
    let mut contexts = Vec::with_capacity(lists.len());
    for info in &lists {
        let (mut config, calibrator) = options_for(info);
        config.enable_separate_cfg.get_or_insert(separate);
        config.validate_for_list(&info.name, info.len)?;
        if let Some(c) = &calibrator {
            c.validate()?;
        }
        contexts.push(CacheContext::with_calibrator(
            info.name.clone(),
            config,
            calibrator,
        ));
    }
    for (info, ctx) in lists.iter().zip(contexts) {
        info.handle.attach(ctx);
    }
    tracing::debug!(lists = lists.len(), "cache enabled");
    Ok(())
}

/// Attaches caches configured by `options`: each list gets the shared config with the fields
/// of its modifier (if any) overriding. Without modifiers, the model's `default_modifiers`
/// apply (given modifiers replace them, as in cache-dit). A modifier naming no list of the
/// model is an error.
pub fn enable_cache_with_options<M: CachedTransformer + ?Sized>(
    model: &M,
    options: &CacheOptions,
) -> Result<(), ConfigError> {
    let defaults;
    let modifiers = if options.modifiers.is_empty() {
        defaults = model.default_modifiers();
        &defaults
    } else {
        &options.modifiers
    };
    let known: Vec<String> = model.cached_lists().into_iter().map(|l| l.name).collect();
    if let Some(m) = modifiers.iter().find(|m| !known.contains(&m.list)) {
        return Err(ConfigError::UnknownBlockList {
            list: m.list.clone(),
            known,
        });
    }
    enable_cache_calibrated(model, |info| {
        let mut config = options.cache.clone();
        let mut calibrator = options.calibrator.clone();
        for m in modifiers.iter().filter(|m| m.list == info.name) {
            m.cache.apply(&mut config);
            if let Some(c) = &m.calibrator {
                calibrator = Some(c.clone());
            }
        }
        (config, calibrator)
    })
}

/// Removes every cache context: the model runs its plain loops again.
pub fn disable_cache<M: CachedTransformer + ?Sized>(model: &M) {
    for info in model.cached_lists() {
        info.handle.detach();
    }
}

/// Re-creates every context from its initial options: fresh counters, buffers and warmup, as
/// cache-dit does at the start of each pipeline call.
pub fn refresh_context<M: CachedTransformer + ?Sized>(model: &M) {
    for info in model.cached_lists() {
        info.handle.with_context(CacheContext::reset);
    }
}

/// The statistics of every cached list, in order (lists without a cache are skipped).
pub fn summary<M: CachedTransformer + ?Sized>(model: &M) -> Vec<CacheStats> {
    model
        .cached_lists()
        .iter()
        .filter_map(|info| {
            info.handle
                .with_context(|ctx| CacheStats::from_context(ctx, info.block_type))
        })
        .collect()
}

/// Starts or stops recording a `CallRecord` per call of every cached list.
pub fn set_tracing<M: CachedTransformer + ?Sized>(model: &M, on: bool) {
    for info in model.cached_lists() {
        info.handle.set_tracing(on);
    }
}

/// Takes the records of every cached list, in list order, each list's in call order.
pub fn take_trace<M: CachedTransformer + ?Sized>(model: &M) -> Vec<CallRecord> {
    model
        .cached_lists()
        .iter()
        .flat_map(|info| info.handle.take_trace())
        .collect()
}
