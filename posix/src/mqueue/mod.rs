//! POSIX message queues (`mq_overview(7)`): a small safe wrapper for Linux.
//!
//! A message queue is a kernel object with a name (`/something`), a fixed
//! capacity in messages (`mq_maxmsg`) and a fixed maximum message size in
//! bytes (`mq_msgsize`), both set when it is created. Every message carries
//! a priority (`0..=`[`MAX_PRIORITY`]); the kernel hands out the message of
//! the highest priority first, and messages of equal priority in the order
//! they were sent.
//!
//! Unlike the shared-memory channels of this crate, every message is copied
//! into and out of the kernel, and any number of processes may send and
//! receive on one queue. It suits low-rate control traffic, or a peer that
//! only speaks POSIX message queues.
//!
//! Invariants of this module:
//!
//! - On Linux a queue descriptor (`mqd_t`) is a file descriptor: a
//!   [`MessageQueue`] keeps it as an [`OwnedFd`], so it is closed on drop
//!   (`mq_close` is `close` there) and it can be polled (readable when the
//!   queue holds a message, writable when it has room).
//! - The descriptor is never switched to `O_NONBLOCK`: the non-blocking
//!   calls ([`MessageQueue::try_send`], [`MessageQueue::try_recv`]) pass
//!   an absolute timeout that has already passed, which the kernel answers
//!   with `ETIMEDOUT` at once instead of waiting. So another handle sharing
//!   the open file description is never affected.
//! - Every wait with a timeout is measured on the monotonic clock: the
//!   kernel's `mq_timedsend`/`mq_timedreceive` take a `CLOCK_REALTIME`
//!   deadline, which a step of the wall clock (NTP, `date -s`) stretches or
//!   cuts short, so they are only ever called with a deadline that has
//!   already passed. A timed call that would block waits in `poll(2)` on
//!   the queue descriptor (a queue is readable when it holds a message,
//!   writable when it has room) with a monotonic timeout, then tries again.
//!   The calls without a timeout wait inside `mq_send`/`mq_receive`.
//! - A handle uses only a queue it has checked: owned by the expected user
//!   (the effective uid unless [`MqOptions::owner`] names another), and not
//!   writable by its group or others beyond the allowed mode
//!   ([`MqOptions::mode`], 0600 by default). Anything else is
//!   [`Error::ForeignOwner`] or [`Error::UnsafeMode`] before a single
//!   message is sent or received: another local user cannot plant a queue
//!   (say, mode 0666) at a name and read or forge the traffic.
//! - Every handle holds a shared *presence* lock (an open-file-description
//!   lock, see [`crate::names`]) on its own open file description (each
//!   `mq_open` makes one). The kernel drops it when the handle closes or
//!   its process dies, however it dies: that is how a stale queue left by a
//!   killed process is told from a live one, and how
//!   [`MqChannel`] notices a peer that is gone.
//! - A queue is only ever removed by the handle that created it (when it
//!   drops), by [`MessageQueue::unlink`], or, inside this crate, when it is
//!   provably a stale queue of ours at a name that an endpoint derives
//!   (`create_reclaiming`). [`MessageQueue::create`] never removes anything:
//!   an existing queue may belong to a program that is not shmlane's and
//!   holds no presence lock.
//! - No message is ever lost on the receiving side: the kernel refuses
//!   `mq_receive` into a buffer shorter than `mq_msgsize` (`EMSGSIZE`), so
//!   a short caller buffer is never handed to it. The message is received
//!   into a scratch buffer instead, and if it does not fit the caller's
//!   buffer it stays in the handle (with its priority) and the next receive
//!   call returns it first ([`Error::BufferTooSmall`] meanwhile).
//! - Bad input gives a typed error before any system call, never a panic.
//! - `EINTR` is retried; a timed call keeps its deadline across retries.
//!
//! Queue names follow the rules of [`validate_name`](crate::names::validate_name); the kernel keeps the
//! queues of an IPC namespace in the `mqueue` filesystem (often mounted at
//! `/dev/mqueue`, where `ls` lists them).
//!
//! # Examples
//!
//! ```
//! use shmlane_posix::mqueue::{MessageQueue, MqOptions};
//!
//! let mut server = MessageQueue::create("/doc-mq-module", &MqOptions::new().max_message(256))?;
//! let client = MessageQueue::open("/doc-mq-module")?;
//! client.send(b"routine", 1)?;
//! client.send(b"urgent", 9)?;
//!
//! let mut buf = [0u8; 256];
//! let (len, priority) = server.recv(&mut buf)?;
//! assert_eq!((&buf[..len], priority), (&b"urgent"[..], 9)); // highest priority first
//! let (len, priority) = server.recv(&mut buf)?;
//! assert_eq!((&buf[..len], priority), (&b"routine"[..], 1));
//! # Ok::<(), shmlane_posix::Error>(())
//! ```

mod channel;
pub(crate) use channel::CLOSE_WAIT;
pub use channel::MqChannel;

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::names::named_err;
use crate::names::{self, Expect};
use crate::segment::DEFAULT_MODE;
use crate::transport::wait_ready;
use crate::{Error, Object, Result};

/// Highest message priority: `MQ_PRIO_MAX - 1` (Linux's `MQ_PRIO_MAX` is
/// 32768). Priorities run from 0 (lowest) to this value (highest).
pub const MAX_PRIORITY: u32 = 32767;

/// Default capacity of a new queue, in messages (Linux's `msg_default`).
pub const DEFAULT_CAPACITY: usize = 10;

/// Default maximum message size of a new queue, in bytes (Linux's
/// `msgsize_default`).
pub const DEFAULT_MAX_MESSAGE: usize = 8192;

/// The file holding the largest capacity an unprivileged process may ask for.
const MSG_MAX: &str = "/proc/sys/fs/mqueue/msg_max";
/// The file holding the largest message size an unprivileged process may ask for.
const MSGSIZE_MAX: &str = "/proc/sys/fs/mqueue/msgsize_max";
/// The file holding the most queues the IPC namespace may hold.
const QUEUES_MAX: &str = "/proc/sys/fs/mqueue/queues_max";

/// How a new message queue is made (capacity, maximum message size and
/// permission bits), and what an existing one must be like to be used
/// (its owner, and the permission bits it may have at most).
///
/// The defaults are Linux's: 10 messages of up to 8192 bytes, and mode
/// 0600 (read and write for the owner only); an opened queue must belong
/// to the effective uid and be writable by nobody else.
///
/// # Examples
///
/// ```
/// use shmlane_posix::mqueue::MqOptions;
///
/// let options = MqOptions::new().capacity(4).max_message(1024).mode(0o660);
/// assert_eq!(options.get_capacity(), 4);
/// assert_eq!(options.get_max_message(), 1024);
/// assert_eq!(options.get_mode(), 0o660);
/// ```
#[derive(Debug, Clone)]
pub struct MqOptions {
    capacity: usize,
    max_message: usize,
    mode: u32,
    owner: Option<u32>,
}

impl Default for MqOptions {
    fn default() -> Self {
        MqOptions {
            capacity: DEFAULT_CAPACITY,
            max_message: DEFAULT_MAX_MESSAGE,
            mode: DEFAULT_MODE,
            owner: None,
        }
    }
}

impl MqOptions {
    /// The defaults: 10 messages of up to 8192 bytes, mode 0600.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// let options = MqOptions::new();
    /// assert_eq!((options.get_capacity(), options.get_max_message()), (10, 8192));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages the queue holds (`mq_maxmsg`): at least 1, and at
    /// most `/proc/sys/fs/mqueue/msg_max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// assert_eq!(MqOptions::new().capacity(3).get_capacity(), 3);
    /// ```
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = messages;
        self
    }

    /// The longest message in bytes (`mq_msgsize`): at least 1, and at most
    /// `/proc/sys/fs/mqueue/msgsize_max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// assert_eq!(MqOptions::new().max_message(64).get_max_message(), 64);
    /// ```
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Permission bits of the new queue (default 0600). Only the low nine
    /// bits count, and they are applied exactly: the umask does not filter
    /// them.
    ///
    /// For a queue that is opened, these are the bits it may have at most
    /// as far as writing goes: a queue that its group or others may write
    /// to beyond them is [`Error::UnsafeMode`] (0600 refuses a queue with
    /// mode 0620 or 0666; 0660 accepts 0660 and 0640).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// assert_eq!(MqOptions::new().mode(0o640).get_mode(), 0o640);
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// The user an opened queue must belong to (by default the effective
    /// uid of this process). A queue of another owner
    /// is [`Error::ForeignOwner`], and is never sent to or received from.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let me = rustix::process::geteuid().as_raw();
    /// let q = MessageQueue::create("/doc-mq-owner", &MqOptions::new().max_message(64))?;
    /// let mine = MessageQueue::open_with("/doc-mq-owner", &MqOptions::new().owner(me))?;
    /// assert!(matches!(
    ///     MessageQueue::open_with("/doc-mq-owner", &MqOptions::new().owner(me + 1)),
    ///     Err(Error::ForeignOwner { .. })
    /// ));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// The owner set with [`MqOptions::owner`] (`None`: the effective uid).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// assert_eq!(MqOptions::new().get_owner(), None);
    /// assert_eq!(MqOptions::new().owner(1000).get_owner(), Some(1000));
    /// ```
    pub fn get_owner(&self) -> Option<u32> {
        self.owner
    }

    /// What an opened queue must be like: the owner and allowed mode.
    fn expect(&self) -> Expect {
        Expect::new(self.owner, self.mode)
    }

    /// The capacity set, in messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// assert_eq!(MqOptions::new().get_capacity(), 10);
    /// ```
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }

    /// The maximum message size set, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// assert_eq!(MqOptions::new().get_max_message(), 8192);
    /// ```
    pub fn get_max_message(&self) -> usize {
        self.max_message
    }

    /// The permission bits set.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// assert_eq!(MqOptions::new().get_mode(), 0o600);
    /// ```
    pub fn get_mode(&self) -> u32 {
        self.mode
    }
}

/// A handle to a POSIX message queue, open for sending and receiving.
///
/// It owns the queue descriptor (an [`OwnedFd`] on Linux, closed on drop,
/// available through [`AsFd`] for `poll`/`epoll`: readable when the queue
/// holds a message, writable when it has room). A message kept by this
/// handle after [`Error::BufferTooSmall`] is not visible to `poll`: call a
/// receive method again with a larger buffer instead of waiting.
///
/// Dropping the handle removes the queue's name if this handle created the
/// queue (see [`MessageQueue::set_unlink_on_drop`]); other open handles
/// keep working, and the kernel frees the queue when the last one closes.
///
/// Sending takes `&self`, so one handle may be shared between threads for
/// sending. Receiving takes `&mut self` because of the message kept back
/// after [`Error::BufferTooSmall`]; open one handle per receiving thread.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
/// use shmlane_posix::Error;
///
/// let mut q = MessageQueue::create("/doc-mq-struct", &MqOptions::new().capacity(2).max_message(64))?;
/// q.try_send(b"one", 0)?;
/// q.try_send(b"two", 0)?;
/// assert!(matches!(q.try_send(b"three", 0), Err(Error::Full)));
///
/// let mut buf = [0u8; 64];
/// assert_eq!(q.recv(&mut buf)?, (3, 0));
/// assert_eq!(&buf[..3], b"one");
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub struct MessageQueue {
    fd: OwnedFd,
    name: String,
    capacity: usize,
    max_message: usize,
    unlink_on_drop: bool,
    /// Receive buffer of `max_message` bytes, allocated on first use.
    scratch: Vec<u8>,
    /// A received message (length, priority) that did not fit the caller's
    /// buffer; its bytes are `scratch[..length]`.
    pending: Option<(usize, u32)>,
}

impl fmt::Debug for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQueue")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("capacity", &self.capacity)
            .field("max_message", &self.max_message)
            .field("unlink_on_drop", &self.unlink_on_drop)
            .field("pending", &self.pending)
            .finish()
    }
}

impl AsFd for MessageQueue {
    /// The queue descriptor, e.g. to `poll` it or `fstat` it.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let q = MessageQueue::create("/doc-mq-asfd", &MqOptions::new().max_message(64).mode(0o640))?;
    /// let stat = rustix::fs::fstat(q.as_fd()).unwrap();
    /// assert_eq!(stat.st_mode & 0o777, 0o640);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// How long a send or receive may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Until it can go through: inside the kernel's blocking call.
    Forever,
    /// Not at all: would-block is `Full`/`Empty`.
    Never,
    /// Until this monotonic instant (`None`: too far to represent, so as
    /// long as it takes), waiting in `poll`: then `TimedOut`.
    Until(Option<Instant>),
}

impl Wait {
    /// `timeout` from now on the monotonic clock.
    fn after(timeout: Duration) -> Wait {
        Wait::Until(Instant::now().checked_add(timeout))
    }
}

/// The absolute `CLOCK_REALTIME` deadline the kernel gets for a call that
/// must not wait: the epoch, long past. The kernel then answers `ETIMEDOUT`
/// at once when the call would block, without waiting and without
/// `O_NONBLOCK` on the descriptor. No call is ever given a deadline in the
/// future (see the module docs).
fn passed_deadline() -> libc::timespec {
    // SAFETY: `timespec` is a plain C struct of integers; all-zero is valid
    // (and is the epoch). Built so rather than by a struct literal: on some
    // targets it has private padding fields.
    unsafe { std::mem::zeroed() }
}

/// The errno of the libc call that just failed.
fn last_errno() -> Errno {
    Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// A limit from `/proc/sys/fs/mqueue`, if it can be read.
fn read_limit(file: &str) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// `Err(LimitExceeded)` if `requested` is above the limit in `file`. A limit
/// that cannot be read is not checked here (`mq_open` still is).
fn check_limit(file: &'static str, requested: usize) -> Result<()> {
    let requested = requested as u64;
    match read_limit(file) {
        Some(max) if requested > max => Err(Error::LimitExceeded {
            limit: file,
            requested,
            max,
        }),
        _ => Ok(()),
    }
}

fn invalid_input(what: &'static str) -> Error {
    Error::io("mq_open", io::Error::new(io::ErrorKind::InvalidInput, what))
}

/// The name as a C string (after [`validate_name`], which rules out NUL).
fn c_name(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| Error::InvalidName {
        name: name.to_owned(),
        object: Object::Queue,
        reason: "must not contain NUL",
    })
}

/// `mq_getattr` on `fd`.
fn getattr(fd: BorrowedFd<'_>) -> Result<libc::mq_attr> {
    // SAFETY: `mq_attr` is a plain C struct of integers; all-zero is valid.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open queue descriptor (it is borrowed, so it stays
    // open during the call), and `attr` is a valid `mq_attr` to write to.
    let r = unsafe { libc::mq_getattr(fd.as_raw_fd(), &mut attr) };
    if r == 0 {
        Ok(attr)
    } else {
        Err(Error::io("mq_getattr", last_errno()))
    }
}

/// The capacity and maximum message size of the queue open as `fd`.
fn attributes(fd: BorrowedFd<'_>) -> Result<(usize, usize)> {
    let attr = getattr(fd)?;
    let bad = || Error::io("mq_getattr", Errno::OVERFLOW);
    let capacity = usize::try_from(attr.mq_maxmsg).map_err(|_| bad())?;
    let max_message = usize::try_from(attr.mq_msgsize).map_err(|_| bad())?;
    Ok((capacity, max_message))
}

/// How often [`MessageQueue::create`] tries again after a reclaimer took
/// the name of the queue it had just made (see [`names::settle_new`]).
const CREATE_ATTEMPTS: usize = 100;

/// Opens the queue `name` with `flags` (plus `O_CLOEXEC`), creating it with
/// `mode` and `attr` if `attr` is given.
fn mq_open(
    name: &CString,
    flags: libc::c_int,
    create: Option<(libc::mode_t, &libc::mq_attr)>,
) -> std::result::Result<OwnedFd, Errno> {
    let flags = flags | libc::O_CLOEXEC;
    let fd = match create {
        // SAFETY: `name` is a NUL-terminated string and `attr` a valid
        // `mq_attr`, both alive during the call; with O_CREAT, `mq_open`
        // reads exactly these two extra arguments (a `mode_t` and a
        // `struct mq_attr *`), of these types.
        Some((mode, attr)) => unsafe {
            libc::mq_open(
                name.as_ptr(),
                flags | libc::O_CREAT,
                mode,
                attr as *const libc::mq_attr,
            )
        },
        // SAFETY: `name` is a NUL-terminated string alive during the call;
        // without O_CREAT, `mq_open` reads no further argument.
        None => unsafe { libc::mq_open(name.as_ptr(), flags) },
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: on Linux a queue descriptor is a file descriptor, and this one
    // was just returned by `mq_open`: it is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether the name `name` still refers to the queue open as `fd` (the name
/// may have been removed and given to another queue since). Opens the name
/// anew, as a description of its own that takes no lock.
fn names_same_queue(name: &str, fd: BorrowedFd<'_>) -> bool {
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // Either direction will do to compare inodes; the mode may allow one only.
    let other = mq_open(&c, libc::O_RDONLY, None).or_else(|_| mq_open(&c, libc::O_WRONLY, None));
    let Ok(other) = other else {
        return false;
    };
    match (rustix::fs::fstat(fd), rustix::fs::fstat(&other)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

impl MessageQueue {
    /// Creates the queue `name` with the capacity, maximum message size and
    /// mode of `options`, open for sending and receiving. Exclusive: an
    /// existing queue of that name gives [`Error::AlreadyExists`]. Dropping
    /// the handle removes the name.
    ///
    /// Before calling `mq_open`, the capacity and message size are checked
    /// against `/proc/sys/fs/mqueue/msg_max` and `msgsize_max`
    /// ([`Error::LimitExceeded`] naming the file). A process with
    /// `CAP_SYS_RESOURCE` (root) could go beyond them, but is refused too,
    /// for the same error on every machine and user. A capacity or size of
    /// zero is [`Error::Io`] with [`io::ErrorKind::InvalidInput`].
    ///
    /// Other limits, known only once `mq_open` fails:
    ///
    /// - `ENOSPC` (the namespace has `/proc/sys/fs/mqueue/queues_max`
    ///   queues): [`Error::LimitExceeded`] naming that file, with `max` its
    ///   value and `requested` one more.
    /// - `EMFILE` because the user's queues would take more than
    ///   `RLIMIT_MSGQUEUE` bytes: [`Error::LimitExceeded`] with limit
    ///   `"RLIMIT_MSGQUEUE"`, `max` the soft limit, and `requested` the
    ///   payload bytes of this queue (capacity × message size; the kernel
    ///   also counts per-message overhead and the user's other queues).
    /// - `EMFILE` because this process has no file descriptor left, `ENFILE`,
    ///   `ENOMEM`, `ENOSYS` (a kernel without message queues): [`Error::Io`]
    ///   with op `"mq_open"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let q = MessageQueue::create("/doc-mq-create", &MqOptions::new().capacity(5).max_message(100))?;
    /// assert_eq!((q.capacity(), q.max_message()), (5, 100));
    /// assert!(matches!(
    ///     MessageQueue::create("/doc-mq-create", &MqOptions::new()),
    ///     Err(Error::AlreadyExists { .. })
    /// ));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn create(name: &str, options: &MqOptions) -> Result<Self> {
        let c = Self::check_create(name, options)?;
        // A retry only follows a reclaimer that removed (or is removing)
        // the name of the queue just made; it may still be there a moment.
        for attempt in 0..CREATE_ATTEMPTS {
            match Self::create_once(name, &c, options) {
                Ok(Some(q)) => return Ok(q),
                Ok(None) => {}
                Err(Error::AlreadyExists { .. }) if attempt > 0 => std::thread::yield_now(),
                Err(e) => return Err(e),
            }
        }
        Err(Error::AlreadyExists {
            name: name.to_owned(),
            object: Object::Queue,
        })
    }

    /// Creates the queue `name` like [`MessageQueue::create`]; if a queue
    /// of that name exists, removes it first if it is provably a stale
    /// queue of ours: of the expected owner and mode (else
    /// [`Error::ForeignOwner`] or [`Error::UnsafeMode`], and it is left
    /// alone) and held by no live handle (else [`Error::AlreadyExists`]).
    ///
    /// Only for names that this crate derives for its own use (an
    /// endpoint's `/name.c2s` and `/name.s2c`): a queue of another program
    /// holds no presence lock, so it would look stale.
    // Called by `endpoint::listen` for `mq:` once it is wired to it.
    #[allow(dead_code)]
    pub(crate) fn create_reclaiming(name: &str, options: &MqOptions) -> Result<Self> {
        let c = Self::check_create(name, options)?;
        for _ in 0..CREATE_ATTEMPTS {
            match Self::create_once(name, &c, options) {
                Ok(Some(q)) => return Ok(q),
                Ok(None) => continue,
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            // A queue has the name: look at it through a description of our
            // own, which takes no presence lock.
            let fd = match mq_open(&c, libc::O_RDWR, None) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue, // gone meanwhile: create again
                Err(e) => return Err(named_err(Object::Queue, name, "mq_open", e)),
            };
            options
                .expect()
                .check(&names::fstat(&fd)?, name, Object::Queue)?;
            let unlink = || match Self::unlink(name) {
                Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            };
            if !names::reclaim_if_stale(fd.as_fd(), || names_same_queue(name, fd.as_fd()), unlink)?
            {
                return Err(Error::AlreadyExists {
                    name: name.to_owned(),
                    object: Object::Queue,
                });
            }
            // Stale, and its name is gone now: create again.
        }
        Err(Error::AlreadyExists {
            name: name.to_owned(),
            object: Object::Queue,
        })
    }

    /// Checks what [`MessageQueue::create`] is asked for, before any
    /// system call; the name as a C string.
    fn check_create(name: &str, options: &MqOptions) -> Result<CString> {
        names::check_name(Object::Queue, name)?;
        let (capacity, max_message) = (options.capacity, options.max_message);
        if capacity == 0 {
            return Err(invalid_input(
                "message queue capacity must be at least 1 message",
            ));
        }
        if max_message == 0 {
            return Err(invalid_input(
                "message queue maximum message size must be at least 1 byte",
            ));
        }
        check_limit(MSG_MAX, capacity)?;
        check_limit(MSGSIZE_MAX, max_message)?;
        c_name(name)
    }

    /// One exclusive `mq_open`, then the creator's half of the reclaim
    /// protocol (see [`names::settle_new`]): `Ok(None)` if a reclaimer
    /// took the name of the new queue meanwhile (then try again).
    fn create_once(name: &str, c: &CString, options: &MqOptions) -> Result<Option<Self>> {
        let (capacity, max_message) = (options.capacity, options.max_message);
        // SAFETY: `mq_attr` is a plain C struct of integers; all-zero is valid.
        let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
        // Beyond `c_long` only if the limits could not be read: the kernel
        // then refuses the saturated value (EINVAL).
        attr.mq_maxmsg = capacity.try_into().unwrap_or(libc::c_long::MAX as _);
        attr.mq_msgsize = max_message.try_into().unwrap_or(libc::c_long::MAX as _);
        let mode = options.mode & 0o777;
        let fd = mq_open(c, libc::O_RDWR | libc::O_EXCL, Some((mode, &attr)))
            .map_err(|e| Self::create_err(name, capacity, max_message, e))?;
        // From here on the queue exists: remove it again on any failure.
        let settled = (|| {
            // `mq_open` applied the umask; set the mode exactly.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| Error::io("fchmod", e))?;
            let attributes = attributes(fd.as_fd())?;
            // `false`: a reclaimer saw the queue before it was held, and
            // its name is not ours any more (or will not be in a moment).
            let settled = names::settle_new(fd.as_fd(), || names_same_queue(name, fd.as_fd()))?;
            Ok(settled.then_some(attributes))
        })();
        match settled {
            Ok(Some((capacity, max_message))) => {
                let mut q = Self::with_attributes(fd, name, capacity, max_message);
                q.unlink_on_drop = true;
                Ok(Some(q))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                if names_same_queue(name, fd.as_fd()) {
                    // SAFETY: `c` is a NUL-terminated string alive during the call.
                    unsafe { libc::mq_unlink(c.as_ptr()) };
                }
                Err(e)
            }
        }
    }

    fn create_err(name: &str, capacity: usize, max_message: usize, e: Errno) -> Error {
        match e {
            Errno::INVAL => {
                // The name was checked; the attributes are the likely cause
                // (a limit lowered since we read it).
                if let Err(limit) = check_limit(MSG_MAX, capacity)
                    .and_then(|()| check_limit(MSGSIZE_MAX, max_message))
                {
                    return limit;
                }
                named_err(Object::Queue, name, "mq_open", e)
            }
            Errno::NOSPC => {
                let max = read_limit(QUEUES_MAX).unwrap_or(0);
                Error::LimitExceeded {
                    limit: QUEUES_MAX,
                    requested: max.saturating_add(1),
                    max,
                }
            }
            Errno::MFILE => {
                // Either the descriptor table is full or RLIMIT_MSGQUEUE is
                // reached; if a descriptor can still be opened, it is the latter.
                let fd_free =
                    rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).is_ok();
                match rustix::process::getrlimit(rustix::process::Resource::Msgqueue).current {
                    Some(max) if fd_free => Error::LimitExceeded {
                        limit: "RLIMIT_MSGQUEUE",
                        requested: (capacity as u64).saturating_mul(max_message as u64),
                        max,
                    },
                    _ => Error::io("mq_open", e),
                }
            }
            e => named_err(Object::Queue, name, "mq_open", e),
        }
    }

    /// Opens the existing queue `name` for sending and receiving, if it
    /// belongs to the effective uid and nobody else may write to it:
    /// [`MessageQueue::open_with`] with the default [`MqOptions`]. Dropping
    /// the handle leaves the queue in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let created = MessageQueue::create("/doc-mq-open", &MqOptions::new().capacity(3).max_message(32))?;
    /// let opened = MessageQueue::open("/doc-mq-open")?;
    /// assert_eq!((opened.capacity(), opened.max_message()), (3, 32));
    /// assert!(matches!(MessageQueue::open("/doc-mq-missing"), Err(Error::NotFound { .. })));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &MqOptions::new())
    }

    /// Opens the existing queue `name` for sending and receiving, after
    /// checking it with `fstat`: it must belong to [`MqOptions::owner`] (by
    /// default the effective uid), else [`Error::ForeignOwner`], and its
    /// group and others may write to it only as far as [`MqOptions::mode`]
    /// allows (by default not at all), else [`Error::UnsafeMode`]. A queue
    /// refused so is closed again: nothing is sent to or received from it.
    /// The capacity and message size of `options` do not matter here (the
    /// queue's own are read back). Dropping the handle leaves the queue in
    /// place.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// // A queue its group may write to is refused unless the mode allows it.
    /// let shared = MqOptions::new().max_message(64).mode(0o660);
    /// let created = MessageQueue::create("/doc-mq-open-with", &shared)?;
    /// assert!(matches!(
    ///     MessageQueue::open("/doc-mq-open-with"),
    ///     Err(Error::UnsafeMode { mode: 0o660, allowed: 0o600, .. })
    /// ));
    /// let opened = MessageQueue::open_with("/doc-mq-open-with", &MqOptions::new().mode(0o660))?;
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn open_with(name: &str, options: &MqOptions) -> Result<Self> {
        names::check_name(Object::Queue, name)?;
        let c = c_name(name)?;
        let fd = mq_open(&c, libc::O_RDWR, None)
            .map_err(|e| named_err(Object::Queue, name, "mq_open", e))?;
        options
            .expect()
            .check(&names::fstat(&fd)?, name, Object::Queue)?;
        names::lock_presence(fd.as_fd())?;
        let (capacity, max_message) = attributes(fd.as_fd())?;
        Ok(Self::with_attributes(fd, name, capacity, max_message))
    }

    /// A handle on the queue open as `fd`, of these attributes.
    fn with_attributes(fd: OwnedFd, name: &str, capacity: usize, max_message: usize) -> Self {
        MessageQueue {
            fd,
            name: name.to_owned(),
            capacity,
            max_message,
            unlink_on_drop: false,
            scratch: Vec::new(),
            pending: None,
        }
    }

    /// Removes the name of the queue `name`. Open handles keep working; the
    /// kernel frees the queue when the last one closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let q = MessageQueue::create("/doc-mq-unlink", &MqOptions::new().max_message(64))?;
    /// MessageQueue::unlink("/doc-mq-unlink")?;
    /// assert!(matches!(MessageQueue::open("/doc-mq-unlink"), Err(Error::NotFound { .. })));
    /// q.try_send(b"still works", 0)?;
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn unlink(name: &str) -> Result<()> {
        names::check_name(Object::Queue, name)?;
        let c = c_name(name)?;
        // SAFETY: `c` is a NUL-terminated string alive during the call.
        if unsafe { libc::mq_unlink(c.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(named_err(Object::Queue, name, "mq_unlink", last_errno()))
        }
    }

    /// The queue's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let q = MessageQueue::create("/doc-mq-name", &MqOptions::new().max_message(64))?;
    /// assert_eq!(q.name(), "/doc-mq-name");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many messages the queue holds at most (`mq_maxmsg`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let q = MessageQueue::create("/doc-mq-capacity", &MqOptions::new().capacity(4).max_message(64))?;
    /// assert_eq!(q.capacity(), 4);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The longest message in bytes (`mq_msgsize`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let q = MessageQueue::create("/doc-mq-max-message", &MqOptions::new().max_message(200))?;
    /// assert_eq!(q.max_message(), 200);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// How many messages the queue holds now (`mq_curmsgs`). A message kept
    /// by a handle after [`Error::BufferTooSmall`] has left the queue and is
    /// not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let q = MessageQueue::create("/doc-mq-len", &MqOptions::new().max_message(64))?;
    /// q.send(b"a", 0)?;
    /// q.send(b"b", 0)?;
    /// assert_eq!(q.len()?, 2);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn len(&self) -> Result<usize> {
        let attr = getattr(self.fd.as_fd())?;
        usize::try_from(attr.mq_curmsgs).map_err(|_| Error::io("mq_getattr", Errno::OVERFLOW))
    }

    /// Whether the queue holds no message now (see [`MessageQueue::len`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let q = MessageQueue::create("/doc-mq-is-empty", &MqOptions::new().max_message(64))?;
    /// assert!(q.is_empty()?);
    /// q.send(b"x", 0)?;
    /// assert!(!q.is_empty()?);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Whether dropping this handle removes the queue's name: true for a
    /// queue created by this handle, false for one opened. Dropping removes
    /// the name only while it still refers to this queue (and this process
    /// may still open it to check).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let mut q = MessageQueue::create("/doc-mq-keep", &MqOptions::new().max_message(64))?;
    /// q.set_unlink_on_drop(false);
    /// drop(q);
    /// let again = MessageQueue::open("/doc-mq-keep")?; // still there
    /// MessageQueue::unlink("/doc-mq-keep")?;
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, unlink: bool) {
        self.unlink_on_drop = unlink;
    }

    /// Sends `msg` with `priority`, waiting while the queue is full.
    ///
    /// [`Error::TooLarge`] if `msg` is longer than [`MessageQueue::max_message`],
    /// [`Error::LimitExceeded`] (limit `"MQ_PRIO_MAX - 1"`) if `priority` is
    /// above [`MAX_PRIORITY`]; nothing is sent then.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    ///
    /// let mut q = MessageQueue::create("/doc-mq-send", &MqOptions::new().max_message(64))?;
    /// q.send(b"hello", 3)?;
    /// let mut buf = [0u8; 64];
    /// assert_eq!(q.recv(&mut buf)?, (5, 3));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_until(msg, priority, Wait::Forever)
    }

    /// Sends `msg` with `priority` if the queue has room now, [`Error::Full`]
    /// (nothing sent) otherwise. Never waits, and leaves the descriptor's
    /// blocking mode alone. Other errors as for [`MessageQueue::send`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let q = MessageQueue::create("/doc-mq-try-send", &MqOptions::new().capacity(1).max_message(64))?;
    /// q.try_send(b"first", 0)?;
    /// assert!(matches!(q.try_send(b"second", 0), Err(Error::Full)));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_until(msg, priority, Wait::Never)
    }

    /// Sends `msg` with `priority`, waiting at most `timeout` for room:
    /// [`Error::TimedOut`] (nothing sent) when it runs out. The timeout is
    /// measured on the monotonic clock (the wait is a `poll` on the queue
    /// descriptor), so a step of the wall clock during the wait changes
    /// nothing. Other errors as for [`MessageQueue::send`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let q = MessageQueue::create("/doc-mq-send-timeout", &MqOptions::new().capacity(1).max_message(64))?;
    /// q.send_timeout(b"fits", 0, Duration::from_millis(10))?;
    /// assert!(matches!(
    ///     q.send_timeout(b"no room", 0, Duration::from_millis(10)),
    ///     Err(Error::TimedOut)
    /// ));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn send_timeout(&self, msg: &[u8], priority: u32, timeout: Duration) -> Result<()> {
        self.send_until(msg, priority, Wait::after(timeout))
    }

    fn check_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        if msg.len() > self.max_message {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max_message,
            });
        }
        if priority > MAX_PRIORITY {
            return Err(Error::LimitExceeded {
                limit: "MQ_PRIO_MAX - 1",
                requested: u64::from(priority),
                max: u64::from(MAX_PRIORITY),
            });
        }
        Ok(())
    }

    fn send_until(&self, msg: &[u8], priority: u32, wait: Wait) -> Result<()> {
        self.check_send(msg, priority)?;
        loop {
            match self.raw_send(msg, priority, matches!(wait, Wait::Forever)) {
                Err(Error::Full) => match wait {
                    Wait::Never => return Err(Error::Full),
                    Wait::Until(deadline) => wait_ready(self.fd.as_fd(), PollFlags::OUT, deadline)?,
                    // Only if someone set O_NONBLOCK on the description.
                    Wait::Forever => wait_ready(self.fd.as_fd(), PollFlags::OUT, None)?,
                },
                done => return done,
            }
        }
    }

    /// One `mq_send` (`blocking`) or `mq_timedsend` with a deadline that
    /// has passed: [`Error::Full`] if it would block.
    fn raw_send(&self, msg: &[u8], priority: u32, blocking: bool) -> Result<()> {
        let fd = self.fd.as_raw_fd();
        let passed = passed_deadline();
        loop {
            let r = if blocking {
                // SAFETY: `fd` is our open queue descriptor; `msg` is valid
                // for reads of `msg.len()` bytes during the call.
                unsafe { libc::mq_send(fd, msg.as_ptr().cast(), msg.len(), priority) }
            } else {
                // SAFETY: as above, and `passed` is a valid `timespec` alive
                // during the call.
                unsafe { libc::mq_timedsend(fd, msg.as_ptr().cast(), msg.len(), priority, &passed) }
            };
            if r == 0 {
                return Ok(());
            }
            return Err(match last_errno() {
                Errno::INTR => continue,
                // (EAGAIN only if someone set O_NONBLOCK on the description.)
                Errno::TIMEDOUT | Errno::AGAIN => Error::Full,
                Errno::MSGSIZE => Error::TooLarge {
                    len: msg.len(),
                    max: self.max_message,
                },
                e => Error::io("mq_send", e),
            });
        }
    }

    /// Receives the next message into `buf`, waiting while the queue is
    /// empty; returns its length and priority. The message of the highest
    /// priority comes first, and among equal priorities the oldest.
    ///
    /// If the message is longer than `buf`, the call returns
    /// [`Error::BufferTooSmall`] and the message stays in this handle: the
    /// next receive call (of any kind) returns it first, before anything in
    /// the queue. Nothing is lost. A buffer of [`MessageQueue::max_message`]
    /// bytes always fits (and is received into directly, without a copy).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let mut q = MessageQueue::create("/doc-mq-receive", &MqOptions::new().max_message(64))?;
    /// q.send(b"twelve bytes", 5)?;
    /// let mut small = [0u8; 4];
    /// assert!(matches!(
    ///     q.recv(&mut small),
    ///     Err(Error::BufferTooSmall { needed: 12, available: 4 })
    /// ));
    /// let mut buf = [0u8; 16];
    /// assert_eq!(q.recv(&mut buf)?, (12, 5)); // the same message
    /// assert_eq!(&buf[..12], b"twelve bytes");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.receive_until(buf, Wait::Forever)
    }

    /// Receives the next message into `buf` if there is one now,
    /// [`Error::Empty`] otherwise. Never waits. Otherwise as
    /// [`MessageQueue::recv`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let mut q = MessageQueue::create("/doc-mq-try-receive", &MqOptions::new().max_message(64))?;
    /// let mut buf = [0u8; 64];
    /// assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    /// q.send(b"x", 0)?;
    /// assert_eq!(q.try_recv(&mut buf)?, (1, 0));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.receive_until(buf, Wait::Never)
    }

    /// Receives the next message into `buf`, waiting at most `timeout` for
    /// one: [`Error::TimedOut`] when it runs out. The timeout is measured on
    /// the monotonic clock, as for [`MessageQueue::send_timeout`]. Otherwise
    /// as [`MessageQueue::recv`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::mqueue::{MessageQueue, MqOptions};
    /// use shmlane_posix::Error;
    ///
    /// let mut q = MessageQueue::create("/doc-mq-receive-timeout", &MqOptions::new().max_message(64))?;
    /// let mut buf = [0u8; 64];
    /// assert!(matches!(
    ///     q.recv_timeout(&mut buf, Duration::from_millis(10)),
    ///     Err(Error::TimedOut)
    /// ));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(usize, u32)> {
        self.receive_until(buf, Wait::after(timeout))
    }

    /// The message kept after [`Error::BufferTooSmall`], if any, delivered
    /// into `buf` (or kept again).
    fn take_pending(&mut self, buf: &mut [u8]) -> Option<Result<(usize, u32)>> {
        let (len, priority) = self.pending?;
        Some(self.deliver(buf, len, priority))
    }

    /// Copies the message in `scratch[..len]` to `buf`, or keeps it.
    fn deliver(&mut self, buf: &mut [u8], len: usize, priority: u32) -> Result<(usize, u32)> {
        if len > buf.len() {
            self.pending = Some((len, priority));
            return Err(Error::BufferTooSmall {
                needed: len,
                available: buf.len(),
            });
        }
        self.pending = None;
        buf[..len].copy_from_slice(&self.scratch[..len]);
        Ok((len, priority))
    }

    fn receive_until(&mut self, buf: &mut [u8], wait: Wait) -> Result<(usize, u32)> {
        if let Some(kept) = self.take_pending(buf) {
            return kept;
        }
        if buf.len() >= self.max_message {
            // Long enough for any message: no copy, and nothing to keep.
            return Self::raw_receive(self.fd.as_fd(), buf, wait, self.max_message);
        }
        if self.scratch.len() < self.max_message {
            self.scratch = vec![0; self.max_message];
        }
        let (len, priority) =
            Self::raw_receive(self.fd.as_fd(), &mut self.scratch, wait, self.max_message)?;
        self.deliver(buf, len, priority)
    }

    /// Receives into `buf`, which holds at least `max_message` bytes, as
    /// long as `wait` allows.
    fn raw_receive(
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        wait: Wait,
        max_message: usize,
    ) -> Result<(usize, u32)> {
        loop {
            match Self::receive_once(fd, buf, matches!(wait, Wait::Forever), max_message) {
                Err(Error::Empty) => match wait {
                    Wait::Never => return Err(Error::Empty),
                    Wait::Until(deadline) => wait_ready(fd, PollFlags::IN, deadline)?,
                    // Only if someone set O_NONBLOCK on the description.
                    Wait::Forever => wait_ready(fd, PollFlags::IN, None)?,
                },
                done => return done,
            }
        }
    }

    /// One `mq_receive` (`blocking`) or `mq_timedreceive` with a deadline
    /// that has passed (`Error::Empty` if it would block) into `buf`, which
    /// holds at least `max_message` bytes.
    fn receive_once(
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        blocking: bool,
        max_message: usize,
    ) -> Result<(usize, u32)> {
        debug_assert!(buf.len() >= max_message);
        let fd = fd.as_raw_fd();
        let mut priority: libc::c_uint = 0;
        let passed = passed_deadline();
        loop {
            let n = if blocking {
                // SAFETY: `fd` is an open queue descriptor (borrowed for the
                // call); `buf` is valid for writes of `buf.len()` bytes and
                // `priority` for one `c_uint`, during the call.
                unsafe { libc::mq_receive(fd, buf.as_mut_ptr().cast(), buf.len(), &mut priority) }
            } else {
                // SAFETY: as above, and `passed` is a valid `timespec` alive
                // during the call.
                unsafe {
                    libc::mq_timedreceive(
                        fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut priority,
                        &passed,
                    )
                }
            };
            if let Ok(len) = usize::try_from(n) {
                return Ok((len, priority));
            }
            return Err(match last_errno() {
                Errno::INTR => continue,
                // (EAGAIN only if someone set O_NONBLOCK on the description.)
                Errno::TIMEDOUT | Errno::AGAIN => Error::Empty,
                // Cannot happen: the buffer holds `mq_msgsize` bytes.
                Errno::MSGSIZE => Error::BufferTooSmall {
                    needed: max_message,
                    available: buf.len(),
                },
                e => Error::io("mq_receive", e),
            });
        }
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        // The descriptor closes itself (`OwnedFd`).
        if self.unlink_on_drop && names_same_queue(&self.name, self.fd.as_fd()) {
            if let Ok(c) = CString::new(self.name.as_str()) {
                // SAFETY: `c` is a NUL-terminated string alive during the call.
                unsafe { libc::mq_unlink(c.as_ptr()) };
            }
        }
    }
}

#[cfg(test)]
mod tests;
