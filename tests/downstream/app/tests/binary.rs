//! The `downstream-app` binary finds, builds and runs the library crate's family.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::process::Command;

#[test]
fn the_binary_looks_up_builds_and_caches_the_family() {
    // Threshold 1e3: every step after the 2 warm-up steps reuses the cache.
    let out = Command::new(env!("CARGO_BIN_EXE_downstream-app"))
        .args(["1000", "6"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("family ToyDiT from cachedit-downstream-example (model ToyTransformer)"),
        "{stdout}"
    );
    assert!(stdout.contains("latents [1, 4, 8]"), "{stdout}");
    assert!(
        stdout.contains("list blocks: cached steps [2, 3, 4, 5]"),
        "{stdout}"
    );
}
