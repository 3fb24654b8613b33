//! `load_configs`: cache-dit's YAML config format (docs/algorithm.md §12), so a user's existing file works.
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::config::cache::{CacheConfig, CacheConfigPatch};
use crate::cache::config::calibrator::{CalibratorCacheType, CalibratorConfig, CalibratorKind};
use crate::cache::config::error::MaskError;
use crate::cache::config::fields::serde_fields;
use crate::cache::config::mask::{MaskPolicy, steps_mask};
use crate::cache::config::modifier::ParamsModifier;
use crate::cache::config::options::CacheOptions;

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
        reason: MaskError,
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
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct Extras {
    #[serde(skip_serializing)]
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

type Keys = BTreeMap<String, serde::de::IgnoredAny>;

/// A `cache_config` section, or the whole of a flat file: the cache options, the calibrator
/// selectors (`extras`, which also read the mask in either form) and the keys neither knows
/// (serde's flattening would silently drop them; `check_keys` rejects them).
#[derive(Debug, Deserialize)]
struct Section {
    #[serde(flatten)]
    extras: Extras,
    #[serde(flatten)]
    patch: PatchWithoutMask,
    #[serde(flatten)]
    unknown: Keys,
}

/// `CacheConfigPatch` minus the mask (which `Extras`, flattened first, takes in either form).
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

/// A whole file, read in one pass: the sections of the nested format, and whatever else is at
/// the top level as a flat (legacy) section. Any known section makes the file nested.
#[derive(Debug, Deserialize)]
struct Document {
    cache_config: Option<Section>,
    params_modifiers: Option<Vec<ModifierSection>>,
    parallelism_config: Option<serde::de::IgnoredAny>,
    attention_backend: Option<serde::de::IgnoredAny>,
    quantize_config: Option<serde::de::IgnoredAny>,
    #[serde(flatten)]
    flat: Section,
}

/// The top-level keys of the nested format.
const TOP_LEVEL_KEYS: &[&str] = &[
    "cache_config",
    "params_modifiers",
    "parallelism_config",
    "attention_backend",
    "quantize_config",
];

/// Every key a `cache_config` section (or a flat file) may hold: `CacheConfig`'s and the
/// calibrator selectors.
fn section_keys() -> Vec<&'static str> {
    let extras = serde_fields::<Extras>().unwrap_or_default();
    let mut keys: Vec<&'static str> = CacheConfig::KEYS.to_vec();
    keys.extend(extras.iter().filter(|k| !CacheConfig::KEYS.contains(k)));
    keys
}

/// The error for `key`, unknown among `known`, naming its line and a close known key.
fn unknown_key(key: &str, known: &[&str], text: &str, path: &Path, note: &str) -> LoadConfigError {
    let line = text
        .lines()
        .position(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .starts_with(&format!("{key}:"))
        })
        .map(|i| format!("line {}: ", i + 1))
        .unwrap_or_default();
    let near = known
        .iter()
        .find(|k| strsim_close(k, key))
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    LoadConfigError::Yaml {
        path: path.into(),
        message: format!(
            "{line}unknown key `{}`{note}{near}",
            crate::limits::truncate_for_message(key, MAX_KEY_IN_MESSAGE)
        ),
    }
}

/// Rejects keys no section knows, naming the key and its line.
fn check_keys(unknown: &Keys, text: &str, path: &Path) -> Result<(), LoadConfigError> {
    match unknown.keys().next() {
        Some(key) => Err(unknown_key(key, &section_keys(), text, path, "")),
        None => Ok(()),
    }
}

/// In a nested file, rejects top-level keys that are not sections (cache options included:
/// they belong under `cache_config`).
fn check_top_level(flat: &Section, text: &str, path: &Path) -> Result<(), LoadConfigError> {
    if let Some(key) = flat.unknown.keys().next() {
        return Err(unknown_key(key, TOP_LEVEL_KEYS, text, path, ""));
    }
    let set_key = |value: serde_json::Result<serde_json::Value>| {
        value.ok().and_then(|v| {
            v.as_object()
                .and_then(|m| m.iter().find(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()))
        })
    };
    let mask = flat
        .extras
        .steps_computation_mask
        .as_ref()
        .map(|_| "steps_computation_mask".to_string());
    let stray = mask
        .or_else(|| set_key(serde_json::to_value(&flat.patch.0)))
        .or_else(|| set_key(serde_json::to_value(&flat.extras)));
    match stray {
        Some(key) => Err(unknown_key(
            &key,
            TOP_LEVEL_KEYS,
            text,
            path,
            " at the top level (a file with sections keeps the cache options under `cache_config`)",
        )),
        None => Ok(()),
    }
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

/// Reads cache-dit YAML from a string; `path` names it in errors. The text is parsed once.
pub fn load_configs_str(text: &str, path: &Path) -> Result<LoadedConfig, LoadConfigError> {
    let doc: Document = serde_saphyr::from_str(text).map_err(|e| LoadConfigError::Yaml {
        path: path.into(),
        message: e.to_string(),
    })?;
    let nested = doc.cache_config.is_some()
        || doc.params_modifiers.is_some()
        || doc.parallelism_config.is_some()
        || doc.attention_backend.is_some()
        || doc.quantize_config.is_some();
    if !nested {
        check_keys(&doc.flat.unknown, text, path)?;
        let (cache, calibrator) = section_to_config(doc.flat, CacheConfig::default(), path)?;
        return Ok(LoadedConfig {
            cache,
            calibrator,
            modifiers: Vec::new(),
        });
    }
    check_top_level(&doc.flat, text, path)?;
    let modifiers_in = doc.params_modifiers.unwrap_or_default();
    if let Some(s) = &doc.cache_config {
        check_keys(&s.unknown, text, path)?;
    }
    for s in modifiers_in.iter().filter_map(|m| m.cache_config.as_ref()) {
        check_keys(&s.unknown, text, path)?;
    }
    for (present, section) in [
        (doc.parallelism_config.is_some(), "parallelism_config"),
        (doc.attention_backend.is_some(), "attention_backend"),
        (doc.quantize_config.is_some(), "quantize_config"),
    ] {
        if present {
            return Err(LoadConfigError::Unsupported {
                path: path.into(),
                section,
            });
        }
    }
    let (cache, calibrator) = match doc.cache_config {
        Some(s) => section_to_config(s, CacheConfig::default(), path)?,
        None => (CacheConfig::default(), None),
    };
    let mut modifiers = Vec::new();
    for m in modifiers_in {
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
        unknown: _,
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
        let section_keys = section_keys();
        let yaml = serde_saphyr::to_string(&CacheConfig::default()).unwrap();
        for line in yaml
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        {
            let key = line.split(':').next().unwrap_or_default();
            assert!(
                section_keys.contains(&key),
                "`{key}` is missing from the section keys"
            );
        }
        assert!(strsim_close("residual_diff_treshold", "residual_diff_threshold"));
        assert!(!strsim_close("bogus", "cache_type"));
        assert!(!strsim_close(&"x".repeat(1 << 20), "cache_type"));
    }
}
