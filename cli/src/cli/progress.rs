//! Progress bars for runs longer than a moment.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `total` steps labelled `label`; hidden when stderr is not a terminal.
pub fn bar(label: &str, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} steps {elapsed_precise}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}
