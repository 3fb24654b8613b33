//! Value parsers for numbers a user types: limits and finiteness are checked when the arguments
//! are parsed, before anything is allocated or run.

use cachedit::runtime::limits::MAX_STEPS;

/// A step count: 1 to [`MAX_STEPS`].
pub fn steps(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("`{s}` is not a step count: {e}"))?;
    if n == 0 || n > MAX_STEPS {
        return Err(format!("{n} steps: expected 1 to {MAX_STEPS}"));
    }
    Ok(n)
}

/// A finite number (NaN and infinities would run to an all-NaN result).
pub fn finite(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !x.is_finite() {
        return Err(format!("{s}: expected a finite number"));
    }
    Ok(x)
}

/// An error and its causes for the terminal, each cause once: many errors repeat their
/// source's message in their own (`"building the model failed: {source}"`), which `{:#}` would
/// print again after it.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_reject_what_would_hang_or_poison_a_run() {
        assert_eq!(steps("28"), Ok(28));
        assert!(steps("0").is_err());
        assert!(steps(&(MAX_STEPS + 1).to_string()).is_err());
        assert!(steps("18446744073709551615").is_err());
        assert!(steps("18446744073709551616").is_err());
        assert_eq!(finite("-1"), Ok(-1.0));
        for bad in ["NaN", "nan", "inf", "-inf", "infinity", "1e999"] {
            assert!(finite(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("building the model failed: {0}")]
        struct Outer(#[source] std::io::Error);
        let inner = std::io::Error::other("no such tensor `x`");
        let e = anyhow::Error::new(Outer(inner)).context("loading weights/");
        assert_eq!(
            error_chain(&e),
            "loading weights/: building the model failed: no such tensor `x`"
        );
    }
}
