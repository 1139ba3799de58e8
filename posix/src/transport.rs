//! One message API over every transport.
//!
//! [`MessageSender`] and [`MessageReceiver`] send and receive whole messages,
//! blocking, non-blocking (`Full` / `Empty`) or with a timeout (`TimedOut`),
//! and end with `Disconnected` once the peer is gone and everything it sent
//! was received. The shared-memory [`Sender`](crate::Sender) and
//! [`Receiver`](crate::Receiver) implement them, and so does [`Framed`], the
//! message framing over a byte stream (pipe, FIFO, unix stream socket, TCP).
//!
//! Byte streams carry each message as a 4-byte length and the payload
//! ([`crate::framing`]). A peer announcing a frame over the maximum is an
//! error ([`Error::FrameTooLarge`]), never a large allocation; a stream that
//! ends inside a frame is [`Error::Truncated`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::framing::{FrameReader, HEADER_LEN, encode_header};
use crate::{Error, Result};

/// The sending half of any transport.
///
/// # Examples
///
/// Code written against the trait runs over every transport:
///
/// ```
/// use shmlane_posix::transport::{Framed, MessageReceiver, MessageSender};
/// use shmlane_posix::{Options, Receiver, Sender};
///
/// fn greet(tx: &mut impl MessageSender) -> shmlane_posix::Result<()> {
///     tx.send(b"hello")
/// }
///
/// let (mut pipe_tx, mut pipe_rx) = Framed::pipe(64)?;
/// greet(&mut pipe_tx)?;
/// let mut shm_tx = Sender::create("/doc-trait-sender", &Options::new())?;
/// let mut shm_rx = Receiver::open("/doc-trait-sender", &Options::new())?;
/// greet(&mut shm_tx)?;
/// let mut buf = [0; 64];
/// assert_eq!(pipe_rx.recv(&mut buf)?, 5);
/// assert_eq!(MessageReceiver::recv(&mut shm_rx, &mut buf)?, 5);
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub trait MessageSender {
    /// The longest message this transport carries.
    fn max_message(&self) -> usize;

    /// Sends `msg`, waiting as long as it takes for room.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends `msg` if that needs no waiting: [`Error::Full`] otherwise, and
    /// then nothing was sent.
    fn try_send(&mut self, msg: &[u8]) -> Result<()>;

    /// Sends `msg`, waiting at most `timeout` ([`Error::TimedOut`]).
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()>;
}

/// The receiving half of any transport.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::Error;
/// use shmlane_posix::transport::{Framed, MessageReceiver, MessageSender};
///
/// /// Drains whatever arrives within 10 ms of each message.
/// fn drain(rx: &mut impl MessageReceiver) -> Vec<Vec<u8>> {
///     let mut buf = vec![0; rx.max_message()];
///     let mut got = Vec::new();
///     while let Ok(n) = rx.recv_timeout(&mut buf, Duration::from_millis(10)) {
///         got.push(buf[..n].to_vec());
///     }
///     got
/// }
///
/// let (mut tx, mut rx) = Framed::pipe(16)?;
/// tx.send(b"a")?;
/// tx.send(b"bc")?;
/// assert_eq!(drain(&mut rx), [b"a".to_vec(), b"bc".to_vec()]);
/// assert!(matches!(rx.try_recv(&mut [0; 16]), Err(Error::Empty)));
/// # Ok::<(), Error>(())
/// ```
pub trait MessageReceiver {
    /// The longest message this transport carries.
    fn max_message(&self) -> usize;

    /// Copies the next message into `buf` and returns its length, waiting as
    /// long as it takes. [`Error::BufferTooSmall`] leaves it queued.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Like [`MessageReceiver::recv`], without waiting: [`Error::Empty`].
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Like [`MessageReceiver::recv`], waiting at most `timeout`.
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize>;
}

impl MessageSender for crate::Sender {
    fn max_message(&self) -> usize {
        crate::Sender::max_message(self)
    }
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        crate::Sender::send(self, msg)
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        crate::Sender::try_send(self, msg)
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        crate::Sender::send_timeout(self, msg, timeout)
    }
}

impl MessageReceiver for crate::Receiver {
    fn max_message(&self) -> usize {
        crate::Receiver::max_message(self)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        crate::Receiver::recv(self, buf)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        crate::Receiver::try_recv(self, buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        crate::Receiver::recv_timeout(self, buf, timeout)
    }
}

/// How long a call may wait.
#[derive(Clone, Copy)]
enum Block {
    /// Not at all.
    No,
    /// Until the deadline, or forever.
    Until(Option<Instant>),
}

impl Block {
    fn after(timeout: Duration) -> Block {
        Block::Until(Instant::now().checked_add(timeout))
    }
}

/// Waits until `fd` is ready for `events`, or the deadline passes.
pub(crate) fn wait_ready(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> Result<()> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::TimedOut);
                }
                Some(rustix::time::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos() as i64,
                })
            }
        };
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            // Ready, or an error/hang-up condition that the next read or
            // write reports precisely.
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) => {} // timed out: the loop checks the deadline
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::io("poll", e)),
        }
    }
}

/// Copies a received message into the caller's `buf`; if it does not fit,
/// keeps a copy in `unread` (for [`take_unread`]) and reports the size
/// needed. Nothing is lost, and nothing is allocated unless it does not fit.
pub(crate) fn deliver(msg: &[u8], buf: &mut [u8], unread: &mut Option<Vec<u8>>) -> Result<usize> {
    let Some(dst) = buf.get_mut(..msg.len()) else {
        *unread = Some(msg.to_vec());
        return Err(Error::BufferTooSmall {
            needed: msg.len(),
            available: buf.len(),
        });
    };
    dst.copy_from_slice(msg);
    Ok(msg.len())
}

/// The message [`deliver`] kept, if any, copied into `buf` (or still kept,
/// with `BufferTooSmall`, if `buf` is still too small).
pub(crate) fn take_unread(unread: &mut Option<Vec<u8>>, buf: &mut [u8]) -> Option<Result<usize>> {
    let kept = unread.take()?;
    Some(deliver(&kept, buf, unread))
}

/// Binds a unix socket at `path` with `bind`. A socket file there that
/// nobody serves (`probe`, a connect, is refused: its process died) is
/// replaced; a live socket or any other file is [`Error::AlreadyExists`].
pub(crate) fn bind_unix_path<T>(
    path: &std::path::Path,
    bind: impl Fn(&std::path::Path) -> std::io::Result<T>,
    probe: impl Fn(&std::path::Path) -> std::io::Result<()>,
) -> Result<T> {
    use std::io::ErrorKind;
    use std::os::unix::fs::FileTypeExt;
    let name = || path.display().to_string();
    match bind(path) {
        Ok(bound) => Ok(bound),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            let is_socket =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
            let stale =
                is_socket && probe(path).is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused);
            if !stale {
                return Err(Error::AlreadyExists { name: name() });
            }
            std::fs::remove_file(path).map_err(|e| Error::io("unlink", e))?;
            bind(path).map_err(|e| Error::io("bind", e))
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            Err(Error::PermissionDenied { name: name() })
        }
        Err(e) => Err(Error::io("bind", e)),
    }
}

/// Messages framed over a byte stream: a pipe end, a FIFO, a unix stream
/// socket or a TCP connection. Implements both message traits (a pipe or
/// FIFO end uses one of them).
///
/// The descriptor is switched to non-blocking mode (for its whole open file
/// description, so for a process that shares it too); waiting is `poll`.
/// Sockets are written with `MSG_NOSIGNAL`; for pipes and FIFOs a vanished
/// reader is `EPIPE` only while `SIGPIPE` is ignored, which Rust programs do
/// by default.
///
/// # Examples
///
/// ```
/// use shmlane_posix::transport::{Framed, MessageReceiver, MessageSender};
///
/// let (mut tx, mut rx) = Framed::pipe(1024)?;
/// tx.send(b"over a pipe")?;
/// let mut buf = [0; 1024];
/// let n = rx.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"over a pipe");
/// drop(tx);
/// assert!(matches!(rx.recv(&mut buf), Err(shmlane_posix::Error::Disconnected)));
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug)]
pub struct Framed {
    fd: OwnedFd,
    socket: bool,
    max: usize,
    reader: FrameReader,
    /// The unsent rest of a message accepted by a non-blocking send.
    unsent: Vec<u8>,
    /// A received message the caller's buffer was too small for.
    unread: Option<Vec<u8>>,
    eof: bool,
    /// A FIFO this end created, removed when it drops.
    fifo: Option<std::path::PathBuf>,
}

impl Drop for Framed {
    fn drop(&mut self) {
        if let Some(path) = &self.fifo {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Framed {
    /// Frames messages of at most `max_message` bytes over `fd`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use shmlane_posix::transport::{Framed, MessageReceiver, MessageSender};
    ///
    /// let (a, b) = UnixStream::pair().unwrap();
    /// let (mut a, mut b) = (Framed::new(a, 128)?, Framed::new(b, 128)?);
    /// a.send(b"framed")?;
    /// assert_eq!(b.recv(&mut [0; 128])?, 6);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn new(fd: impl Into<OwnedFd>, max_message: usize) -> Result<Framed> {
        let fd = fd.into();
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| Error::io("fcntl", e))?;
        rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| Error::io("fcntl", e))?;
        let socket = rustix::fs::fstat(&fd)
            .map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
            })
            .unwrap_or(false);
        Ok(Framed {
            fd,
            socket,
            max: max_message,
            reader: FrameReader::new(max_message),
            unsent: Vec::new(),
            unread: None,
            eof: false,
            fifo: None,
        })
    }

    /// Creates a FIFO at `path` with permission bits `mode` (the effective
    /// mode is `mode & !umask`, as for `mkfifo(3)`) and opens its reading
    /// end, waiting until a writer opens it. The FIFO is removed when this
    /// end drops (the creator unlinks). An existing file at `path` is
    /// [`Error::AlreadyExists`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::transport::{Framed, MessageReceiver, MessageSender};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-fifo-{}", std::process::id()));
    /// let writer_path = path.clone();
    /// let writer = std::thread::spawn(move || -> shmlane_posix::Result<()> {
    ///     // Opening the writing end waits for the reader (and vice versa);
    ///     // retry until the reader has created the FIFO.
    ///     let mut tx = loop {
    ///         match Framed::open_fifo_writer(&writer_path, 64) {
    ///             Ok(tx) => break tx,
    ///             Err(shmlane_posix::Error::NotFound { .. }) => std::thread::yield_now(),
    ///             Err(e) => return Err(e),
    ///         }
    ///     };
    ///     tx.send(b"through a FIFO")
    /// });
    /// let mut rx = Framed::create_fifo(&path, 0o600, 64)?;
    /// let mut buf = [0; 64];
    /// let n = rx.recv(&mut buf)?;
    /// assert_eq!(&buf[..n], b"through a FIFO");
    /// writer.join().unwrap()?;
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn create_fifo(
        path: impl AsRef<std::path::Path>,
        mode: u32,
        max_message: usize,
    ) -> Result<Framed> {
        let path = path.as_ref();
        let mode = rustix::fs::Mode::from_raw_mode(mode & 0o777);
        rustix::fs::mkfifoat(rustix::fs::CWD, path, mode).map_err(|e| match e {
            Errno::EXIST => Error::AlreadyExists {
                name: path.display().to_string(),
            },
            Errno::ACCESS => Error::PermissionDenied {
                name: path.display().to_string(),
            },
            e => Error::io("mkfifo", e),
        })?;
        let opened = std::fs::File::open(path).map_err(|e| Error::io("open", e));
        let mut framed = match opened.and_then(|file| Framed::new(file, max_message)) {
            Ok(framed) => framed,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        framed.fifo = Some(path.to_owned());
        Ok(framed)
    }

    /// Opens the writing end of the FIFO at `path`, waiting until a reader
    /// opens it. [`Error::NotFound`] if there is no FIFO yet.
    pub fn open_fifo_writer(
        path: impl AsRef<std::path::Path>,
        max_message: usize,
    ) -> Result<Framed> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                name: path.display().to_string(),
            },
            _ => Error::io("stat", e),
        })?;
        if !std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
            return Err(Error::InvalidAddress {
                address: path.display().to_string(),
                reason: "not a FIFO",
            });
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open", e))?;
        Framed::new(file, max_message)
    }

    /// A new anonymous pipe: (writing end, reading end).
    pub fn pipe(max_message: usize) -> Result<(Framed, Framed)> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| Error::io("pipe", e))?;
        Ok((
            Framed::new(write, max_message)?,
            Framed::new(read, max_message)?,
        ))
    }

    /// Opens the reading end of the existing FIFO at `path`, waiting until a
    /// writer opens it.
    pub fn open_fifo_reader(
        path: impl AsRef<std::path::Path>,
        max_message: usize,
    ) -> Result<Framed> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                name: path.display().to_string(),
            },
            _ => Error::io("open", e),
        })?;
        Framed::new(file, max_message)
    }

    /// Splits a two-way stream (a socket) into a sending and a receiving
    /// half, each with its own duplicate of the descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use shmlane_posix::transport::{Framed, MessageReceiver, MessageSender};
    ///
    /// let (a, b) = UnixStream::pair().unwrap();
    /// let (mut a_tx, mut a_rx) = Framed::new(a, 64)?.split()?;
    /// let mut b = Framed::new(b, 64)?;
    /// let echo = std::thread::spawn(move || {
    ///     let mut buf = [0; 64];
    ///     let n = a_rx.recv(&mut buf).unwrap();
    ///     buf[..n].to_vec()
    /// });
    /// b.send(b"to the reading half")?;
    /// assert_eq!(echo.join().unwrap(), b"to the reading half");
    /// a_tx.send(b"from the writing half")?;
    /// assert_eq!(b.recv(&mut [0; 64])?, 21);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn split(self) -> Result<(Framed, Framed)> {
        let fd = self.fd.try_clone().map_err(|e| Error::io("dup", e))?;
        let max = self.max;
        Ok((Framed::new(fd, max)?, self))
    }

    /// The descriptor (to poll it, or to hand a pipe end to a child).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Writes some of `parts` (in order) without waiting: how many bytes
    /// (0 if it would block).
    fn write_some(&self, parts: &[&[u8]]) -> Result<usize> {
        // At most a header and a payload: no allocation per send.
        debug_assert!(parts.len() <= 2);
        let all = [
            std::io::IoSlice::new(parts.first().copied().unwrap_or_default()),
            std::io::IoSlice::new(parts.get(1).copied().unwrap_or_default()),
        ];
        let iov = &all[..parts.len().min(2)];
        loop {
            let written = if self.socket {
                let mut no_control = rustix::net::SendAncillaryBuffer::default();
                rustix::net::sendmsg(
                    &self.fd,
                    iov,
                    &mut no_control,
                    rustix::net::SendFlags::NOSIGNAL,
                )
            } else {
                rustix::io::writev(&self.fd, iov)
            };
            return match written {
                Ok(n) => Ok(n),
                Err(Errno::AGAIN) => Ok(0),
                Err(Errno::INTR) => continue,
                Err(Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN) => Err(Error::Disconnected),
                Err(e) => Err(Error::io("write", e)),
            };
        }
    }

    /// Writes out what a previous send left. With `Block::No`, `Full` if it
    /// cannot all go now.
    fn flush_unsent(&mut self, block: Block) -> Result<()> {
        while !self.unsent.is_empty() {
            let n = self.write_some(&[&self.unsent])?;
            self.unsent.drain(..n);
            if n == 0 {
                match block {
                    Block::No => return Err(Error::Full),
                    Block::Until(d) => wait_ready(self.fd.as_fd(), PollFlags::OUT, d)?,
                }
            }
        }
        Ok(())
    }

    /// Writes out the rest of a message that a non-blocking or timed send
    /// accepted but could not finish, waiting as long as it takes. (The next
    /// send does this first anyway; dropping a `Framed` does not.)
    pub fn flush(&mut self) -> Result<()> {
        self.flush_unsent(Block::Until(None))
    }

    fn send_frame(&mut self, msg: &[u8], block: Block) -> Result<()> {
        let header = encode_header(msg.len(), self.max)?;
        self.flush_unsent(block)?;
        let total = HEADER_LEN + msg.len();
        let mut sent = 0;
        while sent < total {
            let n = if sent < HEADER_LEN {
                self.write_some(&[&header[sent..], msg])?
            } else {
                self.write_some(&[&msg[sent - HEADER_LEN..]])?
            };
            sent += n;
            if n > 0 || sent == total {
                continue;
            }
            let waited = match block {
                Block::No => Err(Error::Full),
                Block::Until(d) => wait_ready(self.fd.as_fd(), PollFlags::OUT, d),
            };
            if let Err(e) = waited {
                if sent == 0 {
                    return Err(e); // nothing went out: not sent
                }
                // Part of it is on the wire: the rest must follow, first
                // thing, on the next call (the frame cannot be taken back).
                let mut rest = Vec::with_capacity(total - sent);
                if sent < HEADER_LEN {
                    rest.extend_from_slice(&header[sent..]);
                    rest.extend_from_slice(msg);
                } else {
                    rest.extend_from_slice(&msg[sent - HEADER_LEN..]);
                }
                self.unsent = rest;
                return Ok(());
            }
        }
        Ok(())
    }

    fn recv_frame(&mut self, buf: &mut [u8], block: Block) -> Result<usize> {
        if let Some(kept) = take_unread(&mut self.unread, buf) {
            return kept;
        }
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                return deliver(frame, buf, &mut self.unread);
            }
            if self.eof {
                self.reader.finish()?;
                return Err(Error::Disconnected);
            }
            match rustix::io::read(&self.fd, self.reader.spare()) {
                Ok(0) => self.eof = true,
                Ok(n) => self.reader.filled(n),
                Err(Errno::INTR) => {}
                Err(Errno::CONNRESET) => self.eof = true,
                Err(Errno::AGAIN) => match block {
                    Block::No => return Err(Error::Empty),
                    Block::Until(d) => wait_ready(self.fd.as_fd(), PollFlags::IN, d)?,
                },
                Err(e) => return Err(Error::io("read", e)),
            }
        }
    }
}

impl MessageSender for Framed {
    fn max_message(&self) -> usize {
        self.max
    }
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_frame(msg, Block::Until(None))
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_frame(msg, Block::No)
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_frame(msg, Block::after(timeout))
    }
}

impl MessageReceiver for Framed {
    fn max_message(&self) -> usize {
        self.max
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_frame(buf, Block::Until(None))
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_frame(buf, Block::No)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_frame(buf, Block::after(timeout))
    }
}

impl Framed {
    /// Connects to a unix stream socket listening at `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::transport::{Framed, FramedListener, MessageReceiver, MessageSender};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-unix-{}.sock", std::process::id()));
    /// let listener = FramedListener::bind_unix(&path, 256)?;
    /// let mut client = Framed::connect_unix(&path, 256)?;
    /// let mut server = listener.accept()?;
    /// client.send(b"ping")?;
    /// let mut buf = [0; 256];
    /// assert_eq!(server.recv(&mut buf)?, 4);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn connect_unix(path: impl AsRef<std::path::Path>, max_message: usize) -> Result<Framed> {
        let stream = std::os::unix::net::UnixStream::connect(path.as_ref()).map_err(connect_err)?;
        Framed::new(stream, max_message)
    }

    /// Connects to a TCP listener at `host:port`, with `TCP_NODELAY` (every
    /// message leaves at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::transport::{Framed, FramedListener, MessageReceiver, MessageSender};
    ///
    /// let listener = FramedListener::bind_tcp("127.0.0.1:0", 256)?; // any free port
    /// let port = listener.local_port().unwrap();
    /// let mut client = Framed::connect_tcp(&format!("127.0.0.1:{port}"), 256)?;
    /// let mut server = listener.accept()?;
    /// server.send(b"hello")?;
    /// let mut buf = [0; 256];
    /// assert_eq!(client.recv(&mut buf)?, 5);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn connect_tcp(host_port: &str, max_message: usize) -> Result<Framed> {
        let stream = std::net::TcpStream::connect(host_port).map_err(connect_err)?;
        stream
            .set_nodelay(true)
            .map_err(|e| Error::io("setsockopt(TCP_NODELAY)", e))?;
        Framed::new(stream, max_message)
    }
}

fn connect_err(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            name: "socket".to_owned(),
        },
        std::io::ErrorKind::ConnectionRefused => Error::Disconnected,
        std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            name: "socket".to_owned(),
        },
        _ => Error::io("connect", e),
    }
}

/// A listening unix stream or TCP socket whose connections carry framed
/// messages. (See [`Framed::connect_unix`] and [`Framed::connect_tcp`] for
/// examples.)
#[derive(Debug)]
pub struct FramedListener {
    listener: Listener,
    max: usize,
}

#[derive(Debug)]
enum Listener {
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
    Tcp(std::net::TcpListener),
}

impl FramedListener {
    /// Listens on a unix stream socket at `path`. A socket file left there
    /// by a dead process (nobody accepts on it) is replaced; a live one is
    /// [`Error::AlreadyExists`], and any other file is never removed. The
    /// socket file is removed when the listener drops.
    pub fn bind_unix(
        path: impl AsRef<std::path::Path>,
        max_message: usize,
    ) -> Result<FramedListener> {
        let path = path.as_ref();
        let listener = bind_unix_path(
            path,
            |p| std::os::unix::net::UnixListener::bind(p),
            |p| std::os::unix::net::UnixStream::connect(p).map(drop),
        )?;
        Ok(FramedListener {
            listener: Listener::Unix(listener, path.to_owned()),
            max: max_message,
        })
    }

    /// Listens on TCP at `host:port` (port 0: a free port, see
    /// [`FramedListener::local_port`]).
    pub fn bind_tcp(host_port: &str, max_message: usize) -> Result<FramedListener> {
        let listener = std::net::TcpListener::bind(host_port).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => Error::AlreadyExists {
                name: host_port.to_owned(),
            },
            _ => Error::io("bind", e),
        })?;
        Ok(FramedListener {
            listener: Listener::Tcp(listener),
            max: max_message,
        })
    }

    /// The address clients connect to: `unix:path`, or `tcp:host:port`
    /// with the port actually bound.
    pub fn address(&self) -> String {
        match &self.listener {
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(std::net::SocketAddr::V6(a)) => format!("tcp:[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("tcp:{}:{}", a.ip(), a.port()),
                Err(_) => "tcp:?".to_owned(),
            },
        }
    }

    /// The TCP port listened on (`None` for a unix socket).
    pub fn local_port(&self) -> Option<u16> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Listener::Unix(..) => None,
        }
    }

    /// Waits for the next connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::transport::{Framed, FramedListener, MessageReceiver, MessageSender};
    ///
    /// let listener = FramedListener::bind_tcp("127.0.0.1:0", 64)?;
    /// let address = listener.address(); // "tcp:127.0.0.1:<port>"
    /// let host_port = address.strip_prefix("tcp:").unwrap().to_owned();
    /// let clients: Vec<_> = (0..3u8)
    ///     .map(|i| {
    ///         let host_port = host_port.clone();
    ///         std::thread::spawn(move || Framed::connect_tcp(&host_port, 64)?.send(&[i]))
    ///     })
    ///     .collect();
    /// let mut seen = Vec::new();
    /// for _ in 0..3 {
    ///     let mut conn = listener.accept()?;
    ///     let mut buf = [0; 64];
    ///     conn.recv(&mut buf)?;
    ///     seen.push(buf[0]);
    /// }
    /// seen.sort();
    /// assert_eq!(seen, [0, 1, 2]);
    /// for client in clients {
    ///     client.join().unwrap()?;
    /// }
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn accept(&self) -> Result<Framed> {
        match &self.listener {
            Listener::Unix(l, _) => {
                let (stream, _) = l.accept().map_err(|e| Error::io("accept", e))?;
                Framed::new(stream, self.max)
            }
            Listener::Tcp(l) => {
                let (stream, _) = l.accept().map_err(|e| Error::io("accept", e))?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| Error::io("setsockopt(TCP_NODELAY)", e))?;
                Framed::new(stream, self.max)
            }
        }
    }
}

impl Drop for FramedListener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}
