//! `load_configs`: cache-dit's YAML config format (spec §12), so a user's existing file works.
//!
//! ```yaml
//! cache_config:                   # every CacheConfig key, with cache-dit's spelling
//!   Fn_compute_blocks: 1
//!   Bn_compute_blocks: 0
//!   residual_diff_threshold: 0.12
//!   num_inference_steps: 28
//!   steps_computation_mask: fast  # a list of 0/1, or slow | medium | fast | ultra
//!   enable_taylorseer: true       # calibrator selectors (at most one of taylorseer/dmd/foca)
//!   taylorseer_order: 1
//! params_modifiers:               # cachedit's addition: per-list overrides
//!   - list: single_transformer_blocks
//!     cache_config: { residual_diff_threshold: 0.2 }
//! ```
//!
//! Without a `cache_config` section the whole file is read as cache-dit's legacy flat format.
//! Unlike cache-dit, unknown keys are errors naming the key and its line, `cache_type` parses,
//! and a policy-string mask works in both formats. `parallelism_config`, `attention_backend` and
//! `quantize_config` are cache-dit features cachedit does not have: they are errors rather than
//! silently ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::CacheOptions;
use crate::calibrator_config::{CalibratorCacheType, CalibratorConfig, CalibratorKind};
use crate::config::CacheConfig;
use crate::mask::{MaskPolicy, steps_mask};
use crate::modifier::{CacheConfigPatch, ParamsModifier};

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadConfigError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed YAML, an unknown key or a wrong type (the message shows the line).
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// serde-saphyr's message with the offending line.
        message: String,
    },
    /// More than one calibrator selected.
    #[error(
        "{path}: `enable_taylorseer`, `enable_dmd` and `enable_foca` are mutually exclusive; {found} are on"
    )]
    TwoCalibrators {
        /// The file.
        path: PathBuf,
        /// The selectors that are on.
        found: String,
    },
    /// A mask policy needs the number of steps.
    #[error("{path}: `steps_computation_mask: {policy}` needs `num_inference_steps`")]
    MaskNeedsSteps {
        /// The file.
        path: PathBuf,
        /// The policy.
        policy: String,
    },
    /// The mask policy could not be generated.
    #[error("{path}: `steps_computation_mask`: {reason}")]
    Mask {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: crate::error::MaskError,
    },
    /// A cache-dit section cachedit does not implement.
    #[error("{path}: `{section}` is not supported by cachedit (only caching is); remove the section")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The section.
        section: &'static str,
    },
}

/// A step mask as YAML gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum MaskSpec {
    Bits(Vec<u8>),
    Policy(String),
}

/// The keys of a `cache_config` section besides `CacheConfig`'s.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Extras {
    steps_computation_mask: Option<MaskSpec>,
    enable_taylorseer: Option<bool>,
    enable_encoder_taylorseer: Option<bool>,
    taylorseer_cache_type: Option<CalibratorCacheType>,
    taylorseer_order: Option<usize>,
    enable_dmd: Option<bool>,
    enable_encoder_dmd: Option<bool>,
    dmd_history: Option<usize>,
    dmd_rank: Option<usize>,
    dmd_ridge: Option<f64>,
    dmd_svd_precision: Option<String>,
    enable_foca: Option<bool>,
    enable_encoder_foca: Option<bool>,
    calibrator_cache_type: Option<CalibratorCacheType>,
}

#[derive(Debug, Deserialize)]
struct Section {
    #[serde(flatten)]
    extras: Extras,
    #[serde(flatten)]
    patch: PatchWithoutMask,
}

/// `CacheConfigPatch` minus the mask (which `Extras` reads in either form). Unknown keys are
/// rejected by `check_keys`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
struct PatchWithoutMask(CacheConfigPatch);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifierSection {
    list: String,
    #[serde(default)]
    cache_config: Option<Section>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nested {
    cache_config: Option<Section>,
    #[serde(default)]
    params_modifiers: Vec<ModifierSection>,
    parallelism_config: Option<serde::de::IgnoredAny>,
    attention_backend: Option<serde::de::IgnoredAny>,
    quantize_config: Option<serde::de::IgnoredAny>,
}

/// Which format a file is in: any known section means nested.
#[derive(Debug, Deserialize)]
struct Probe {
    cache_config: Option<serde::de::IgnoredAny>,
    params_modifiers: Option<serde::de::IgnoredAny>,
    parallelism_config: Option<serde::de::IgnoredAny>,
    attention_backend: Option<serde::de::IgnoredAny>,
    quantize_config: Option<serde::de::IgnoredAny>,
}

/// Every key a `cache_config` section (or a flat file) may hold: `CacheConfig`'s fields (a test
/// keeps this in step with the struct) and the calibrator selectors.
const SECTION_KEYS: &[&str] = &[
    "cache_type",
    "Fn_compute_blocks",
    "Bn_compute_blocks",
    "residual_diff_threshold",
    "max_accumulated_residual_diff_threshold",
    "max_warmup_steps",
    "warmup_interval",
    "max_cached_steps",
    "max_continuous_cached_steps",
    "enable_separate_cfg",
    "cfg_compute_first",
    "cfg_diff_compute_separate",
    "num_inference_steps",
    "steps_computation_mask",
    "steps_computation_policy",
    "force_refresh_step_hint",
    "force_refresh_step_policy",
    "restart_continuous_streak",
    "enable_dynamic_prune_threshold",
    "max_dynamic_prune_threshold",
    "dynamic_prune_threshold_relax_ratio",
    "non_prune_block_ids",
    "force_reduce_calibrator_vram",
    // calibrator selectors
    "enable_taylorseer",
    "enable_encoder_taylorseer",
    "taylorseer_cache_type",
    "taylorseer_order",
    "enable_dmd",
    "enable_encoder_dmd",
    "dmd_history",
    "dmd_rank",
    "dmd_ridge",
    "dmd_svd_precision",
    "enable_foca",
    "enable_encoder_foca",
    "calibrator_cache_type",
];

type Keys = std::collections::BTreeMap<String, serde::de::IgnoredAny>;

#[derive(Debug, Deserialize)]
struct ModifierKeys {
    cache_config: Option<Keys>,
}

#[derive(Debug, Deserialize)]
struct NestedKeys {
    cache_config: Option<Keys>,
    #[serde(default)]
    params_modifiers: Vec<ModifierKeys>,
}

/// Rejects keys no section knows, naming the key and its line (serde's flattening, which the
/// section types use, would silently drop them).
fn check_keys(keys: Option<&Keys>, text: &str, path: &Path) -> Result<(), LoadConfigError> {
    for key in keys.into_iter().flat_map(|k| k.keys()) {
        if !SECTION_KEYS.contains(&key.as_str()) {
            let line = text
                .lines()
                .position(|l| {
                    l.trim_start()
                        .trim_start_matches("- ")
                        .starts_with(&format!("{key}:"))
                })
                .map(|i| format!("line {}: ", i + 1))
                .unwrap_or_default();
            let near = SECTION_KEYS
                .iter()
                .find(|k| strsim_close(k, key))
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            return Err(LoadConfigError::Yaml {
                path: path.into(),
                message: format!(
                    "{line}unknown key `{}`{near}",
                    crate::limits::truncate_for_message(key, MAX_KEY_IN_MESSAGE)
                ),
            });
        }
    }
    Ok(())
}

/// The longest unknown key an error message repeats in full.
const MAX_KEY_IN_MESSAGE: usize = 80;

/// Whether two keys differ by at most two single-character edits (a typo).
fn strsim_close(a: &str, b: &str) -> bool {
    // Two edits change the length by at most two: a longer key cannot be a typo, and skipping it
    // keeps a megabyte-long key from costing a quadratic edit distance per known key.
    if a.chars().count().abs_diff(b.chars().count()) > 2 {
        return false;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

/// What a config file configures.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The shared cache config (defaults for keys the file does not set).
    pub cache: CacheConfig,
    /// The calibrator, if one is selected.
    pub calibrator: Option<CalibratorConfig>,
    /// Per-list overrides.
    pub modifiers: Vec<ParamsModifier>,
}

impl From<LoadedConfig> for CacheOptions {
    fn from(c: LoadedConfig) -> Self {
        CacheOptions {
            cache: c.cache,
            calibrator: c.calibrator,
            modifiers: c.modifiers,
        }
    }
}

/// Reads a cache-dit YAML config file.
pub fn load_configs(path: &Path) -> Result<LoadedConfig, LoadConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadConfigError::Io {
        path: path.into(),
        source,
    })?;
    load_configs_str(&text, path)
}

/// Reads cache-dit YAML from a string; `path` names it in errors.
pub fn load_configs_str(text: &str, path: &Path) -> Result<LoadedConfig, LoadConfigError> {
    let yaml = |e: serde_saphyr::Error| LoadConfigError::Yaml {
        path: path.into(),
        message: e.to_string(),
    };
    let probe: Probe = serde_saphyr::from_str(text).map_err(yaml)?;
    let nested = probe.cache_config.is_some()
        || probe.params_modifiers.is_some()
        || probe.parallelism_config.is_some()
        || probe.attention_backend.is_some()
        || probe.quantize_config.is_some();
    if !nested {
        let keys: Keys = serde_saphyr::from_str(text).map_err(yaml)?;
        check_keys(Some(&keys), text, path)?;
        let section: Section = serde_saphyr::from_str(text).map_err(yaml)?;
        let (cache, calibrator) = section_to_config(section, CacheConfig::default(), path)?;
        return Ok(LoadedConfig {
            cache,
            calibrator,
            modifiers: Vec::new(),
        });
    }
    let file: Nested = serde_saphyr::from_str(text).map_err(yaml)?;
    let keys: NestedKeys = serde_saphyr::from_str(text).map_err(yaml)?;
    check_keys(keys.cache_config.as_ref(), text, path)?;
    for m in &keys.params_modifiers {
        check_keys(m.cache_config.as_ref(), text, path)?;
    }
    for (present, section) in [
        (file.parallelism_config.is_some(), "parallelism_config"),
        (file.attention_backend.is_some(), "attention_backend"),
        (file.quantize_config.is_some(), "quantize_config"),
    ] {
        if present {
            return Err(LoadConfigError::Unsupported {
                path: path.into(),
                section,
            });
        }
    }
    let (cache, calibrator) = match file.cache_config {
        Some(s) => section_to_config(s, CacheConfig::default(), path)?,
        None => (CacheConfig::default(), None),
    };
    let mut modifiers = Vec::new();
    for m in file.params_modifiers {
        let mut modifier = ParamsModifier::new(m.list);
        if let Some(s) = m.cache_config {
            let (patch, calibrator) = section_to_patch(s, cache.num_inference_steps, path)?;
            modifier.cache = patch;
            modifier.calibrator = calibrator;
        }
        modifiers.push(modifier);
    }
    Ok(LoadedConfig {
        cache,
        calibrator,
        modifiers,
    })
}

fn section_to_config(
    s: Section,
    mut base: CacheConfig,
    path: &Path,
) -> Result<(CacheConfig, Option<CalibratorConfig>), LoadConfigError> {
    let steps = s.patch.0.num_inference_steps;
    let (patch, calibrator) = section_to_patch(s, steps, path)?;
    patch.apply(&mut base);
    Ok((base, calibrator))
}

fn section_to_patch(
    s: Section,
    steps: Option<usize>,
    path: &Path,
) -> Result<(CacheConfigPatch, Option<CalibratorConfig>), LoadConfigError> {
    let Section {
        extras: e,
        patch: PatchWithoutMask(mut patch),
    } = s;
    patch.steps_computation_mask = match e.steps_computation_mask.clone() {
        None => None,
        Some(MaskSpec::Bits(b)) => Some(b),
        Some(MaskSpec::Policy(p)) => {
            let policy: MaskPolicy = p.parse().map_err(|reason| LoadConfigError::Mask {
                path: path.into(),
                reason,
            })?;
            let n = steps.ok_or_else(|| LoadConfigError::MaskNeedsSteps {
                path: path.into(),
                policy: p.clone(),
            })?;
            Some(steps_mask(n, policy).map_err(|reason| LoadConfigError::Mask {
                path: path.into(),
                reason,
            })?)
        }
    };
    Ok((patch, calibrator(&e, path)?))
}

fn calibrator(e: &Extras, path: &Path) -> Result<Option<CalibratorConfig>, LoadConfigError> {
    let on: Vec<&str> = [
        (e.enable_taylorseer, "enable_taylorseer"),
        (e.enable_dmd, "enable_dmd"),
        (e.enable_foca, "enable_foca"),
    ]
    .iter()
    .filter(|(v, _)| *v == Some(true))
    .map(|(_, n)| *n)
    .collect();
    if on.len() > 1 {
        return Err(LoadConfigError::TwoCalibrators {
            path: path.into(),
            found: on.join(", "),
        });
    }
    let cache_type =
        |specific: Option<CalibratorCacheType>| specific.or(e.calibrator_cache_type).unwrap_or_default();
    Ok(match on.first().copied() {
        Some("enable_taylorseer") => Some(CalibratorConfig {
            // cache-dit's flat loader defaults the encoder calibrator to off for TaylorSeer.
            enable_encoder_calibrator: e.enable_encoder_taylorseer.unwrap_or(false),
            calibrator_cache_type: cache_type(e.taylorseer_cache_type),
            ..CalibratorConfig::taylorseer(e.taylorseer_order.unwrap_or(1))
        }),
        Some("enable_dmd") => {
            let d = CalibratorConfig::dmd();
            let kind = match d.kind {
                CalibratorKind::Dmd {
                    dmd_history,
                    dmd_rank,
                    dmd_ridge,
                    dmd_svd_precision,
                } => CalibratorKind::Dmd {
                    dmd_history: e.dmd_history.unwrap_or(dmd_history),
                    dmd_rank: e.dmd_rank.unwrap_or(dmd_rank),
                    dmd_ridge: e.dmd_ridge.unwrap_or(dmd_ridge),
                    dmd_svd_precision: e.dmd_svd_precision.clone().unwrap_or(dmd_svd_precision),
                },
                other => other,
            };
            Some(CalibratorConfig {
                enable_encoder_calibrator: e.enable_encoder_dmd.unwrap_or(true),
                calibrator_cache_type: cache_type(None),
                kind,
                ..d
            })
        }
        Some(_) => Some(CalibratorConfig {
            enable_encoder_calibrator: e.enable_encoder_foca.unwrap_or(false),
            calibrator_cache_type: cache_type(None),
            ..CalibratorConfig::foca()
        }),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_keys_cover_every_cache_config_field() {
        let yaml = serde_saphyr::to_string(&CacheConfig::default()).unwrap();
        for line in yaml
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        {
            let key = line.split(':').next().unwrap_or_default();
            assert!(
                SECTION_KEYS.contains(&key),
                "`{key}` is missing from SECTION_KEYS"
            );
        }
        assert!(strsim_close("residual_diff_treshold", "residual_diff_threshold"));
        assert!(!strsim_close("bogus", "cache_type"));
        assert!(!strsim_close(&"x".repeat(1 << 20), "cache_type"));
    }
}
