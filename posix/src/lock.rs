//! Open-file-description byte locks on a segment: state the kernel releases
//! when the last process holding the description dies, however it dies.
//!
//! | byte | kind | held by |
//! | --- | --- | --- |
//! | [`PRODUCER`] | exclusive | the live sender, from before it claims the role |
//! | [`CONSUMER`] | exclusive | the live receiver, likewise |
//! | [`PRESENCE`] | shared | every open [`Segment`](crate::Segment) handle |
//!
//! (Byte 2 is unused: it was the reclaim lock of layout 1, which is now a
//! `flock` of the whole file, see [`crate::names`].)
//!
//! A role lock is taken before the role is claimed in the ring, so "the
//! ring says the role is active but nobody holds its lock" means its holder
//! died. OFD locks belong to an open file description, not to a process:
//! each handle opens the segment itself (or reopens a received fd) so that
//! two handles in one process still see each other's locks.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Byte locked by the sender.
pub(crate) const PRODUCER: i64 = 0;
/// Byte locked by the receiver.
pub(crate) const CONSUMER: i64 = 1;
/// Byte read-locked by every open handle.
pub(crate) const PRESENCE: i64 = 3;

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
pub(crate) fn try_lock(fd: impl AsFd, byte: i64, shared: bool) -> io::Result<bool> {
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

/// Whether an open file description other than `fd`'s holds any lock on
/// `byte` (probed with an exclusive request, which conflicts with both kinds).
pub(crate) fn held_by_other(fd: impl AsFd, byte: i64) -> io::Result<bool> {
    let mut lock = flock(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: F_OFD_GETLK reads and overwrites the `flock` we own.
    let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Segment;

    #[test]
    fn a_lock_is_seen_from_another_open_file_description_only() {
        let name = format!("/lock-unit-{}", std::process::id());
        let a = Segment::create(&name, 4096, 0o600).unwrap();
        let b = Segment::open(&name).unwrap(); // its own open file description
        assert!(try_lock(a.fd(), PRODUCER, false).unwrap());
        assert!(!held_by_other(a.fd(), PRODUCER).unwrap());
        assert!(!try_lock(b.fd(), PRODUCER, false).unwrap());
        assert!(held_by_other(b.fd(), PRODUCER).unwrap());
        // Every handle holds the shared presence lock: each sees the other's.
        assert!(held_by_other(b.fd(), PRESENCE).unwrap());
        assert!(!try_lock(b.fd(), PRESENCE, false).unwrap());
        // The kernel drops a description's locks when it closes.
        drop(a);
        assert!(!held_by_other(b.fd(), PRODUCER).unwrap());
        assert!(!held_by_other(b.fd(), PRESENCE).unwrap());
    }
}
