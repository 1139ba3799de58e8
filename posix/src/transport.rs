//! One message API over every transport.
//!
//! [`MessageSender`] and [`MessageReceiver`] send and receive whole messages
//! with the crate's one vocabulary: `send` / `recv` wait as long as it
//! takes, `try_send` / `try_recv` never wait (`Full` / `Empty`),
//! `send_timeout` / `recv_timeout` wait at most a duration (`TimedOut`).
//! Every transport ends with `Disconnected` once the peer is gone and
//! everything it sent was received. The shared-memory
//! [`Sender`](crate::Sender) and [`Receiver`](crate::Receiver) implement
//! them, and so do [`Framed`](crate::Framed) (a byte stream: pipe, FIFO,
//! unix stream socket, TCP), [`Datagram`](crate::dgram::Datagram) and
//! [`MqChannel`](crate::mqueue::MqChannel).
//!
//! This module also holds what the transports share: how long a call may
//! wait, waiting on a descriptor with a deadline, and handing a received
//! message to a caller's buffer (keeping one it is too small for). The
//! invariant: a message is never lost to a small buffer
//! ([`Error::BufferTooSmall`] keeps it for the next call), and a deadline
//! is an instant on the monotonic clock, so a wait ends on time however
//! often it is interrupted.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use crate::{Error, Result};

/// Who the peer of a connection is, as the kernel reports it
/// (`SO_PEERCRED` for a unix stream socket, `SCM_CREDENTIALS` for a unix
/// datagram socket): the values at the time the peer connected, which it
/// cannot forge.
///
/// # Examples
///
/// ```
/// use shmlane_posix::PeerCredentials;
///
/// let me = PeerCredentials { pid: std::process::id() as i32, uid: 0, gid: 0 };
/// assert_eq!(me.pid, std::process::id() as i32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id (in this process's pid namespace).
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// The sending half of any transport.
///
/// # Examples
///
/// Code written against the trait runs over every transport:
///
/// ```
/// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
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

    /// The fd an event loop waits on for room, and whether to wait for it
    /// to be readable (`true`: the shared-memory sender's readiness fd,
    /// [`crate::Sender::ready_fd`]) or writable (`false`: the other
    /// transports' kernel objects). By default an error: a sender with no
    /// fd to wait on.
    fn send_ready_fd(&self) -> Result<(BorrowedFd<'_>, bool)> {
        Err(Error::io(
            "send_ready_fd",
            std::io::Error::from(std::io::ErrorKind::Unsupported),
        ))
    }

    /// Prepares to wait on [`MessageSender::send_ready_fd`] for room for a
    /// `len`-byte message: `true` when armed (wait for the fd), `false`
    /// when there is something to do now. By default `true` (a kernel
    /// object's writability needs no arming).
    fn arm_send(&mut self, len: usize) -> Result<bool> {
        let _ = len;
        Ok(true)
    }
}

/// The receiving half of any transport.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::Error;
/// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
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

    /// The fd an event loop or a [`Selector`](crate::Selector) waits on
    /// for this receiver: readable when it may have something to receive,
    /// once [`MessageReceiver::arm`] said `true`. The shared-memory
    /// receiver's is its readiness fd ([`crate::Receiver::ready_fd`]); the
    /// other transports' is their kernel object's own (level-triggered:
    /// readable while data, a close mark or an end of stream waits).
    /// By default an error: a receiver with no fd to wait on.
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Err(Error::io(
            "ready_fd",
            std::io::Error::from(std::io::ErrorKind::Unsupported),
        ))
    }

    /// Prepares to wait on [`MessageReceiver::ready_fd`]: `true` when
    /// armed (wait for the fd), `false` when there is something to do now
    /// (a message or an end this process already holds: receive first).
    /// By default `true`.
    fn arm(&mut self) -> Result<bool> {
        Ok(true)
    }
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
    fn send_ready_fd(&self) -> Result<(BorrowedFd<'_>, bool)> {
        Ok((crate::Sender::ready_fd(self)?, true))
    }
    fn arm_send(&mut self, len: usize) -> Result<bool> {
        crate::Sender::arm(self, len)
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
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        crate::Receiver::ready_fd(self)
    }
    fn arm(&mut self) -> Result<bool> {
        crate::Receiver::arm(self)
    }
}

/// How long a call may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Block {
    /// Not at all.
    No,
    /// Until the deadline, or forever.
    Until(Option<Instant>),
}

impl Block {
    pub(crate) fn after(timeout: Duration) -> Block {
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

/// What `fd` is ready for now (`poll` with a zero timeout, for input).
pub(crate) fn poll_now(fd: BorrowedFd<'_>) -> Result<PollFlags> {
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(_) => return Ok(fds[0].revents()),
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
