//! Reading `registry.yaml`: serde-saphyr with `deny_unknown_fields` (duplicate keys are
//! rejected by serde-saphyr), then validation of each entry's values.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    /// The entries, in file order.
    pub families: Vec<Family>,
}

/// One validated entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// cache-dit's prefix (`Flux`).
    pub name: String,
    /// The model's type path relative to the crate root.
    pub model: syn::Path,
    /// The cached lists; empty when the entry leaves them to the model (its
    /// `StaticBlockLists`, which `#[derive(CachedTransformer)]` implements).
    pub block_lists: Vec<BlockListSpec>,
    /// The CFG layout.
    pub cfg: CfgSpec,
    /// The scheduler.
    pub scheduler: SchedulerSpec,
    /// Default cache options as JSON (`{}` when absent).
    pub defaults_json: String,
    /// Published config name → constructor of the model's config, sorted by name.
    pub configs: Vec<(String, syn::Ident)>,
    /// Constructor of the tiny config.
    pub tiny: syn::Ident,
    /// 1-based line of the entry in the file.
    pub line: u64,
}

/// One cached list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockListSpec {
    /// Its name.
    pub name: String,
    /// Its pattern, 0..=5.
    pub pattern: u8,
}

/// `cfg:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfgSpec {
    /// `none`.
    None,
    /// `batched`.
    Batched,
    /// `separate`.
    Separate,
}

/// `scheduler:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerSpec {
    /// `flow_match_euler`.
    FlowMatchEuler,
    /// `ddim`.
    Ddim,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    families: Vec<Spanned<RawFamily>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    name: String,
    model: Spanned<String>,
    #[serde(default)]
    block_lists: Option<Vec<Spanned<RawList>>>,
    cfg: Spanned<String>,
    scheduler: Spanned<String>,
    #[serde(default)]
    defaults: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    configs: BTreeMap<String, Spanned<String>>,
    tiny: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    name: String,
    pattern: Spanned<String>,
}

/// Only the entries' names and lines, read leniently to say which entry a syntax or schema
/// error is in.
#[derive(Deserialize)]
struct LooseRegistry {
    families: Vec<Spanned<LooseFamily>>,
}

#[derive(Deserialize)]
struct LooseFamily {
    name: Option<String>,
}

const PATTERNS: [&str; 6] = [
    "Pattern_0",
    "Pattern_1",
    "Pattern_2",
    "Pattern_3",
    "Pattern_4",
    "Pattern_5",
];

/// Parses and validates a registry. `file` names the file in messages. Every error names the
/// entry (when known), the key and the line.
pub fn parse(text: &str, file: &str) -> Result<Registry, String> {
    let raw: RawRegistry = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let entry = line.and_then(|l| entry_at_line(text, l));
        let whre = match (entry, line) {
            (Some(name), Some(l)) => format!("{file} entry `{name}` (line {l})"),
            (None, Some(l)) => format!("{file} line {l}"),
            _ => file.to_owned(),
        };
        format!("{whre}: {}", e.without_snippet())
    })?;
    let mut families = Vec::new();
    let mut seen = BTreeMap::new();
    for f in raw.families {
        let line = f.referenced.line();
        let family = validate(f.value, line, file)?;
        if let Some(first) = seen.insert(family.name.clone(), line) {
            return Err(format!(
                "{file} entry `{}` (line {line}): `name` duplicates the entry at line {first}",
                family.name
            ));
        }
        families.push(family);
    }
    Ok(Registry { families })
}

fn entry_at_line(text: &str, line: u64) -> Option<String> {
    let loose: LooseRegistry = serde_saphyr::from_str(text).ok()?;
    loose
        .families
        .into_iter()
        .rev()
        .find(|f| f.referenced.line() <= line)
        .and_then(|f| f.value.name)
}

fn validate(f: RawFamily, line: u64, file: &str) -> Result<Family, String> {
    let name = f.name;
    let err = |key: &str, at: u64, msg: String| format!("{file} entry `{name}` (line {at}): `{key}`: {msg}");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(err(
            "name",
            line,
            "must be a non-empty ASCII alphanumeric class-name prefix".into(),
        ));
    }
    let model = syn::parse_str::<syn::Path>(&f.model.value)
        .ok()
        .filter(|p| p.leading_colon.is_none())
        .ok_or_else(|| {
            err(
                "model",
                f.model.referenced.line(),
                format!(
                    "`{}` is not a type path relative to the crate root (e.g. `families::flux::FluxTransformer2DModel`)",
                    f.model.value
                ),
            )
        })?;
    if f.block_lists.as_ref().is_some_and(Vec::is_empty) {
        return Err(err(
            "block_lists",
            line,
            "at least one cached block list is required (or leave the key out to take the \
             model's lists)"
                .into(),
        ));
    }
    let mut block_lists = Vec::new();
    let mut names = BTreeSet::new();
    for l in f.block_lists.unwrap_or_default() {
        let at = l.referenced.line();
        let l = l.value;
        let pattern = PATTERNS
            .iter()
            .position(|p| *p == l.pattern.value)
            .ok_or_else(|| {
                err(
                    "block_lists.pattern",
                    l.pattern.referenced.line(),
                    format!(
                        "unknown pattern `{}` (expected one of {})",
                        l.pattern.value,
                        PATTERNS.join(", ")
                    ),
                )
            })?;
        if l.name.is_empty() || !names.insert(l.name.clone()) {
            return Err(err(
                "block_lists.name",
                at,
                format!("`{}` is empty or listed twice", l.name),
            ));
        }
        block_lists.push(BlockListSpec {
            name: l.name,
            pattern: pattern as u8,
        });
    }
    let cfg = match f.cfg.value.as_str() {
        "none" => CfgSpec::None,
        "batched" => CfgSpec::Batched,
        "separate" => CfgSpec::Separate,
        other => {
            return Err(err(
                "cfg",
                f.cfg.referenced.line(),
                format!("unknown CFG layout `{other}` (expected none, batched or separate)"),
            ));
        }
    };
    let scheduler = match f.scheduler.value.as_str() {
        "flow_match_euler" => SchedulerSpec::FlowMatchEuler,
        "ddim" => SchedulerSpec::Ddim,
        other => {
            return Err(err(
                "scheduler",
                f.scheduler.referenced.line(),
                format!("unknown scheduler `{other}` (expected flow_match_euler or ddim)"),
            ));
        }
    };
    let ident = |key: &str, s: &Spanned<String>| {
        syn::parse_str::<syn::Ident>(&s.value).map_err(|_| {
            err(
                key,
                s.referenced.line(),
                format!(
                    "`{}` is not the name of a constructor of the model's Config",
                    s.value
                ),
            )
        })
    };
    let mut configs = Vec::new();
    for (config, ctor) in &f.configs {
        configs.push((config.clone(), ident("configs", ctor)?));
    }
    let tiny = ident("tiny", &f.tiny)?;
    let defaults_json = serde_json::Value::Object(f.defaults.unwrap_or_default()).to_string();
    Ok(Family {
        name,
        model,
        block_lists,
        cfg,
        scheduler,
        defaults_json,
        configs,
        tiny,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLUX: &str = "families:
  - name: Flux
    model: families::flux::FluxTransformer2DModel
    block_lists:
      - { name: transformer_blocks, pattern: Pattern_1 }
    cfg: none
    scheduler: flow_match_euler
    defaults: { Fn_compute_blocks: 1 }
    configs:
      FLUX.1-schnell: schnell
      FLUX.1-dev: dev
    tiny: tiny
";

    fn error(text: &str) -> String {
        match parse(text, "registry.yaml") {
            Ok(r) => format!("unexpectedly parsed: {r:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_an_entry() -> Result<(), String> {
        let r = parse(FLUX, "registry.yaml")?;
        let f = &r.families[0];
        assert_eq!(f.name, "Flux");
        assert_eq!(f.line, 2);
        assert_eq!(
            f.block_lists,
            [BlockListSpec {
                name: "transformer_blocks".into(),
                pattern: 1
            }]
        );
        assert_eq!(f.defaults_json, r#"{"Fn_compute_blocks":1}"#);
        let configs: Vec<_> = f
            .configs
            .iter()
            .map(|(n, c)| (n.as_str(), c.to_string()))
            .collect();
        assert_eq!(
            configs,
            [("FLUX.1-dev", "dev".into()), ("FLUX.1-schnell", "schnell".into())]
        );
        Ok(())
    }

    #[test]
    fn errors_name_entry_key_and_line() {
        let e = error(&FLUX.replace("pattern: Pattern_1", "pattern: Pattern_9"));
        assert!(
            e.contains("entry `Flux` (line 5): `block_lists.pattern`: unknown pattern `Pattern_9`"),
            "{e}"
        );
        let e = error(&FLUX.replace("cfg: none", "cfg: sometimes"));
        assert!(
            e.contains("entry `Flux` (line 6): `cfg`: unknown CFG layout `sometimes`"),
            "{e}"
        );
        let e = error(&FLUX.replace("scheduler: flow_match_euler", "scheduler: dpm"));
        assert!(e.contains("`scheduler`: unknown scheduler `dpm`"), "{e}");
        let e = error(&FLUX.replace("tiny: tiny", "tiny: tiny\n    tinny: tiny"));
        assert!(e.contains("entry `Flux` (line 13)") && e.contains("tinny"), "{e}");
        let e = error(&FLUX.replace("tiny: tiny", "tiny: tiny\n    cfg: none"));
        assert!(e.contains("cfg"), "duplicate key: {e}");
        let e = error(&format!("{FLUX}{}", &FLUX["families:\n".len()..]));
        assert!(
            e.contains("entry `Flux` (line 13): `name` duplicates the entry at line 2"),
            "{e}"
        );
        let e = error(&FLUX.replace("families::flux::", "::families::flux::"));
        assert!(e.contains("`model`"), "{e}");
        let e = error(&FLUX.replace("tiny: tiny", "tiny: 'not an ident'"));
        assert!(e.contains("`tiny`"), "{e}");
    }

    #[test]
    fn block_lists_may_be_left_to_the_model() -> Result<(), String> {
        let listed = "    block_lists:\n      - { name: transformer_blocks, pattern: Pattern_1 }\n";
        assert!(FLUX.contains(listed));
        let r = parse(&FLUX.replace(listed, ""), "registry.yaml")?;
        assert!(r.families[0].block_lists.is_empty());
        let e = error(&FLUX.replace(listed, "    block_lists: []\n"));
        assert!(
            e.contains("entry `Flux` (line 2): `block_lists`: at least one cached block list"),
            "{e}"
        );
        Ok(())
    }
}
