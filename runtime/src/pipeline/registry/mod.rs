//! The family registry: what `registry.yaml` declares, collected at start-up with `inventory`.
//!
//! Each entry of a crate's `registry.yaml` is turned by `register_families!` into an
//! `inventory::submit!` of a [`FamilyEntry`]; this module owns the `inventory::collect!` and
//! answers [`supported_pipelines`] and [`lookup`] over every linked crate's entries.
//!
//! **Order.** cache-dit registers its families in a fixed order; ours is the order of the
//! entries in `cachedit-adapters`' `registry.yaml`, followed by the families of other crates
//! (sorted by crate name, then by their own YAML order). `inventory` itself gives no order.
//!
//! **Lookup.** cache-dit matches `class_name.startswith(prefix)` in registration order and the
//! first match wins, which makes `HunyuanDiTPAG` unreachable (`HunyuanDiT` matches first) and
//! makes `BriaFibo` depend on being registered before `Bria`. Here the **longest** matching
//! prefix wins, so the result does not depend on order: every name cache-dit resolves resolves
//! to the same family unless a longer prefix of it is registered, in which case that (more
//! specific) family is chosen. Ties cannot happen between distinct names; the same name
//! registered twice is a [`RegistryError::DuplicateFamily`].
//!
//! **Building.** A family's model implements [`FamilyModel`] ([`family`]); the registration
//! generated for it calls [`build_family`], which reads the config ([`loader`]) and the weights
//! (a diffusers folder, or seeded ones from [`init`]) a [`BuildRequest`] names.
//!
//! **Linking.** A crate whose registrations nobody names is dropped by the linker and its
//! families vanish; binaries and tests reading the registry must reference the crates that
//! register, by calling the `link()` that `register_families!` generates at each registering
//! crate's root (the `cachedit` facade does it for `cachedit-adapters`).

pub mod entry;
pub mod family;
pub mod init;
pub mod loader;
pub mod request;

pub use crate::pipeline::registry::entry::{
    BlockListDecl, FamilyEntry, PRIMARY_CRATE, StaticBlockLists, block_lists_match, duplicates,
    duplicates_in, families, lookup, lookup_in, str_eq, supported_pipelines,
};
pub use crate::pipeline::registry::family::{FamilyModel, NamedConfig, build_family};
pub use crate::pipeline::registry::request::{
    BuildRequest, BuildResult, ConfigSource, RegistryError, WeightsSource,
};
pub use crate::pipeline::scheduler::SchedulerKind;
