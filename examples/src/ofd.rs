//! Open-file-description byte locks (`fcntl(F_OFD_SETLK)`), the lock kind
//! shmlane's dead-peer detection rests on: held by an open file
//! description, not by a process, and released by the kernel when the last
//! descriptor of it closes — when its process dies, however it dies.
//!
//! (shmlane-posix keeps its own locks private; these are the examples'.)

use std::io;
use std::os::fd::{AsFd, AsRawFd};

fn request(kind: libc::c_short, byte: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value (and
    // `l_pid` must be 0 for OFD locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte;
    lock.l_len = 1;
    lock
}

/// Takes an exclusive lock on `byte` of `fd`'s file without waiting:
/// `Ok(false)` if another open file description holds one there.
pub fn try_lock(fd: impl AsFd, byte: i64) -> io::Result<bool> {
    let mut lock = request(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: F_OFD_SETLK reads the `flock` we own, which outlives the call.
    if unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_SETLK, &mut lock) } == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        e => Err(e),
    }
}

/// Takes an exclusive lock on `byte`, waiting as long as another open file
/// description holds one (`F_OFD_SETLKW`, retried after a signal).
pub fn lock(fd: impl AsFd, byte: i64) -> io::Result<()> {
    let mut lock = request(libc::F_WRLCK as libc::c_short, byte);
    loop {
        // SAFETY: as in `try_lock`.
        if unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_SETLKW, &mut lock) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether an open file description other than `fd`'s holds a lock on
/// `byte` (probed with `F_OFD_GETLK`, which takes nothing).
pub fn held_by_other(fd: impl AsFd, byte: i64) -> io::Result<bool> {
    let mut lock = request(libc::F_WRLCK as libc::c_short, byte);
    // SAFETY: F_OFD_GETLK reads and overwrites the `flock` we own.
    if unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_GETLK, &mut lock) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// Releases this open file description's lock on `byte` (if it holds one).
pub fn unlock(fd: impl AsFd, byte: i64) -> io::Result<()> {
    let mut lock = request(libc::F_UNLCK as libc::c_short, byte);
    // SAFETY: as in `try_lock`.
    if unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_OFD_SETLK, &mut lock) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
