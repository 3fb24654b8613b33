//! Compile-time checks of `register_families!` as users see them (`ui/registry/*.stderr`): an
//! unknown key or pattern is a `compile_error!` naming the entry, the key and the line; a
//! misspelt model type or config constructor is a rustc error at the generated item that
//! names it; block lists that disagree with the model fail a `const` assertion naming the
//! entry. Same harness as `macros/tests/ui.rs` (pinned toolchain; bless with
//! `TRYBUILD=overwrite`).

#[test]
fn registry_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/registry/*.rs");
}
