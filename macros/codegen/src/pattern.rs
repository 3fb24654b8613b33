//! cache-dit's six forward patterns as the macros see them: what a block's `forward` takes and
//! returns. (The runtime has its own `ForwardPattern`; this crate depends on nothing of ours.)

use proc_macro2::Span;
use syn::Ident;

/// One of `Pattern_0` .. `Pattern_5` (docs/algorithm.md §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Takes `(H, E, ..)`, returns `(H, E)`.
    P0,
    /// Takes `(H, E, ..)`, returns `(E, H)`.
    P1,
    /// Takes `(H, E, ..)`, returns `H`.
    P2,
    /// Takes `(H, ..)`, returns `H`.
    P3,
    /// Takes `(H, ..)`, returns `(H, E)`.
    P4,
    /// Takes `(H, ..)`, returns `(E, H)`.
    P5,
}

const NAMES: [(&str, Pattern); 6] = [
    ("Pattern_0", Pattern::P0),
    ("Pattern_1", Pattern::P1),
    ("Pattern_2", Pattern::P2),
    ("Pattern_3", Pattern::P3),
    ("Pattern_4", Pattern::P4),
    ("Pattern_5", Pattern::P5),
];

impl Pattern {
    /// The six patterns, in order.
    pub const ALL: [Self; 6] = [Self::P0, Self::P1, Self::P2, Self::P3, Self::P4, Self::P5];

    /// Reads `Pattern_N` (also as the last segment of a path such as `ForwardPattern::Pattern_1`).
    pub fn parse(path: &syn::Path) -> syn::Result<Self> {
        let Some(last) = path.segments.last() else {
            return Err(syn::Error::new_spanned(path, Self::unknown("")));
        };
        let name = last.ident.to_string();
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| syn::Error::new_spanned(path, Self::unknown(&name)))
    }

    fn unknown(name: &str) -> String {
        format!(
            "unknown forward pattern `{name}`: expected one of `Pattern_0`, `Pattern_1`, \
             `Pattern_2`, `Pattern_3`, `Pattern_4`, `Pattern_5`"
        )
    }

    /// cache-dit's name, `Pattern_1`.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("Pattern_?", |(n, _)| n)
    }

    /// The variant of the runtime's `ForwardPattern`.
    pub fn ident(self) -> Ident {
        Ident::new(self.name(), Span::call_site())
    }

    /// Whether blocks take the encoder stream `E` after `H` (Patterns 0-2).
    pub fn takes_encoder(self) -> bool {
        matches!(self, Self::P0 | Self::P1 | Self::P2)
    }

    /// Whether blocks return `H` alone (Patterns 2, 3).
    pub fn returns_hidden_only(self) -> bool {
        matches!(self, Self::P2 | Self::P3)
    }

    /// Whether a two-stream return is `(H, E)` (Patterns 0, 4) rather than `(E, H)`.
    pub fn hidden_first(self) -> bool {
        matches!(self, Self::P0 | Self::P4)
    }

    /// The leading parameters, for messages: `hidden: &Tensor, encoder: &Tensor`.
    pub fn params_hint(self) -> &'static str {
        if self.takes_encoder() {
            "hidden: &Tensor, encoder: &Tensor"
        } else {
            "hidden: &Tensor"
        }
    }

    /// What the block returns, for messages: `(E, H)`.
    pub fn returns_hint(self) -> &'static str {
        match self {
            Self::P2 | Self::P3 => "`H`",
            Self::P0 | Self::P4 => "`(H, E)`",
            Self::P1 | Self::P5 => "`(E, H)`",
        }
    }

    /// The return type it expects, for messages: `Result<(Tensor, Tensor)>`.
    pub fn return_type_hint(self) -> &'static str {
        if self.returns_hidden_only() {
            "`Result<Tensor>`"
        } else if self.hidden_first() {
            "`Result<(Tensor, Tensor)>` (or `Result<(Tensor, Option<Tensor>)>`)"
        } else {
            "`Result<(Tensor, Tensor)>` (or `Result<(Option<Tensor>, Tensor)>`)"
        }
    }
}
