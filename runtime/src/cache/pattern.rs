//! cache-dit's six forward patterns: how a block takes and returns the hidden stream `H` and the
//! encoder (text) stream `E`.

use std::fmt;
use std::str::FromStr;

/// How a transformer block takes and returns the hidden stream `H` and the encoder stream `E`
/// (docs/algorithm.md §1.1). The names are cache-dit's, so registry entries and configs read the same.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardPattern {
    /// Takes `(H, E, args)`, returns `(H, E)`.
    Pattern_0,
    /// Takes `(H, E, args)`, returns `(E, H)`.
    Pattern_1,
    /// Takes `(H, E, args)`, returns `H`; the same `E` is fed to every block.
    Pattern_2,
    /// Takes `(H, args)`, returns `H`.
    Pattern_3,
    /// Takes `(H, args)`, returns `(H, E)`; the new `E` is not fed to the next block.
    Pattern_4,
    /// Takes `(H, args)`, returns `(E, H)`; the new `E` is not fed to the next block.
    Pattern_5,
}

impl ForwardPattern {
    /// All six patterns, in order.
    pub const ALL: [ForwardPattern; 6] = [
        Self::Pattern_0,
        Self::Pattern_1,
        Self::Pattern_2,
        Self::Pattern_3,
        Self::Pattern_4,
        Self::Pattern_5,
    ];

    /// The pattern's name as cache-dit spells it (`Pattern_1`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pattern_0 => "Pattern_0",
            Self::Pattern_1 => "Pattern_1",
            Self::Pattern_2 => "Pattern_2",
            Self::Pattern_3 => "Pattern_3",
            Self::Pattern_4 => "Pattern_4",
            Self::Pattern_5 => "Pattern_5",
        }
    }

    /// Whether blocks take the encoder stream as their second input (Patterns 0-2).
    pub const fn takes_encoder(self) -> bool {
        matches!(self, Self::Pattern_0 | Self::Pattern_1 | Self::Pattern_2)
    }

    /// Whether blocks return only the hidden stream (Patterns 2 and 3).
    pub const fn returns_hidden_only(self) -> bool {
        matches!(self, Self::Pattern_2 | Self::Pattern_3)
    }

    /// Whether a two-stream return is ordered `(H, E)` (Patterns 0 and 4) rather than `(E, H)`.
    pub const fn returns_hidden_first(self) -> bool {
        matches!(self, Self::Pattern_0 | Self::Pattern_4)
    }

    /// The named inputs a block of this pattern takes before its other arguments.
    pub const fn inputs(self) -> &'static [&'static str] {
        if self.takes_encoder() {
            &["hidden_states", "encoder_hidden_states"]
        } else {
            &["hidden_states"]
        }
    }

    /// The named outputs a block of this pattern returns, in order.
    pub const fn outputs(self) -> &'static [&'static str] {
        match self {
            Self::Pattern_2 | Self::Pattern_3 => &["hidden_states"],
            Self::Pattern_0 | Self::Pattern_4 => &["hidden_states", "encoder_hidden_states"],
            Self::Pattern_1 | Self::Pattern_5 => &["encoder_hidden_states", "hidden_states"],
        }
    }
}

impl fmt::Display for ForwardPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A pattern name that is not one of cache-dit's six.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown forward pattern `{0}`: expected one of Pattern_0 .. Pattern_5")]
pub struct UnknownPattern(pub String);

impl FromStr for ForwardPattern {
    type Err = UnknownPattern;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPattern(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_describe_the_streams() {
        for p in ForwardPattern::ALL {
            assert_eq!(p.name().parse::<ForwardPattern>(), Ok(p));
            assert_eq!(p.inputs().len(), if p.takes_encoder() { 2 } else { 1 });
            assert_eq!(p.outputs().len(), if p.returns_hidden_only() { 1 } else { 2 });
        }
        assert_eq!(ForwardPattern::Pattern_1.outputs()[1], "hidden_states");
        assert_eq!(ForwardPattern::Pattern_4.outputs()[0], "hidden_states");
        assert!("Pattern_9".parse::<ForwardPattern>().is_err());
    }
}
