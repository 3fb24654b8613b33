//! The cache strategies: what runs one call of a cached list under its context. DBCache
//! ([`dbcache`]) decides once per call whether the middle blocks can be skipped; DBPrune
//! ([`dbprune`]) decides block by block. Both implement [`Strategy`] and drive the same
//! [`CacheContext`], whose decisions differ between them only by their
//! [`DecisionRules`](crate::cache::context::rules::DecisionRules).

pub mod dbcache;
pub mod dbprune;

use candle_core::Result;

use crate::cache::context::CacheContext;
use crate::cache::record::CallRecord;
use crate::cache::streams::{BlockRunner, Streams};

/// One cache algorithm: how a call of a cached list runs its blocks under `ctx`.
pub trait Strategy: Send + Sync {
    /// cache-dit's name of the algorithm (`DBCache`, `DBPrune`).
    fn name(&self) -> &'static str;

    /// Runs one call of the list `runner` on `s`, deciding and recording under `ctx`.
    fn forward(
        &self,
        ctx: &mut CacheContext,
        runner: &dyn BlockRunner,
        s: Streams,
    ) -> Result<(Streams, CallRecord)>;
}
