//! The cachedit runtime, in two layers.
//!
//! **The cache core** ([`cache`]) decides and stores. A model keeps each list of transformer
//! blocks as a [`BlockList`] and calls its [`BlockList::forward`] instead of looping over the
//! blocks. Without a cache that is the plain loop; after [`enable_cache`] the list's
//! [`CacheContext`] runs one of two strategies: DBCache, which decides per call whether the
//! middle blocks can be skipped by reusing their residual from the last computed call, deciding
//! exactly as the Python library cache-dit does on the same inputs, or DBPrune, which decides
//! block by block (`CacheType::DBPrune`). [`calibrators`] forecast the reused residual. The
//! options ([`CacheConfig`], per-list patches, calibrators, cache-dit's YAML files and naming
//! strings) live in [`cache::config`]; what a run leaves in [`CallRecord`] traces and
//! [`CacheStats`].
//!
//! **The pipeline layer** ([`pipeline`]) generates: the [`Denoiser`] trait a family implements,
//! the denoising loop [`denoise`], the schedulers and seeded noise, and the registry contract:
//! [`FamilyEntry`] (what `registry.yaml` declares), [`FamilyModel`] and [`build_family`] (what
//! the generated registrations call), the diffusers config and checkpoint loader, and seeded
//! weights.
//!
//! The pipeline layer uses the core, never the reverse, and no two files of the crate import
//! each other, directly or through others (a test of the facade checks the import graph).

pub mod cache;
pub mod limits;
pub mod pipeline;

// The module paths other crates and generated code use.
pub use cache::strategy::dbprune as prune;
pub use cache::{calibrators, diff, store};
pub use pipeline::registry::{init, loader};
pub use pipeline::{registry, scheduler};

pub use cache::api::{
    CachedListInfo, CachedTransformer, CfgLayout, disable_cache, enable_cache, enable_cache_calibrated,
    enable_cache_with, enable_cache_with_options, refresh_context, set_tracing, summary, take_trace,
};
pub use cache::block::{BlockList, CachedBlock, ListRun};
pub use cache::config::cache::{
    CacheConfig, CacheConfigPatch, CacheType, ForceRefreshPolicy, StepsComputationPolicy,
};
pub use cache::config::calibrator::{
    CalibratorCacheType, CalibratorConfig, CalibratorKind, CalibratorTiming,
};
pub use cache::config::error::{ConfigError, MaskError};
pub use cache::config::mask::{MaskPolicy, steps_mask, steps_mask_from_bins};
pub use cache::config::modifier::ParamsModifier;
pub use cache::config::options::CacheOptions;
pub use cache::config::yaml::{LoadConfigError, LoadedConfig, load_configs, load_configs_str};
pub use cache::context::CacheContext;
pub use cache::context::branch::BranchState;
pub use cache::handle::CacheHandle;
pub use cache::pattern::ForwardPattern;
pub use cache::record::{BlockRecord, Branch, CallRecord, Decision, Reason};
pub use cache::stats::{CacheStats, DiffStatistics, render_summary};
pub use cache::store::{MiddleStore, StoreFactory, StreamStores};
pub use cache::strategy::Strategy;
pub use cache::strategy::dbcache::NonFiniteError;
pub use cache::strategy::dbprune::PruneCall;
pub use cache::streams::{BlockRunner, Chain, Streams};
pub use pipeline::denoise::{DenoiseError, DenoiseOptions, DenoiseOutput, denoise};
pub use pipeline::denoiser::{Conditioning, Denoiser};
pub use pipeline::noise::seeded_normal;
pub use pipeline::registry::init::{SeededBackend, seeded_var_builder};
pub use pipeline::registry::loader::{Checkpoint, DiffusersConfig, LoadError};
pub use pipeline::registry::{
    BlockListDecl, BuildRequest, BuildResult, ConfigSource, FamilyEntry, FamilyModel, NamedConfig,
    RegistryError, SchedulerKind, StaticBlockLists, WeightsSource, build_family, lookup, supported_pipelines,
};
pub use pipeline::scheduler::{
    BetaSchedule, Ddim, DdimConfig, DynamicShift, FlowMatchEuler, PredictionType, Scheduler, SchedulerError,
    SigmaSpacing, TimestepSpacing,
};

/// `inventory`, for the registrations `register_families!` generates; not a public API.
#[doc(hidden)]
pub use inventory as __inventory;

/// Candle, for the code `family_model!` generates; not a public API.
#[doc(hidden)]
pub use {candle_core as __candle_core, candle_nn as __candle_nn};
