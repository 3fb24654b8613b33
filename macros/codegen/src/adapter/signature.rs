//! Parse and validate a block's `forward` signature against its pattern: which parameters are
//! the streams, which one is the block index, which ones become the generated `Args` struct,
//! and how the return value maps to the two streams. Every misfit is a spanned error that says
//! what the pattern expects.

use syn::spanned::Spanned;
use syn::{FnArg, Ident, Lifetime, Pat, ReturnType, Signature, Type};

use crate::errors::Errors;
use crate::pattern::Pattern;
use crate::types::{self, StreamType};

/// The parameter attribute that asks for the block's index in its list.
pub(crate) const INDEX_ATTR: &str = "block_index";

/// What comes before the streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leading {
    /// `&self` (`#[block_adapter]` on a block's impl).
    SelfRef,
    /// `block: &Block` (a `#[patch_functor]` function over a wrapped block).
    Block,
}

/// A validated block function.
pub(crate) struct BlockFn {
    /// The pattern it was checked against.
    pub pattern: Pattern,
    /// The wrapped block type (`Leading::Block` only).
    pub block: Option<Type>,
    /// How it takes `H`.
    pub hidden: StreamType,
    /// How it takes `E` (Patterns 0-2).
    pub encoder: Option<StreamType>,
    /// The parameters after the streams, in order.
    pub rest: Vec<Param>,
    /// How it returns.
    pub output: Output,
}

/// A parameter after the streams.
pub(crate) enum Param {
    /// The `#[block_index]` parameter.
    Index,
    /// A field of the generated `Args` struct.
    Arg(Box<ArgField>),
}

/// A field of the generated `Args` struct.
pub(crate) struct ArgField {
    /// The parameter's name.
    pub ident: Ident,
    /// Its type, every borrow rewritten to the struct's `'a`.
    pub ty: Type,
    /// Whether the type borrows (so the struct needs `'a`).
    pub borrows: bool,
    /// Whether the type is certainly `Copy` (else the call clones it).
    pub copy: bool,
}

/// How the function returns.
pub(crate) struct Output {
    /// `Result<..>` (the call gets `?`) or a bare value.
    pub fallible: bool,
    /// The returned encoder stream (`Owned` or `OptionOwned`), for two-stream patterns.
    pub encoder: Option<StreamType>,
}

impl BlockFn {
    /// The fields of the generated `Args` struct.
    pub(crate) fn fields(&self) -> impl Iterator<Item = &ArgField> {
        self.rest.iter().filter_map(|p| match p {
            Param::Arg(f) => Some(&**f),
            Param::Index => None,
        })
    }

    /// Whether a parameter asks for the block index.
    pub(crate) fn wants_index(&self) -> bool {
        self.rest.iter().any(|p| matches!(p, Param::Index))
    }
}

/// Checks `sig` against `pattern`, recording every misfit in `errors`, and returns the reading
/// of the signature: exact when nothing was recorded, else the best guess, which the stand-in
/// emitted next to the errors uses so that code using the block adds no errors of its own.
pub(crate) fn analyze(sig: &Signature, pattern: Pattern, leading: Leading, errors: &mut Errors) -> BlockFn {
    let name = &sig.ident;
    let expected = expected_signature(name, pattern, leading);
    check_qualifiers(sig, errors);

    let mut inputs = sig.inputs.iter().peekable();
    let block = match leading {
        Leading::SelfRef => {
            let receiver = inputs.next_if(|i| matches!(i, FnArg::Receiver(_)));
            check_receiver(sig, receiver, errors);
            None
        }
        Leading::Block => check_block_param(sig, inputs.next(), &expected, errors),
    };

    let streams = Streams {
        sig,
        pattern,
        leading,
        expected: &expected,
    };
    let hidden = streams.param(inputs.next(), Stream::Hidden, errors);
    let encoder = if pattern.takes_encoder() {
        let encoder = streams.param(inputs.next(), Stream::Encoder, errors);
        Some(encoder.unwrap_or(StreamType::Ref))
    } else {
        None
    };

    let mut rest = Vec::new();
    let mut index_seen = false;
    for input in inputs {
        if let Some(p) = rest_param(input, name, &mut index_seen, errors) {
            rest.push(p);
        }
    }
    let output = check_output(sig, pattern, errors);

    BlockFn {
        pattern,
        block,
        hidden: hidden.unwrap_or(StreamType::Ref),
        encoder,
        rest,
        output: output.unwrap_or(Output {
            fallible: true,
            encoder: None,
        }),
    }
}

/// The first pattern `sig` fits, for the stand-in when the pattern argument is missing or wrong.
pub(crate) fn fitting_pattern(sig: &Signature, leading: Leading) -> Option<Pattern> {
    Pattern::ALL.into_iter().find(|p| {
        let mut errors = Errors::default();
        analyze(sig, *p, leading, &mut errors);
        errors.is_empty()
    })
}

/// Removes the `#[block_index]` markers from `sig`, which are not attributes rustc knows.
pub(crate) fn strip_index_attrs(sig: &mut Signature) {
    for input in &mut sig.inputs {
        if let FnArg::Typed(p) = input {
            p.attrs.retain(|a| !a.path().is_ident(INDEX_ATTR));
        }
    }
}

fn expected_signature(name: &Ident, pattern: Pattern, leading: Leading) -> String {
    let first = match leading {
        Leading::SelfRef => "&self",
        Leading::Block => "block: &Block",
    };
    format!("fn {name}({first}, {}, ..)", pattern.params_hint())
}

fn check_qualifiers(sig: &Signature, errors: &mut Errors) {
    let name = &sig.ident;
    if let Some(a) = &sig.asyncness {
        errors.spanned(a, format!("`{name}` cannot be `async`: blocks run synchronously"));
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, format!("`{name}` cannot be variadic"));
    }
    for param in &sig.generics.params {
        if !matches!(param, syn::GenericParam::Lifetime(_)) {
            errors.spanned(
                param,
                format!(
                    "`{name}` cannot have type or const parameters: the generated code calls it \
                     with the concrete types of the list"
                ),
            );
        }
    }
}

fn check_receiver(sig: &Signature, first: Option<&FnArg>, errors: &mut Errors) {
    let name = &sig.ident;
    match first {
        Some(FnArg::Receiver(r)) => {
            let shared_ref = match &r.kind {
                syn::ReceiverKind::Reference(_, _, mutability) => mutability.is_none(),
                syn::ReceiverKind::Typed(_, ty) => matches!(
                    types::peel(ty),
                    Type::Reference(t) if t.mutability.is_none() && types::is_named(&t.elem, "Self")
                ),
                _ => false,
            };
            if !shared_ref {
                errors.spanned(
                    r,
                    format!(
                        "`{name}` must take `&self`, not `{}`: the blocks of a list run shared, \
                         one call after another",
                        types::display(&r)
                    ),
                );
            }
        }
        _ => errors.spanned(
            &sig.ident,
            format!("`{name}` must take `&self`: `#[block_adapter]` calls it on each block of a list"),
        ),
    }
}

fn check_block_param(
    sig: &Signature,
    first: Option<&FnArg>,
    expected: &str,
    errors: &mut Errors,
) -> Option<Type> {
    let message = format!("a patch functor takes the wrapped block first: expected `{expected}`");
    match first {
        Some(FnArg::Typed(p)) => match types::peel(&p.ty) {
            Type::Reference(r) if r.mutability.is_none() && matches!(types::peel(&r.elem), Type::Path(_)) => {
                Some((*r.elem).clone())
            }
            _ => {
                errors.spanned(
                    &p.ty,
                    format!("{message}, as `&Block`; found `{}`", types::display(&p.ty)),
                );
                None
            }
        },
        Some(FnArg::Receiver(r)) => {
            errors.spanned(
                r,
                format!("{message}: a patch functor is a free function, not a method"),
            );
            None
        }
        None => {
            errors.push(syn::Error::new(sig.paren_token.span.join(), message));
            None
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Hidden,
    Encoder,
}

/// What the stream parameters are checked against.
struct Streams<'s> {
    sig: &'s Signature,
    pattern: Pattern,
    leading: Leading,
    expected: &'s str,
}

impl Streams<'_> {
    fn param(&self, input: Option<&FnArg>, stream: Stream, errors: &mut Errors) -> Option<StreamType> {
        let (p, expected) = (self.pattern.name(), self.expected);
        let (subject, place) = match self.leading {
            Leading::SelfRef => ("block", ["first", "second"]),
            Leading::Block => ("patch functor", ["right after the block", "after `H`"]),
        };
        let (what, place) = match stream {
            Stream::Hidden => ("the hidden stream `H`", place[0]),
            Stream::Encoder => ("the encoder stream `E`", place[1]),
        };
        let Some(input) = input else {
            let streams = if self.pattern.takes_encoder() {
                "the hidden stream `H` and the encoder stream `E`"
            } else {
                "the hidden stream `H`"
            };
            let place = match self.leading {
                Leading::SelfRef => "first",
                Leading::Block => "right after the block",
            };
            errors.push(syn::Error::new(
                self.sig.paren_token.span.join(),
                format!("a `{p}` {subject} takes {streams} {place}: expected `{expected}`"),
            ));
            return None;
        };
        let FnArg::Typed(param) = input else {
            errors.spanned(input, format!("expected {what} here: `{expected}`"));
            return None;
        };
        if let Some(attr) = param.attrs.iter().find(|a| a.path().is_ident(INDEX_ATTR)) {
            errors.spanned(
                attr,
                format!(
                    "a `{p}` {subject} takes {what} {place}, not the block index: expected \
                     `{expected}`, with `#[block_index]` on a later parameter"
                ),
            );
            return None;
        }
        let accepted = match stream {
            Stream::Hidden => "`&Tensor` or `Tensor`",
            Stream::Encoder => "`&Tensor`, `Tensor`, `Option<&Tensor>` or `Option<Tensor>`",
        };
        match StreamType::of(&param.ty) {
            Some(t) if stream == Stream::Encoder || !t.is_option() => Some(t),
            _ => {
                errors.spanned(
                    &param.ty,
                    format!(
                        "a `{p}` {subject} takes {what} {place}, as {accepted}; found `{}`\n\
                         expected `{expected}`",
                        types::display(&param.ty)
                    ),
                );
                None
            }
        }
    }
}

fn rest_param(input: &FnArg, fn_name: &Ident, index_seen: &mut bool, errors: &mut Errors) -> Option<Param> {
    let FnArg::Typed(param) = input else {
        errors.spanned(input, "`self` must come first");
        return None;
    };
    let index_attr = param.attrs.iter().find(|a| a.path().is_ident(INDEX_ATTR));
    if let Some(attr) = index_attr {
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.spanned(attr, "`#[block_index]` takes no arguments");
        }
        if std::mem::replace(index_seen, true) {
            errors.spanned(attr, "only one parameter can be the `#[block_index]`");
        }
        if !types::is_named(&param.ty, "usize") {
            errors.spanned(
                &param.ty,
                format!(
                    "`#[block_index]` is the block's position in its list, a `usize`; found `{}`",
                    types::display(&param.ty)
                ),
            );
        }
        return Some(Param::Index);
    }
    let ident = match &*param.pat {
        Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => p.ident.clone(),
        pat => {
            errors.spanned(
                pat,
                format!(
                    "give this parameter of `{fn_name}` a plain name: it becomes a field of the \
                     generated `Args` struct"
                ),
            );
            return None;
        }
    };
    match types::peel(&param.ty) {
        Type::Reference(r) if r.mutability.is_some() => {
            errors.spanned(
                &param.ty,
                format!(
                    "`{ident}` cannot be `&mut`: the arguments after the streams are shared by \
                     every block of the list; use a `&RefCell<_>` or `&Mutex<_>` for state the \
                     blocks update (e.g. a skip stack)"
                ),
            );
            return None;
        }
        Type::ImplTrait(_) => {
            errors.spanned(
                &param.ty,
                format!(
                    "`{ident}` cannot be `impl Trait`: it is stored in the generated `Args` \
                     struct; use a concrete type or `&dyn Trait`"
                ),
            );
            return None;
        }
        _ => {}
    }
    let mut ty = (*param.ty).clone();
    let borrows = types::with_lifetime(&mut ty, &Lifetime::new("'a", param.ty.span()));
    let copy = types::is_copy(&ty);
    Some(Param::Arg(Box::new(ArgField {
        ident,
        ty,
        borrows,
        copy,
    })))
}

fn check_output(sig: &Signature, pattern: Pattern, errors: &mut Errors) -> Option<Output> {
    let p = pattern.name();
    let shape = format!(
        "a `{p}` block returns {}: expected {}",
        pattern.returns_hint(),
        pattern.return_type_hint()
    );
    let ReturnType::Type(_, ty) = &sig.output else {
        errors.spanned(&sig.ident, format!("`{}` has no return type; {shape}", sig.ident));
        return None;
    };
    let (fallible, value) = match types::generic_arg(ty, "Result") {
        Some(inner) => (true, types::peel(inner)),
        None => (false, types::peel(ty)),
    };
    let found = match value {
        Type::Tuple(t) if t.elems.is_empty() => "`()`".to_owned(),
        Type::Tuple(t) => format!("a {}-tuple", t.elems.len()),
        _ => "a single value".to_owned(),
    };
    let hidden_elem = |ty: &Type, errors: &mut Errors| {
        if !types::is_tensor(ty) {
            errors.spanned(
                ty,
                format!(
                    "expected the hidden stream `H` here, a `Tensor`; found `{}`\n{shape}",
                    types::display(&ty)
                ),
            );
        }
    };
    if pattern.returns_hidden_only() {
        if matches!(value, Type::Tuple(_)) {
            errors.spanned(ty, format!("{shape}, but this returns {found}"));
            return None;
        }
        hidden_elem(value, errors);
        return Some(Output {
            fallible,
            encoder: None,
        });
    }
    let Type::Tuple(pair) = value else {
        errors.spanned(ty, format!("{shape}, but this returns {found}"));
        return None;
    };
    let elems: Vec<&Type> = pair.elems.iter().collect();
    let &[first, second] = elems.as_slice() else {
        errors.spanned(ty, format!("{shape}, but this returns {found}"));
        return None;
    };
    let (h, e) = if pattern.hidden_first() {
        (first, second)
    } else {
        (second, first)
    };
    hidden_elem(h, errors);
    let encoder = match StreamType::of(e) {
        Some(t @ (StreamType::Owned | StreamType::OptionOwned)) => Some(t),
        _ => {
            errors.spanned(
                e,
                format!(
                    "expected the encoder stream `E` here, a `Tensor` or `Option<Tensor>`; found \
                     `{}`\n{shape}",
                    types::display(&e)
                ),
            );
            None
        }
    };
    Some(Output { fallible, encoder })
}
