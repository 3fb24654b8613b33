//! [`CacheOptions`]: everything a model's cache is enabled with, whether built in code or read
//! from a YAML file.

use crate::cache::config::cache::CacheConfig;
use crate::cache::config::calibrator::CalibratorConfig;
use crate::cache::config::modifier::ParamsModifier;

/// Everything `enable_cache_with_options` needs: the shared config, the shared calibrator and
/// per-list overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheOptions {
    /// The config of every list without an override.
    pub cache: CacheConfig,
    /// The calibrator of every list whose modifier does not name its own (none: reuse the last
    /// computed value as is).
    pub calibrator: Option<CalibratorConfig>,
    /// Per-list overrides (cache-dit's `ParamsModifier`s), matched by list name.
    pub modifiers: Vec<ParamsModifier>,
}

impl From<CacheConfig> for CacheOptions {
    fn from(cache: CacheConfig) -> Self {
        Self {
            cache,
            calibrator: None,
            modifiers: Vec::new(),
        }
    }
}
