//! Without `link()`: this test crate depends on `cachedit_downstream_example` (see Cargo.toml)
//! but names nothing of it, so rustc leaves the crate out of the program and its family is not
//! registered; the lookup error says how to bring it in. Deterministic: rustc links only the
//! dependencies a crate names, in every profile (checked with lto and codegen-units=1 too).
//! Nothing in this file may name `cachedit_downstream_example`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

#[test]
fn an_unlinked_registering_crate_is_missing_and_the_error_says_to_call_link() {
    // cachedit's own families are there (the facade links its adapters) ...
    assert!(cachedit::lookup("FluxPipeline").is_ok());
    // ... the library crate's is not,
    let (_, names) = cachedit::supported_pipelines();
    assert!(!names.contains(&"ToyDiT*".to_owned()), "{names:?}");
    // and the error says what to do about it.
    let message = cachedit::lookup("ToyDiTPipeline").unwrap_err().to_string();
    assert!(
        message.starts_with("no registered family matches `ToyDiTPipeline` (supported: Flux, "),
        "{message}"
    );
    assert!(message.contains("call `that_crate::link()`"), "{message}");
}
