//! Open-file-description byte locks on a segment: state the kernel releases
//! when the last process holding the description dies, however it dies.
//!
//! | byte | kind | held by |
//! | --- | --- | --- |
//! | [`PRODUCER`] | exclusive | the live sender, from before it claims the role |
//! | [`CONSUMER`] | exclusive | the live receiver, likewise |
//! | [`RECLAIM`] | exclusive | a creator removing a stale segment, briefly |
//! | [`PRESENCE`] | shared | every open [`Segment`](crate::Segment) handle |
//!
//! A role lock is taken before the role is claimed in the ring, so "the
//! ring says the role is active but nobody holds its lock" means its holder
//! died. OFD locks belong to an open file description, not to a process:
//! each handle opens the segment itself (or reopens a received fd) so that
//! two handles in one process still see each other's locks.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Byte locked by the sender.
pub const PRODUCER: i64 = 0;
/// Byte locked by the receiver.
pub const CONSUMER: i64 = 1;
/// Byte locked while a stale segment is being removed.
pub const RECLAIM: i64 = 2;
/// Byte read-locked by every open handle.
pub const PRESENCE: i64 = 3;

fn flock(kind: libc::c_short, byte: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value
    // (and l_pid must be 0 for OFD locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte;
    lock.l_len = 1;
    lock
}

/// Takes a lock on `byte` without waiting: `Ok(false)` if another open file
/// description holds a conflicting one.
///
/// # Examples
///
/// ```
/// use shmlane_posix::{lock, Segment};
///
/// let a = Segment::create("/doc-lock", 4096, 0o600)?;
/// let b = Segment::open("/doc-lock")?; // its own open file description
/// assert!(lock::try_lock(a.fd(), lock::PRODUCER, false)?);
/// assert!(!lock::try_lock(b.fd(), lock::PRODUCER, false)?);
/// assert!(lock::held_by_other(b.fd(), lock::PRODUCER)?);
/// lock::unlock(a.fd(), lock::PRODUCER)?;
/// assert!(!lock::held_by_other(b.fd(), lock::PRODUCER)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn try_lock(fd: impl AsFd, byte: i64, shared: bool) -> io::Result<bool> {
    let kind = if shared { libc::F_RDLCK } else { libc::F_WRLCK };
    let mut lock = flock(kind as libc::c_short, byte);
    // SAFETY: F_OFD_SETLK takes a pointer to a `flock`, which outlives the call.
    let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    if r == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        e => Err(e),
    }
}

/// Releases our lock on `byte` (if any).
pub fn unlock(fd: impl AsFd, byte: i64) -> io::Result<()> {
    let mut lock = flock(libc::F_UNLCK as libc::c_short, byte);
    // SAFETY: as in `try_lock`.
    let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an open file description other than `fd`'s holds any lock on
/// `byte` (probed with an exclusive request, which conflicts with both kinds).
pub fn held_by_other(fd: impl AsFd, byte: i64) -> io::Result<bool> {
    let mut lock = flock(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: F_OFD_GETLK reads and overwrites the `flock` we own.
    let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}
