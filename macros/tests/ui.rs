//! Compile-time checks, as users see them: every misfit of `#[block_adapter]`,
//! `#[patch_functor]` and `#[derive(CachedTransformer)]` is an error at the offending tokens with
//! the shape the pattern expects (`ui/fail/*.stderr`), and well-formed uses compile against the
//! runtime alone, as in the adapters crate (`ui/pass`). The toolchain is pinned
//! (rust-toolchain.toml), so the messages are stable; bless changes with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
