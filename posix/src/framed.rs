//! Messages over a byte stream: [`Framed`] puts each message in a frame
//! ([`crate::framing`]) on a pipe end, a FIFO, a unix stream socket or a TCP
//! connection, and implements both message traits on it.
//!
//! The invariant: nothing reported sent is lost (the rest of a frame that a
//! non-blocking send could write only in part goes out before anything
//! else, at the latest when the `Framed` drops), a peer cannot make it
//! allocate beyond its maximum, and a vanished reader is
//! [`Error::Disconnected`], never a process-killing `SIGPIPE`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::PollFlags;
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use crate::framing::{FrameReader, HEADER_LEN, encode_header};
use crate::transport::{
    Block, MessageReceiver, MessageSender, PeerCredentials, deliver, poll_now, take_unread,
    wait_ready,
};
use crate::{Error, Result};

/// Messages framed over a byte stream: a pipe end, a FIFO, a unix stream
/// socket or a TCP connection. Implements both message traits (a pipe or
/// FIFO end uses one of them).
///
/// The calls that wait as long as it takes ([`MessageSender::send`],
/// [`MessageReceiver::recv`], [`Framed::flush`]) wait inside the kernel's
/// read or write itself, like plain blocking I/O: no `poll`, no extra
/// system call per message (a frame goes out in one write; a receive reads
/// at most one frame of the largest size ahead, and a large payload goes
/// straight into the caller's buffer). The others never wait, or wait in
/// `poll` until their deadline:
///
/// - A socket stays in blocking mode, and the calls that must not wait pass
///   `MSG_DONTWAIT`, so halves made by [`Framed::split`] (which share the
///   socket's open file description) never disturb each other.
/// - A pipe or FIFO end is switched between blocking and non-blocking mode
///   (`O_NONBLOCK`, which belongs to the open file description) only when
///   the kind of call changes, so a run of blocking calls or a run of
///   non-blocking ones costs no extra system call. This `Framed` must then
///   be the only one to set that mode: a duplicate of the descriptor used
///   elsewhere (by a child that inherited it, say) must leave `O_NONBLOCK`
///   alone, or a non-blocking call here could wait. The halves of a split
///   pipe end share one description, so they keep it non-blocking and wait
///   in `poll`.
///
/// A vanished reader is [`Error::Disconnected`], never a process-killing
/// `SIGPIPE`: sockets are written with `MSG_NOSIGNAL`, and a pipe or FIFO
/// write blocks `SIGPIPE` in the calling thread while its action is the
/// default one (as in a C program that loads this crate) and takes the
/// signal the write raised.
///
/// **Nothing reported sent is lost.** A non-blocking or timed send that
/// could write only part of a frame still returns `Ok` (the frame cannot be
/// taken back): the rest goes out first thing on the next send, on
/// [`Framed::flush`], or when the `Framed` drops. The drop waits as long as
/// that takes, until the peer has read enough or is gone.
///
/// # Examples
///
/// ```
/// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
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
    waiting: Waiting,
    max: usize,
    reader: FrameReader,
    /// The unsent rest of a message accepted by a non-blocking send.
    unsent: Vec<u8>,
    /// A small frame being sent, copied together (see [`SMALL_FRAME`]).
    small: Vec<u8>,
    /// The length of the last message received (see `recv_direct`).
    last_len: usize,
    /// A received message the caller's buffer was too small for.
    unread: Option<Vec<u8>>,
    eof: bool,
    /// A FIFO reading end that has not seen a writer yet: until it does
    /// (data, or a hang-up after a writer came), a read of 0 bytes means
    /// "no writer yet", not end of stream.
    awaiting_writer: bool,
    /// Whether pipe writes block `SIGPIPE` around them: its action was the
    /// default one when this `Framed` was made (see [`sigpipe`]).
    guard_sigpipe: bool,
    /// A FIFO this end created, removed when it drops (while its path still
    /// names it).
    fifo: Option<std::path::PathBuf>,
}

/// The longest payload that [`Framed`] copies behind its header to write
/// the frame with one write(2) or send(2) (cheaper than writev(2) for
/// small frames); longer ones go out as two parts in one writev(2).
const SMALL_FRAME: usize = 1024;

/// A blocking receive reads a payload straight into the caller's buffer
/// when at least this much of it is still to come, or, with none of the
/// next frame here yet, when the last message was at least this long (see
/// `Framed::recv_direct`).
const DIRECT_MIN: usize = 4096;

/// How a [`Framed`] end makes its calls wait or not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// A socket, in blocking mode: the calls that must not wait pass
    /// `MSG_DONTWAIT`.
    Socket,
    /// A pipe or FIFO end used by this `Framed` alone: `O_NONBLOCK` is set
    /// exactly when `nonblocking` says; `flags` are its other status flags.
    Pipe { flags: OFlags, nonblocking: bool },
    /// A pipe or FIFO end whose open file description another `Framed`
    /// shares (see [`Framed::split`]): always non-blocking, waits in `poll`.
    Shared,
}

impl Drop for Framed {
    fn drop(&mut self) {
        // A message reported sent is never lost: the rest of one accepted
        // in part goes out first, however long that takes (it ends early
        // only if the peer is gone, or on an I/O error, which a drop cannot
        // report).
        let _ = self.flush();
        if let Some(path) = self.fifo.take() {
            crate::fifo::unlink_if_named(&path, self.fd.as_fd());
        }
    }
}

impl Framed {
    /// Frames messages of at most `max_message` bytes over `fd`. A pipe or
    /// FIFO's buffer (the pipe's, shared with whoever holds its other end)
    /// is grown, if it can be, to hold one whole frame, up to 1 MiB.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
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
        let socket = rustix::fs::fstat(&fd)
            .map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
            })
            .unwrap_or(false);
        if !socket {
            fit_frame_in_pipe(&fd, max_message);
        }
        let waiting = if socket {
            // Blocking mode; `MSG_DONTWAIT` where a call must not wait.
            if flags.contains(OFlags::NONBLOCK) {
                set_flags(&fd, flags - OFlags::NONBLOCK)?;
            }
            Waiting::Socket
        } else {
            // Switched by the first call that needs the other mode.
            Waiting::Pipe {
                flags: flags - OFlags::NONBLOCK,
                nonblocking: flags.contains(OFlags::NONBLOCK),
            }
        };
        Ok(Framed {
            fd,
            waiting,
            max: max_message,
            reader: FrameReader::new(max_message),
            unsent: Vec::new(),
            small: Vec::new(),
            last_len: 0,
            unread: None,
            eof: false,
            awaiting_writer: false,
            guard_sigpipe: !socket && crate::sigpipe::would_kill(),
            fifo: None,
        })
    }

    /// A FIFO end opened by [`crate::fifo`]: a reading end waits for its
    /// first writer instead of taking "no writer yet" for end of stream;
    /// `owned`, the path of a FIFO this end created, is removed on drop.
    pub(crate) fn fifo_end(
        fd: OwnedFd,
        max_message: usize,
        reading: bool,
        owned: Option<std::path::PathBuf>,
    ) -> Result<Framed> {
        let mut framed = Framed::new(fd, max_message)?;
        framed.awaiting_writer = reading;
        framed.fifo = owned;
        Ok(framed)
    }

    /// Splits a two-way stream (a socket) into a sending and a receiving
    /// half, each with its own duplicate of the descriptor. (A split pipe or
    /// FIFO end works too, but its halves share the descriptor's blocking
    /// mode, so they wait in `poll`.)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
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
    pub fn split(mut self) -> Result<(Framed, Framed)> {
        let fd = self.fd.try_clone().map_err(|e| Error::io("dup", e))?;
        let mut tx = Framed::new(fd, self.max)?;
        // The rest of a message accepted before the split goes out first.
        tx.unsent = std::mem::take(&mut self.unsent);
        if let Waiting::Pipe { flags, .. } = self.waiting {
            // One open file description, so one `O_NONBLOCK` for both
            // halves: neither may switch it under the other.
            set_flags(&self.fd, flags | OFlags::NONBLOCK)?;
            self.waiting = Waiting::Shared;
            tx.waiting = Waiting::Shared;
        }
        Ok((tx, self))
    }

    /// Who is at the other end of a unix stream socket, as the kernel
    /// recorded it when the connection was made (`SO_PEERCRED`: the peer
    /// cannot forge it); `None` for a pipe, a FIFO or a TCP connection. The
    /// halves of [`Framed::split`] both answer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use shmlane_posix::Framed;
    ///
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let a = Framed::new(a, 64)?;
    /// let peer = a.peer_credentials().unwrap();
    /// assert_eq!(peer.pid, std::process::id() as i32); // a pair: ourselves
    /// assert_eq!(peer.uid, rustix::process::geteuid().as_raw());
    /// let (tx, _rx) = Framed::pipe(64)?;
    /// assert_eq!(tx.peer_credentials(), None);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn peer_credentials(&self) -> Option<PeerCredentials> {
        if self.waiting != Waiting::Socket {
            return None;
        }
        crate::unix::unix_peer(self.fd.as_fd())
    }

    /// The descriptor (to poll it, or to hand a pipe end to a child).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Puts a pipe end in the mode that a call made with `block` needs:
    /// blocking for one that waits as long as it takes (it then waits in
    /// the kernel's read or write), non-blocking for the others. A system
    /// call only when the mode changes. Sockets need none: see
    /// [`Framed::dontwait`].
    fn prepare(&mut self, block: Block) -> Result<()> {
        if let Waiting::Pipe { flags, nonblocking } = &mut self.waiting {
            let want = !matches!(block, Block::Until(None));
            if *nonblocking != want {
                let new = if want {
                    *flags | OFlags::NONBLOCK
                } else {
                    *flags
                };
                set_flags(&self.fd, new)?;
                *nonblocking = want;
            }
        }
        Ok(())
    }

    /// Whether a socket call made with `block` passes `MSG_DONTWAIT`.
    fn dontwait(block: Block) -> bool {
        !matches!(block, Block::Until(None))
    }

    /// Writes some of `parts` (in order): how many bytes, 0 if it would
    /// block. Waits in the kernel only for a blocking `block` (on a pipe,
    /// after [`Framed::prepare`]).
    fn write_some(&self, parts: &[&[u8]], block: Block) -> Result<usize> {
        // At most a header and a payload: no allocation per send.
        debug_assert!(parts.len() <= 2);
        let all = [
            std::io::IoSlice::new(parts.first().copied().unwrap_or_default()),
            std::io::IoSlice::new(parts.get(1).copied().unwrap_or_default()),
        ];
        let iov = &all[..parts.len().min(2)];
        let flags = if Self::dontwait(block) {
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT
        } else {
            SendFlags::NOSIGNAL
        };
        loop {
            // One buffer: write(2)/send(2), which cost less than writev(2)/sendmsg(2).
            let written = match (self.waiting == Waiting::Socket, iov) {
                (true, [one]) => rustix::net::send(&self.fd, one, flags),
                (false, [one]) if self.guard_sigpipe => {
                    crate::sigpipe::guarded(|| rustix::io::write(&self.fd, one))
                }
                (false, [one]) => rustix::io::write(&self.fd, one),
                (true, _) => {
                    let mut no_control = rustix::net::SendAncillaryBuffer::default();
                    rustix::net::sendmsg(&self.fd, iov, &mut no_control, flags)
                }
                (false, _) if self.guard_sigpipe => {
                    crate::sigpipe::guarded(|| rustix::io::writev(&self.fd, iov))
                }
                (false, _) => rustix::io::writev(&self.fd, iov),
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

    /// Reads what is available of the stream into the frame reader, at
    /// most one frame of the largest size (so that a reader that keeps up
    /// does not drain the pipe or socket at every call, which would make
    /// every write wake it): how many bytes, 0 at end of stream. Waits in
    /// the kernel for at least one byte only with a blocking `block`.
    fn read_some(&mut self, block: Block) -> std::result::Result<usize, Errno> {
        let spare = self.reader.spare();
        let cap = spare.len().min(HEADER_LEN.saturating_add(self.max));
        read_fd(&self.fd, self.waiting, &mut spare[..cap], block)
    }

    /// For a blocking receive, reads a large frame's payload straight into
    /// `buf`, as plain blocking reads of the message would, instead of
    /// through the frame reader and a copy: `Some(length)` if it did.
    ///
    /// - If the next frame has begun to arrive, its payload fits `buf` and
    ///   much of it is still to come: the rest of it.
    /// - If nothing is buffered, the last frame was large and `buf` holds
    ///   any frame: one read takes the next header into the frame reader
    ///   and the bytes after it into `buf` (those beyond the frame go back
    ///   to the reader).
    ///
    /// `None` if not (yet): then the reader holds every byte received, as
    /// after a plain read (at end of stream, `eof` is set).
    fn recv_direct(&mut self, buf: &mut [u8]) -> Result<Option<usize>> {
        let (len, mut got) = if self.reader.buffered() == 0 {
            if self.last_len < DIRECT_MIN || buf.len() < self.max {
                return Ok(None);
            }
            let Some((len, got)) = self.read_header_into(buf)? else {
                return Ok(None);
            };
            if got >= len {
                return Ok(Some(len));
            }
            (len, got)
        } else {
            let Some((len, got)) = self.reader.partial()? else {
                return Ok(None);
            };
            if len > buf.len() || len - got < DIRECT_MIN {
                return Ok(None); // (too small a buffer: the reader keeps it whole)
            }
            self.reader.take_partial(&mut buf[..got]);
            (len, got)
        };
        let dst = &mut buf[..len];
        while got < len {
            match read_fd(&self.fd, self.waiting, &mut dst[got..], Block::Until(None)) {
                Ok(0) | Err(Errno::CONNRESET) => self.eof = true,
                Ok(n) => got += n,
                Err(Errno::INTR) => continue,
                // (As in `recv_frame`: someone else made it non-blocking.)
                Err(Errno::AGAIN) => match wait_ready(self.fd.as_fd(), PollFlags::IN, None) {
                    Ok(()) => continue,
                    Err(e) => {
                        self.reader.put_back(len, &dst[..got]);
                        return Err(e);
                    }
                },
                Err(e) => {
                    self.reader.put_back(len, &dst[..got]);
                    return Err(Error::io("read", e));
                }
            }
            if self.eof {
                self.reader.put_back(len, &dst[..got]);
                return Ok(None);
            }
        }
        Ok(Some(len))
    }

    /// With nothing buffered and `buf` long enough for any frame: one
    /// blocking read of the next header into the frame reader and of what
    /// follows it into `buf`. `Some((payload length, bytes of it in buf))`
    /// once the header is in, with the frame taken out of the reader, and
    /// anything read beyond the frame given back to it.
    fn read_header_into(&mut self, buf: &mut [u8]) -> Result<Option<(usize, usize)>> {
        let spare = self.reader.spare();
        let mut parts = [
            std::io::IoSliceMut::new(&mut spare[..HEADER_LEN]),
            std::io::IoSliceMut::new(&mut buf[..self.max]),
        ];
        let n = match rustix::io::readv(&self.fd, &mut parts) {
            Ok(0) | Err(Errno::CONNRESET) => {
                self.eof = true;
                return Ok(None);
            }
            Ok(n) => n,
            Err(Errno::INTR) => return Ok(None),
            // (As in `recv_frame`: someone else made it non-blocking.)
            Err(Errno::AGAIN) => {
                wait_ready(self.fd.as_fd(), PollFlags::IN, None)?;
                return Ok(None);
            }
            Err(e) => return Err(Error::io("read", e)),
        };
        self.reader.filled(n.min(HEADER_LEN));
        let Some(got) = n.checked_sub(HEADER_LEN) else {
            return Ok(None); // part of a header: the reader has it
        };
        let Some((len, _)) = self.reader.partial()? else {
            // The header of an empty frame: that is the message, and what
            // came after it goes back to the reader.
            let _ = self.reader.next_frame()?;
            self.reader.refill(&[&buf[..got]]);
            return Ok(Some((0, 0)));
        };
        self.reader.take_partial(&mut []);
        if got > len {
            self.reader.refill(&[&buf[len..got]]);
        }
        Ok(Some((len, got.min(len))))
    }

    /// Writes out what a previous send left. With `Block::No`, `Full` if it
    /// cannot all go now.
    fn flush_unsent(&mut self, block: Block) -> Result<()> {
        while !self.unsent.is_empty() {
            let n = self.write_some(&[&self.unsent], block)?;
            self.unsent.drain(..n);
            if n == 0 {
                match block {
                    Block::No => return Err(Error::Full),
                    // (Blocking writes return 0 only if someone else made
                    // the descriptor non-blocking: then `poll` waits.)
                    Block::Until(d) => wait_ready(self.fd.as_fd(), PollFlags::OUT, d)?,
                }
            }
        }
        Ok(())
    }

    /// Writes out the rest of a message that a non-blocking or timed send
    /// accepted but could not finish, waiting as long as it takes. (The next
    /// send does this first anyway, and so does dropping the `Framed`; call
    /// it to hear of an error, which a drop cannot report.)
    pub fn flush(&mut self) -> Result<()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        self.prepare(Block::Until(None))?;
        self.flush_unsent(Block::Until(None))
    }

    fn send_frame(&mut self, msg: &[u8], block: Block) -> Result<()> {
        let header = encode_header(msg.len(), self.max)?;
        self.prepare(block)?;
        self.flush_unsent(block)?;
        let total = HEADER_LEN + msg.len();
        // A small frame is copied together and written as one buffer; a
        // larger one goes out as header and payload in one writev. Either
        // way one system call, and a blocking one returns only when all of
        // the frame is written.
        let small = msg.len() <= SMALL_FRAME;
        if small {
            self.small.clear();
            self.small.extend_from_slice(&header);
            self.small.extend_from_slice(msg);
        }
        let mut sent = 0;
        while sent < total {
            let n = if small {
                self.write_some(&[&self.small[sent..]], block)?
            } else if sent < HEADER_LEN {
                self.write_some(&[&header[sent..], msg], block)?
            } else {
                self.write_some(&[&msg[sent - HEADER_LEN..]], block)?
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
        let mut prepared = false;
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                self.last_len = frame.len();
                return deliver(frame, buf, &mut self.unread);
            }
            if self.eof {
                self.reader.finish()?;
                return Err(Error::Disconnected);
            }
            if !prepared {
                // Only once the buffered frames are used up: a message
                // already here costs no system call.
                self.prepare(block)?;
                prepared = true;
            }
            if matches!(block, Block::Until(None)) {
                if let Some(n) = self.recv_direct(buf)? {
                    self.last_len = n;
                    return Ok(n);
                }
                if self.eof {
                    continue;
                }
            }
            match self.read_some(block) {
                Ok(0) if self.awaiting_writer => {
                    // No writer now: none came yet, or one came and left.
                    let ready = poll_now(self.fd.as_fd())?;
                    if ready.contains(PollFlags::IN) {
                        continue; // a writer came and wrote meanwhile
                    }
                    if ready.contains(PollFlags::HUP) {
                        self.awaiting_writer = false;
                        self.eof = true;
                        continue;
                    }
                    match block {
                        Block::No => return Err(Error::Empty),
                        // Until data, or the hang-up of a writer that came
                        // and left (the kernel reports no hang-up before a
                        // writer has come).
                        Block::Until(d) => wait_ready(self.fd.as_fd(), PollFlags::IN, d)?,
                    }
                }
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.awaiting_writer = false;
                    self.reader.filled(n);
                }
                Err(Errno::INTR) => {}
                Err(Errno::CONNRESET) => self.eof = true,
                Err(Errno::AGAIN) => match block {
                    Block::No => return Err(Error::Empty),
                    // (A blocking read gets here only if someone else made
                    // the descriptor non-blocking: then `poll` waits.)
                    Block::Until(d) => wait_ready(self.fd.as_fd(), PollFlags::IN, d)?,
                },
                Err(e) => return Err(Error::io("read", e)),
            }
        }
    }
}

/// The largest pipe buffer [`Framed`] asks for: a frame of up to 1 MiB
/// (less the header) then goes through a pipe or FIFO in one write and one
/// wake-up of the reader. (Also the default `/proc/sys/fs/pipe-max-size`,
/// the most an unprivileged process may ask for.)
pub(crate) const MAX_PIPE_BUFFER: usize = 1 << 20;

/// Grows the buffer of the pipe or FIFO `fd` (the pipe's, shared by its
/// ends) so that a whole frame of `max_message` bytes fits, up to
/// [`MAX_PIPE_BUFFER`]. A frame that does not fit is written in parts, each
/// waiting for the reader to make room: a 64 KiB message and its 4-byte
/// header through the default 64 KiB pipe cost three wake-ups instead of
/// one. Best effort: a refusal (`EPERM` past the user's pipe-buffer quota or
/// `pipe-max-size`, or a descriptor that is no pipe) leaves the buffer as it
/// is, and nothing changes but speed.
fn fit_frame_in_pipe(fd: &OwnedFd, max_message: usize) {
    let frame = HEADER_LEN.saturating_add(max_message).min(MAX_PIPE_BUFFER);
    match rustix::pipe::fcntl_getpipe_size(fd) {
        Ok(size) if size < frame => {
            let _ = rustix::pipe::fcntl_setpipe_size(fd, frame);
        }
        _ => {}
    }
}

/// One read(2) from `fd` into `dst` (recv(2), with `MSG_DONTWAIT` unless
/// `block` waits as long as it takes, for a socket).
fn read_fd(
    fd: &OwnedFd,
    waiting: Waiting,
    dst: &mut [u8],
    block: Block,
) -> std::result::Result<usize, Errno> {
    if waiting == Waiting::Socket {
        let flags = if Framed::dontwait(block) {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        rustix::net::recv(fd, dst, flags).map(|(n, _)| n)
    } else {
        rustix::io::read(fd, dst)
    }
}

/// Sets a descriptor's status flags (`F_SETFL`).
fn set_flags(fd: &OwnedFd, flags: OFlags) -> Result<()> {
    rustix::fs::fcntl_setfl(fd, flags).map_err(|e| Error::io("fcntl", e))
}

impl MessageSender for Framed {
    fn max_message(&self) -> usize {
        self.max
    }
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_frame(msg, Block::Until(None))
    }
    /// Sends `msg` if that needs no waiting: [`Error::Full`] otherwise, and
    /// then nothing of it was sent. If only part of the frame could be
    /// written, the rest is kept and this is `Ok`: the message is sent, and
    /// the rest goes out before anything else (on the next send, on
    /// [`Framed::flush`] or at the latest when this `Framed` drops).
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_frame(msg, Block::No)
    }
    /// Sends `msg`, waiting at most `timeout` ([`Error::TimedOut`], and then
    /// nothing of it was sent); like [`MessageSender::try_send`], a frame of
    /// which part was written when time ran out is `Ok`, its rest kept.
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_frame(msg, Block::after(timeout))
    }
    fn send_ready_fd(&self) -> Result<(BorrowedFd<'_>, bool)> {
        Ok((self.fd.as_fd(), false))
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
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.fd.as_fd())
    }
    /// Not armed while a whole frame (or a message the caller's buffer was
    /// too small for, or the end of the stream) is already buffered here:
    /// the fd would not say so.
    fn arm(&mut self) -> Result<bool> {
        Ok(!(self.unread.is_some() || self.eof || self.reader.has_frame()))
    }
}
