//! Upper bounds on the counts a user gives, checked before anything is allocated or looped over,
//! so a mistyped number is an error rather than a long hang or an out-of-memory abort.

/// The most denoising steps a generation, a step mask or `num_inference_steps` may have. Real
/// samplers use 1 to a few hundred steps; DDIM cannot exceed its 1000 training timesteps. A
/// schedule of this many steps takes a fraction of a millisecond to build.
pub const MAX_STEPS: usize = 10_000;

/// The most tensors a calibrator may keep per stream (`taylorseer_order`, `dmd_history`): each
/// is a copy of a block list's output, so a mistyped 10^6 would exhaust memory step by step.
/// cache-dit's defaults are 1 to 6.
pub const MAX_CALIBRATOR_HISTORY: usize = 64;

/// `count` if it is at most [`MAX_STEPS`], else the error `what` builds from it.
pub fn check_steps<E>(count: usize, err: impl FnOnce(usize) -> E) -> Result<usize, E> {
    if count > MAX_STEPS {
        return Err(err(count));
    }
    Ok(count)
}

/// At most `max` characters of `text` for an error message, with how much was left out, so a
/// pasted megabyte does not end up on the terminal.
pub fn truncate_for_message(text: &str, max: usize) -> String {
    let mut chars = text.char_indices();
    match chars.nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(truncate_for_message("abc", 3), "abc");
        assert_eq!(truncate_for_message("abcd", 3), "abc… (4 bytes in all)");
        assert_eq!(truncate_for_message("ééé", 1), "é… (6 bytes in all)");
        assert_eq!(check_steps(MAX_STEPS, |n| n), Ok(MAX_STEPS));
        assert_eq!(check_steps(MAX_STEPS + 1, |n| n), Err(MAX_STEPS + 1));
    }
}
