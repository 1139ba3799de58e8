//! The blocking gate: how a side that cannot make progress waits for its peer.
//!
//! Each side of a ring has a 32-bit wait word in the shared header. A side
//! that wants to sleep *announces* itself by setting the word's low bit,
//! re-checks the ring, and only then calls [`Wait::wait`] with the value it
//! saw. The peer, after publishing, checks that bit and, only if it is set,
//! bumps the word and calls [`Wait::wake`] (an eventcount). So a producer
//! pays no system call while nobody sleeps, and a wake-up cannot be lost:
//! either the peer sees the announcement, or the sleeper's re-check sees the
//! peer's publication (both sides separate their store and load with a
//! `SeqCst` fence). The loom model in `tests/loom.rs` checks this argument.
//!
//! core has no clock and no system calls, so time and sleeping come from the
//! implementation: [`Spin`] here (no_std, busy-waiting with backoff), a futex
//! in `shmlane-posix`, a loom condition variable in the model checks.

use core::cell::Cell;

use crate::Error;

/// Spin hints per round of spinning: one, so that a message is seen within
/// a hint of its publication (four cost some 70 ns of a 64 B round trip on
/// an AMD EPYC, where a hint is a long `pause`). An implementation detail:
/// a round is "a hint and a re-check".
pub(crate) const SPIN_ROUND: u32 = 1;
use crate::sync::AtomicU32;

/// How a blocked side waits for its peer, and how it wakes a sleeping peer.
///
/// Implementations decide what a deadline is (an `Instant`, a tick count, …).
pub trait Wait {
    /// A point in time after which a blocking call gives up.
    type Deadline: Copy;

    /// Waits while `word` holds `expected`.
    ///
    /// Returns `Ok(())` when the word may have changed, when woken, or
    /// spuriously; the caller re-checks the ring in any case. A waiter that
    /// does not [sleep](Wait::sleeps) is only asked to pause: the ring never
    /// announces it, so nobody bumps the word for it, and it gets 0 for
    /// `expected` without the ring loading the word (which shares the
    /// peer's hot cache line) on every poll. Returns
    /// `Err(Error::TimedOut)` once `deadline` has passed, checked before
    /// waiting, so that a peer that keeps changing the word cannot keep a
    /// caller with a deadline waiting forever. An implementation that can
    /// tell its peer is gone (a frontend watching a process) may return
    /// `Err(Error::Disconnected)`.
    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Self::Deadline>,
    ) -> Result<(), Error>;

    /// Wakes whoever waits on `word`. Called after the word was changed.
    fn wake(&self, word: &AtomicU32);

    /// Whether [`Wait::wake`] really wakes a side that sleeps on the word
    /// (a futex wake, a condition variable, …). A ring refuses to pair a
    /// side that [sleeps](Wait::sleeps) with a peer that cannot wake it
    /// ([`Error::IncompatibleWait`]): the sleeper would never be woken.
    fn wakes(&self) -> bool {
        true
    }

    /// Whether [`Wait::wait`] may sleep until woken. A waiter that only
    /// spins for a while and returns says `false`: it then never announces
    /// itself, so the peer never pays for [`Wait::wake`] on its account.
    fn sleeps(&self) -> bool {
        true
    }

    /// An id the ring records for this side when it claims its role, for a
    /// peer that watches this side's liveness ([`crate::Ring::holder_id`]):
    /// shmlane-posix gives its process id. 0, the default, records none.
    fn holder_id(&self) -> u32 {
        0
    }

    /// How many rounds of spinning ([`Wait::pause`] and a re-check of the
    /// ring) a blocking call spends before its first [`Wait::wait`]. For a
    /// waiter that sleeps, that is before it announces itself: spinning
    /// first, unannounced, spares the peer a wake-up call for a wait that
    /// ends within microseconds. For one that does not, it spares a wait
    /// that ends soon the per-call work of `wait` (its deadline and other
    /// checks, which the spin rounds skip).
    fn spin_rounds(&self) -> u32 {
        0
    }

    /// The pause of one round of spinning, before the ring re-checks: by
    /// default a few spin hints. An implementation that knows an operating
    /// system may give up the CPU now and then (`sched_yield`), so that a
    /// peer waiting to run on this same CPU gets to, instead of the spin
    /// burning the rest of the time slice.
    fn pause(&self) {
        for _ in 0..SPIN_ROUND {
            crate::sync::spin_loop();
        }
    }
}

/// A no_std wait: spin with exponential backoff, never sleep.
///
/// Without a clock, a deadline is counted in *rounds*: one round is one call
/// to [`Wait::wait`], that is a few spin hints and a re-check of
/// the ring. Give [`Spin::with_clock`] a monotonic tick source (a cycle
/// counter, a hardware timer) to count deadlines in its ticks instead.
///
/// [`Wait::wake`] does nothing: a spinner sees the word change by itself.
/// So a `Spin` side never pairs with a peer that sleeps until woken (its
/// claim is refused with [`Error::IncompatibleWait`](crate::Error::IncompatibleWait)).
///
/// # Examples
///
/// ```
/// use shmlane_core::{Config, Error, Region, Ring, Spin};
///
/// let mut region = Region::<{ shmlane_core::region_size(4096) }>::new();
/// let ring = Ring::create_in(region.as_mut_slice(), Config::new(4096))?;
/// let wait = Spin::new();
/// let deadline = wait.deadline_after(10);
/// let mut rx = ring.consumer(wait)?;
/// // Nobody sends: the receive gives up after 10 rounds of backoff.
/// assert_eq!(rx.read_timeout(deadline).err(), Some(Error::TimedOut));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Spin {
    clock: Option<fn() -> u64>,
    rounds: Cell<u64>,
}

impl Spin {
    /// A spinning wait that counts deadlines in rounds.
    pub const fn new() -> Self {
        Spin {
            clock: None,
            rounds: Cell::new(0),
        }
    }

    /// A spinning wait that counts deadlines in the ticks of `clock`, which
    /// must never go backwards.
    pub const fn with_clock(clock: fn() -> u64) -> Self {
        Spin {
            clock: Some(clock),
            rounds: Cell::new(0),
        }
    }

    /// The current time: `clock()` or the number of rounds waited so far.
    pub fn now(&self) -> u64 {
        match self.clock {
            Some(clock) => clock(),
            None => self.rounds.get(),
        }
    }

    /// The deadline `after` ticks (or rounds) from now.
    pub fn deadline_after(&self, after: u64) -> u64 {
        self.now().saturating_add(after)
    }
}

impl Wait for Spin {
    type Deadline = u64;

    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<u64>) -> Result<(), Error> {
        if deadline.is_some_and(|d| self.now() >= d) {
            return Err(Error::TimedOut);
        }
        self.rounds.set(self.rounds.get().wrapping_add(1));
        // A short pause, then back to the ring, which is what to watch:
        // nobody bumps the word for a waiter that does not sleep (see
        // `Wait::wait`), and a close shows in the role state the ring
        // checks when it finds nothing.
        let _ = (word, expected);
        self.pause();
        Ok(())
    }

    #[inline]
    fn wake(&self, _word: &AtomicU32) {}

    #[inline]
    fn sleeps(&self) -> bool {
        false
    }

    /// A spinner wakes nobody: it never pairs with a peer that sleeps.
    #[inline]
    fn wakes(&self) -> bool {
        false
    }
}
