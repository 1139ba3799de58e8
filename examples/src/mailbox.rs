//! A one-slot mailbox in shared memory, guarded by two binary semaphores:
//! the layout that `shm_writer` and `shm_reader` share.
//!
//! The course notes' shared-memory writer `memcpy`s into the mapping and
//! says "some synchronisation is required" before and after. Without it the
//! reader cannot know when a message is complete, and the writer cannot
//! know when it may overwrite the previous one. Two binary semaphores in
//! the segment itself provide it:
//!
//! - [`Mailbox::empty`] is 1 when the writer may write (the slot is free);
//! - [`Mailbox::full`] is 1 when the reader may read (a message is there).
//!
//! The writer does `empty.wait()`, copies its message in, `full.post()`;
//! the reader does `full.wait()`, copies the message out, `empty.post()`.
//! At any moment at most one of them touches the slot.
//!
//! Each semaphore is a futex word: a 32-bit atomic in the shared mapping.
//! `wait` sleeps in `futex(FUTEX_WAIT)` while the word is 0, and `post`
//! stores 1 and calls `futex(FUTEX_WAKE)`. The futex calls use
//! `Flags::empty()`, not `PRIVATE`: a shared futex is keyed by the page it
//! lives on (the segment's file and offset), not by a virtual address, so
//! the two processes meet on the same kernel wait queue although each maps
//! the segment at its own address.
//!
//! Invariants:
//!
//! - The mapping is only ever accessed through atomics, never through
//!   `&[u8]` or `&mut`: the other process is not Rust's to vouch for, and a
//!   misbehaving peer must produce garbage, not undefined behaviour. The
//!   message bytes are `AtomicU8`s written and read `Relaxed`; the
//!   semaphores' `Release` post and `Acquire` wait order them.
//! - A length read from shared memory is clamped to [`MAX_MESSAGE`].
//! - A blocked side notices that its peer is gone (exited, or killed) within
//!   [`WAIT_SLICE`], instead of waiting forever: each side holds a byte lock
//!   on the segment ([`crate::ofd`]) that the kernel drops when its
//!   process dies, however it dies.
//!
//! `shmlane_posix::Sender` / `Receiver` are the production version of this
//! idea: a ring of many messages instead of one slot, and an eventcount
//! gate that makes no system call unless a side actually sleeps.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;
use shmlane_posix::Segment;

use crate::ofd;

/// The byte the writer locks (its proof of life).
const WRITER_BYTE: i64 = 0;
/// The byte the reader locks.
const READER_BYTE: i64 = 1;

/// The longest message, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// How long a blocked side sleeps before it checks that its peer is alive.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Written last by the creator: an opener that sees it sees the rest set up.
const MAGIC: u64 = u64::from_ne_bytes(*b"MAILBOX1");

/// A binary semaphore on a futex word, usable across processes when it
/// lives in shared memory. Its value is 0 or 1.
///
/// # Examples
///
/// ```
/// use shmlane_examples::mailbox::BinarySemaphore;
///
/// let sem = BinarySemaphore::new(0);
/// sem.post();
/// sem.wait(|| true)?; // takes the 1 without sleeping
/// assert!(!sem.try_wait());
/// # Ok::<(), shmlane_examples::mailbox::MailboxError>(())
/// ```
#[derive(Debug)]
#[repr(transparent)]
pub struct BinarySemaphore {
    value: AtomicU32,
}

impl BinarySemaphore {
    /// A semaphore with `value` (anything but 0 counts as 1), for use in
    /// one process. In shared memory, the creator of the mapping sets the
    /// value in place instead (see [`SharedMailbox::create`]).
    pub fn new(value: u32) -> Self {
        BinarySemaphore {
            value: AtomicU32::new(u32::from(value != 0)),
        }
    }

    /// Takes the semaphore (1 → 0) if it is 1, without waiting.
    pub fn try_wait(&self) -> bool {
        // Acquire: everything the poster wrote before its Release store is
        // visible to us once we have taken the 1.
        self.value
            .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Waits until the semaphore is 1, then takes it (1 → 0).
    ///
    /// Every [`WAIT_SLICE`] it asks `peer_alive`; once the peer is gone and
    /// the semaphore still 0, nobody will ever post it:
    /// [`MailboxError::PeerGone`]. (A post made just before the peer died
    /// is still taken.)
    pub fn wait(&self, peer_alive: impl Fn() -> bool) -> Result<(), MailboxError> {
        let slice = futex::Timespec {
            tv_sec: WAIT_SLICE.as_secs() as i64,
            tv_nsec: i64::from(WAIT_SLICE.subsec_nanos()),
        };
        loop {
            if self.try_wait() {
                return Ok(());
            }
            // Sleeps only if the word is still 0: the kernel compares and
            // sleeps atomically, so a post between our check and this call
            // is not lost (the call returns EAGAIN at once).
            match futex::wait(&self.value, futex::Flags::empty(), 0, Some(&slice)) {
                Ok(()) | Err(Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT) => {}
                Err(e) => return Err(MailboxError::Io("futex wait", e.into())),
            }
            if self.try_wait() {
                return Ok(());
            }
            if !peer_alive() {
                return if self.try_wait() {
                    Ok(())
                } else {
                    Err(MailboxError::PeerGone)
                };
            }
        }
    }

    /// Sets the semaphore to 1 and wakes a waiter.
    pub fn post(&self) {
        // Release: publishes what we wrote before (the message) to the
        // process whose Acquire `try_wait` takes this 1.
        self.value.store(1, Ordering::Release);
        // Only fails for a misaligned or unmapped word, which a reference
        // into our own mapping never is.
        let _ = futex::wake(&self.value, futex::Flags::empty(), 1);
    }
}

/// The layout of the shared segment. It is only ever seen through a
/// [`SharedMailbox`], which maps it.
#[repr(C)]
pub struct Mailbox {
    /// [`MAGIC`] once the creator has set everything else up.
    magic: AtomicU64,
    /// 1 when the writer may write into the slot.
    pub empty: BinarySemaphore,
    /// 1 when the reader may read the slot.
    pub full: BinarySemaphore,
    /// 1 once a reader has attached (before that, no reader is not a dead
    /// reader).
    reader_attached: AtomicU32,
    /// Length of the message in `data`.
    len: AtomicU32,
    data: [AtomicU8; MAX_MESSAGE],
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("empty", &self.empty)
            .field("full", &self.full)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Mailbox {
    /// Copies `msg` into the slot. Call it between `empty.wait` and
    /// `full.post`. [`MailboxError::TooLong`] beyond [`MAX_MESSAGE`] bytes.
    pub fn store(&self, msg: &[u8]) -> Result<(), MailboxError> {
        if msg.len() > MAX_MESSAGE {
            return Err(MailboxError::TooLong {
                len: msg.len(),
                max: MAX_MESSAGE,
            });
        }
        // Relaxed: the `full.post()` that follows is the Release that
        // publishes these stores.
        for (cell, &byte) in self.data.iter().zip(msg) {
            cell.store(byte, Ordering::Relaxed);
        }
        self.len.store(msg.len() as u32, Ordering::Relaxed);
        Ok(())
    }

    /// Copies the message out of the slot. Call it between `full.wait` and
    /// `empty.post`. A length over [`MAX_MESSAGE`] (a broken writer) is
    /// clamped.
    pub fn load(&self) -> Vec<u8> {
        // Relaxed: ordered after the writer's stores by our `full.wait()`.
        let len = (self.len.load(Ordering::Relaxed) as usize).min(MAX_MESSAGE);
        self.data[..len]
            .iter()
            .map(|cell| cell.load(Ordering::Relaxed))
            .collect()
    }
}

/// Which side of the mailbox this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Writer,
    Reader,
}

/// A named shared-memory segment holding a [`Mailbox`], mapped into this
/// process: created by the writer, opened by the reader.
///
/// Dropping the writer's handle removes the name (the creator unlinks);
/// the reader's mapping stays valid until it drops its own handle.
#[derive(Debug)]
pub struct SharedMailbox {
    segment: Segment,
    side: Side,
}

impl SharedMailbox {
    /// Creates the segment `name` (exclusively) for the writer, with the
    /// slot free (`empty` = 1, `full` = 0).
    ///
    /// A segment of that name left by a writer that was killed (a mailbox
    /// no process holds any more) is removed and created anew; a live one,
    /// or anything that is not a mailbox, is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_examples::mailbox::SharedMailbox;
    ///
    /// let writer = SharedMailbox::create("/doc-mailbox")?;
    /// let reader = SharedMailbox::open("/doc-mailbox")?;
    ///
    /// writer.mailbox().empty.wait(|| writer.peer_alive())?;
    /// writer.mailbox().store(b"Hello World")?;
    /// writer.mailbox().full.post();
    ///
    /// reader.mailbox().full.wait(|| reader.peer_alive())?;
    /// assert_eq!(reader.mailbox().load(), b"Hello World");
    /// reader.mailbox().empty.post();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(name: &str) -> Result<SharedMailbox, MailboxError> {
        let size = size_of::<Mailbox>();
        let segment = match Segment::create(name, size, 0o600) {
            Err(shmlane_posix::Error::AlreadyExists { .. }) if remove_if_abandoned(name)? => {
                Segment::create(name, size, 0o600)?
            }
            result => result?,
        };
        // A fresh segment: nobody else holds this lock. It tells the reader
        // that the writer is alive.
        if !ofd::try_lock(segment.fd(), WRITER_BYTE).map_err(|e| MailboxError::Io("fcntl", e))? {
            return Err(MailboxError::SideTaken {
                name: name.to_owned(),
                side: "writer",
            });
        }
        let shared = SharedMailbox {
            segment,
            side: Side::Writer,
        };
        let mailbox = shared.mailbox();
        // The segment starts zeroed: `full` is 0 already; the slot is free.
        mailbox.empty.value.store(1, Ordering::Relaxed);
        // Release, last: an opener that reads the magic with Acquire sees
        // the semaphores initialised.
        mailbox.magic.store(MAGIC, Ordering::Release);
        Ok(shared)
    }

    /// Opens the segment `name` for the reader. Fails if it does not exist
    /// ([`shmlane_posix::Error::NotFound`]), is not a mailbox, or already
    /// has a reader.
    pub fn open(name: &str) -> Result<SharedMailbox, MailboxError> {
        let segment = Segment::open(name)?;
        let shared = SharedMailbox::check(segment, name, Side::Reader)?;
        if !ofd::try_lock(shared.segment.fd(), READER_BYTE)
            .map_err(|e| MailboxError::Io("fcntl", e))?
        {
            return Err(MailboxError::SideTaken {
                name: name.to_owned(),
                side: "reader",
            });
        }
        // After the lock: the writer treats "attached, lock free" as dead.
        shared.mailbox().reader_attached.store(1, Ordering::Release);
        Ok(shared)
    }

    /// Checks that `segment` holds a mailbox set up by its creator.
    fn check(segment: Segment, name: &str, side: Side) -> Result<SharedMailbox, MailboxError> {
        if segment.len() < size_of::<Mailbox>() {
            return Err(MailboxError::NotAMailbox {
                name: name.to_owned(),
            });
        }
        let shared = SharedMailbox { segment, side };
        if shared.mailbox().magic.load(Ordering::Acquire) != MAGIC {
            return Err(MailboxError::NotAMailbox {
                name: name.to_owned(),
            });
        }
        Ok(shared)
    }

    /// The mailbox in the shared mapping.
    pub fn mailbox(&self) -> &Mailbox {
        // Compile-time checks of what the cast below relies on.
        const { assert!(align_of::<Mailbox>() <= 4096) };
        let ptr = self.segment.as_ptr().cast::<Mailbox>();
        // SAFETY: the mapping is page-aligned (4096 or more, so aligned for
        // `Mailbox`, checked above) and at least `size_of::<Mailbox>()`
        // bytes long (`create` asks for exactly that, `check` refuses less),
        // and it stays mapped while `self.segment` lives, which the returned
        // borrow of `self` guarantees. Every field is an atomic (or a
        // `repr(C)`/`repr(transparent)` struct or array of atomics): any bit
        // pattern, zeroes included, is a valid value, and the other process
        // mutating the memory behind this shared reference is allowed,
        // because atomics are `UnsafeCell`s and we only access them
        // atomically.
        unsafe { ptr.as_ref() }
    }

    /// Whether the other side may still post the semaphore this side waits
    /// on: for the reader, whether the writer holds its lock; for the
    /// writer, whether no reader has attached yet or the reader holds its
    /// lock. (A lock that cannot be probed counts as alive.)
    pub fn peer_alive(&self) -> bool {
        let held = |byte| ofd::held_by_other(self.segment.fd(), byte).unwrap_or(true);
        match self.side {
            Side::Reader => held(WRITER_BYTE),
            Side::Writer => {
                self.mailbox().reader_attached.load(Ordering::Acquire) == 0 || held(READER_BYTE)
            }
        }
    }
}

/// Removes the segment `name` if it is a mailbox that no process holds any
/// more (its writer was killed before it could remove it). Returns whether
/// the name may be free now.
fn remove_if_abandoned(name: &str) -> Result<bool, MailboxError> {
    let segment = match Segment::open(name) {
        Ok(segment) => segment,
        Err(shmlane_posix::Error::NotFound { .. }) => return Ok(true),
        Err(_) => return Ok(false),
    };
    // Another handle means another process still has the segment open.
    let held = segment.in_use_elsewhere()?;
    if held || SharedMailbox::check(segment, name, Side::Reader).is_err() {
        return Ok(false);
    }
    match Segment::unlink(name) {
        Ok(()) | Err(shmlane_posix::Error::NotFound { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// What can go wrong with a mailbox.
#[derive(Debug)]
#[non_exhaustive]
pub enum MailboxError {
    /// Creating, opening or removing the segment failed.
    Segment(shmlane_posix::Error),
    /// The segment is not a mailbox, or its writer has not finished setting
    /// it up.
    NotAMailbox {
        /// The segment's name.
        name: String,
    },
    /// Another live process is already this side of the mailbox.
    SideTaken {
        /// The segment's name.
        name: String,
        /// `"writer"` or `"reader"`.
        side: &'static str,
    },
    /// The other process exited or died, and the semaphore waited on will
    /// never be posted.
    PeerGone,
    /// The message is longer than [`MAX_MESSAGE`].
    TooLong {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A system call failed.
    Io(&'static str, std::io::Error),
}

impl From<shmlane_posix::Error> for MailboxError {
    fn from(e: shmlane_posix::Error) -> Self {
        MailboxError::Segment(e)
    }
}

impl fmt::Display for MailboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailboxError::Segment(e) => e.fmt(f),
            MailboxError::NotAMailbox { name } => write!(
                f,
                "segment {name:?} is not a mailbox (or its writer has not finished creating it)"
            ),
            MailboxError::SideTaken { name, side } => {
                write!(f, "mailbox {name:?} already has a live {side}")
            }
            MailboxError::PeerGone => f.write_str("the other process is gone"),
            MailboxError::TooLong { len, max } => {
                write!(f, "message of {len} bytes exceeds the maximum of {max}")
            }
            MailboxError::Io(op, e) => write!(f, "{op}: {e}"),
        }
    }
}

impl std::error::Error for MailboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MailboxError::Segment(e) => Some(e),
            MailboxError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(test: &str) -> String {
        format!("/shmlane-examples-mailbox-{test}-{}", std::process::id())
    }

    #[test]
    fn semaphore_hands_over_between_threads() {
        let sem = BinarySemaphore::new(0);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| sem.wait(|| true));
            sem.post();
            waiter.join().unwrap().unwrap();
        });
        assert!(!sem.try_wait(), "the waiter took the only post");
    }

    #[test]
    fn a_dead_peer_ends_the_wait() {
        let sem = BinarySemaphore::new(0);
        assert!(matches!(sem.wait(|| false), Err(MailboxError::PeerGone)));
        // A post that is already there is taken even if the peer is gone.
        sem.post();
        sem.wait(|| false).unwrap();
    }

    #[test]
    fn too_long_message_is_refused() {
        let name = name("too-long");
        let writer = SharedMailbox::create(&name).unwrap();
        let msg = vec![b'x'; MAX_MESSAGE + 1];
        assert!(matches!(
            writer.mailbox().store(&msg),
            Err(MailboxError::TooLong { len, max: MAX_MESSAGE }) if len == MAX_MESSAGE + 1
        ));
        writer.mailbox().store(&msg[..MAX_MESSAGE]).unwrap();
        assert_eq!(writer.mailbox().load(), &msg[..MAX_MESSAGE]);
    }

    #[test]
    fn second_reader_and_second_writer_are_refused() {
        let name = name("second");
        let _writer = SharedMailbox::create(&name).unwrap();
        let reader = SharedMailbox::open(&name).unwrap();
        assert!(matches!(
            SharedMailbox::open(&name),
            Err(MailboxError::SideTaken { side: "reader", .. })
        ));
        // Live, so not reclaimed.
        assert!(matches!(
            SharedMailbox::create(&name),
            Err(MailboxError::Segment(
                shmlane_posix::Error::AlreadyExists { .. }
            ))
        ));
        assert!(reader.peer_alive());
    }

    #[test]
    fn writer_sees_its_reader_leave() {
        let name = name("reader-leaves");
        let writer = SharedMailbox::create(&name).unwrap();
        assert!(writer.peer_alive(), "no reader yet is not a dead reader");
        let reader = SharedMailbox::open(&name).unwrap();
        assert!(writer.peer_alive());
        drop(reader);
        assert!(!writer.peer_alive());
    }

    #[test]
    fn a_segment_that_is_not_a_mailbox_is_refused_and_kept() {
        /// Removes the segment even if an assertion fails.
        struct Unlink(String);
        impl Drop for Unlink {
            fn drop(&mut self) {
                let _ = Segment::unlink(&self.0);
            }
        }
        let name = name("not-mailbox");
        let _unlink = Unlink(name.clone());
        let mut other = Segment::create(&name, 64, 0o600).unwrap();
        assert!(matches!(
            SharedMailbox::open(&name),
            Err(MailboxError::NotAMailbox { .. })
        ));
        // Nobody holds it now, yet it is not a mailbox: never removed.
        other.set_unlink_on_drop(false);
        drop(other);
        assert!(matches!(
            SharedMailbox::create(&name),
            Err(MailboxError::Segment(
                shmlane_posix::Error::AlreadyExists { .. }
            ))
        ));
        assert!(Segment::open(&name).is_ok());
    }
}
