//! Locks shared by the engine's threads.

use std::sync::{Mutex, MutexGuard};

/// A mutex's guard, also after a panic elsewhere while it was held: what the engine
/// guards (a pool's containers, a receiver's spans, an export's queue) is updated one
/// insert or remove at a time, so it stays consistent, and a cleanup must still run.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
