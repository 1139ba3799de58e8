//! The one place that chooses between real atomics and loom's model-checked ones.
//!
//! Everything else in the crate names `crate::sync::*`, never `core::sync` or
//! `loom::sync` directly, so the same ring code runs natively and under
//! `RUSTFLAGS="--cfg loom"` (the pattern of crossbeam-utils' `primitive`
//! module and tokio's `src/loom/`).

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, fence};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU32, AtomicU64, fence};

pub use core::sync::atomic::Ordering;

/// A busy-wait hint. Under loom it yields to the scheduler so that a spinning
/// thread lets the model make progress.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
