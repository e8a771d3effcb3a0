//! Synchronisation primitives, switched to loom's model-checked versions under
//! `cfg(loom)` so the lifecycle races can be explored exhaustively. `Arc` is
//! loom's too for the types that hold these atomics (a std `Arc` dropping
//! them on another thread looks like a race to loom, which cannot see std's
//! fences); unsized `Arc`s (`Arc<str>`, `Arc<dyn Runtime>`) stay std's.
//! (`RUSTFLAGS="--cfg loom" cargo test -p tidings-core --test loom --release`).

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
    Arc, Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
    Arc, Mutex, MutexGuard,
};

/// Lets other threads run (loom's scheduler under `cfg(loom)`).
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Locks a mutex, ignoring poisoning: every critical section in this crate
/// leaves its data consistent before anything that could panic, and a
/// reporter must keep working after a panic elsewhere (`report()` never
/// hurts the caller).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
