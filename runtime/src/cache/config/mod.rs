//! The cache options and where they come from: [`cache::CacheConfig`] (each option declared
//! once, in [`keys`]' macro, which also gives the per-list patch and the YAML keys), per-list
//! overrides ([`modifier`]), calibrator options ([`calibrator`]), step masks ([`mask`]), what
//! `enable_cache` takes ([`options`]), cache-dit's YAML files ([`yaml`]) and naming strings
//! ([`naming`]). Nothing here depends on the rest of the cache core.

pub mod cache;
pub mod calibrator;
pub mod error;
pub mod fields;
pub mod keys;
pub mod mask;
pub mod modifier;
pub mod naming;
pub mod options;
pub mod yaml;
