//! Candle models of the DiT families cachedit supports, built on shared block designs.
//!
//! - [`components`]: the pieces every family configures rather than copies (attention, norms,
//!   adaLN modulation, feed-forward, timestep/text embedders, rotary tables, patchify).
//! - [`blocks`]: the block designs of `docs/families.md` §4: J (dual-stream joint, MMDiT), S
//!   (parallel single-stream), D (sequential) and X (shared-weight joint, expert adaLN).
//! - [`families`]: the transformers, with diffusers' parameter names so a hub `transformer/`
//!   folder loads as is.
//! - [`demo`]: a small Flux-architecture model trained by cachedit on procedurally drawn shapes,
//!   embedded in the binary, with its data set, trainer, sampler and PNG helpers.
//! - [`loader`], [`init`], [`registry`]: the runtime's diffusers loader, seeded weights and
//!   registry contract (`FamilyModel`, `build_family`), re-exported under their former paths.
//! - [`sample`]: generation sizes and helpers the families share (synthetic inputs, masks).

pub mod blocks;
pub mod components;
pub mod demo;
pub mod families;
pub mod sample;

/// `family_model!`: implements `FamilyModel` for a family built by `Self::new(cfg, vb)`.
pub use cachedit_runtime::family_model;
/// Deterministic seeded weights (the runtime's [`cachedit_runtime::init`]).
pub use cachedit_runtime::init;
/// Diffusers `transformer/` folders with typed errors (the runtime's [`cachedit_runtime::loader`]).
pub use cachedit_runtime::loader;

/// Building a family registered in `registry.yaml` (the runtime's registry contract).
pub mod registry {
    pub use cachedit_runtime::registry::{FamilyModel, NamedConfig, build_family};
}

// Generated registrations name this crate `::cachedit_adapters`, which then also works inside it.
extern crate self as cachedit_adapters;

// The families of `registry.yaml` (at the repository root), as `inventory` registrations, and
// `link()`, which binaries call to keep them (the `cachedit` facade does).
cachedit_macros::register_families!("../registry.yaml");

pub use families::ListLayout;
pub use families::flux::FluxTransformer2DModel;
pub use init::{SeededBackend, seeded_var_builder};
pub use loader::{Checkpoint, LoadError};
pub use registry::{FamilyModel, build_family};
