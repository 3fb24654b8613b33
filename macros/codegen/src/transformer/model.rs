//! Validate a struct and its `#[cached(..)]` options into the plan of cached lists the derive
//! generates: which fields, in which order, chained or nested, under which names, with which
//! default overrides.

use syn::{Data, DeriveInput, Fields, Ident, Type};

use crate::errors::Errors;
use crate::transformer::attrs::{self, ContainerAttrs, FieldAttrs, Modify};
use crate::types;

/// The validated derive input.
pub(crate) struct Plan {
    /// The struct's options.
    pub container: ContainerAttrs,
    /// The cached lists, in order.
    pub entries: Vec<Entry>,
}

/// One entry of `cached_lists()`.
pub(crate) struct Entry {
    /// The field.
    pub field: Ident,
    /// The list's name, or the nested transformer's prefix.
    pub name: String,
    /// What kind of entry it is.
    pub kind: EntryKind,
    /// Default overrides for the list (or for each list of a nested transformer).
    pub modify: Option<Modify>,
    /// The list's block type, `B` of `BlockList<B>` (the first list's for a chain); `None` for a
    /// nested transformer or a field not written as `BlockList<B>`.
    pub block: Option<Type>,
}

/// The kinds of entries.
pub(crate) enum EntryKind {
    /// A `BlockList` field.
    List,
    /// A `BlockList` field and the one after it in the same cached list.
    Chain {
        /// The second field.
        next: Ident,
        /// The block types of both, when the struct is not generic: their patterns must agree.
        blocks: Option<Box<(Type, Type)>>,
    },
    /// A field that is itself a `CachedTransformer`.
    Nested,
}

struct Field {
    ident: Ident,
    ty: Type,
    attrs: FieldAttrs,
}

/// Reads and checks the derive input, reporting every problem.
pub(crate) fn plan(input: &DeriveInput) -> syn::Result<Plan> {
    let mut errors = Errors::default();
    let container = attrs::container(&input.attrs, &mut errors);
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named
                .named
                .iter()
                .filter_map(|f| {
                    Some(Field {
                        ident: f.ident.clone()?,
                        ty: f.ty.clone(),
                        attrs: attrs::field(&f.attrs, &mut errors),
                    })
                })
                .collect(),
            _ => {
                errors.spanned(
                    &input.ident,
                    "`#[derive(CachedTransformer)]` needs named fields: lists are named after them",
                );
                Vec::new()
            }
        },
        _ => {
            errors.spanned(
                &input.ident,
                "`#[derive(CachedTransformer)]` is for structs that hold `BlockList` fields",
            );
            Vec::new()
        }
    };

    let tails = check_fields(&fields, &mut errors);
    let chosen: Vec<&Field> = match &container.lists {
        Some(names) => explicit(&fields, names, &tails, &mut errors),
        None => fields
            .iter()
            .filter(|f| {
                f.attrs.skip.is_none()
                    && !tails.contains(&&f.ident)
                    && (types::is_named(&f.ty, "BlockList") || f.attrs.marks_list())
            })
            .collect(),
    };
    if chosen.is_empty() && errors.is_empty() {
        errors.spanned(
            &input.ident,
            format!(
                "`{}` has no cached lists: `#[derive(CachedTransformer)]` caches every \
                 `BlockList<_>` field (or the fields named by `#[cached(lists(..))]`)",
                input.ident
            ),
        );
    }

    let generic = !input.generics.params.is_empty();
    let mut entries = Vec::new();
    for field in chosen {
        if let Some(entry) = entry(field, &fields, generic, &mut errors) {
            entries.push(entry);
        }
    }
    for (i, entry) in entries.iter().enumerate() {
        if entries[..i].iter().any(|e| e.name == entry.name) {
            errors.spanned(
                &entry.field,
                format!(
                    "two cached lists are named `{}`; rename one with `#[cached(name = \"..\")]`",
                    entry.name
                ),
            );
        }
    }
    errors.finish(Plan { container, entries })
}

/// Checks each field's options on their own and against the fields they name; returns the
/// fields that are chained after another.
fn check_fields<'f>(fields: &'f [Field], errors: &mut Errors) -> Vec<&'f Ident> {
    let mut tails: Vec<&Ident> = Vec::new();
    for field in fields {
        let a = &field.attrs;
        if let Some(skip) = &a.skip {
            if a.marks_list() {
                errors.spanned(skip, "`skip` cannot be combined with other `#[cached]` options");
            }
            continue;
        }
        if let (Some(nested), Some(_)) = (&a.nested, &a.chain) {
            errors.spanned(nested, "a `nested` transformer cannot `chain` a block list");
        }
        let Some(next) = &a.chain else { continue };
        let Some(target) = fields.iter().find(|f| f.ident == *next) else {
            errors.spanned(
                next,
                format!("no field `{next}` to chain after `{}`", field.ident),
            );
            continue;
        };
        if target.ident == field.ident {
            errors.spanned(next, "a list cannot be chained after itself");
        } else if target.attrs.skip.is_some() || target.attrs.marks_list() {
            errors.spanned(
                next,
                format!(
                    "`{next}` is chained after `{}`, so it is part of that list: it cannot have \
                     `#[cached]` options of its own",
                    field.ident
                ),
            );
        } else if tails.contains(&next) {
            errors.spanned(next, format!("`{next}` is already chained after another list"));
        } else {
            tails.push(&target.ident);
        }
    }
    tails
}

/// The fields named by `#[cached(lists(..))]`.
fn explicit<'f>(
    fields: &'f [Field],
    names: &[Ident],
    tails: &[&Ident],
    errors: &mut Errors,
) -> Vec<&'f Field> {
    let mut chosen: Vec<&Field> = Vec::new();
    for name in names {
        let Some(field) = fields.iter().find(|f| f.ident == *name) else {
            errors.spanned(name, format!("no field `{name}` in this struct"));
            continue;
        };
        if chosen.iter().any(|f| f.ident == *name) {
            errors.spanned(name, format!("`{name}` is listed twice"));
        } else if field.attrs.skip.is_some() {
            errors.spanned(name, format!("`{name}` is listed but marked `#[cached(skip)]`"));
        } else if tails.contains(&name) {
            errors.spanned(
                name,
                format!("`{name}` is chained after another list and runs as part of it: list that one"),
            );
        } else {
            chosen.push(field);
        }
    }
    chosen
}

fn entry(field: &Field, fields: &[Field], generic: bool, errors: &mut Errors) -> Option<Entry> {
    let a = &field.attrs;
    let kind = match (&a.nested, &a.chain) {
        (Some(_), _) => EntryKind::Nested,
        (None, None) => EntryKind::List,
        (None, Some(next)) => {
            let next_field = fields.iter().find(|f| f.ident == *next)?;
            let blocks = match (
                types::generic_arg(&field.ty, "BlockList"),
                types::generic_arg(&next_field.ty, "BlockList"),
            ) {
                _ if generic => None,
                (Some(a), Some(b)) => Some(Box::new((a.clone(), b.clone()))),
                _ => {
                    errors.spanned(
                        next,
                        "declare both chained fields as `BlockList<Block>`, so the derive can \
                         check that their blocks have the same forward pattern",
                    );
                    return None;
                }
            };
            EntryKind::Chain {
                next: next.clone(),
                blocks,
            }
        }
    };
    let name = a
        .name
        .as_ref()
        .map_or_else(|| field.ident.to_string(), syn::LitStr::value);
    let block = match kind {
        EntryKind::Nested => None,
        _ => types::generic_arg(&field.ty, "BlockList").cloned(),
    };
    Some(Entry {
        field: field.ident.clone(),
        name,
        kind,
        modify: a.modify.clone(),
        block,
    })
}
