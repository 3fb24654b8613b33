//! `CacheHandle`: the slot in a `BlockList` that holds its cache context, if any, and the
//! trace of its calls when tracing is on.

use std::sync::{Mutex, MutexGuard};

use candle_core::Result;

use crate::cache::config::cache::CacheType;
use crate::cache::context::CacheContext;
use crate::cache::record::CallRecord;
use crate::cache::strategy::Strategy;
use crate::cache::strategy::dbcache::DbCache;
use crate::cache::strategy::dbprune::DbPrune;
use crate::cache::streams::{BlockRunner, Streams};

/// Holds the cache context of one cached list. Per model instance: two models (or two lists)
/// never share one. The lock serialises calls of the same list, whose state is sequential.
#[derive(Default)]
pub struct CacheHandle {
    state: Mutex<HandleState>,
}

#[derive(Default)]
struct HandleState {
    context: Option<CacheContext>,
    trace: Option<Vec<CallRecord>>,
    last: Option<CallRecord>,
}

/// The strategy that runs contexts of `cache_type`.
fn strategy_for(cache_type: CacheType) -> &'static dyn Strategy {
    match cache_type {
        CacheType::DBCache => &DbCache,
        CacheType::DBPrune => &DbPrune,
    }
}

impl CacheHandle {
    fn lock(&self) -> MutexGuard<'_, HandleState> {
        // A panic inside a block cannot leave the context half-updated in a way that matters
        // more than losing the model, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a cache context is attached.
    pub fn is_enabled(&self) -> bool {
        self.lock().context.is_some()
    }

    /// Attaches `context`, replacing any previous one.
    pub fn attach(&self, context: CacheContext) {
        self.lock().context = Some(context);
    }

    /// Removes the cache context; the list runs its plain loop again.
    pub fn detach(&self) -> Option<CacheContext> {
        let mut s = self.lock();
        s.last = None;
        s.context.take()
    }

    /// Runs `f` on the attached context, if any.
    pub fn with_context<R>(&self, f: impl FnOnce(&mut CacheContext) -> R) -> Option<R> {
        self.lock().context.as_mut().map(f)
    }

    /// Starts (or stops) recording one `CallRecord` per call.
    pub fn set_tracing(&self, on: bool) {
        let mut s = self.lock();
        s.trace = if on {
            Some(s.trace.take().unwrap_or_default())
        } else {
            None
        };
    }

    /// Takes the records traced so far.
    pub fn take_trace(&self) -> Vec<CallRecord> {
        self.lock().trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The record of the last cached-list call.
    pub fn last_call(&self) -> Option<CallRecord> {
        self.lock().last.clone()
    }

    /// Runs the list: the plain loop without a context, the context's strategy with one.
    pub fn run(&self, runner: &dyn BlockRunner, s: Streams) -> Result<Streams> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(ctx) = state.context.as_mut() else {
            drop(guard);
            return runner.run(0..runner.len(), s);
        };
        let (out, record) = strategy_for(ctx.config().cache_type).forward(ctx, runner, s)?;
        if let Some(trace) = state.trace.as_mut() {
            trace.push(record.clone());
        }
        state.last = Some(record);
        Ok(out)
    }
}
