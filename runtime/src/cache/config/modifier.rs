//! Per-list overrides (cache-dit's `ParamsModifier`, docs/algorithm.md §9.4): a partial `CacheConfig`
//! ([`CacheConfigPatch`], generated with `CacheConfig` from the one declaration of the options)
//! whose set fields win over the shared config for one named block list.

use crate::cache::config::calibrator::CalibratorConfig;

pub use crate::cache::config::cache::CacheConfigPatch;

/// Overrides for one cached list, named by the list's name (its field name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamsModifier {
    /// The block list it applies to.
    pub list: String,
    /// Fields of the cache config to override.
    pub cache: CacheConfigPatch,
    /// A calibrator for this list, replacing the shared one.
    pub calibrator: Option<CalibratorConfig>,
}

impl ParamsModifier {
    /// A modifier for list `list` with no overrides yet.
    pub fn new(list: impl Into<String>) -> Self {
        Self {
            list: list.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::config::cache::CacheConfig;

    #[test]
    fn only_set_fields_override() {
        let base = CacheConfig {
            residual_diff_threshold: 0.12,
            fn_compute_blocks: 4,
            ..Default::default()
        };
        let mut c = base.clone();
        CacheConfigPatch {
            fn_compute_blocks: Some(1),
            ..Default::default()
        }
        .apply(&mut c);
        assert_eq!(c.fn_compute_blocks, 1);
        assert_eq!(c.residual_diff_threshold, 0.12);
        let mut c = base.clone();
        CacheConfigPatch::default().apply(&mut c);
        assert_eq!(c, base);
    }
}
