//! Synchronisation primitives, switched to loom's model-checked versions under
//! `cfg(loom)` so the lifecycle races can be explored exhaustively. `Arc` is
//! always std's: it only shares data, it decides no race.
//! (`RUSTFLAGS="--cfg loom" cargo test -p tidings-core --test loom --release`).

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
    Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
    Mutex, MutexGuard,
};

/// Locks a mutex, ignoring poisoning: every critical section in this crate
/// leaves its data consistent before anything that could panic, and a
/// reporter must keep working after a panic elsewhere (G3).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
