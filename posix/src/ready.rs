//! Readiness file descriptors for the sides of a shared-memory channel: an
//! fd that `poll`, `epoll`, mio or tokio can wait on, readable once a
//! receiver has something to receive (or a sender room), or the peer closed
//! or died.
//!
//! **The choice.** Each side owns an `eventfd` (non-blocking, close-on-exec)
//! and one thread per process, the bridge, turns the ring's own wake-ups
//! into eventfd writes. A side that is about to wait *arms*: it announces
//! itself in the ring's wait word and re-checks the ring (the eventcount of
//! the futex gate, [`shmlane_core::Consumer::arm`]), then hands the word
//! and the value it saw to the bridge, which waits on all armed words at
//! once with `futex_waitv` (Linux ≥ 5.16) and writes the eventfd of each
//! word that moves. The peer's publish path is the futex gate's: nothing
//! while this side is awake and polling, one `futex` wake when it armed.
//!
//! Why not a named FIFO next to the segment (the peer writing it
//! directly, one hop less per wake): it is a name to harden like the
//! segment (owner, mode, symlinks, squatters) that a crash leaves behind in
//! `/dev/shm`, and an anonymous channel has no name to put it at. Why not
//! an eventfd handed to the peer over a unix socket: a named channel has no
//! rendezvous socket to hand it over. (The connections of a shared-memory
//! listener do have one, and use it: see `Doorbell::direct`.) The eventfd
//! here is named nowhere, reachable by no other process, and freed with
//! the process, so there is nothing to protect and nothing to clean up
//! after a crash. The price is one thread hop per wake (the bridge wakes,
//! then writes the eventfd); the wake-up itself (the peer's `futex` wake)
//! costs what it does for a blocking side.
//!
//! The peer's death reaches the fd the same way: the watch thread
//! (`posix/src/watch.rs`) moves the word of a side whose peer's process
//! ended, and the bridge, waiting on that word, sees it move.
//!
//! The invariant: an armed side's fd becomes readable after the word leaves
//! the armed value, which the peer makes happen after every publication
//! (or release, or close) that follows the announcement; and the re-check
//! after announcing covers what came before it. So a wake-up is never lost
//! (loom: `armed_sides_lose_no_wakeup` in `core/tests/loom.rs`). The fd may
//! also be readable with nothing to do (a stale arm): readiness means "try
//! again", never "there is a message".
//!
//! Up to [`BRIDGE_WAITS`] sides per process wait without polling; beyond
//! that the bridge looks at the rest every millisecond.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustix::event::{EventfdFlags, eventfd};
use rustix::thread::futex;
use shmlane_core::AtomicU32;

/// How many armed words one `futex_waitv` call waits on (the kernel takes
/// 128; one slot is the bridge's own control word).
pub(crate) const BRIDGE_WAITS: usize = 127;

/// The most datagrams one clear of a direct doorbell reads.
const DIRECT_DRAIN: usize = 64;

/// Rings the direct doorbell whose sending end is `waker` (see
/// [`Doorbell::direct`]): one byte, never waiting (a full queue is a
/// readable fd already), never `SIGPIPE`.
pub(crate) fn ring_direct(waker: BorrowedFd<'_>) {
    let flags = rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL;
    let _ = rustix::net::send(waker, &[1], flags);
}

/// Whether `fd`, received from the peer `pid` as the sending end of its
/// direct doorbell, is what [`Doorbell::direct`] makes: a unix datagram
/// socket of a pair that process made (`SO_PEERCRED` of a socket pair is
/// its maker's). Anything else (a pipe, or a socket connected to some
/// service, which would make this process send on the peer's behalf) is
/// refused.
pub(crate) fn is_peer_waker(fd: BorrowedFd<'_>, pid: i32) -> bool {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX)
        && sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::DGRAM)
        && sockopt::socket_peercred(fd).is_ok_and(|c| c.pid.as_raw_nonzero().get() == pid)
}

/// How often the bridge looks at armed words it cannot wait on (more than
/// [`BRIDGE_WAITS`] of them).
const OVERFLOW_POLL: Duration = Duration::from_millis(1);

/// A side's eventfd, and whether the bridge rang it since the side last
/// cleared it (so that clearing costs a `read` only when there is a count
/// to read).
struct Bell {
    fd: OwnedFd,
    /// Set by the bridge after each write to `fd`; taken by `clear`.
    rung: AtomicBool,
}

/// One side's readiness fd, and its arm with the bridge.
pub(crate) struct Doorbell {
    efd: Arc<Bell>,
    id: u64,
    /// Rung by the peer itself (and by the death watch), not by the
    /// bridge: see [`Doorbell::direct`].
    direct: bool,
}

impl std::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doorbell")
            .field("fd", &self.efd.fd)
            .finish_non_exhaustive()
    }
}

/// The word an armed side waits on, as the bridge reaches it.
#[derive(Clone, Copy)]
struct Word(*const AtomicU32);

// SAFETY: dereferenced only by the bridge while the arm is in its map;
// `Doorbell::arm`'s contract keeps the word valid until the doorbell
// disarms (drops, or arms again).
unsafe impl Send for Word {}

struct Arm {
    word: Word,
    ticket: u32,
    efd: Arc<Bell>,
}

struct Bridge {
    /// The process that started it (threads do not survive a fork).
    owner: u32,
    /// Moved (and woken, privately) whenever the arms change, so that the
    /// bridge waits on the new set.
    control: AtomicU32,
    arms: Mutex<HashMap<u64, Arm>>,
}

static CURRENT: Mutex<Option<&'static Bridge>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `bell` readable (adds 1 to its count; a full count is readable
/// already), then says so.
fn ring_bell(bell: &Bell) {
    // SeqCst, before the write: a `clear` that sees the fd readable (the
    // write done) finds the flag and reads the count; one that takes the
    // flag before the write lands puts it back (see `Doorbell::clear`).
    bell.rung.store(true, SeqCst);
    let _ = rustix::io::write(&bell.fd, &1u64.to_ne_bytes());
}

impl Bridge {
    fn current() -> io::Result<&'static Bridge> {
        let mut current = lock(&CURRENT);
        let me = std::process::id();
        if let Some(bridge) = current.filter(|b| b.owner == me) {
            return Ok(bridge);
        }
        // Leaked: one per process, as long as it lives.
        let bridge: &'static Bridge = Box::leak(Box::new(Bridge {
            owner: me,
            control: AtomicU32::new(0),
            arms: Mutex::new(HashMap::new()),
        }));
        std::thread::Builder::new()
            .name("shmlane-ready".into())
            .spawn(move || bridge.run())?;
        *current = Some(bridge);
        Ok(bridge)
    }

    /// Tells the bridge that the arms changed.
    fn poke(&self) {
        self.control.fetch_add(1, SeqCst);
        let _ = futex::wake(&self.control, futex::Flags::PRIVATE, 1);
    }

    fn run(&self) -> ! {
        let mut waits = Vec::with_capacity(BRIDGE_WAITS + 1);
        loop {
            // Read before looking at the arms: an arm added after this moves
            // the control word, so the wait below returns at once.
            let seen = self.control.load(SeqCst);
            waits.clear();
            let mut control = futex::Wait::new();
            control.val = u64::from(seen);
            control.uaddr = futex::WaitPtr::new(self.control.as_ptr().cast());
            control.flags = futex::WaitFlags::SIZE_U32 | futex::WaitFlags::PRIVATE;
            waits.push(control);
            let overflow = {
                let mut arms = lock(&self.arms);
                arms.retain(|_, arm| {
                    // SAFETY: the arm is in the map, so its word is valid
                    // (the contract of `Doorbell::arm`).
                    let now = unsafe { &*arm.word.0 }.load(SeqCst);
                    if now != arm.ticket {
                        ring_bell(&arm.efd);
                        return false;
                    }
                    true
                });
                for arm in arms.values().take(BRIDGE_WAITS) {
                    let mut wait = futex::Wait::new();
                    wait.val = u64::from(arm.ticket);
                    wait.uaddr = futex::WaitPtr::new(arm.word.0.cast_mut().cast());
                    // Shared: the word is in memory another process maps.
                    wait.flags = futex::WaitFlags::SIZE_U32;
                    waits.push(wait);
                }
                arms.len() > BRIDGE_WAITS
            };
            let timeout = overflow.then(|| futex::Timespec {
                tv_sec: 0,
                tv_nsec: OVERFLOW_POLL.as_nanos() as i64,
            });
            // Returns when any word moves or is woken (EAGAIN if one had
            // moved already), or on the overflow timeout; the arms are
            // looked at again in any case. (A word whose side disarmed and
            // unmapped it meanwhile is only an address to the kernel: the
            // wait fails with EFAULT or waits on whatever is there, until
            // the poke of that disarm.)
            let _ = futex::waitv(
                &waits,
                futex::WaitvFlags::empty(),
                timeout.as_ref(),
                rustix::time::ClockId::Monotonic,
            );
        }
    }
}

impl Doorbell {
    /// A new readiness fd, not armed (not readable).
    pub(crate) fn new() -> io::Result<Doorbell> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Doorbell {
            efd: Arc::new(Bell {
                fd,
                rung: AtomicBool::new(false),
            }),
            id: NEXT_ID.fetch_add(1, Relaxed),
            direct: false,
        })
    }

    /// A readiness fd the peer rings itself: the receiving end of a unix
    /// datagram socket pair, and the sending end for the peer (passed to it
    /// over the rendezvous socket, [`crate::rendezvous`]). The peer's gate
    /// sends a byte on it whenever it wakes this side (as it does for a
    /// futex sleeper: after a publication, release or close that follows
    /// this side's announcement), and the death watch does when the peer's
    /// process ends, so no bridge thread and no hop are involved.
    ///
    /// A datagram socket, not an eventfd: the peer holds the sending end
    /// and could make an eventfd blocking (its flags are the shared open
    /// file description's) and fill its count, so that a write would hang;
    /// a send with `MSG_DONTWAIT` never waits, whatever the peer does. The
    /// queue is short (the kernel's datagram backlog), and [`Doorbell::clear`]
    /// drains it.
    pub(crate) fn direct() -> io::Result<(Doorbell, OwnedFd)> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let (mine, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        // The peer only sends on its end; ours only receives.
        rustix::net::shutdown(&theirs, rustix::net::Shutdown::Read)?;
        rustix::net::shutdown(&mine, rustix::net::Shutdown::Write)?;
        let bell = Doorbell {
            efd: Arc::new(Bell {
                fd: mine,
                rung: AtomicBool::new(false),
            }),
            id: NEXT_ID.fetch_add(1, Relaxed),
            direct: true,
        };
        Ok((bell, theirs))
    }

    /// The fd: readable once the armed word moved (see the module doc).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.efd.fd.as_fd()
    }

    /// Makes the fd not readable (reads its count away). A pending arm
    /// stays with the bridge: the next [`Doorbell::arm`] replaces it (or,
    /// the same, leaves it), and if it rings first the fd is readable for
    /// nothing, which readiness allows (a stale arm).
    pub(crate) fn clear(&self) {
        if self.direct {
            // The datagrams queued since (a handful at most: the kernel's
            // backlog; a peer that keeps sending only keeps the fd
            // readable, which readiness allows).
            let mut byte = [0u8; 1];
            for _ in 0..DIRECT_DRAIN {
                let got =
                    rustix::net::recv(&self.efd.fd, &mut byte, rustix::net::RecvFlags::DONTWAIT);
                if got.is_err() {
                    break;
                }
            }
            return;
        }
        // SeqCst: pairs with `ring_bell`'s store before its write.
        if self.efd.rung.swap(false, SeqCst) {
            let mut count = [0; 8];
            if rustix::io::read(&self.efd.fd, &mut count).is_err() {
                // Rung, but the write has not landed yet: the next clear
                // reads it. (Until then the fd may be readable for nothing,
                // which readiness allows.)
                self.efd.rung.store(true, SeqCst);
            }
        }
    }

    /// Arms: the fd becomes readable once `word` no longer holds `ticket`
    /// (at once if it does not now). Replaces an earlier arm.
    ///
    /// # Safety
    ///
    /// `word` must stay valid until this doorbell is dropped or armed
    /// again.
    /// Returns whether the bridge was told (a new arm), not when it waits
    /// on this one already.
    pub(crate) unsafe fn arm(&self, word: &AtomicU32, ticket: u32) -> io::Result<bool> {
        if self.direct {
            // The peer rings it: nothing to hand to the bridge.
            return Ok(false);
        }
        let bridge = Bridge::current()?;
        let mut arms = lock(&bridge.arms);
        // The same arm again (a side re-armed with nothing moved since):
        // the bridge waits on it already, and is not disturbed. (Once the
        // word moves, the bridge rings the bell and drops the arm.)
        if arms
            .get(&self.id)
            .is_some_and(|a| std::ptr::eq(a.word.0, word) && a.ticket == ticket)
        {
            return Ok(false);
        }
        arms.insert(
            self.id,
            Arm {
                word: Word(word),
                ticket,
                efd: Arc::clone(&self.efd),
            },
        );
        drop(arms);
        bridge.poke();
        Ok(true)
    }

    fn disarm(&self) {
        if self.direct {
            return; // never with the bridge
        }
        let Some(bridge) = *lock(&CURRENT) else {
            return; // never armed in this process
        };
        if bridge.owner != std::process::id() {
            return; // inherited over a fork; that bridge is the parent's
        }
        if lock(&bridge.arms).remove(&self.id).is_some() {
            bridge.poke();
        }
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        self.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{PollFd, PollFlags, poll};

    fn readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        let timeout = timeout.map(|t| rustix::time::Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: t.subsec_nanos() as i64,
        });
        poll(&mut fds, timeout.as_ref()).unwrap() == 1
    }

    #[test]
    fn an_armed_doorbell_rings_when_its_word_moves_and_not_before() {
        let word = AtomicU32::new(5);
        let bell = Doorbell::new().unwrap();
        // SAFETY: `word` outlives `bell` (declared first, dropped last).
        unsafe { bell.arm(&word, 5) }.unwrap();
        assert!(!readable(bell.fd(), Some(Duration::ZERO)));
        word.store(6, SeqCst);
        let _ = futex::wake(&word, futex::Flags::empty(), i32::MAX as u32);
        assert!(readable(bell.fd(), None));
        bell.clear();
        assert!(!readable(bell.fd(), Some(Duration::ZERO)));
    }

    #[test]
    fn re_arming_with_nothing_moved_leaves_the_bridge_alone() {
        let word = AtomicU32::new(3);
        let bell = Doorbell::new().unwrap();
        // SAFETY: `word` outlives `bell` (declared first, dropped last).
        assert!(unsafe { bell.arm(&word, 3) }.unwrap());
        for _ in 0..10 {
            bell.clear();
            // SAFETY: as above.
            let told = unsafe { bell.arm(&word, 3) }.unwrap();
            assert!(!told, "the same arm disturbed the bridge");
        }
        assert!(!readable(bell.fd(), Some(Duration::ZERO)));
        // A new ticket is a new arm: the bridge must wait on it instead.
        // SAFETY: as above.
        assert!(unsafe { bell.arm(&word, 4) }.unwrap());
        assert!(readable(bell.fd(), None)); // the word holds 3, not 4
    }

    #[test]
    fn a_doorbell_armed_on_a_moved_word_rings_at_once() {
        let word = AtomicU32::new(1);
        let bell = Doorbell::new().unwrap();
        // SAFETY: as above.
        unsafe { bell.arm(&word, 0) }.unwrap();
        assert!(readable(bell.fd(), None));
    }

    #[test]
    fn more_doorbells_than_one_wait_holds_all_ring() {
        let words: Vec<AtomicU32> = (0..BRIDGE_WAITS + 20).map(|_| AtomicU32::new(0)).collect();
        let bells: Vec<Doorbell> = words.iter().map(|_| Doorbell::new().unwrap()).collect();
        for (word, bell) in words.iter().zip(&bells) {
            // SAFETY: `words` outlives `bells` (declared first).
            unsafe { bell.arm(word, 0) }.unwrap();
        }
        for (word, bell) in words.iter().zip(&bells) {
            word.store(1, SeqCst);
            let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
            assert!(readable(bell.fd(), None));
        }
    }
}
