//! FIFOs (named pipes) as message transports: creating one and opening
//! either of its ends as a [`Framed`], safely next to other local users
//! and after crashes.
//!
//! **What this module keeps true.** No open follows a symbolic link or
//! waits without a deadline the caller chose, and nothing is read, written
//! or removed unless it is a FIFO owned by the expected user that its group
//! and others cannot write to beyond the mode the caller allows
//! ([`FifoOptions`]):
//!
//! - A path is first opened with `O_PATH | O_NOFOLLOW`, which opens nothing
//!   for I/O and wakes no peer, and checked with `fstat`
//!   ([`crate::names`]); only then is that same inode opened for reading or
//!   writing, through `/proc/self/fd`, whatever the path names by then.
//! - A reading end opens at once. Until it has seen a writer it does not
//!   take the absence of one for the end of the stream: a blocking receive
//!   waits for one, a non-blocking one is [`Error::Empty`], a timed one
//!   waits at most its timeout. Once its writer has come and gone, it is
//!   [`Error::Disconnected`].
//! - A writing end waits for a reader at most as long as the options say
//!   ([`Error::TimedOut`]), and one writer at a time holds a FIFO: a second
//!   is [`Error::RoleTaken`] (an exclusive lock on byte 0
//!   of the writing end's open file description).
//! - The creator of a FIFO keeps its reading end open from the start, with
//!   the shared presence lock that tells a live FIFO from one left by a
//!   process that died, and removes the FIFO when it drops, while the path
//!   still names it. A FIFO left behind is taken over only when the caller
//!   says that a FIFO at that path can only be shmlane's
//!   ([`FifoOptions::reclaim_stale`]), and only when it is ours and nobody
//!   holds it ([`crate::names`] explains the protocol).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use crate::framed::Framed;
use crate::names::{self, Expect};
use crate::{Error, Object, Result, Role, lock};

/// How long a writing end waits for a reader unless
/// [`FifoOptions::writer_timeout`] says otherwise.
pub const DEFAULT_WRITER_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a create tries again after a name turned out free
/// (reclaimed, or taken from under a creator by a reclaimer).
const CREATE_ATTEMPTS: usize = 8;

/// The longest pause between two looks for a reader that the kernel does
/// not announce (one that opened in blocking mode, or when no inotify
/// watch can be had).
const MAX_LOOK_INTERVAL: Duration = Duration::from_millis(50);

/// What a FIFO must be like to be used, and how long a writer waits.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::fifo::FifoOptions;
///
/// // The defaults: owned by the effective uid, mode 0o600 (nobody else may
/// // write), a writer waits up to 5 s for its reader.
/// let mine = FifoOptions::new();
/// // A FIFO of uid 1000 that its group may write to; a writer waits for
/// // its reader as long as it takes.
/// let shared = FifoOptions::new().owner(1000).mode(0o620).writer_timeout(None);
/// # let _ = (mine, shared, Duration::ZERO);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoOptions {
    owner: Option<u32>,
    mode: u32,
    writer_timeout: Option<Duration>,
    reclaim_stale: bool,
}

impl Default for FifoOptions {
    fn default() -> Self {
        FifoOptions::new()
    }
}

impl FifoOptions {
    /// Owned by the effective uid, mode `0o600`, a writer waits up to
    /// [`DEFAULT_WRITER_TIMEOUT`], no reclaiming.
    pub fn new() -> FifoOptions {
        FifoOptions {
            owner: None,
            mode: 0o600,
            writer_timeout: Some(DEFAULT_WRITER_TIMEOUT),
            reclaim_stale: false,
        }
    }

    /// The uid a FIFO being opened must belong to (by default the
    /// effective uid); anyone else's is [`Error::ForeignOwner`]. A FIFO
    /// this process creates is always its own.
    pub fn owner(mut self, uid: u32) -> FifoOptions {
        self.owner = Some(uid);
        self
    }

    /// The permission bits: those a created FIFO asks for (the effective
    /// mode is `mode & !umask`, as for `mkfifo(3)`), and the most that the
    /// group and others of a FIFO being opened may have for writing:
    /// beyond them, [`Error::UnsafeMode`]. Default `0o600`.
    pub fn mode(mut self, mode: u32) -> FifoOptions {
        self.mode = mode & 0o777;
        self
    }

    /// How long opening a writing end waits for a reader:
    /// [`Error::TimedOut`] after `Some(timeout)`, as long as it takes with
    /// `None`. Default [`DEFAULT_WRITER_TIMEOUT`].
    pub fn writer_timeout(mut self, timeout: Option<Duration>) -> FifoOptions {
        self.writer_timeout = timeout;
        self
    }

    /// Whether creating a FIFO where one of ours already is takes it over
    /// when nobody holds it (its creator died): default `false`, and then
    /// any existing file is [`Error::AlreadyExists`]. Only for paths that
    /// nothing but shmlane uses (such as the ones an endpoint derives): a
    /// FIFO of ours that another program made and uses there would be
    /// removed. Symbolic links, other types and other users' FIFOs are never
    /// removed.
    pub fn reclaim_stale(mut self, reclaim: bool) -> FifoOptions {
        self.reclaim_stale = reclaim;
        self
    }

    fn expect(&self) -> Expect {
        Expect::new(self.owner, self.mode)
    }
}

/// The path as this crate's names are (UTF-8), and as errors call it.
fn utf8(path: &Path) -> Result<(&str, String)> {
    let name = path.display().to_string();
    match path.to_str() {
        Some(p) if !p.is_empty() => Ok((p, name)),
        Some(_) => Err(Error::InvalidName {
            name,
            object: Object::Fifo,
            reason: "must not be empty",
        }),
        None => Err(Error::InvalidName {
            name,
            object: Object::Fifo,
            reason: "must be valid UTF-8",
        }),
    }
}

/// Removes the FIFO at `path` if the path still names the one open as
/// `fd` (a creator's drop: never someone else's file put there since).
pub(crate) fn unlink_if_named(path: &Path, fd: BorrowedFd<'_>) {
    if let Some(p) = path.to_str() {
        if names::still_names(CWD, p, fd) {
            let _ = rustix::fs::unlinkat(CWD, p, AtFlags::empty());
        }
    }
}

/// Creates a FIFO at `path` for a name an endpoint derives (`path.c2s`,
/// `path.s2c`), taking over one that a dead process left there: see
/// [`Framed::create_fifo_with`] with [`FifoOptions::reclaim_stale`].
pub(crate) fn create_fifo_reclaiming(path: &Path, mode: u32, max_message: usize) -> Result<Framed> {
    create(
        path,
        &FifoOptions::new().mode(mode).reclaim_stale(true),
        max_message,
    )
}

fn create(path: &Path, options: &FifoOptions, max_message: usize) -> Result<Framed> {
    let (p, name) = utf8(path)?;
    // What we create is ours, whatever owner the options name for opens.
    let ours = Expect::new(None, options.mode);
    for _ in 0..CREATE_ATTEMPTS {
        match rustix::fs::mkfifoat(CWD, p, Mode::from_raw_mode(options.mode)) {
            Ok(()) => {}
            Err(Errno::EXIST) if options.reclaim_stale => {
                reclaim(p, &name, ours)?;
                continue;
            }
            Err(e) => return Err(names::open_err(Object::Fifo, &name, "mkfifo", e)),
        }
        // Our reading end at once (it waits for nothing), checked: the path
        // may name something else by now.
        let at = names::open_checked(CWD, p, OFlags::PATH, Object::Fifo, ours, &name)?;
        let fd = names::reopen(at.as_fd(), OFlags::RDONLY | OFlags::NONBLOCK)
            .map_err(|e| names::open_err(Object::Fifo, &name, "open", e))?;
        let settled = names::settle_new(fd.as_fd(), || names::still_names(CWD, p, fd.as_fd()));
        match settled {
            Ok(true) => {}
            // A reclaimer saw it before we held it and removed its name.
            Ok(false) => continue,
            Err(e) => {
                unlink_if_named(path, fd.as_fd());
                return Err(e);
            }
        }
        // (Should this fail, the FIFO stays, stale: nobody holds it.)
        return Framed::fifo_end(fd, max_message, true, Some(path.to_owned()));
    }
    Err(Error::AlreadyExists {
        object: Object::Fifo,
        name,
    })
}

/// Makes a FIFO of ours at `path` that nobody opens yet, replacing a FIFO of
/// ours found there, and returns an `O_PATH` descriptor of it (to remove it
/// later with [`unlink_if_named`] only while the path still names it). For
/// the second FIFO of an endpoint (`path.s2c`), whose first (`path.c2s`)
/// the caller already holds: a live listener of the pair would hold that
/// first one, so whatever is at the second path was left by a dead one.
/// Anything but a FIFO of ours is a typed error, untouched.
pub(crate) fn make_fifo_replacing(path: &Path, mode: u32) -> Result<OwnedFd> {
    let (p, name) = utf8(path)?;
    let ours = Expect::new(None, 0o777);
    for _ in 0..CREATE_ATTEMPTS {
        match rustix::fs::mkfifoat(CWD, p, Mode::from_raw_mode(mode & 0o777)) {
            Ok(()) => {
                return names::open_checked(CWD, p, OFlags::PATH, Object::Fifo, ours, &name);
            }
            Err(Errno::EXIST) => {
                let old = match names::open_checked(CWD, p, OFlags::PATH, Object::Fifo, ours, &name)
                {
                    Ok(old) => old,
                    Err(Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                unlink_if_named(path, old.as_fd());
            }
            Err(e) => return Err(names::open_err(Object::Fifo, &name, "mkfifo", e)),
        }
    }
    Err(Error::AlreadyExists {
        object: Object::Fifo,
        name,
    })
}

/// Takes over the FIFO at `p` if it is ours and stale: `Ok(())` when the
/// name may be free now, [`Error::AlreadyExists`] while a live handle holds
/// it, the check's error (never removing anything) if it is not ours.
fn reclaim(p: &str, name: &str, ours: Expect) -> Result<()> {
    let at = match names::open_checked(CWD, p, OFlags::PATH, Object::Fifo, ours, name) {
        Ok(at) => at,
        Err(Error::NotFound { .. }) => return Ok(()), // gone meanwhile
        Err(e) => return Err(e),
    };
    // A reading end, for the locks (it wakes no writer of a stale FIFO:
    // there is none; a live one's reader is there already).
    let fd = names::reopen(at.as_fd(), OFlags::RDONLY | OFlags::NONBLOCK)
        .map_err(|e| names::open_err(Object::Fifo, name, "open", e))?;
    let free = names::reclaim_if_stale(
        fd.as_fd(),
        || names::still_names(CWD, p, fd.as_fd()),
        || match rustix::fs::unlinkat(CWD, p, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(names::open_err(Object::Fifo, name, "unlink", e)),
        },
    )?;
    if free {
        Ok(())
    } else {
        Err(Error::AlreadyExists {
            name: name.to_owned(),
            object: Object::Fifo,
        })
    }
}

/// Opens `path` as a FIFO checked against `options`, for nothing yet.
fn open_path(path: &Path, options: &FifoOptions) -> Result<(OwnedFd, String)> {
    let (p, name) = utf8(path)?;
    let at = names::open_checked(CWD, p, OFlags::PATH, Object::Fifo, options.expect(), &name)?;
    Ok((at, name))
}

fn open_reader(path: &Path, options: &FifoOptions, max_message: usize) -> Result<Framed> {
    let (at, name) = open_path(path, options)?;
    let fd = names::reopen(at.as_fd(), OFlags::RDONLY | OFlags::NONBLOCK)
        .map_err(|e| names::open_err(Object::Fifo, &name, "open", e))?;
    Framed::fifo_end(fd, max_message, true, None)
}

fn open_writer(path: &Path, options: &FifoOptions, max_message: usize) -> Result<Framed> {
    let (at, name) = open_path(path, options)?;
    let deadline = options
        .writer_timeout
        .and_then(|t| Instant::now().checked_add(t));
    let fd = wait_for_reader(at.as_fd(), deadline, &name)?;
    match lock::try_lock(&fd, lock::PRODUCER, false) {
        Ok(true) => {}
        Ok(false) => return Err(Error::RoleTaken(Role::Producer)),
        Err(e) => return Err(Error::io("fcntl(F_OFD_SETLK)", e)),
    }
    Framed::fifo_end(fd, max_message, false, None)
}

/// Opens the FIFO open as `at` (`O_PATH`) for writing, without blocking,
/// once it has a reader: until `deadline` (`None`: as long as it takes).
///
/// A non-blocking open for writing fails (`ENXIO`) while there is no reader,
/// and such a failed open is invisible to everyone else. Between tries the
/// thread sleeps in `poll` on an inotify watch of the FIFO, which wakes it
/// when anyone opens it; a reader that opened in blocking mode is only seen
/// by the next try, made at most [`MAX_LOOK_INTERVAL`] later.
fn wait_for_reader(at: BorrowedFd<'_>, deadline: Option<Instant>, name: &str) -> Result<OwnedFd> {
    let mut watch: Option<Option<OwnedFd>> = None;
    let mut interval = Duration::from_millis(1);
    loop {
        match names::reopen(at, OFlags::WRONLY | OFlags::NONBLOCK) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NXIO) | Err(Errno::INTR) => {}
            Err(e) => return Err(names::open_err(Object::Fifo, name, "open", e)),
        }
        let Some(watch) = &watch else {
            // Watch first, then try again: a reader that came between the
            // try and the watch is not missed.
            watch = Some(open_watch(at));
            continue;
        };
        let now = Instant::now();
        let mut pause = interval;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Err(Error::TimedOut);
            }
            pause = pause.min(left);
        }
        let woken = match watch {
            Some(inotify) => wait_for_open(inotify.as_fd(), pause)?,
            None => {
                std::thread::sleep(pause);
                false
            }
        };
        if !woken {
            interval = (interval * 2).min(MAX_LOOK_INTERVAL);
        }
    }
}

/// An inotify descriptor told about every open of the FIFO open as `at`;
/// `None` if none can be had (the per-user limit on inotify instances, a
/// FIFO this user may not read): then the writer only looks again and again.
fn open_watch(at: BorrowedFd<'_>) -> Option<OwnedFd> {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok()?;
    let path = format!("/proc/self/fd/{}", at.as_raw_fd());
    inotify::add_watch(&fd, path.as_str(), inotify::WatchFlags::OPEN).ok()?;
    Some(fd)
}

/// Waits at most `pause` for the watch to report an open: whether it did
/// (its events are read and dropped).
fn wait_for_open(inotify: BorrowedFd<'_>, pause: Duration) -> Result<bool> {
    let timeout = rustix::time::Timespec {
        tv_sec: pause.as_secs() as i64,
        tv_nsec: pause.subsec_nanos() as i64,
    };
    let mut fds = [PollFd::from_borrowed_fd(inotify, PollFlags::IN)];
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(0) | Err(Errno::INTR) => return Ok(false),
        Ok(_) => {}
        Err(e) => return Err(Error::io("poll", e)),
    }
    let mut events = [0u8; 1024];
    while let Ok(n) = rustix::io::read(inotify, &mut events) {
        if n == 0 {
            break;
        }
    }
    Ok(true)
}

impl Framed {
    /// Creates a FIFO at `path` with permission bits `mode` (the effective
    /// mode is `mode & !umask`, as for `mkfifo(3)`) and opens its reading
    /// end at once: [`Framed::create_fifo_with`] with
    /// [`FifoOptions::mode`]. An existing file at `path` is
    /// [`Error::AlreadyExists`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-fifo-{}", std::process::id()));
    /// let mut rx = Framed::create_fifo(&path, 0o600, 64)?;
    /// // (Another process, usually.) The reader is there: this waits for nothing.
    /// let mut tx = Framed::open_fifo_writer(&path, 64)?;
    /// tx.send(b"through a FIFO")?;
    /// let mut buf = [0; 64];
    /// let n = rx.recv(&mut buf)?;
    /// assert_eq!(&buf[..n], b"through a FIFO");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn create_fifo(path: impl AsRef<Path>, mode: u32, max_message: usize) -> Result<Framed> {
        create(path.as_ref(), &FifoOptions::new().mode(mode), max_message)
    }

    /// Creates a FIFO at `path` with the permission bits of `options` (the
    /// effective mode is `mode & !umask`) and opens its reading end, which
    /// waits for nothing. The FIFO is removed when this end drops, if
    /// `path` still names it then (never a file someone put there since).
    ///
    /// An existing file at `path` is [`Error::AlreadyExists`], unless
    /// `options` say [`FifoOptions::reclaim_stale`]: then a FIFO of ours
    /// that no live handle holds is removed and created anew; a live one
    /// stays [`Error::AlreadyExists`], and anything that is not a FIFO of
    /// ours is a typed error ([`Error::WrongType`], [`Error::ForeignOwner`],
    /// [`Error::UnsafeMode`]) and stays untouched.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Error;
    /// use shmlane_posix::fifo::FifoOptions;
    /// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-fifo-with-{}", std::process::id()));
    /// let options = FifoOptions::new().mode(0o600).reclaim_stale(true);
    /// let mut rx = Framed::create_fifo_with(&path, &options, 64)?;
    /// // Live: not taken over.
    /// assert!(matches!(Framed::create_fifo_with(&path, &options, 64), Err(Error::AlreadyExists { .. })));
    /// // No writer yet is not the end of the stream.
    /// assert!(matches!(rx.try_recv(&mut [0; 64]), Err(Error::Empty)));
    /// drop(rx);
    /// assert!(!path.exists());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn create_fifo_with(
        path: impl AsRef<Path>,
        options: &FifoOptions,
        max_message: usize,
    ) -> Result<Framed> {
        create(path.as_ref(), options, max_message)
    }

    /// Opens the reading end of the FIFO at `path` with the default
    /// [`FifoOptions`] (ours, mode at most `0o600`): see
    /// [`Framed::open_fifo_reader_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Error;
    /// use shmlane_posix::{Framed, MessageReceiver};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-fifo-reader-{}", std::process::id()));
    /// rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    /// let mut rx = Framed::open_fifo_reader(&path, 64)?; // no writer: no wait either
    /// assert!(matches!(rx.try_recv(&mut [0; 64]), Err(Error::Empty)));
    /// std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), Error>(())
    /// ```
    pub fn open_fifo_reader(path: impl AsRef<Path>, max_message: usize) -> Result<Framed> {
        open_reader(path.as_ref(), &FifoOptions::new(), max_message)
    }

    /// Opens the reading end of the existing FIFO at `path`, without
    /// waiting and without following a symbolic link; it must be a FIFO of
    /// the owner `options` name, with no group or other write permission
    /// beyond their mode ([`Error::WrongType`], [`Error::ForeignOwner`],
    /// [`Error::UnsafeMode`]: then nothing was opened for reading).
    /// [`Error::NotFound`] if nothing is there.
    ///
    /// Until a writer has come, a receive does not take its absence for
    /// the end of the stream: [`MessageReceiver::recv`] waits for one,
    /// [`MessageReceiver::try_recv`] is [`Error::Empty`],
    /// [`MessageReceiver::recv_timeout`] waits at most its timeout. After
    /// the writer is gone (and everything it sent was received),
    /// [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::Error;
    /// use shmlane_posix::fifo::FifoOptions;
    /// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-fifo-group-{}", std::process::id()));
    /// rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    /// std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o620)).unwrap();
    /// // Its group may write to it: refused unless the options allow that.
    /// assert!(matches!(Framed::open_fifo_reader(&path, 64), Err(Error::UnsafeMode { .. })));
    /// let mut rx = Framed::open_fifo_reader_with(&path, &FifoOptions::new().mode(0o620), 64)?;
    /// assert!(matches!(rx.recv_timeout(&mut [0; 64], Duration::from_millis(1)), Err(Error::TimedOut)));
    /// std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// [`MessageReceiver::recv`]: crate::transport::MessageReceiver::recv
    /// [`MessageReceiver::try_recv`]: crate::transport::MessageReceiver::try_recv
    /// [`MessageReceiver::recv_timeout`]: crate::transport::MessageReceiver::recv_timeout
    pub fn open_fifo_reader_with(
        path: impl AsRef<Path>,
        options: &FifoOptions,
        max_message: usize,
    ) -> Result<Framed> {
        open_reader(path.as_ref(), options, max_message)
    }

    /// Opens the writing end of the FIFO at `path` with the default
    /// [`FifoOptions`] (ours, mode at most `0o600`, waiting up to
    /// [`DEFAULT_WRITER_TIMEOUT`] for a reader): see
    /// [`Framed::open_fifo_writer_with`].
    pub fn open_fifo_writer(path: impl AsRef<Path>, max_message: usize) -> Result<Framed> {
        open_writer(path.as_ref(), &FifoOptions::new(), max_message)
    }

    /// Opens the writing end of the existing FIFO at `path`, checked as by
    /// [`Framed::open_fifo_reader_with`], once it has a reader: waiting at
    /// most [`FifoOptions::writer_timeout`] ([`Error::TimedOut`]). Another
    /// live writer holding the FIFO is [`Error::RoleTaken`]. The waiting
    /// never shows: until a reader is there, nothing is opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::{Error, Role};
    /// use shmlane_posix::fifo::FifoOptions;
    /// use shmlane_posix::Framed;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-fifo-writer-{}", std::process::id()));
    /// rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    /// let hasty = FifoOptions::new().writer_timeout(Some(Duration::from_millis(10)));
    /// // Nobody reads it.
    /// assert!(matches!(Framed::open_fifo_writer_with(&path, &hasty, 64), Err(Error::TimedOut)));
    /// let _rx = Framed::open_fifo_reader(&path, 64)?;
    /// let _tx = Framed::open_fifo_writer_with(&path, &hasty, 64)?;
    /// assert!(matches!(
    ///     Framed::open_fifo_writer_with(&path, &hasty, 64),
    ///     Err(Error::RoleTaken(Role::Producer))
    /// ));
    /// std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), Error>(())
    /// ```
    pub fn open_fifo_writer_with(
        path: impl AsRef<Path>,
        options: &FifoOptions,
        max_message: usize,
    ) -> Result<Framed> {
        open_writer(path.as_ref(), options, max_message)
    }
}
