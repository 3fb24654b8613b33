//! Parse the `#[cached(..)]` attributes of `#[derive(CachedTransformer)]`.
//!
//! On the struct: `cfg = None | Batched | Separate`, `lists(a, b, ..)`, `crate = path`.
//! On a field: `skip`, `nested`, `chain = next_field`, `name = "..."`,
//! `modify(field = value, .., calibrator = expr)`.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, Ident, LitStr};

use crate::errors::Errors;

const ATTR: &str = "cached";
const CFG_LAYOUTS: [&str; 3] = ["None", "Batched", "Separate"];

/// The struct's options.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    /// `cfg = Separate`: the model's CFG layout.
    pub cfg: Option<Ident>,
    /// `lists(a, b)`: the cached lists, explicitly and in order.
    pub lists: Option<Vec<Ident>>,
    /// `crate = path`: the facade's path.
    pub krate: Option<syn::Path>,
}

/// One field's options.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `skip`: never a cached list, even if it is a `BlockList`.
    pub skip: Option<Ident>,
    /// `nested`: a transformer whose own cached lists are included under this field's name.
    pub nested: Option<Ident>,
    /// `chain = next`: this list and `next` run as one cached list (`forward_chained`).
    pub chain: Option<Ident>,
    /// `name = "..."`: the list's name (or the nested transformer's prefix).
    pub name: Option<LitStr>,
    /// `modify(..)`: default per-list overrides (a `ParamsModifier`).
    pub modify: Option<Modify>,
}

impl FieldAttrs {
    /// Whether the field carries any option that makes it a cached list.
    pub(crate) fn marks_list(&self) -> bool {
        self.nested.is_some() || self.chain.is_some() || self.name.is_some() || self.modify.is_some()
    }
}

/// `modify(fn_compute_blocks = 1, residual_diff_threshold = 0.12, calibrator = expr)`.
#[derive(Clone)]
pub(crate) struct Modify {
    /// `CacheConfigPatch` fields and their values.
    pub cache: Vec<(Ident, Expr)>,
    /// `calibrator = expr`: a `CalibratorConfig`.
    pub calibrator: Option<Expr>,
}

/// Parses the struct's `#[cached(..)]` attributes.
pub(crate) fn container(attrs: &[Attribute], errors: &mut Errors) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    // Errors in a value are recorded here so that the options after it are still read.
    let mut values = Errors::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident(ATTR)) {
        errors.ok(attr.parse_nested_meta(|meta| {
            let key = key_of(&meta, &["cfg", "lists", "crate"], "on the struct")?;
            match key.to_string().as_str() {
                "cfg" => {
                    let layout: Ident = meta.value()?.parse()?;
                    if !CFG_LAYOUTS.iter().any(|l| layout == l) {
                        values.spanned(
                            &layout,
                            format!(
                                "unknown CFG layout `{layout}`: expected `None`, `Batched` \
                                 (cond and uncond in one call) or `Separate` (two calls per step)"
                            ),
                        );
                        return Ok(());
                    }
                    set_once(&mut out.cfg, layout, &key)
                }
                "lists" => {
                    let mut lists = Vec::new();
                    meta.parse_nested_meta(|inner| {
                        let field = inner
                            .path
                            .get_ident()
                            .cloned()
                            .ok_or_else(|| inner.error("expected a field name in `lists(..)`"))?;
                        lists.push(field);
                        Ok(())
                    })?;
                    set_once(&mut out.lists, lists, &key)
                }
                _ => {
                    let path = meta.value()?.call(syn::Path::parse_mod_style)?;
                    set_once(&mut out.krate, path, &key)
                }
            }
        }));
    }
    errors.ok(values.finish(()));
    out
}

/// Parses one field's `#[cached(..)]` attributes.
pub(crate) fn field(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident(ATTR)) {
        errors.ok(attr.parse_nested_meta(|meta| {
            let keys = ["skip", "nested", "chain", "name", "modify"];
            let key = key_of(&meta, &keys, "on a field")?;
            match key.to_string().as_str() {
                "skip" => set_once(&mut out.skip, key.clone(), &key),
                "nested" => set_once(&mut out.nested, key.clone(), &key),
                "chain" => {
                    let next: Ident = meta.value()?.parse()?;
                    set_once(&mut out.chain, next, &key)
                }
                "name" => {
                    let name: LitStr = meta.value()?.parse()?;
                    set_once(&mut out.name, name, &key)
                }
                _ => {
                    let modify = parse_modify(&meta)?;
                    set_once(&mut out.modify, modify, &key)
                }
            }
        }));
    }
    out
}

fn parse_modify(meta: &ParseNestedMeta<'_>) -> syn::Result<Modify> {
    let mut modify = Modify {
        cache: Vec::new(),
        calibrator: None,
    };
    meta.parse_nested_meta(|inner| {
        let key = inner
            .path
            .get_ident()
            .cloned()
            .ok_or_else(|| inner.error("expected `field = value` in `modify(..)`"))?;
        let value: Expr = inner.value()?.parse()?;
        if key == "calibrator" {
            set_once(&mut modify.calibrator, value, &key)
        } else if modify.cache.iter().any(|(k, _)| *k == key) {
            Err(syn::Error::new_spanned(&key, format!("`{key}` is given twice")))
        } else {
            modify.cache.push((key, value));
            Ok(())
        }
    })?;
    Ok(modify)
}

fn key_of(meta: &ParseNestedMeta<'_>, keys: &[&str], place: &str) -> syn::Result<Ident> {
    match meta.path.get_ident() {
        Some(key) if keys.iter().any(|k| key == k) => Ok(key.clone()),
        _ => {
            let expected: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            Err(meta.error(format!(
                "unknown `#[cached]` option {place}; expected {}",
                expected.join(", ")
            )))
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &Ident) -> syn::Result<()> {
    if slot.replace(value).is_some() {
        return Err(syn::Error::new_spanned(key, format!("`{key}` is given twice")));
    }
    Ok(())
}
