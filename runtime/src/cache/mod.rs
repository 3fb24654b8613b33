//! The cache core: everything that decides and stores, and nothing that samples or loads.
//!
//! - The block contract: [`streams`] (`Streams`, `BlockRunner`), [`block`] (`CachedBlock`,
//!   `BlockList`), [`pattern`] (the six forward patterns), [`handle`] (where a list's context
//!   lives) and [`api`] (`CachedTransformer`, `enable_cache`, ...).
//! - The decision state: [`context`] (one `CacheContext` per cached list, its CFG branches and
//!   the rules that differ between strategies), [`store`] and [`calibrators`] (what is reused
//!   or forecast), [`diff`].
//! - The strategies: [`strategy`] (DBCache and DBPrune behind one `Strategy` trait).
//! - What a run leaves: [`record`] (decisions, reasons, the trace), [`stats`], [`host_time`].
//! - The options: [`config`].
//!
//! Imports go one way: `api` → `block` → `handle` → `strategy` → `context` → `config`; the
//! context asks its rules, never a strategy.

pub mod api;
pub mod block;
pub mod calibrators;
pub mod config;
pub mod context;
pub mod diff;
pub mod handle;
pub mod host_time;
pub mod pattern;
pub mod record;
pub mod stats;
pub mod store;
pub mod strategy;
pub mod streams;
