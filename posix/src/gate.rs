//! The futex gate: how a blocked sender or receiver waits for its peer in
//! another process, and notices that the peer died.
//!
//! [`Gate`] implements [`shmlane_core::Wait`] on the ring's shared wait
//! words: spin on the ring a little, then sleep in `futex(FUTEX_WAIT)` (shared, not
//! `FUTEX_PRIVATE`, because the word is in memory mapped by two processes).
//!
//! Death is told by the peer's role lock (an open-file-description lock): a
//! peer whose role is active in the ring but whose lock nobody holds has
//! died, and the blocked call returns `Disconnected` (a receiver first
//! drains what the peer committed). To learn *when* to look, a side about
//! to wait watches its peer's process: each side records its pid in the
//! ring when it claims its role (and the claim wakes a peer already
//! waiting), the waiting side opens a pidfd for that pid, checks that the
//! role lock is still held (so that a pid reused by another process is not
//! taken for the peer: while the lock is held, the peer lives and its pid
//! cannot be reused), and hands the pidfd to the process's watch thread
//! (`posix/src/watch.rs`), which wakes the sleeper when the process ends. So a
//! sleeping side sleeps with no timeout and wakes 0 times a second while
//! idle, and a SIGKILL is noticed within the kernel's exit path (some tens
//! of microseconds here; the bench measures it).
//!
//! Where no watch can be had (no pid recorded, `pidfd_open` refused, or a
//! watch that fired while the lock stayed held: a forked child of the peer
//! holds it, or the pid belongs to another pid namespace), the gate falls
//! back to sleeping in slices of [`PROBE_INTERVAL`] and probing the lock
//! between them.
//!
//! The invariant: a wake-up is never lost (the ring's eventcount protocol,
//! see [`shmlane_core::Wait`]; the watch thread moves the word too), a
//! sleeping side either has a live watch on its peer or wakes at least
//! every [`PROBE_INTERVAL`] to look at its lock, and a deadline ends a wait
//! on time however often the word changes.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::thread::{CpuSet, futex};
use shmlane_core::{AtomicU32, Error as CoreError, Ring, Role, RoleState, Wait};

use crate::lock;
use crate::watch::{self, Watch};

/// How often a blocked call checks whether its peer is still alive when it
/// cannot watch the peer's process (see the module doc).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// Rounds of spinning on the ring (each a spin hint and a re-check, some
/// 30 ns) before a blocked call's first wait: for a spin-then-futex side,
/// some 50 µs before it sleeps; for a busy-polling one, before its polls
/// go through `Gate::wait` (deadline and peer checks).
pub(crate) const SPIN_ROUNDS_BEFORE_SLEEP: u32 = 1600;

/// The spin phase of a side that shares its CPU with its peer, whose every
/// pause is a yield: a peer that answers runs at the first one, and a busy
/// peer that does not may take a time slice per yield (1.4 ms each was
/// measured: 1600 of them kept a 50 ms timed receive for 2.2 s).
const YIELDS_BEFORE_SLEEP: u32 = 16;

/// A busy-polling side looks at the clock, to see whether a probe of its
/// peer's liveness is due, once per this many pauses (some microseconds):
/// the clock read (a vDSO call) on every pause cost about 40 ns of a 64 B
/// round trip.
const PAUSES_PER_PROBE_CHECK: u32 = 256;

/// The same for a busy-polling side confined to one CPU, whose pauses may
/// be yields to a peer on that CPU (a microsecond or more each): a deadline
/// is then seen within some ten microseconds.
const YIELDS_PER_CHECK: u32 = 8;

/// The CPU this thread is confined to, if its affinity mask (as
/// `taskset -c N` sets it, or a machine with one CPU) allows only one.
///
/// Both sides publish it in the ring's header ([`Ring::set_cpu_hint`]), and
/// a side yields while it spins only when its peer is confined to the same
/// CPU, where spinning keeps the peer from running. A side free to run on
/// several CPUs, or pinned to another CPU than its peer's, never yields: a
/// yield would only add the scheduler's jitter (measured with both sides
/// pinned to different CPUs: p99 of a 64 B round trip 0.5 → 0.8–1.1 µs).
fn confined_cpu() -> Option<u32> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    if set.count() != 1 {
        return None;
    }
    (0..CpuSet::MAX_CPU)
        .find(|&cpu| set.is_set(cpu))
        .map(|cpu| cpu as u32)
}

/// How a blocked side waits.
///
/// # Examples
///
/// ```
/// use shmlane_posix::{Options, Receiver, Sender, WaitMode};
///
/// // Lowest latency: never sleep (costs a core while waiting).
/// let rx = Receiver::create("/doc-wait-mode", &Options::new().wait_mode(WaitMode::BusyPoll))?;
/// // The other side chooses for itself.
/// let tx = Sender::open("/doc-wait-mode", &Options::new().wait_mode(WaitMode::SpinThenFutex))?;
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WaitMode {
    /// Spin on the shared memory and never sleep: the lowest latency, at the
    /// price of a busy core while waiting.
    BusyPoll,
    /// Spin briefly, then sleep on a futex: no CPU while idle, a system call
    /// for the peer only when this side actually sleeps.
    #[default]
    SpinThenFutex,
    /// Sleep on a futex at once, without spinning first: for more waiting
    /// threads than CPUs (many clients on few cores), where a spinning
    /// side takes the CPU its peer needs to answer. Every wait is a sleep,
    /// and the peer pays a `futex` wake for it.
    Futex,
}

/// What a gate watches to tell that its peer died.
pub(crate) struct PeerWatch {
    /// A handle on the segment's open file description (a dup of the
    /// segment's fd), to probe the peer's role lock.
    pub fd: OwnedFd,
    pub ring: Ring<'static>,
    pub peer: Role,
}

/// The wait strategy of a channel side: a [`WaitMode`] plus the watch on
/// the peer's liveness. Created by the channel constructors.
///
/// # Examples
///
/// ```
/// use shmlane_posix::{Options, Receiver, WaitMode};
///
/// // A channel side's gate is reached through its own calls:
/// let rx = Receiver::create("/doc-gate", &Options::new().wait_mode(WaitMode::BusyPoll))?;
/// assert!(!rx.sender_died()); // Gate::peer_died, through the receiver
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub struct Gate {
    mode: WaitMode,
    watch: Option<PeerWatch>,
    /// When the peer was last probed, on the coarse clock (ns).
    last_probe: Cell<u64>,
    peer_gone: Cell<bool>,
    /// Pauses of spinning so far, to look at the clock every
    /// [`PAUSES_PER_PROBE_CHECK`].
    pauses: Cell<u32>,
    /// The CPU this side is confined to ([`confined_cpu`], when the side
    /// was made): it yields while spinning when its peer says the same.
    cpu: Option<u32>,
    /// The watch on the peer's process, once there is one.
    death: RefCell<Death>,
    /// The sending end of the peer's direct doorbell, when the two met on
    /// a rendezvous socket: every wake of the peer also rings it (see
    /// `Doorbell::direct`).
    peer_bell: std::sync::OnceLock<OwnedFd>,
    /// The sending end of this side's own direct doorbell, which the death
    /// watch rings when the peer's process ends.
    own_bell: std::sync::OnceLock<OwnedFd>,
}

/// How far a gate got in watching its peer's process.
#[derive(Debug)]
enum Death {
    /// Not yet: the peer has not claimed its role, or has not recorded its
    /// pid yet. Tried again before each wait.
    Unwatched,
    /// The watch thread wakes this side when the peer's process ends.
    Watched(Watch),
    /// No watch can be had: probe every [`PROBE_INTERVAL`].
    Unwatchable,
}

/// The coarse monotonic clock in ns: a read of the vDSO's page, no `rdtsc`
/// (a few ns, where `Instant::now` costs tens in a VM), with a resolution
/// of a few ms: plenty to rate-limit a 10 ms probe, cheap enough to read on
/// every failed poll of a busy loop.
fn coarse_now() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// Whether a probe is due: [`PROBE_INTERVAL`] passed since `last`.
fn probe_due(last: u64) -> bool {
    coarse_now().wrapping_sub(last) >= PROBE_INTERVAL.as_nanos() as u64
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("mode", &self.mode)
            .field("peer_gone", &self.peer_gone.get())
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub(crate) fn new(mode: WaitMode, watch: Option<PeerWatch>) -> Self {
        let death = match watch {
            Some(_) => Death::Unwatched,
            None => Death::Unwatchable,
        };
        Gate {
            mode,
            watch,
            last_probe: Cell::new(coarse_now()),
            pauses: Cell::new(0),
            cpu: confined_cpu(),
            peer_gone: Cell::new(false),
            death: RefCell::new(death),
            peer_bell: std::sync::OnceLock::new(),
            own_bell: std::sync::OnceLock::new(),
        }
    }

    /// Rings the peer's direct doorbell on every wake from now on (its
    /// sending end, checked by the caller: `ready::is_peer_waker`). Once.
    pub(crate) fn set_peer_bell(&self, waker: OwnedFd) {
        let _ = self.peer_bell.set(waker);
    }

    /// A copy of the sending end of this side's own direct doorbell, for
    /// the death watch (`None` if it has none, or no descriptor is left:
    /// the watch then only moves the word, as for a futex sleeper).
    fn own_bell_copy(&self) -> Option<OwnedFd> {
        self.own_bell.get().and_then(|b| b.try_clone().ok())
    }

    /// Has the death watch ring this side's own direct doorbell (its
    /// sending end) as well as move its word. Once, before the first wait.
    pub(crate) fn set_own_bell(&self, waker: OwnedFd) {
        let _ = self.own_bell.set(waker);
    }

    /// The wait mode.
    pub fn mode(&self) -> WaitMode {
        self.mode
    }

    /// Whether the peer attached and then died (its process exited or was
    /// killed without closing). Once true, stays true. One `fcntl` call.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let rx = Receiver::create("/doc-peer-died", &Options::new())?;
    /// assert!(!rx.sender_died()); // not attached yet: not dead
    /// let tx = Sender::open("/doc-peer-died", &Options::new())?;
    /// assert!(!rx.sender_died()); // alive
    /// drop(tx);
    /// assert!(!rx.sender_died()); // closed cleanly, which is not dying
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn peer_died(&self) -> bool {
        if self.peer_gone.get() {
            return true;
        }
        let Some(watch) = &self.watch else {
            return false;
        };
        self.last_probe.set(coarse_now());
        let byte = match watch.peer {
            Role::Producer => lock::PRODUCER,
            Role::Consumer => lock::CONSUMER,
        };
        // The role is claimed only after its lock is taken, so an active role
        // with a free lock means the holder is gone. (Idle: not attached yet;
        // closed: the ring itself reports it.)
        let gone = watch.ring.role_state(watch.peer) == Ok(RoleState::Active)
            && !lock::held_by_other(&watch.fd, byte).unwrap_or(true);
        self.peer_gone.set(gone);
        gone
    }

    /// [`Gate::peer_died`] when there is reason to ask: while the peer's
    /// process is watched, once the watch fired (one load otherwise);
    /// without a watch, at most once per [`PROBE_INTERVAL`]. Cheap enough
    /// for every failed non-blocking call.
    pub(crate) fn peer_died_rate_limited(&self) -> bool {
        if self.peer_gone.get() {
            return true;
        }
        let fired = match &*self.death.borrow() {
            Death::Watched(watch) => Some(watch.fired()),
            Death::Unwatched | Death::Unwatchable => None,
        };
        match fired {
            Some(false) => false,
            Some(true) => {
                let dead = self.peer_died();
                if !dead {
                    // The process ended but the lock is still held: a
                    // forked child of the peer holds it, or the pid was
                    // another namespace's. The lock is the truth; probe it.
                    *self.death.borrow_mut() = Death::Unwatchable;
                }
                dead
            }
            None => probe_due(self.last_probe.get()) && self.peer_died(),
        }
    }

    /// Starts watching the peer's process, if that is possible now and not
    /// done yet, for a side about to wait on `word` (see the module doc).
    fn watch_peer(&self, word: &AtomicU32) {
        if !matches!(*self.death.borrow(), Death::Unwatched) {
            return;
        }
        let Some(peer) = &self.watch else {
            return;
        };
        if peer.ring.role_state(peer.peer) != Ok(RoleState::Active) {
            return; // idle: its claim wakes us; closed: the ring says so
        }
        let Some(pid) = peer.ring.holder_id(peer.peer) else {
            return; // recorded right after the claim: next time
        };
        let pidfd = rustix::process::Pid::from_raw(pid as i32)
            .ok_or(rustix::io::Errno::SRCH)
            .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()));
        let pidfd = match pidfd {
            Ok(pidfd) => pidfd,
            // No such process: it ended (the probe that follows says so,
            // unless a forked child holds the lock); or no pidfds here.
            Err(_) => {
                *self.death.borrow_mut() = Death::Unwatchable;
                self.peer_died();
                return;
            }
        };
        // The pidfd is the peer's only if the peer lives now, after it was
        // opened: while its role lock is held its pid cannot be reused.
        // (A dead peer is noticed here, by the probe, and the wait returns.)
        if self.peer_died() {
            return;
        }
        // SAFETY: `word` is one of the wait words in the header of the ring
        // this gate waits on (the ring hands its own words to `Wait::wait`),
        // and that mapping outlives the gate: the gate lives inside the
        // ring's producer or consumer, which the channel drops before its
        // segment. The watch is a field of the gate.
        let watched = unsafe { watch::watch(pidfd, word, self.own_bell_copy()) };
        *self.death.borrow_mut() = match watched {
            Ok(watch) => Death::Watched(watch),
            Err(_) => Death::Unwatchable,
        };
    }

    /// For a side about to wait outside the ring (a readiness fd): watches
    /// the peer's process as [`Wait::wait`] would before sleeping, and says
    /// whether the peer died.
    pub(crate) fn prepare_to_wait(&self, word: &AtomicU32) -> bool {
        self.watch_peer(word);
        self.peer_died_rate_limited()
    }

    /// Whether a sleep must end by itself to probe the peer's lock: not
    /// while its process is watched, nor while it has not claimed its role
    /// (its claim moves the word).
    fn needs_probe_slices(&self) -> bool {
        match &*self.death.borrow() {
            Death::Watched(_) => false,
            Death::Unwatchable => self.watch.is_some(),
            Death::Unwatched => self
                .watch
                .as_ref()
                .is_some_and(|peer| peer.ring.role_state(peer.peer) != Ok(RoleState::Idle)),
        }
    }
}

impl Gate {
    /// The CPU this side is confined to, for the ring's header.
    pub(crate) fn confined_cpu(&self) -> Option<u32> {
        self.cpu
    }

    /// Whether this side and its peer are confined to the same CPU (read
    /// from the identity line, which only claims and closes write). A side
    /// without a ring to look at, and confined, assumes so.
    fn shares_cpu_with_peer(&self) -> bool {
        let Some(cpu) = self.cpu else {
            return false;
        };
        match &self.watch {
            Some(watch) => watch.ring.cpu_hint(watch.peer) == Some(cpu),
            None => true,
        }
    }
}

impl Wait for Gate {
    type Deadline = Instant;

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> Result<(), CoreError> {
        // A busy-polling side comes here once per pause: it reads the clock
        // (for its deadline, and to rate-limit the probe of its peer) only
        // every PAUSES_PER_PROBE_CHECK pauses, some microseconds, so that a
        // timed receive polls as fast as an untimed one; a side confined to
        // one CPU every YIELDS_PER_CHECK pauses, since its pauses may be
        // yields of a microsecond or more. A sleeping side reads it before
        // every sleep.
        let check = match self.mode {
            WaitMode::BusyPoll => {
                let period = match self.cpu {
                    Some(_) => YIELDS_PER_CHECK,
                    None => PAUSES_PER_PROBE_CHECK,
                };
                self.pauses.get() % period == 0
            }
            WaitMode::SpinThenFutex | WaitMode::Futex => true,
        };
        if check {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(CoreError::TimedOut);
            }
            self.watch_peer(word);
            if self.peer_died_rate_limited() {
                return Err(CoreError::Disconnected);
            }
        }
        match self.mode {
            WaitMode::BusyPoll => {
                // One pause, then the ring looks again (at the record
                // header, or the consumer's position): a message is seen
                // within about one pause of its publication. (A busy-polling
                // side never announces sleep, so nobody bumps the word for
                // it, and the ring does not even load it: see `Wait::wait`.)
                let _ = (word, expected);
                self.pause();
            }
            WaitMode::SpinThenFutex | WaitMode::Futex => {
                // The spin phase is done (see `spin_rounds`); sleep: until
                // woken (by the peer, its claim or close, or the watch
                // thread) or the deadline, or for a probe slice when the
                // peer's process is not watched.
                let mut slice = self.needs_probe_slices().then_some(PROBE_INTERVAL);
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(Instant::now());
                    slice = Some(slice.map_or(left, |s| s.min(left)));
                }
                let timeout = slice.map(|slice| futex::Timespec {
                    tv_sec: slice.as_secs() as i64,
                    tv_nsec: slice.subsec_nanos() as i64,
                });
                // EAGAIN (the word changed), EINTR, ETIMEDOUT: all mean
                // "look again", which the ring does.
                let _ = futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref());
            }
        }
        Ok(())
    }

    fn wake(&self, word: &AtomicU32) {
        let _ = futex::wake(word, futex::Flags::empty(), 1);
        // A peer that met this side on a rendezvous socket may be waiting
        // on its readiness fd instead of the futex.
        if let Some(bell) = self.peer_bell.get() {
            crate::ready::ring_direct(bell.as_fd());
        }
    }

    fn sleeps(&self) -> bool {
        matches!(self.mode, WaitMode::SpinThenFutex | WaitMode::Futex)
    }

    /// The process id: the peer watches this process's end through it (see
    /// the module doc).
    fn holder_id(&self) -> u32 {
        std::process::id()
    }

    fn spin_rounds(&self) -> u32 {
        if self.mode == WaitMode::Futex {
            0
        } else if self.shares_cpu_with_peer() {
            // Each pause is a yield, which may hand a busy peer a whole
            // time slice (1.4 ms measured): the spin phase, which looks at
            // no deadline, must stay short.
            YIELDS_BEFORE_SLEEP
        } else {
            SPIN_ROUNDS_BEFORE_SLEEP
        }
    }

    /// One spin hint (a message is seen within one hint and a re-check of
    /// its publication: four hints per poll cost some 70 ns of a 64 B round
    /// trip); for a side confined to the same CPU as its peer,
    /// `sched_yield` instead: the peer cannot be running while this side
    /// spins, so every pause hands it the CPU. (With both processes on one
    /// CPU, spinning alone made a round trip take two time slices, 8 ms
    /// busy-polling; a yield every 16 pauses still took 6.7 µs, a yield
    /// every pause 2.9 µs, against 5.0 µs for a pipe.)
    fn pause(&self) {
        self.pauses.set(self.pauses.get().wrapping_add(1));
        if self.shares_cpu_with_peer() {
            rustix::thread::sched_yield();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_futex_side_sleeps_without_spinning_first() {
        let futex = Gate::new(WaitMode::Futex, None);
        assert_eq!(futex.spin_rounds(), 0);
        assert!(futex.sleeps());
        let spinning = Gate::new(WaitMode::SpinThenFutex, None);
        assert!(spinning.spin_rounds() > 0);
        assert!(spinning.sleeps());
        assert!(!Gate::new(WaitMode::BusyPoll, None).sleeps());
    }
}
