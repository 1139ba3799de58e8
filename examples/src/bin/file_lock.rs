//! File locks: two processes contend for one lock, and when the holder dies,
//! however it dies, the kernel releases the lock and the waiter gets it.
//!
//! ```text
//! cargo run -p shmlane-examples --bin file_lock -- flock ./lockfile    # terminal 1
//! locked: flock on ./lockfile, held by pid 4242 until stdin ends
//! cargo run -p shmlane-examples --bin file_lock -- flock ./lockfile    # terminal 2
//! waiting: flock on ./lockfile is held by another open file description
//! kill -KILL 4242                                                      # terminal 3
//! acquired: flock on ./lockfile, held by pid 4243 until stdin ends     # terminal 2
//! ```
//!
//! The first argument is the kind of lock, `flock` or `ofd`; PATH is
//! created if missing (mode 0644) and never removed. The program takes an
//! exclusive lock: if it gets it at once it prints `locked: ...`; if another
//! holder has it, it prints `waiting: ...`, sleeps in the kernel until the
//! lock is free and prints `acquired: ...`. Either way it then holds the lock
//! until its stdin ends (Ctrl-D), releases it and prints `released`. Killed
//! instead, it releases nothing itself: the kernel does.
//!
//! What it teaches:
//!
//! - These locks are advisory: the kernel keeps, per file, who holds what,
//!   and makes a conflicting request wait (or fail, when it must not wait:
//!   `LOCK_NB`, `F_OFD_SETLK`). Processes that do not ask are not stopped
//!   from reading or writing the file.
//! - A lock is the kernel's state, not the file's, so it cannot outlive its
//!   holder: it is released when the last descriptor of the holder's open
//!   file description is closed, which the kernel does when the process
//!   ends, by `exit`, a panic, SIGKILL or the OOM killer. Compare a lock
//!   *file* (`open(O_CREAT | O_EXCL)`, removed when done), which a crash
//!   leaves behind for ever. This is how shmlane detects a dead peer: each
//!   side holds an OFD lock on one byte of the segment (`posix/src/lock.rs`;
//!   this program's own calls are in `shmlane_examples::ofd`), and "the
//!   ring says the side is active but nobody holds its byte" means it died. Here the waiter blocks on the
//!   lock instead of testing it.
//! - Who owns a lock decides when it is released and who conflicts:
//!   - `flock(2)` locks the whole file and belongs to the *open file
//!     description* (one `open` call): descriptors made from it by `dup` or
//!     inherited by `fork` share the lock; a second `open` of the file, even
//!     in the same process, is another owner and conflicts.
//!   - POSIX record locks (`fcntl(F_SETLK)`, rustix's `fcntl_lock`) lock
//!     byte ranges but belong to the *process*: two threads never exclude
//!     each other, a child made by `fork` does not inherit them, and closing
//!     *any* descriptor of the file drops all of the process's locks on it
//!     (a library that opens and closes the file silently unlocks yours).
//!   - OFD locks (`fcntl(F_OFD_SETLK)`, Linux 3.15, now in POSIX) lock byte
//!     ranges and belong to the open file description, like `flock`: the
//!     byte ranges of POSIX locks without their traps. This program locks
//!     byte 0, as shmlane locks one byte per role. rustix has `flock` and
//!     the process-owned `fcntl_lock`, not OFD locks, so they come from
//!     `libc` here.
//! - A waiter sleeps in the kernel (its state is `S`, in the `flock` or
//!   `fcntl` system call), costing nothing, and the kernel wakes it when
//!   the lock is released: no polling.
//! - `flock` locks and `fcntl` locks are separate on Linux: a `flock` lock
//!   does not conflict with an OFD lock on the same file (except on NFS,
//!   where `flock` is emulated with `fcntl` locks). Use one kind per file.
//! - Do not remove a lock file that others may be waiting on: a waiter
//!   would get the lock on the removed file while a newcomer creates and
//!   locks a new one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use shmlane_examples::{BoxError, ofd, run};

const USAGE: &str = "usage: file_lock flock|ofd PATH";

/// The two kinds of lock this program takes.
#[derive(Clone, Copy)]
enum Kind {
    /// `flock(2)`: the whole file, owned by the open file description.
    Flock,
    /// `fcntl(F_OFD_SETLK)` on byte 0, owned by the open file description.
    Ofd,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Flock => "flock",
            Kind::Ofd => "OFD lock",
        }
    }

    /// Takes the exclusive lock on `file`: waiting until it is free if
    /// `wait`, else returning `Ok(false)` at once if someone holds it.
    fn lock(self, file: &File, wait: bool) -> Result<bool, Errno> {
        loop {
            let result = match (self, wait) {
                (Kind::Flock, true) => flock(file, FlockOperation::LockExclusive),
                (Kind::Flock, false) => flock(file, FlockOperation::NonBlockingLockExclusive),
                (Kind::Ofd, true) => ofd::lock(file, 0).map_err(errno),
                (Kind::Ofd, false) => match ofd::try_lock(file, 0) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Errno::AGAIN),
                    Err(e) => Err(errno(e)),
                },
            };
            match result {
                Ok(()) => return Ok(true),
                // flock says EWOULDBLOCK (= EAGAIN); fcntl EAGAIN or EACCES.
                Err(Errno::AGAIN | Errno::ACCESS) if !wait => return Ok(false),
                // A signal handler ran while we waited (none here): again.
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn unlock(self, file: &File) -> Result<(), Errno> {
        match self {
            Kind::Flock => flock(file, FlockOperation::Unlock),
            Kind::Ofd => ofd::unlock(file, 0).map_err(errno),
        }
    }
}

/// An OFD lock call's result as an errno (the examples' [`ofd`] speaks
/// `std::io`).
fn errno(e: std::io::Error) -> Errno {
    Errno::from_io_error(&e).unwrap_or(Errno::IO)
}

fn main() -> ExitCode {
    run("file_lock", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["flock", path] => hold(Kind::Flock, Path::new(path)),
            ["ofd", path] => hold(Kind::Ofd, Path::new(path)),
            _ => Err(format!("unexpected arguments {args:?}; {USAGE}").into()),
        }
    })
}

fn say(line: &str) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}").into())
}

/// Takes the lock (waiting if it is held), holds it until stdin ends,
/// releases it.
fn hold(kind: Kind, path: &Path) -> Result<(), BoxError> {
    // Read and write: an exclusive fcntl lock needs a descriptor open for
    // writing (flock needs neither).
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let what = format!("{} on {}", kind.name(), path.display());
    let pid = std::process::id();
    let fail = |e: Errno| format!("cannot lock {}: {e}", path.display());

    if kind.lock(&file, false).map_err(fail)? {
        say(&format!(
            "locked: {what}, held by pid {pid} until stdin ends"
        ))?;
    } else {
        say(&format!(
            "waiting: {what} is held by another open file description"
        ))?;
        // Sleeps in the kernel until the holder releases it, or dies.
        kind.lock(&file, true).map_err(fail)?;
        say(&format!(
            "acquired: {what}, held by pid {pid} until stdin ends"
        ))?;
    }

    std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    kind.unlock(&file)
        .map_err(|e| format!("cannot unlock {}: {e}", path.display()))?;
    say("released")
    // Closing `file` would have released it too.
}
