//! Looking at the channels in `/dev/shm` from a third process, as the
//! `shmlane` command's `ls`, `stat` and `rm-stale` do: what each name is,
//! whose it is, where each side of a ring stands and what it has done.
//!
//! **Nothing here disturbs a channel or trusts it.** A name is opened
//! `O_PATH | O_NOFOLLOW` first (no open of a FIFO or device happens, a
//! symbolic link is reported, never followed); only a regular file is then
//! opened, read-only and non-blocking, and its header is *copied* with
//! `pread` and checked ([`Snapshot::parse`]): the file is never mapped, so
//! an owner who truncates it cannot make the reader die of `SIGBUS`, and
//! no value read can make it misbehave. Liveness comes from the kernel:
//! the presence and role locks every live handle holds (`F_OFD_GETLK`
//! probes, which take nothing), and a holder's pid, which the ring records
//! at its claim, is *verified*: the process must hold the role's lock on
//! this very file (its `/proc/PID/fdinfo` lists it), since `F_OFD_GETLK`
//! gives no pid for open-file-description locks.
//!
//! # Examples
//!
//! ```
//! use shmlane_posix::inspect::{self, Kind, Status};
//! use shmlane_posix::{Options, Sender};
//!
//! let mut tx = Sender::create("/doc-inspect", &Options::new())?;
//! tx.send(b"hello")?;
//! let entry = inspect::inspect("/doc-inspect")?;
//! let Kind::Segment { in_use, channel } = &entry.kind else { panic!("{entry:?}") };
//! let channel = channel.as_ref().unwrap();
//! assert!(*in_use);
//! assert_eq!(channel.producer.status, Status::Active);
//! assert_eq!(channel.producer.pid, Some(std::process::id()));
//! assert_eq!(channel.producer.pid_verified, Some(true));
//! assert_eq!(channel.consumer.status, Status::Idle); // nobody opened it yet
//! assert_eq!(channel.snapshot.producer.counters.messages, 1);
//! # Ok::<(), shmlane_posix::Error>(())
//! ```

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use shmlane_core::{HEADER_SIZE, RoleState};

pub use shmlane_core::{Counters, Side, Snapshot};

use crate::{Error, Object, Result, lock, names};

/// Where named segments (and `shm:` listeners' sockets) live.
const SHM_DIR: &str = "/dev/shm";

/// One name in `/dev/shm`.
#[derive(Debug)]
#[non_exhaustive]
pub struct Entry {
    /// The name as segments are named: `/` and the file name (bytes that
    /// are not UTF-8 shown as U+FFFD).
    pub name: String,
    /// The owner's uid.
    pub owner: u32,
    /// The permission bits.
    pub mode: u32,
    /// Bytes, for a regular file; 0 otherwise.
    pub size: u64,
    /// What it is.
    pub kind: Kind,
}

/// What a name in `/dev/shm` is.
#[derive(Debug)]
#[non_exhaustive]
pub enum Kind {
    /// A shmlane segment (its first bytes are shmlane's magic).
    Segment {
        /// Whether some handle, in any process, has it open now (its
        /// presence lock): a segment nobody has open is stale.
        in_use: bool,
        /// Its ring, or why it cannot be read: another layout version
        /// ([`Error::VersionMismatch`]), a creator that has not finished
        /// ([`Error::NotReady`]), a corrupt header ([`Error::Corrupt`]).
        channel: Result<Channel>,
    },
    /// The socket of an `shm:` listener (`NAME.sock`, see
    /// [`crate::rendezvous`]).
    Listener {
        /// Whether a socket in this network namespace listens at it
        /// (`/proc/net/unix`); a socket file nobody listens at is stale.
        listening: bool,
    },
    /// Something that is not shmlane's: what it is.
    Foreign {
        /// E.g. "symbolic link", "FIFO", "file without shmlane's magic".
        what: &'static str,
    },
    /// A file that cannot be opened to tell (another user's, mode 0600).
    Unreadable {
        /// Why.
        error: Error,
    },
}

/// A ring's header and its sides, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Channel {
    /// The header, copied and checked.
    pub snapshot: Snapshot,
    /// The sender.
    pub producer: Holder,
    /// The receiver.
    pub consumer: Holder,
}

/// One side of a ring and the process holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// Where it stands.
    pub status: Status,
    /// The pid the side recorded when it claimed its role, if any.
    pub pid: Option<u32>,
    /// Whether that process holds the role's lock on this segment now:
    /// `Some(false)` for a dead holder or a reused pid, `None` when its
    /// `/proc/PID/fdinfo` cannot be read (another user's process).
    pub pid_verified: Option<bool>,
}

/// Where one side of a ring stands: the ring's role state and the
/// kernel's role lock together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Nobody has taken the role yet.
    Idle,
    /// A handle holds the role's lock and is about to claim it.
    Claiming,
    /// A live handle holds it.
    Active,
    /// Its holder closed it.
    Closed,
    /// The ring says it is held, and nobody holds its lock: its holder
    /// died without closing (`kill -9`, a crash).
    Dead,
}

impl Status {
    /// A word for it: "idle", "claiming", "active", "closed", "dead".
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Claiming => "claiming",
            Status::Active => "active",
            Status::Closed => "closed",
            Status::Dead => "dead",
        }
    }
}

impl Entry {
    /// Whether `rm-stale` would remove it: a segment nobody has open, or a
    /// listener's socket nobody listens at, owned by this effective uid
    /// (another user's is never touched).
    pub fn is_stale(&self) -> bool {
        let stale = match &self.kind {
            Kind::Segment { in_use, .. } => !in_use,
            Kind::Listener { listening } => !listening,
            Kind::Foreign { .. } | Kind::Unreadable { .. } => false,
        };
        stale && self.owner == names::euid()
    }
}

/// Every name in `/dev/shm`, sorted, each looked at as [`inspect`] does
/// (one that vanishes meanwhile is left out).
pub fn list() -> Result<Vec<Entry>> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| Error::io("opendir /dev/shm", e))?;
    let listening = listening_sockets();
    let mut entries = Vec::new();
    for item in dir {
        let item = item.map_err(|e| Error::io("readdir /dev/shm", e))?;
        match look_at(item.file_name().as_os_str(), &listening) {
            Ok(entry) => entries.push(entry),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The entry of one segment (or listener socket) name, `/` and one
/// component: [`Error::NotFound`] if nothing is there.
pub fn inspect(name: &str) -> Result<Entry> {
    names::check_name(Object::Segment, name)?;
    look_at(OsStr::new(&name[1..]), &listening_sockets())
}

/// Removes `entry` if it is stale ([`Entry::is_stale`]), with the checks
/// creating a channel makes before it reclaims a name: a segment only if,
/// under the reclaim lock, no handle holds it and the name still refers to
/// the same file; a socket only if connecting to it is refused.
pub fn remove_stale(entry: &Entry) -> Result<Removal> {
    use crate::segment::Reclaimed;
    if !entry.is_stale() {
        return Ok(Removal::Kept);
    }
    match entry.kind {
        Kind::Segment { .. } => Ok(match crate::segment::reclaim_stale(&entry.name)? {
            Reclaimed::Removed => Removal::Removed,
            Reclaimed::Gone => Removal::Gone,
            Reclaimed::Kept => Removal::Kept,
        }),
        Kind::Listener { .. } => {
            let path = std::path::PathBuf::from(format!("{SHM_DIR}{}", entry.name));
            let probe = |p: &std::path::Path| std::os::unix::net::UnixStream::connect(p).map(drop);
            match crate::unix::remove_stale_socket(&path, probe) {
                Ok(true) => Ok(Removal::Removed),
                Ok(false) => Ok(Removal::Gone),
                Err(Error::AlreadyExists { .. }) => Ok(Removal::Kept),
                Err(e) => Err(e),
            }
        }
        Kind::Foreign { .. } | Kind::Unreadable { .. } => Ok(Removal::Kept),
    }
}

/// What [`remove_stale`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Removal {
    /// It was stale, and this call removed it.
    Removed,
    /// It was gone by the time of the removal (its last holder removed
    /// it as it closed, say): nothing was removed.
    Gone,
    /// It is live (again), or not stale: kept.
    Kept,
}

/// Looks at `/dev/shm/<file>`.
fn look_at(file: &OsStr, listening: &[Vec<u8>]) -> Result<Entry> {
    let name = format!("/{}", file.to_string_lossy());
    let mut path = SHM_DIR.as_bytes().to_vec();
    path.push(b'/');
    path.extend_from_slice(file.as_bytes());
    let path = OsStr::from_bytes(&path);
    // O_PATH: nothing is opened for I/O (a FIFO's open never runs), and
    // with O_NOFOLLOW a symbolic link is the link itself.
    let at = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            object: Object::Segment,
            name: name.clone(),
        },
        e => Error::io("open", e),
    })?;
    let stat = names::fstat(&at)?;
    let mut entry = Entry {
        name,
        owner: stat.st_uid,
        mode: stat.st_mode & 0o7777,
        size: 0,
        kind: Kind::Foreign { what: "" },
    };
    entry.kind = match FileType::from_raw_mode(stat.st_mode) {
        // Not a name shmlane can give (nor `remove_stale` name exactly).
        _ if file.to_str().is_none() => Kind::Foreign {
            what: "name that is not UTF-8",
        },
        FileType::RegularFile => {
            entry.size = stat.st_size as u64;
            read_segment(at.as_fd(), entry.size, &entry.name)?
        }
        FileType::Socket if file.as_bytes().ends_with(b".sock") => Kind::Listener {
            listening: listening.iter().any(|p| p.as_slice() == path.as_bytes()),
        },
        FileType::Socket => Kind::Foreign {
            what: "socket that is not a listener's (no .sock)",
        },
        FileType::Symlink => Kind::Foreign {
            what: "symbolic link",
        },
        FileType::Fifo => Kind::Foreign { what: "FIFO" },
        FileType::Directory => Kind::Foreign { what: "directory" },
        _ => Kind::Foreign {
            what: "device or other special file",
        },
    };
    Ok(entry)
}

/// Reads the segment open (`O_PATH`) as `at`, `size` bytes long. Only
/// running out of descriptors is an error: it says nothing of the file.
fn read_segment(at: BorrowedFd<'_>, size: u64, name: &str) -> Result<Kind> {
    let unreadable = |error| Ok(Kind::Unreadable { error });
    // The same file, whatever its name refers to by now.
    let fd = match names::reopen(at, OFlags::RDONLY | OFlags::NONBLOCK) {
        Ok(fd) => fd,
        Err(e @ (Errno::MFILE | Errno::NFILE)) => return Err(Error::io("open", e)),
        Err(Errno::ACCESS | Errno::PERM) => {
            return unreadable(Error::PermissionDenied {
                object: Object::Segment,
                name: name.to_owned(),
            });
        }
        Err(e) => return unreadable(Error::io("open", e)),
    };
    let mut header = [0u8; HEADER_SIZE];
    let read = match pread_all(fd.as_fd(), &mut header) {
        Ok(n) => n,
        Err(error) => return unreadable(error),
    };
    let magic = u64::from_ne_bytes(header[..8].try_into().unwrap_or([0; 8]));
    if read < 8 || magic != shmlane_core::layout::MAGIC {
        return Ok(Kind::Foreign {
            what: "file without shmlane's magic bytes",
        });
    }
    let held = |byte| lock::held_by_other(fd.as_fd(), byte).map_err(|e| Error::io("fcntl", e));
    let in_use = match held(lock::PRESENCE) {
        Ok(in_use) => in_use,
        Err(error) => return unreadable(error),
    };
    let region_len = usize::try_from(size).unwrap_or(usize::MAX);
    let channel = Snapshot::parse(&header[..read], region_len)
        .map_err(Error::from)
        .and_then(|snapshot| {
            let file = names::fstat(&fd)?;
            let side = |state, pid, byte| -> Result<Holder> {
                Ok(holder(state, pid, held(byte)?, &file, byte))
            };
            Ok(Channel {
                snapshot,
                producer: side(
                    snapshot.producer.state,
                    snapshot.producer.holder_id,
                    lock::PRODUCER,
                )?,
                consumer: side(
                    snapshot.consumer.state,
                    snapshot.consumer.holder_id,
                    lock::CONSUMER,
                )?,
            })
        });
    Ok(Kind::Segment { in_use, channel })
}

/// `pread` of up to `buf.len()` bytes at offset 0: how many were read.
fn pread_all(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::io("pread", e)),
        }
    }
    Ok(done)
}

/// A side's [`Holder`], from its ring state, its recorded pid and whether
/// its role lock (`byte`) is held.
fn holder(
    state: RoleState,
    pid: Option<u32>,
    locked: bool,
    file: &rustix::fs::Stat,
    byte: i64,
) -> Holder {
    let status = match (state, locked) {
        (RoleState::Idle, false) => Status::Idle,
        (RoleState::Idle, true) => Status::Claiming,
        (RoleState::Active, true) => Status::Active,
        (RoleState::Active, false) => Status::Dead,
        (RoleState::Closed, _) => Status::Closed,
    };
    let pid_verified = pid.and_then(|pid| holds_lock(pid, file, byte));
    Holder {
        status,
        pid,
        pid_verified,
    }
}

/// Whether process `pid` holds the exclusive lock on `byte` of the file
/// `file` through one of its descriptors (its `/proc/PID/fdinfo` lists the
/// locks each descriptor's open file description holds); `None` if that
/// cannot be read.
fn holds_lock(pid: u32, file: &rustix::fs::Stat, byte: i64) -> Option<bool> {
    let dev = file.st_dev;
    // As the kernel prints a lock: "OFDLCK ADVISORY WRITE -1 MAJ:MIN:INO START END".
    let needle = format!(
        "{:02x}:{:02x}:{} {byte} {byte}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev),
        file.st_ino
    );
    let dir = match std::fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    let mut readable = false;
    for item in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(item.path()) else {
            continue;
        };
        readable = true;
        let held = info.lines().any(|line| {
            line.starts_with("lock:")
                && line.contains("OFDLCK")
                && line.contains("WRITE")
                && line.trim_end().ends_with(&needle)
        });
        if held {
            return Some(true);
        }
    }
    // A process without a readable descriptor cannot be told apart from
    // one whose fdinfo we may not read.
    readable.then_some(false)
}

/// The paths of the unix sockets listening in this network namespace
/// (`/proc/net/unix`: flag `__SO_ACCEPTCON`, 0x10000); empty if unreadable.
fn listening_sockets() -> Vec<Vec<u8>> {
    let Ok(table) = std::fs::read("/proc/net/unix") else {
        return Vec::new();
    };
    table
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            // "Num: RefCount Protocol Flags Type St Inode Path": seven
            // fields, then the path (which may hold spaces), if bound.
            let mut rest = line;
            let mut fields = Vec::with_capacity(7);
            for _ in 0..7 {
                rest = rest.trim_ascii_start();
                let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            let flags = std::str::from_utf8(fields[3]).ok()?;
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let path = rest.strip_prefix(b" ")?;
            (flags & 0x10000 != 0 && path.starts_with(b"/")).then(|| path.to_vec())
        })
        .collect()
}
