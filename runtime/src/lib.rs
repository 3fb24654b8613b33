//! The cachedit runtime: the block contract, the DBCache and DBPrune engines, calibrators,
//! configs, statistics.
//!
//! A model keeps each list of transformer blocks as a [`BlockList`] and calls its
//! [`BlockList::forward`] instead of looping over the blocks. Without a cache that is the plain
//! loop; after [`enable_cache`] it is the DBCache engine, which decides per call whether the
//! middle blocks can be skipped by reusing their residual from the last computed call, deciding
//! exactly as the Python library cache-dit does on the same inputs. [`prune`] decides block by
//! block instead (`CacheType::DBPrune`), and [`calibrators`] forecast the reused residual.

pub mod api;
pub mod block;
pub mod branch;
pub mod calibrator_config;
pub mod calibrators;
pub mod config;
pub mod context;
pub mod denoiser;
pub mod diff;
pub mod engine;
pub mod error;
pub mod handle;
pub mod host_time;
pub mod limits;
pub mod load_configs;
pub mod mask;
pub mod modifier;
pub mod naming;
pub mod noise;
pub mod pattern;
pub mod pipeline;
pub mod prune;
pub mod registry;
pub mod scheduler;
pub mod stats;
pub mod store;

pub use api::{
    CacheOptions, CachedListInfo, CachedTransformer, CfgLayout, disable_cache, enable_cache,
    enable_cache_calibrated, enable_cache_with, enable_cache_with_options, refresh_context, set_tracing,
    summary, take_trace,
};
pub use block::{BlockList, BlockRunner, CachedBlock, Chain, Streams};
pub use calibrator_config::{CalibratorCacheType, CalibratorConfig, CalibratorKind, CalibratorTiming};
pub use config::{CacheConfig, CacheType, ForceRefreshPolicy, StepsComputationPolicy};
pub use context::{Branch, CacheContext, Decision, Reason};
pub use denoiser::{Conditioning, Denoiser};
pub use engine::{CallRecord, NonFiniteError};
pub use error::{ConfigError, MaskError};
pub use handle::CacheHandle;
pub use load_configs::{LoadConfigError, LoadedConfig, load_configs, load_configs_str};
pub use mask::{MaskPolicy, steps_mask, steps_mask_from_bins};
pub use modifier::{CacheConfigPatch, ParamsModifier};
pub use noise::seeded_normal;
pub use pattern::ForwardPattern;
pub use pipeline::{DenoiseError, DenoiseOptions, DenoiseOutput, denoise};
pub use registry::{
    BlockListDecl, BuildRequest, ConfigSource, FamilyEntry, RegistryError, SchedulerKind, StaticBlockLists,
    WeightsSource, lookup, supported_pipelines,
};
pub use scheduler::{
    BetaSchedule, Ddim, DdimConfig, DynamicShift, FlowMatchEuler, PredictionType, Scheduler, SchedulerError,
    SigmaSpacing, TimestepSpacing,
};
pub use stats::{CacheStats, DiffStatistics, render_summary};

/// `inventory`, for the registrations `register_families!` generates; not a public API.
#[doc(hidden)]
pub use inventory as __inventory;
