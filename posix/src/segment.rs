//! Shared-memory segments: named (in `/dev/shm`, as `shm_open` names them)
//! and anonymous (`memfd`), mapped read-write and shared, with the locks
//! that tell live segments from stale.
//!
//! **A half-built segment is never visible under its name.** A named
//! segment is made nameless first (`O_TMPFILE` in `/dev/shm`), given its
//! exact mode and its memory, locked (the presence lock every handle holds),
//! initialised by the caller (a channel writes its ring header and takes its
//! role lock), and only then linked into place with `linkat`, which never
//! replaces an existing name. A process killed at any instant of a create
//! therefore leaves either nothing (the kernel frees the nameless object) or
//! a complete segment whose locks died with it — stale, and reclaimed by
//! the next create. (The other way, creating the name first and holding a
//! lock until the header is written, leaves a window between the create and
//! the lock in which a crash leaves an object nobody can tell from a
//! stranger's, and in which a racing reclaimer may remove a live segment.)
//!
//! **Reclaiming.** Creating a name held by a segment that no process holds
//! (no presence lock) and that carries shmlane's magic bytes removes it and
//! links the new one; a live segment is never stolen
//! ([`Error::AlreadyExists`]). Nothing else at the name is ever removed,
//! read or written: another user's object is [`Error::ForeignOwner`], a
//! symbolic link, FIFO or directory is [`Error::WrongType`], a file of
//! ours without the magic (including a raw [`Segment::create`] segment left
//! by a crash: nothing says it is shmlane's) is [`Error::AlreadyExists`]
//! (remove it with [`Segment::unlink`]). See [`crate::names`].
//!
//! **Opening** never follows a symbolic link, never blocks on a FIFO, and
//! accepts only a regular file owned by the effective uid (or the owner the
//! caller names) that its group and others cannot write beyond the mode
//! asked for ([`Segment::open_with`]).
//!
//! A named segment cannot be sealed: its owner (and only its owner, given
//! the checks above) can still truncate it, and a process that has it
//! mapped then dies of `SIGBUS` when it touches the lost pages. For an
//! untrusted peer use an anonymous segment (a memfd sealed against
//! shrinking and growing) passed over a unix socket ([`send_fd`](crate::fdpass::send_fd),
//! [`recv_fd`](crate::fdpass::recv_fd), [`Segment::from_fd`]).

use std::ffi::c_void;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{AtFlags, CWD, FallocateFlags, Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm;

use crate::names::{self, Expect};
use crate::{Error, Object, Result};

pub use crate::names::{MAX_NAME_LEN, validate_name};

/// Default mode of a new named segment: read and write for its owner only.
pub const DEFAULT_MODE: u32 = 0o600;

/// A shared-memory segment mapped into this process.
///
/// # Examples
///
/// ```
/// use shmlane_posix::Segment;
///
/// let seg = Segment::create("/doc-segment-type", 4096, 0o600)?;
/// assert_eq!((seg.name(), seg.len(), seg.is_empty()), (Some("/doc-segment-type"), 4096, false));
/// // The mapping is page-aligned, ready for a ring header.
/// assert_eq!(seg.as_ptr().as_ptr() as usize % 4096, 0);
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
///
/// Dropping it unmaps it and, if it was created here as a named segment and
/// [`Segment::set_unlink_on_drop`] did not say otherwise, removes its name.
pub struct Segment {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    name: Option<String>,
    unlink_on_drop: bool,
}

// SAFETY: a `Segment` owns its mapping and its fd; the mapping is plain
// shared memory that any thread may access (synchronisation is the ring's).
unsafe impl Send for Segment {}
// SAFETY: as above; `&Segment` only hands out the pointer and the fd.
unsafe impl Sync for Segment {}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("len", &self.len)
            .field("unlink_on_drop", &self.unlink_on_drop)
            .finish()
    }
}

/// Where named segments live: the directory `shm_open` uses on Linux.
const SHM_DIR: &str = "/dev/shm";

/// The path of the segment `name` (a valid name: `/` and one component).
fn shm_path(name: &str) -> String {
    format!("{SHM_DIR}{name}")
}

/// Whether `fd` holds a shmlane ring: its first bytes are the magic.
fn is_ring(fd: BorrowedFd<'_>) -> Result<bool> {
    let mut magic = [0u8; 8];
    let n = loop {
        match rustix::io::pread(fd, &mut magic, 0) {
            Err(Errno::INTR) => continue,
            other => break other.map_err(|e| Error::io("pread", e))?,
        }
    };
    Ok(n == 8 && u64::from_ne_bytes(magic) == shmlane_core::layout::MAGIC)
}

/// What [`reclaim_stale`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaimed {
    /// The name referred to a stale segment of ours: it is removed.
    Removed,
    /// Nothing (or another object, since) was there to remove: the name
    /// may be free, but this call removed nothing.
    Gone,
    /// Live, being created or reclaimed by another process, or not a ring:
    /// kept.
    Kept,
}

/// Removes the segment called `name` if it is stale: a shmlane segment of
/// ours that no process holds. Another user's object or one of another
/// type is an error, untouched.
pub(crate) fn reclaim_stale(name: &str) -> Result<Reclaimed> {
    let path = shm_path(name);
    // Any mode will do here: nothing is read from it but the magic, and
    // only if it is ours.
    let anything = Expect::new(None, 0o777);
    let fd = match names::open_checked(CWD, &path, OFlags::RDWR, Object::Segment, anything, name) {
        Ok(fd) => fd,
        Err(Error::NotFound { .. }) => return Ok(Reclaimed::Gone),
        Err(Error::PermissionDenied { .. }) => return Ok(Reclaimed::Kept),
        Err(e) => return Err(e),
    };
    if !is_ring(fd.as_fd())? {
        return Ok(Reclaimed::Kept);
    }
    let removed = std::cell::Cell::new(false);
    let free = names::reclaim_if_stale(
        fd.as_fd(),
        || names::still_names(CWD, &path, fd.as_fd()),
        || match rustix::fs::unlink(path.as_str()) {
            Ok(()) => {
                removed.set(true);
                Ok(())
            }
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(names::open_err(Object::Segment, name, "unlink", e)),
        },
    )?;
    Ok(match (free, removed.get()) {
        (false, _) => Reclaimed::Kept,
        (true, true) => Reclaimed::Removed,
        (true, false) => Reclaimed::Gone,
    })
}

/// [`reclaim_stale`] for a creator: whether the name may be free now.
fn reclaim_if_stale(name: &str) -> Result<bool> {
    Ok(reclaim_stale(name)? != Reclaimed::Kept)
}

/// Gives the nameless object `fd` the name `path`: `linkat`, which fails
/// with `EEXIST` rather than replace anything there.
fn link_into_place(fd: BorrowedFd<'_>, path: &str) -> std::result::Result<(), Errno> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match rustix::fs::linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW) {
        // No /proc: the same by the descriptor itself (needs a newer kernel
        // or CAP_DAC_READ_SEARCH).
        Err(Errno::NOENT) => rustix::fs::linkat(fd, "", CWD, path, AtFlags::EMPTY_PATH),
        other => other,
    }
}

/// Bytes of memory the system can still provide (`MemAvailable`), if known.
fn memory_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Gives `fd` `size` bytes of real memory, so that touching the mapping can
/// never fail later with `SIGBUS` for lack of space.
///
/// A size beyond the memory the system can still provide is refused first:
/// a memfd has no size limit of its own, and `/dev/shm` may be as large as
/// the RAM, so allocating it would wake the OOM killer instead of failing.
fn allocate(fd: &OwnedFd, size: usize) -> Result<()> {
    if memory_available().is_some_and(|available| size as u64 > available) {
        return Err(Error::NoSpace { bytes: size });
    }
    match rustix::fs::fallocate(fd, FallocateFlags::empty(), 0, size as u64) {
        Ok(()) => Ok(()),
        Err(Errno::NOSPC | Errno::FBIG | Errno::NOMEM | Errno::INVAL) => {
            Err(Error::NoSpace { bytes: size })
        }
        Err(Errno::OPNOTSUPP) => {
            rustix::fs::ftruncate(fd, size as u64).map_err(|e| Error::io("ftruncate", e))
        }
        Err(e) => Err(Error::io("fallocate", e)),
    }
}

impl Segment {
    /// Creates a named segment of `size` zeroed bytes with permission bits
    /// `mode` (applied exactly, not filtered by the umask), and maps it.
    /// Reclaims a stale ring of that name; refuses a live one, and never
    /// touches anything else (see the module docs).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Segment;
    ///
    /// let seg = Segment::create("/doc-segment-create", 4096, 0o600)?;
    /// assert_eq!(seg.len(), 4096);
    /// // The name is taken while `seg` lives:
    /// assert!(Segment::create("/doc-segment-create", 4096, 0o600).is_err());
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn create(name: &str, size: usize, mode: u32) -> Result<Segment> {
        Self::create_with(name, size, mode, |_| Ok(())).map(|(segment, ())| segment)
    }

    /// Creates a named segment like [`Segment::create`], but runs `init` on
    /// it while it is still nameless (its memory mapped, its presence lock
    /// held), and gives it its name only once `init` succeeded: nobody can
    /// open a half-initialised segment, and a crash at any point leaves
    /// nothing behind that a later create cannot take. If `init` fails,
    /// the segment is discarded and its error returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Segment;
    ///
    /// let (seg, ()) = Segment::create_with("/doc-create-with", 4096, 0o600, |seg| {
    ///     // Not visible yet: no other process can open it.
    ///     assert!(Segment::open("/doc-create-with").is_err());
    ///     // SAFETY: the mapping is ours alone until it is named.
    ///     unsafe { seg.as_ptr().as_ptr().write(42) };
    ///     Ok(())
    /// })?;
    /// let again = Segment::open("/doc-create-with")?;
    /// // SAFETY: a byte of a live mapping; nobody writes it concurrently.
    /// assert_eq!(unsafe { again.as_ptr().as_ptr().read() }, 42);
    /// # drop(seg);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn create_with<T>(
        name: &str,
        size: usize,
        mode: u32,
        init: impl FnOnce(&Segment) -> Result<T>,
    ) -> Result<(Segment, T)> {
        names::check_name(Object::Segment, name)?;
        if size == 0 {
            return Err(Error::TooSmall { size, needed: 1 });
        }
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        let fd =
            rustix::fs::open(SHM_DIR, flags, Mode::from_raw_mode(0o600)).map_err(|e| match e {
                Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
                    name: SHM_DIR.to_owned(),
                    object: Object::Segment,
                },
                e => Error::io("open(/dev/shm, O_TMPFILE)", e),
            })?;
        // O_TMPFILE applied the umask; set the mode exactly.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o777))
            .map_err(|e| Error::io("fchmod", e))?;
        allocate(&fd, size)?;
        names::lock_presence(fd.as_fd())?;
        let mut segment = Self::map(fd, size, Some(name.to_owned()))?;
        let value = init(&segment)?;
        segment.link(name)?;
        segment.unlink_on_drop = true;
        Ok((segment, value))
    }

    /// Links this nameless segment as `name`, reclaiming a stale segment
    /// there.
    fn link(&self, name: &str) -> Result<()> {
        let path = shm_path(name);
        let taken = || Error::AlreadyExists {
            name: name.to_owned(),
            object: Object::Segment,
        };
        // Each round either links, or removes a stale segment, or gives up:
        // a few rounds are only needed when other creators race for it.
        for _ in 0..8 {
            match link_into_place(self.fd.as_fd(), &path) {
                Ok(()) => return Ok(()),
                Err(Errno::EXIST) => {
                    if !reclaim_if_stale(name)? {
                        return Err(taken());
                    }
                }
                Err(e) => return Err(names::open_err(Object::Segment, name, "linkat", e)),
            }
        }
        Err(taken())
    }

    /// Opens and maps an existing named segment (its whole size), owned by
    /// the effective uid and not writable by its group or others: see
    /// [`Segment::open_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Segment};
    ///
    /// let created = Segment::create("/doc-segment-open", 8192, 0o600)?;
    /// let opened = Segment::open("/doc-segment-open")?;
    /// assert_eq!(opened.len(), 8192);
    /// assert!(matches!(Segment::open("/doc-no-such-segment"), Err(Error::NotFound { .. })));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Segment> {
        Self::open_with(name, Expect::new(None, DEFAULT_MODE))
    }

    /// Opens and maps an existing named segment whose owner and mode meet
    /// `expect`: owned by [`Expect::owner`], and writable by its group or
    /// others only as far as [`Expect::mode`] allows. A symbolic link at the
    /// name is never followed and a FIFO never blocks the call
    /// ([`Error::WrongType`]); another owner is [`Error::ForeignOwner`], a
    /// wider mode [`Error::UnsafeMode`]. Nothing is mapped then.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::names::Expect;
    /// use shmlane_posix::{Error, Segment};
    ///
    /// let shared = Segment::create("/doc-segment-open-with", 4096, 0o660)?;
    /// // Group-writable: refused unless the caller says that is expected.
    /// assert!(matches!(Segment::open("/doc-segment-open-with"), Err(Error::UnsafeMode { .. })));
    /// let opened = Segment::open_with("/doc-segment-open-with", Expect::new(None, 0o660))?;
    /// assert_eq!(opened.len(), 4096);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn open_with(name: &str, expect: Expect) -> Result<Segment> {
        names::check_name(Object::Segment, name)?;
        let path = shm_path(name);
        let (fd, stat) =
            names::open_checked_stat(CWD, &path, OFlags::RDWR, Object::Segment, expect, name)?;
        names::lock_presence(fd.as_fd())?;
        let size = usize::try_from(stat.st_size).unwrap_or(usize::MAX);
        if size == 0 {
            return Err(Error::TooSmall {
                size,
                needed: shmlane_core::HEADER_SIZE,
            });
        }
        Self::map(fd, size, Some(name.to_owned()))
    }

    /// Creates an anonymous segment (a memfd) of `size` zeroed bytes, for a
    /// child process or for passing over a unix socket. Call
    /// [`Segment::seal`] before sharing it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Segment;
    ///
    /// let seg = Segment::anonymous(4096)?;
    /// seg.seal()?;
    /// assert_eq!(seg.name(), None);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn anonymous(size: usize) -> Result<Segment> {
        if size == 0 {
            return Err(Error::TooSmall { size, needed: 1 });
        }
        let flags = rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING;
        let fd =
            rustix::fs::memfd_create("shmlane", flags).map_err(|e| Error::io("memfd_create", e))?;
        allocate(&fd, size)?;
        names::lock_presence(fd.as_fd())?;
        Self::map(fd, size, None)
    }

    /// Seals an anonymous segment against shrinking, growing and further
    /// sealing, so that no holder of its fd can make a mapping fault.
    pub fn seal(&self) -> Result<()> {
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        match rustix::fs::fcntl_add_seals(&self.fd, seals) {
            Ok(()) => Ok(()),
            // Already sealed (F_SEAL_SEAL): fine if the seals we want are on.
            Err(Errno::PERM) if self.is_sealed() => Ok(()),
            Err(Errno::INVAL | Errno::PERM) => Err(Error::NotSealed),
            Err(e) => Err(Error::io("fcntl(F_ADD_SEALS)", e)),
        }
    }

    fn is_sealed(&self) -> bool {
        rustix::fs::fcntl_get_seals(&self.fd)
            .is_ok_and(|s| s.contains(SealFlags::SHRINK | SealFlags::GROW))
    }

    /// Maps an anonymous segment received as `fd` (from [`recv_fd`](crate::fdpass::recv_fd) or
    /// inherited). The segment must be sealed against resizing
    /// ([`Error::NotSealed`] otherwise). The fd is reopened so that this
    /// handle has its own open file description (its own locks). See
    /// [`send_fd`](crate::fdpass::send_fd) for an example.
    pub fn from_fd(fd: OwnedFd) -> Result<Segment> {
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|_| Error::NotSealed)?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
            return Err(Error::NotSealed);
        }
        let own = names::reopen(fd.as_fd(), OFlags::RDWR)
            .map_err(|e| Error::io("open /proc/self/fd", e))?;
        drop(fd);
        names::lock_presence(own.as_fd())?;
        let size = rustix::fs::fstat(&own)
            .map_err(|e| Error::io("fstat", e))?
            .st_size;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size == 0 {
            return Err(Error::TooSmall { size, needed: 1 });
        }
        Self::map(own, size, None)
    }

    fn map(fd: OwnedFd, len: usize, name: Option<String>) -> Result<Segment> {
        // SAFETY: a fresh shared mapping chosen by the kernel (no fixed
        // address), so it aliases nothing in this process.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| match e {
            Errno::NOMEM => Error::NoSpace { bytes: len },
            e => Error::io("mmap", e),
        })?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| Error::io("mmap", Errno::FAULT))?;
        Ok(Segment {
            fd,
            ptr,
            len,
            name,
            unlink_on_drop: false,
        })
    }

    /// Start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: segments have at least a byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segment's name, `None` for an anonymous segment.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The segment's file descriptor (to pass with [`send_fd`](crate::fdpass::send_fd)).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A descriptor of the same memory in a new open file description,
    /// holding none of this handle's locks: to hand to another process,
    /// which then cannot keep this handle's roles alive by keeping it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Segment;
    ///
    /// let seg = Segment::anonymous(4096)?;
    /// seg.seal()?;
    /// let other = Segment::from_fd(seg.share_fd()?)?;
    /// assert_eq!(other.len(), 4096);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn share_fd(&self) -> Result<OwnedFd> {
        names::reopen(self.fd.as_fd(), OFlags::RDWR).map_err(|e| Error::io("open /proc/self/fd", e))
    }

    /// Whether dropping this handle removes the segment's name. True for a
    /// named segment created by this handle, false otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Segment;
    ///
    /// let mut seg = Segment::create("/doc-keep", 4096, 0o600)?;
    /// seg.set_unlink_on_drop(false);
    /// drop(seg);
    /// let again = Segment::open("/doc-keep")?; // still there
    /// Segment::unlink("/doc-keep")?;
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, unlink: bool) {
        self.unlink_on_drop = unlink && self.name.is_some();
    }

    /// Whether another handle (another open of the name, in this process or
    /// any other) has this segment open now: every handle holds a shared
    /// lock on it, which the kernel drops when the handle closes or its
    /// process dies.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Segment;
    ///
    /// let a = Segment::create("/doc-in-use", 4096, 0o600)?;
    /// assert!(!a.in_use_elsewhere()?);
    /// let b = Segment::open("/doc-in-use")?;
    /// assert!(a.in_use_elsewhere()? && b.in_use_elsewhere()?);
    /// drop(b);
    /// assert!(!a.in_use_elsewhere()?);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn in_use_elsewhere(&self) -> Result<bool> {
        crate::lock::held_by_other(self.fd(), crate::lock::PRESENCE)
            .map_err(|e| Error::io("fcntl", e))
    }

    /// Removes the name of the segment `name` (mapped handles keep working).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Segment};
    ///
    /// let seg = Segment::create("/doc-unlink", 4096, 0o600)?;
    /// Segment::unlink("/doc-unlink")?;
    /// assert!(matches!(Segment::open("/doc-unlink"), Err(Error::NotFound { .. })));
    /// assert_eq!(seg.len(), 4096); // the mapping lives on
    /// # Ok::<(), Error>(())
    /// ```
    pub fn unlink(name: &str) -> Result<()> {
        names::check_name(Object::Segment, name)?;
        shm::unlink(name).map_err(|e| names::named_err(Object::Segment, name, "shm_unlink", e))
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`, unmapped once,
        // here. Whoever borrowed it (a channel's ring) is dropped before.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
        if self.unlink_on_drop {
            if let Some(name) = &self.name {
                // Only our own object: the name may have been reused. (A
                // stat, not an open: nothing planted there can block it.)
                let path = shm_path(name);
                if names::still_names(CWD, &path, self.fd.as_fd()) {
                    let _ = rustix::fs::unlink(path.as_str());
                }
            }
        }
    }
}
