//! Syntactic questions about types. A proc macro sees tokens, not resolved types, so a stream is
//! recognised by its last path segment (`Tensor`, `candle_core::Tensor`); anything the macro
//! lets through is still type-checked by rustc against the generated call.

use syn::visit_mut::VisitMut;
use syn::{GenericArgument, Lifetime, PathArguments, Type, TypePath};

/// Tokens as a person writes them, for messages: proc_macro2 prints them spaced
/// (`& [Tensor]`, `Option < Tensor >`).
pub(crate) fn display(tokens: &impl quote::ToTokens) -> String {
    const TIGHTEN: [(&str, &str); 10] = [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        ("& ", "&"),
        (" ,", ","),
        (" ::", "::"),
        (":: ", "::"),
        ("[ ", "["),
        (" ]", "]"),
        (" )", ")"),
    ];
    let mut text = tokens.to_token_stream().to_string();
    for (from, to) in TIGHTEN {
        text = text.replace(from, to);
    }
    text.replace("( ", "(")
}

/// The type with groups and parentheses removed.
pub(crate) fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => peel(&g.elem),
        Type::Paren(p) => peel(&p.elem),
        other => other,
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match peel(ty) {
        Type::Path(TypePath {
            qself: None, path, ..
        }) => path.segments.last(),
        _ => None,
    }
}

/// The single type argument of `Name<T>` (last segment `Name`), e.g. `Option`, `Result`,
/// `BlockList`.
pub(crate) fn generic_arg<'t>(ty: &'t Type, name: &str) -> Option<&'t Type> {
    let seg = last_segment(ty)?;
    if seg.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Whether the last path segment is `name` (ignoring generic arguments).
pub(crate) fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

/// Whether `ty` is `Tensor` (any path ending in `Tensor`, without generic arguments).
pub(crate) fn is_tensor(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "Tensor" && s.arguments.is_empty())
}

/// How a block takes one of its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamType {
    /// `&Tensor`.
    Ref,
    /// `Tensor`.
    Owned,
    /// `Option<&Tensor>`.
    OptionRef,
    /// `Option<Tensor>`.
    OptionOwned,
}

impl StreamType {
    /// Classifies a parameter type, or `None` if it is no tensor.
    pub(crate) fn of(ty: &Type) -> Option<Self> {
        let ty = peel(ty);
        if let Some(inner) = generic_arg(ty, "Option") {
            return match Self::of(inner)? {
                Self::Ref => Some(Self::OptionRef),
                Self::Owned => Some(Self::OptionOwned),
                _ => None,
            };
        }
        match ty {
            Type::Reference(r) if r.mutability.is_none() && is_tensor(&r.elem) => Some(Self::Ref),
            t if is_tensor(t) => Some(Self::Owned),
            _ => None,
        }
    }

    /// Whether it is an `Option`.
    pub(crate) fn is_option(self) -> bool {
        matches!(self, Self::OptionRef | Self::OptionOwned)
    }
}

/// Whether values of `ty` are certainly `Copy` (shared references, primitives, and options,
/// tuples and arrays of them), so a field of that type is passed as is rather than cloned.
pub(crate) fn is_copy(ty: &Type) -> bool {
    const PRIMITIVES: [&str; 16] = [
        "bool", "char", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128",
        "isize", "f32", "f64",
    ];
    match peel(ty) {
        Type::Reference(r) => r.mutability.is_none(),
        Type::Tuple(t) => t.elems.iter().all(is_copy),
        Type::Array(a) => is_copy(&a.elem),
        Type::Ptr(_) | Type::FnPtr(_) | Type::Never(_) => true,
        t => match generic_arg(t, "Option") {
            Some(inner) => is_copy(inner),
            None => last_segment(t)
                .is_some_and(|s| s.arguments.is_empty() && PRIMITIVES.iter().any(|p| s.ident == p)),
        },
    }
}

/// Rewrites every non-`'static` lifetime of `ty`, elided or named, to `lifetime` (a field of
/// the generated `Args<'a>` borrows for the call). Returns whether any lifetime was set.
pub(crate) fn with_lifetime(ty: &mut Type, lifetime: &Lifetime) -> bool {
    struct Rewrite<'l> {
        lifetime: &'l Lifetime,
        used: bool,
    }
    impl Rewrite<'_> {
        fn set(&mut self, l: &mut Lifetime) {
            if l.ident != "static" {
                *l = self.lifetime.clone();
                self.used = true;
            }
        }
    }
    impl VisitMut for Rewrite<'_> {
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            match &mut r.lifetime {
                Some(l) => self.set(l),
                None => {
                    r.lifetime = Some(self.lifetime.clone());
                    self.used = true;
                }
            }
            self.visit_type_mut(&mut r.elem);
        }
        fn visit_lifetime_mut(&mut self, l: &mut Lifetime) {
            self.set(l);
        }
    }
    let mut rewrite = Rewrite {
        lifetime,
        used: false,
    };
    rewrite.visit_type_mut(ty);
    rewrite.used
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;
    use syn::parse_quote;

    #[test]
    fn streams_are_recognised_by_shape() {
        let cases: [(Type, Option<StreamType>); 7] = [
            (parse_quote!(&Tensor), Some(StreamType::Ref)),
            (parse_quote!(candle_core::Tensor), Some(StreamType::Owned)),
            (parse_quote!(Option<&Tensor>), Some(StreamType::OptionRef)),
            (parse_quote!(Option<Tensor>), Some(StreamType::OptionOwned)),
            (parse_quote!(&mut Tensor), None),
            (parse_quote!(Option<Option<Tensor>>), None),
            (parse_quote!(usize), None),
        ];
        for (ty, want) in cases {
            assert_eq!(StreamType::of(&ty), want, "{}", ty.to_token_stream());
        }
    }

    #[test]
    fn copy_types() {
        let yes: [Type; 5] = [
            parse_quote!(&Tensor),
            parse_quote!(Option<&[Tensor]>),
            parse_quote!(usize),
            parse_quote!((f64, bool)),
            parse_quote!([u8; 4]),
        ];
        let no: [Type; 3] = [
            parse_quote!(Tensor),
            parse_quote!(Vec<usize>),
            parse_quote!(Option<Tensor>),
        ];
        assert!(yes.iter().all(is_copy));
        assert!(!no.iter().any(is_copy));
    }

    #[test]
    fn types_display_as_written() {
        let cases: [(Type, &str); 4] = [
            (parse_quote!(&[Tensor]), "&[Tensor]"),
            (
                parse_quote!(Option<&'a candle_core::Tensor>),
                "Option<&'a candle_core::Tensor>",
            ),
            (parse_quote!(&mut Vec<(f64, usize)>), "&mut Vec<(f64, usize)>"),
            (parse_quote!(HashMap<K, V>), "HashMap<K, V>"),
        ];
        for (ty, want) in cases {
            assert_eq!(display(&ty), want);
        }
    }

    #[test]
    fn lifetimes_are_rewritten() {
        let a: Lifetime = parse_quote!('a);
        let mut ty: Type = parse_quote!(Option<&'x [Mask<'_>]>);
        assert!(with_lifetime(&mut ty, &a));
        assert_eq!(ty.to_token_stream().to_string(), "Option < & 'a [Mask < 'a >] >");
        let mut ty: Type = parse_quote!(&'static str);
        assert!(!with_lifetime(&mut ty, &a));
        let mut ty: Type = parse_quote!(usize);
        assert!(!with_lifetime(&mut ty, &a));
    }
}
