//! No two files of a crate import each other, directly or through others: the file-level
//! import graph (see `import_graph`) of every crate of the workspace is acyclic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

mod import_graph;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use import_graph::{Disk, crate_cycles};

/// Cycles that exist and are to be removed (each the files of one strongly connected component,
/// sorted): the check fails on any other cycle, and on a listed one that no longer exists, so
/// that this list only shrinks.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// The crate roots of the workspace, relative to the repository root.
const ROOTS: &[&str] = &[
    "runtime/src/lib.rs",
    "adapters/src/lib.rs",
    "macros/src/lib.rs",
    "macros/codegen/src/lib.rs",
    "src/lib.rs",
    "cli/src/main.rs",
    "tests/downstream/family/src/lib.rs",
    "tests/downstream/app/src/main.rs",
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_crate_has_an_import_cycle() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut report = Vec::new();
    let mut known_seen = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    for root in ROOTS {
        let (files, cycles) = crate_cycles(&repo.join(root), repo, &Disk, true).unwrap();
        covered.extend(files);
        for c in cycles {
            if KNOWN_CYCLES.iter().any(|k| *k == c.files) {
                known_seen.push(c.files);
            } else {
                report.push(format!(
                    "{}\n    (all files of this cycle: {})",
                    c.text,
                    c.files.join(", ")
                ));
            }
        }
    }
    let gone: Vec<_> = KNOWN_CYCLES
        .iter()
        .filter(|k| !known_seen.iter().any(|s| s == *k))
        .collect();
    assert!(
        gone.is_empty(),
        "cycles listed in KNOWN_CYCLES no longer exist, remove them: {gone:?}"
    );
    // Every source file belongs to a crate checked above (a new crate root must be listed).
    let mut all = Vec::new();
    for root in ROOTS {
        rs_files(repo.join(root).parent().unwrap(), &mut all);
    }
    let missed: Vec<_> = all.iter().filter(|f| !covered.contains(*f)).collect();
    assert!(missed.is_empty(), "files in no module tree: {missed:#?}");
    assert!(
        report.is_empty(),
        "import cycles between files:\n{}",
        report.join("\n")
    );
}

/// An in-memory crate: `(path, source)` pairs under `/c/`.
fn files(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    list.iter()
        .map(|(p, s)| (Path::new("/c").join(p), (*s).to_string()))
        .collect()
}

fn cycles_of(list: &[(&str, &str)]) -> Vec<String> {
    crate_cycles(Path::new("/c/lib.rs"), Path::new("/c"), &files(list), false)
        .unwrap()
        .1
        .into_iter()
        .map(|c| c.text)
        .collect()
}

#[test]
fn a_planted_cycle_is_found_and_listed() {
    let found = cycles_of(&[
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "use crate::b::B; pub struct A(B);"),
        ("b.rs", "pub struct B; pub fn f() -> crate::a::A { todo!() }"),
    ]);
    assert_eq!(found, ["a.rs -> b.rs -> a.rs"]);
}

#[test]
fn cycles_through_super_nested_modules_and_three_files_are_found() {
    let found = cycles_of(&[
        ("lib.rs", "pub mod m; mod z;"),
        (
            "m/mod.rs",
            "pub mod x; mod y { pub fn g() { super::x::f(); } } pub struct T;",
        ),
        ("m/x.rs", "use super::super::z::Z; pub fn f() {}"),
        ("z.rs", "pub struct Z; fn h() { let _ = crate::m::T; }"),
    ]);
    assert_eq!(found, ["m/mod.rs -> m/x.rs -> z.rs -> m/mod.rs"]);
}

#[test]
fn re_exports_and_declarations_are_not_cycles() {
    // `b` uses `A` through the root's re-export: it depends on `a.rs`, not on `lib.rs`; and a
    // parent declaring a child module does not depend on it.
    let found = cycles_of(&[
        (
            "lib.rs",
            "mod a; mod b; mod c; pub use a::A; pub fn top() -> b::B { b::B }",
        ),
        ("a.rs", "pub struct A;"),
        ("b.rs", "use crate::A; pub struct B; fn f(_: A) {}"),
        ("c/mod.rs", "mod d; pub use self::d::D;"),
        ("c/d.rs", "use super::super::A; pub struct D;"),
    ]);
    assert!(found.is_empty(), "{found:?}");
    // A child using its parent's own item while the parent uses the child's is a cycle.
    let found = cycles_of(&[
        ("lib.rs", "mod p;"),
        ("p/mod.rs", "mod q; pub struct P; fn f() -> q::Q { q::Q }"),
        ("p/q.rs", "pub struct Q; fn g(_: super::P) {}"),
    ]);
    assert_eq!(found, ["p/mod.rs -> p/q.rs -> p/mod.rs"]);
}

#[test]
fn macro_bodies_and_other_crates_are_not_edges() {
    let found = cycles_of(&[
        ("lib.rs", "mod a; mod b;"),
        (
            "a.rs",
            "use crate::b::B; pub struct A; fn f() -> std::vec::Vec<B> { todo!() }",
        ),
        ("b.rs", "pub struct B; fn g() { quote!(crate::a::A); }"),
    ]);
    assert!(found.is_empty(), "{found:?}");
}
