//! Shared-memory segments: named (`shm_open`) and anonymous (`memfd`), mapped
//! read-write and shared, with the locks that tell live segments from stale.
//!
//! Named segments live in `/dev/shm`. Creating one is exclusive: if the name
//! is taken by a segment whose processes are all dead (no process holds any
//! handle to it: the kernel dropped their presence locks), the segment is
//! *stale* and is removed and created anew; a live segment is never stolen
//! ([`Error::AlreadyExists`]), and a file that is not a shmlane segment is
//! never removed.
//!
//! A named segment cannot be sealed: a process with write access can
//! truncate it, and a process that has it mapped then dies of `SIGBUS` when
//! it touches the lost pages. For an untrusted peer use an anonymous segment
//! (a memfd sealed against shrinking and growing) passed over a unix socket
//! ([`send_fd`], [`recv_fd`], [`Segment::from_fd`]).

use std::ffi::c_void;
use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{FallocateFlags, FileType, Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::shm;

use crate::lock;
use crate::{Error, Result};

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

/// Maps the errno of a call on the named IPC object `name` (`shm_open`,
/// `mq_open`, their unlinks) to a typed error.
pub(crate) fn named_err(name: &str, op: &'static str, e: Errno) -> Error {
    match e {
        Errno::NOENT => Error::NotFound {
            name: name.to_owned(),
        },
        Errno::EXIST => Error::AlreadyExists {
            name: name.to_owned(),
        },
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
            name: name.to_owned(),
        },
        Errno::NAMETOOLONG | Errno::INVAL => Error::InvalidName {
            name: name.to_owned(),
            reason: "refused by the system",
        },
        e => Error::io(op, e),
    }
}

/// Whether `name` still refers to the object open as `fd`.
fn names_same_object(name: &str, fd: &OwnedFd) -> Result<bool> {
    let other = match shm::open(name, shm::OFlags::RDONLY, Mode::empty()) {
        Ok(other) => other,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(named_err(name, "shm_open", e)),
    };
    let (a, b) = (
        rustix::fs::fstat(fd).map_err(|e| Error::io("fstat", e))?,
        rustix::fs::fstat(&other).map_err(|e| Error::io("fstat", e))?,
    );
    Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

/// Removes the segment called `name` if it is stale: a shmlane segment (or
/// an empty object) that no process holds. Returns `Ok(())` when the name
/// may be free now, `Err(AlreadyExists)` when it is live or not ours.
fn reclaim_if_stale(name: &str) -> Result<()> {
    let taken = || Error::AlreadyExists {
        name: name.to_owned(),
    };
    let fd = match shm::open(name, shm::OFlags::RDWR, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ACCESS | Errno::PERM) => return Err(taken()),
        Err(e) => return Err(Error::io("shm_open", e)),
    };
    // One reclaimer at a time; the others report the name as taken.
    if !lock::try_lock(&fd, lock::RECLAIM, false).map_err(|e| Error::io("fcntl", e))? {
        return Err(taken());
    }
    if lock::held_by_other(&fd, lock::PRESENCE).map_err(|e| Error::io("fcntl", e))? {
        return Err(taken());
    }
    let size = rustix::fs::fstat(&fd)
        .map_err(|e| Error::io("fstat", e))?
        .st_size;
    if size != 0 {
        let mut magic = [0u8; 8];
        let n = rustix::io::pread(&fd, &mut magic, 0).map_err(|e| Error::io("pread", e))?;
        if n != 8 || u64::from_ne_bytes(magic) != shmlane_core::layout::MAGIC {
            return Err(taken()); // not ours: never removed
        }
    }
    if names_same_object(name, &fd)? {
        match shm::unlink(name) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(named_err(name, "shm_unlink", e)),
        }
    }
    Ok(())
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
    /// Reclaims a stale segment of that name; refuses a live one.
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
        validate_name(name)?;
        if size == 0 {
            return Err(Error::TooSmall { size, needed: 1 });
        }
        let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
        let mode = Mode::from_raw_mode(mode & 0o777);
        for _ in 0..8 {
            let fd = match shm::open(name, flags, mode) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => {
                    reclaim_if_stale(name)?;
                    continue;
                }
                Err(e) => return Err(named_err(name, "shm_open", e)),
            };
            lock::try_lock(&fd, lock::PRESENCE, true).map_err(|e| Error::io("fcntl", e))?;
            // A reclaimer could have removed the name between our open and
            // our presence lock (it saw an empty object nobody held): then
            // this object is nameless, and we start again.
            if !names_same_object(name, &fd)? {
                continue;
            }
            let created = (|| {
                rustix::fs::fchmod(&fd, mode).map_err(|e| Error::io("fchmod", e))?;
                allocate(&fd, size)?;
                Self::map(fd, size, Some(name.to_owned()))
            })();
            return match created {
                Ok(mut segment) => {
                    segment.unlink_on_drop = true;
                    Ok(segment)
                }
                Err(e) => {
                    let _ = shm::unlink(name);
                    Err(e)
                }
            };
        }
        Err(Error::AlreadyExists {
            name: name.to_owned(),
        })
    }

    /// Opens and maps an existing named segment (its whole size).
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
        validate_name(name)?;
        let fd = shm::open(name, shm::OFlags::RDWR, Mode::empty())
            .map_err(|e| named_err(name, "shm_open", e))?;
        lock::try_lock(&fd, lock::PRESENCE, true).map_err(|e| Error::io("fcntl", e))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("fstat", e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Error::NotASegment {
                reason: "it is not a regular shared-memory object",
            });
        }
        let size = usize::try_from(stat.st_size).unwrap_or(usize::MAX);
        if size == 0 {
            // Being created right now, or abandoned by a creator that died.
            return Err(Error::NotReady);
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
        lock::try_lock(&fd, lock::PRESENCE, true).map_err(|e| Error::io("fcntl", e))?;
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

    /// Maps an anonymous segment received as `fd` (from [`recv_fd`] or
    /// inherited). The segment must be sealed against resizing
    /// ([`Error::NotSealed`] otherwise). The fd is reopened so that this
    /// handle has its own open file description (its own locks). See
    /// [`send_fd`] for an example.
    pub fn from_fd(fd: OwnedFd) -> Result<Segment> {
        let seals = rustix::fs::fcntl_get_seals(&fd).map_err(|_| Error::NotSealed)?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) {
            return Err(Error::NotSealed);
        }
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let own = rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("open /proc/self/fd", e))?;
        drop(fd);
        lock::try_lock(&own, lock::PRESENCE, true).map_err(|e| Error::io("fcntl", e))?;
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

    /// The segment's file descriptor (to pass with [`send_fd`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
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
        validate_name(name)?;
        shm::unlink(name).map_err(|e| named_err(name, "shm_unlink", e))
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`, unmapped once,
        // here. Whoever borrowed it (a channel's ring) is dropped before.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
        if self.unlink_on_drop {
            if let Some(name) = &self.name {
                // Only our own object: the name may have been reused.
                if names_same_object(name, &self.fd).unwrap_or(false) {
                    let _ = shm::unlink(name.as_str());
                }
            }
        }
    }
}

/// Sends `fd` over the unix socket `socket` (`SCM_RIGHTS`), with one byte
/// of payload.
///
/// # Examples
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use shmlane_posix::segment::{recv_fd, send_fd};
/// use shmlane_posix::Segment;
///
/// let (a, b) = UnixStream::pair().unwrap();
/// let seg = Segment::anonymous(4096)?;
/// seg.seal()?;
/// send_fd(&a, seg.fd())?;
/// let received = Segment::from_fd(recv_fd(&b)?)?;
/// assert_eq!(received.len(), 4096);
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn send_fd(socket: impl AsFd, fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(b"F")],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| match e {
        Errno::PIPE | Errno::CONNRESET => Error::Disconnected,
        e => Error::io("sendmsg", e),
    })?;
    Ok(())
}

/// Receives an fd sent with [`send_fd`] from the unix socket `socket`.
/// [`Error::Disconnected`] if the peer closed the socket first.
pub fn recv_fd(socket: impl AsFd) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| Error::io("recvmsg", e))?;
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                received.get_or_insert(fd);
            }
        }
    }
    match received {
        Some(fd) => Ok(fd),
        None if msg.bytes == 0 => Err(Error::Disconnected),
        None => Err(Error::NotASegment {
            reason: "the message carried no file descriptor",
        }),
    }
}
