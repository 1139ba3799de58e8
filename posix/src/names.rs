//! Named objects: the rules for every name this crate creates or opens —
//! shared-memory segments and message queues (`/name`), FIFOs and socket
//! paths.
//!
//! **Opening.** A name is opened without following a symbolic link
//! (`O_NOFOLLOW`) and without blocking (`O_NONBLOCK`: a FIFO planted where
//! a segment should be cannot hang the call), then checked with `fstat`
//! before anything is read or written: it must be of the expected type,
//! owned by the expected user (the effective uid, unless the caller named
//! another), and writable by its group or others only as far as the mode
//! the caller asked for allows ([`Expect`]). Anything else is a typed error
//! ([`Error::WrongType`], [`Error::ForeignOwner`], [`Error::UnsafeMode`])
//! and the object is never read, written or removed.
//!
//! **Reclaiming.** A name left behind by a process that died is taken over
//! only when the object is provably ours and provably dead: of the right
//! type, owned by us, marked as shmlane's (a segment's magic bytes; a FIFO
//! or queue at a name an endpoint derives), and held by no live handle
//! (every handle keeps a shared *presence* lock on its open file
//! description, which the kernel drops when the process dies). Reclaimers
//! and creators exclude each other with an exclusive `flock` on the object
//! (`reclaim_if_stale`, `settle_new`), so a reclaim never removes an
//! object that a creator is about to hand out.
//!
//! One window is left: there is no "remove this name if it still names
//! this inode" call, so a reclaimer checks that the name still names the
//! stale object and then removes the name. Between the two, only a process
//! that removes the name itself (the owner calling `unlink`) and creates a
//! new object there at once could have its new object removed.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::{Error, Object, Result, lock};

/// Longest segment or queue name in bytes, leading `/` included (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Checks a segment or message-queue name: a leading `/`, then at least one
/// byte, with no other `/` and no NUL, not `.` or `..`, and
/// [`MAX_NAME_LEN`] bytes in all at most.
///
/// # Examples
///
/// ```
/// use shmlane_posix::names::validate_name;
///
/// assert!(validate_name("/prices").is_ok());
/// assert_eq!(validate_name("prices"), Err("must start with '/'"));
/// assert!(validate_name("/a/b").is_err());
/// ```
pub fn validate_name(name: &str) -> std::result::Result<(), &'static str> {
    let invalid = Err;
    let Some(rest) = name.strip_prefix('/') else {
        return invalid("must start with '/'");
    };
    if rest.is_empty() {
        return invalid("must have at least one character after '/'");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("must be at most 255 bytes long");
    }
    if rest.contains('/') {
        return invalid("must not contain '/' after the first character");
    }
    if rest.contains('\0') {
        return invalid("must not contain NUL");
    }
    if rest == "." || rest == ".." {
        return invalid("must not be '.' or '..'");
    }
    Ok(())
}

/// [`validate_name`], as the [`Error::InvalidName`] of an `object`.
pub(crate) fn check_name(object: Object, name: &str) -> Result<()> {
    validate_name(name).map_err(|reason| Error::InvalidName {
        object,
        name: name.to_owned(),
        reason,
    })
}

/// `name.suffix`, checked as a whole: a name that is valid alone may be too
/// long once an endpoint adds its suffix.
///
/// # Examples
///
/// ```
/// use shmlane_posix::names::suffixed;
/// use shmlane_posix::Object;
///
/// assert_eq!(suffixed(Object::Queue, "/quotes", "c2s")?, "/quotes.c2s");
/// let long = format!("/{}", "x".repeat(252));
/// assert!(suffixed(Object::Segment, &long, "c2s").is_err()); // 257 bytes
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn suffixed(object: Object, name: &str, suffix: &str) -> Result<String> {
    check_name(object, name)?;
    let whole = format!("{name}.{suffix}");
    check_name(object, &whole)?;
    Ok(whole)
}

/// The file type an object has in the file system.
fn file_type(object: Object) -> FileType {
    match object {
        Object::Segment | Object::Queue => FileType::RegularFile,
        Object::Fifo => FileType::Fifo,
        Object::Socket => FileType::Socket,
    }
}

/// What an object's file type is called in error messages.
pub(crate) fn noun(object: Object) -> &'static str {
    describe(file_type(object))
}

/// How a file type is named in error messages.
fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "an object of unknown type",
    }
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// What an object must be like to be used: its owner, and the permission
/// bits the caller asked for (beyond which its group and others must not
/// be able to write).
///
/// # Examples
///
/// ```
/// use shmlane_posix::names::Expect;
///
/// let mine = Expect::new(None, 0o600); // owned by me, nobody else writes
/// assert_eq!(mine.owner(), rustix::process::geteuid().as_raw());
/// let shared = Expect::new(Some(1000), 0o660); // uid 1000's, its group may write
/// assert_eq!((shared.owner(), shared.mode()), (1000, 0o660));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    owner: u32,
    mode: u32,
}

impl Expect {
    /// Owned by `owner` (the effective uid if `None`), with no group or
    /// other write permission beyond `mode`.
    pub fn new(owner: Option<u32>, mode: u32) -> Expect {
        Expect {
            owner: owner.unwrap_or_else(euid),
            mode: mode & 0o777,
        }
    }

    /// The uid the object must belong to.
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// The permission bits asked for.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Checks the `fstat` of an object opened as `name`.
    pub(crate) fn check(&self, stat: &Stat, name: &str, kind: Object) -> Result<()> {
        let found = FileType::from_raw_mode(stat.st_mode);
        if found != file_type(kind) {
            return Err(Error::WrongType {
                name: name.to_owned(),
                found: describe(found),
                expected: noun(kind),
            });
        }
        if stat.st_uid != self.owner {
            return Err(Error::ForeignOwner {
                name: name.to_owned(),
                owner: stat.st_uid,
                expected: self.owner,
            });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o022 & !self.mode != 0 {
            return Err(Error::UnsafeMode {
                name: name.to_owned(),
                mode,
                allowed: self.mode,
            });
        }
        Ok(())
    }
}

/// `fstat`, as this crate's error.
pub(crate) fn fstat(fd: impl AsFd) -> Result<Stat> {
    rustix::fs::fstat(fd).map_err(|e| Error::io("fstat", e))
}

/// Maps the errno of an `open`-like call on `name` to a typed error.
pub(crate) fn open_err(kind: Object, name: &str, op: &'static str, e: Errno) -> Error {
    match e {
        Errno::NOENT => Error::NotFound {
            name: name.to_owned(),
            object: kind,
        },
        Errno::EXIST => Error::AlreadyExists {
            name: name.to_owned(),
            object: kind,
        },
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
            name: name.to_owned(),
            object: kind,
        },
        Errno::NAMETOOLONG => Error::InvalidName {
            name: name.to_owned(),
            object: kind,
            reason: "refused by the system as too long",
        },
        e => Error::io(op, e),
    }
}

/// Maps the errno of a call on the named IPC object `name` (`shm_open`,
/// `mq_open`, their unlinks, which also say `EINVAL` for a name they
/// refuse) to a typed error.
pub(crate) fn named_err(kind: Object, name: &str, op: &'static str, e: Errno) -> Error {
    match e {
        Errno::INVAL => Error::InvalidName {
            name: name.to_owned(),
            object: kind,
            reason: "refused by the system",
        },
        e => open_err(kind, name, op, e),
    }
}

/// What is at `path` in `dir`, not following a symbolic link there.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, path: &str) -> std::result::Result<Stat, Errno> {
    rustix::fs::statat(dir, path, AtFlags::SYMLINK_NOFOLLOW)
}

/// Opens `path` in `dir` with `flags` (plus `O_NOFOLLOW`, `O_NONBLOCK`,
/// `O_NOCTTY`, `O_CLOEXEC`) and checks what it opened against `expect`;
/// `name` is how errors call it. A symbolic link at `path` is
/// [`Error::WrongType`] and is never followed; a FIFO never blocks the open
/// (the descriptor is left non-blocking: the caller decides).
pub(crate) fn open_checked(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
    kind: Object,
    expect: Expect,
    name: &str,
) -> Result<OwnedFd> {
    open_checked_stat(dir, path, flags, kind, expect, name).map(|(fd, _)| fd)
}

/// [`open_checked`], also returning the `fstat` it checked.
pub(crate) fn open_checked_stat(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
    kind: Object,
    expect: Expect,
    name: &str,
) -> Result<(OwnedFd, Stat)> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, path, flags, Mode::empty()) {
        Ok(fd) => fd,
        // ELOOP: the last component is a symbolic link (O_NOFOLLOW). Other
        // types that cannot be opened so (a socket: ENXIO) are named too.
        Err(e @ (Errno::LOOP | Errno::NXIO | Errno::OPNOTSUPP)) => {
            return Err(match stat_at(dir, path) {
                Ok(stat) if FileType::from_raw_mode(stat.st_mode) != file_type(kind) => {
                    Error::WrongType {
                        name: name.to_owned(),
                        found: describe(FileType::from_raw_mode(stat.st_mode)),
                        expected: noun(kind),
                    }
                }
                _ => open_err(kind, name, "open", e),
            });
        }
        Err(e) => return Err(open_err(kind, name, "open", e)),
    };
    let stat = fstat(&fd)?;
    expect.check(&stat, name, kind)?;
    Ok((fd, stat))
}

/// Opens the object that the `O_PATH` descriptor `fd` refers to, anew, with
/// `flags` (plus `O_CLOEXEC`, `O_NOCTTY`), through `/proc/self/fd`: the
/// same inode, checked before, whatever its name refers to now.
pub(crate) fn reopen(fd: BorrowedFd<'_>, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

/// Whether `path` in `dir` still names the object open as `fd` (without
/// following a link there, and without opening anything).
pub(crate) fn still_names(dir: BorrowedFd<'_>, path: &str, fd: BorrowedFd<'_>) -> bool {
    match (stat_at(dir, path), rustix::fs::fstat(fd)) {
        (Ok(named), Ok(open)) => named.st_dev == open.st_dev && named.st_ino == open.st_ino,
        _ => false,
    }
}

/// The exclusive reclaim lock on an object (`flock`, which any open file
/// description may take, read-only ones too): `Ok(false)` if another
/// description holds it. Released by [`unlock_reclaim`], by closing the
/// description, or by the death of its process.
pub(crate) fn try_lock_reclaim(fd: BorrowedFd<'_>) -> Result<bool> {
    match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(Errno::INTR) => try_lock_reclaim(fd),
        Err(e) => Err(Error::io("flock", e)),
    }
}

/// Releases the reclaim lock taken by [`try_lock_reclaim`].
pub(crate) fn unlock_reclaim(fd: BorrowedFd<'_>) {
    let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
}

/// Takes the shared presence lock that every live handle of an object holds.
pub(crate) fn lock_presence(fd: BorrowedFd<'_>) -> Result<()> {
    match lock::try_lock(fd, lock::PRESENCE, true) {
        Ok(true) => Ok(()),
        // Only an exclusive lock conflicts with a shared one, and nobody
        // takes one on that byte.
        Ok(false) => Err(Error::io("fcntl(F_OFD_SETLK)", Errno::AGAIN)),
        Err(e) => Err(Error::io("fcntl(F_OFD_SETLK)", e)),
    }
}

/// Whether `name`, whose object of ours is open as `fd` (checked: type,
/// owner, shmlane's mark), is stale, and if so removes the name with
/// `unlink`: returns `Ok(true)` when the name may be free now, `Ok(false)`
/// when the object is live (some handle holds its presence lock) or another
/// process is creating or reclaiming it. `still_named` tells whether the
/// name still refers to `fd`'s object.
pub(crate) fn reclaim_if_stale(
    fd: BorrowedFd<'_>,
    still_named: impl FnOnce() -> bool,
    unlink: impl FnOnce() -> Result<()>,
) -> Result<bool> {
    // One reclaimer or creator at a time; the others see the name as taken.
    if !try_lock_reclaim(fd)? {
        return Ok(false);
    }
    let live = lock::held_by_other(fd, lock::PRESENCE).map_err(|e| Error::io("fcntl", e))?;
    if live {
        unlock_reclaim(fd);
        return Ok(false);
    }
    // Dead, and ours. Only while the name still refers to it (a reclaimer
    // before us may have removed it, and someone created a new one since).
    let removed = if still_named() { unlink() } else { Ok(()) };
    unlock_reclaim(fd);
    removed.map(|()| true)
}

/// The creator's half of the reclaim protocol, right after it created a
/// named object that is visible at once (a FIFO, a message queue): takes
/// the reclaim lock, then the presence lock, then checks that the name
/// still refers to `fd`'s object. `Ok(false)` means a reclaimer that saw
/// the object before it was held has removed (or is removing) its name:
/// drop it and create again. From `Ok(true)` on no reclaim removes it
/// while a handle holds it.
pub(crate) fn settle_new(fd: BorrowedFd<'_>, still_named: impl FnOnce() -> bool) -> Result<bool> {
    if !try_lock_reclaim(fd)? {
        return Ok(false);
    }
    let settled = lock_presence(fd).map(|()| still_named());
    unlock_reclaim(fd);
    settled
}
