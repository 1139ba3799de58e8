//! [`MqChannel`]: a POSIX message queue behind the message API of
//! [`crate::transport`], with the close mark of [`crate::dgram`] and a
//! watch on the queue's other handles, so that a receiver learns that its
//! peer is gone.
//!
//! The invariant: a receiver sees `Disconnected` only after every message
//! sent before the close mark (or before the last other handle went away),
//! and a close mark is never taken for a message.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use crate::dgram::{TAG_CLOSE, TAG_MESSAGE, after, untag};
use crate::gate::PROBE_INTERVAL;
use crate::mqueue::{MessageQueue, MqOptions};
use crate::transport::{MessageReceiver, MessageSender, deliver, take_unread, wait_ready};
use crate::{Error, Result, lock};

/// A POSIX message queue behind the message API: all messages at one
/// priority, plus the close mark (see the module docs). For priorities use
/// [`MessageQueue`] directly.
///
/// A channel is one way: one handle sends, the other receives. How each end
/// learns that the other is gone:
///
/// - A sending handle sends the close mark when it drops (priority 0, so it
///   comes after every message), waiting at most 100 ms for room.
///   The receiver returns [`Error::Disconnected`] at the mark.
/// - Whatever happened to the mark (no room for it; a sender killed with
///   SIGKILL), a handle that would wait (or finds nothing to receive, or no
///   room to send) checks, at most once per [`PROBE_INTERVAL`], whether
///   any *other* open file description of the queue holds its presence
///   lock (see [`crate::mqueue`]), which the kernel drops when a handle
///   closes or its process dies. Once a peer has been known to exist (seen
///   holding the lock, or by a message received from it) and no other
///   handle holds the lock any more, a receiver receives what is still
///   queued and then returns [`Error::Disconnected`], and a sender returns
///   [`Error::Disconnected`] (nothing sent). So a blocked call learns of
///   the peer's end within about [`PROBE_INTERVAL`].
///
/// "The peer" is every other handle on the queue: a third handle kept open
/// (by this process or another one of the queue's owner) counts as a live
/// peer. Once [`Error::Disconnected`] was returned, every later call
/// returns it too.
///
/// # Examples
///
/// ```
/// use shmlane_posix::mqueue::MqChannel;
/// use shmlane_posix::mqueue::MqOptions;
/// use shmlane_posix::{MessageReceiver, MessageSender};
///
/// let name = format!("/doc-mq-channel-{}", std::process::id());
/// let mut rx = MqChannel::create(&name, &MqOptions::new().capacity(4).max_message(128))?;
/// let mut tx = MqChannel::open(&name)?;
/// tx.send(b"queued")?;
/// drop(tx);
/// let mut buf = [0; 127];
/// assert_eq!(rx.recv(&mut buf)?, 6);
/// assert!(matches!(rx.recv(&mut buf), Err(shmlane_posix::Error::Disconnected)));
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug)]
pub struct MqChannel {
    queue: MessageQueue,
    scratch: Vec<u8>,
    unread: Option<Vec<u8>>,
    /// Whether this handle was used to receive: then it is the receiving
    /// end, and sends no close mark when it drops.
    receiving: bool,
    /// Whether the peer is known to have existed: seen holding its
    /// presence lock, or by a message received from it.
    peer_seen: bool,
    /// When the peer's presence was last probed.
    last_probe: Option<Instant>,
    /// The peer is gone (and, for a receiver, all it sent was received).
    disconnected: bool,
}

/// How long a dropping [`MqChannel`] (or [`Datagram`](crate::dgram::Datagram)) waits for room to
/// send its close mark. If it cannot, the peer still learns of the close
/// (see [`MqChannel`] and [`Datagram`](crate::dgram::Datagram)).
pub(crate) const CLOSE_WAIT: Duration = Duration::from_millis(100);

/// Priority of the messages an [`MqChannel`] sends; the close mark goes at
/// priority 0, below them.
const MESSAGE_PRIORITY: u32 = 1;

impl MqChannel {
    /// Creates the queue `name` (its messages carry `max_message - 1`
    /// payload bytes: one is the tag). An existing queue of that name is
    /// [`Error::AlreadyExists`], as for [`MessageQueue::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqChannel;
    /// use shmlane_posix::mqueue::MqOptions;
    /// use shmlane_posix::MessageReceiver;
    ///
    /// let rx = MqChannel::create("/doc-mq-channel-create", &MqOptions::new().max_message(65))?;
    /// assert_eq!(rx.max_message(), 64);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn create(name: &str, options: &MqOptions) -> Result<MqChannel> {
        Ok(Self::wrap(MessageQueue::create(name, options)?))
    }

    /// Creates the queue `name` like [`MqChannel::create`], first removing
    /// a stale queue of ours left at that name by a process that died (see
    /// `MessageQueue::create_reclaiming`). Only for the names an endpoint
    /// derives.
    // Called by `endpoint::listen` for `mq:` once it is wired to it.
    #[allow(dead_code)]
    pub(crate) fn create_reclaiming(name: &str, options: &MqOptions) -> Result<MqChannel> {
        Ok(Self::wrap(MessageQueue::create_reclaiming(name, options)?))
    }

    /// Opens the existing queue `name`, which must belong to the effective
    /// uid and be writable by nobody else ([`MessageQueue::open`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqChannel;
    /// use shmlane_posix::mqueue::MqOptions;
    /// use shmlane_posix::Error;
    ///
    /// assert!(matches!(MqChannel::open("/doc-mq-channel-none"), Err(Error::NotFound { .. })));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<MqChannel> {
        Ok(Self::wrap(MessageQueue::open(name)?))
    }

    /// Opens the existing queue `name`, checked against the owner and mode
    /// of `options` ([`MessageQueue::open_with`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqChannel;
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// let shared = MqOptions::new().max_message(64).mode(0o660);
    /// let _rx = MqChannel::create("/doc-mq-channel-open-with", &shared)?;
    /// let _tx = MqChannel::open_with("/doc-mq-channel-open-with", &MqOptions::new().mode(0o660))?;
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn open_with(name: &str, options: &MqOptions) -> Result<MqChannel> {
        Ok(Self::wrap(MessageQueue::open_with(name, options)?))
    }

    fn wrap(queue: MessageQueue) -> MqChannel {
        let size = queue.max_message();
        MqChannel {
            queue,
            scratch: vec![0; size],
            unread: None,
            receiving: false,
            peer_seen: false,
            last_probe: None,
            disconnected: false,
        }
    }

    /// The underlying queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::mqueue::MqChannel;
    /// use shmlane_posix::mqueue::MqOptions;
    ///
    /// let rx = MqChannel::create("/doc-mq-channel-queue", &MqOptions::new().max_message(64))?;
    /// assert_eq!(rx.queue().name(), "/doc-mq-channel-queue");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn queue(&self) -> &MessageQueue {
        &self.queue
    }

    /// Whether a probe of the peer is due: none yet, or [`PROBE_INTERVAL`]
    /// since the last one.
    fn probe_due(&self) -> bool {
        self.last_probe
            .is_none_or(|last| last.elapsed() >= PROBE_INTERVAL)
    }

    /// Whether the peer is gone: it was known to exist, and no other open
    /// file description of the queue holds the presence lock now.
    fn peer_gone(&mut self) -> Result<bool> {
        self.last_probe = Some(Instant::now());
        let held = lock::held_by_other(self.queue.as_fd(), lock::PRESENCE)
            .map_err(|e| Error::io("fcntl(F_OFD_GETLK)", e))?;
        self.peer_seen |= held;
        Ok(self.peer_seen && !held)
    }

    /// Waits until the queue is ready for `events`, for one probe interval
    /// at most, and not past `deadline`: [`Error::TimedOut`] only once
    /// `deadline` has passed.
    fn wait_slice(&self, events: PollFlags, deadline: Option<Instant>) -> Result<()> {
        let slice = Instant::now() + PROBE_INTERVAL;
        let until = deadline.map_or(slice, |d| d.min(slice));
        match wait_ready(self.queue.as_fd(), events, Some(until)) {
            Err(Error::TimedOut) if deadline.is_none_or(|d| d > until) => Ok(()),
            done => done,
        }
    }

    /// `how`: `None` never waits, `Some(None)` waits as long as it takes,
    /// `Some(Some(deadline))` until then.
    fn send_tagged(&mut self, msg: &[u8], how: Option<Option<Instant>>) -> Result<()> {
        let max = self.queue.max_message().saturating_sub(1);
        if msg.len() > max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max,
            });
        }
        if self.disconnected {
            return Err(Error::Disconnected);
        }
        self.scratch[0] = TAG_MESSAGE;
        self.scratch[1..=msg.len()].copy_from_slice(msg);
        loop {
            if self.probe_due() && self.peer_gone()? {
                self.disconnected = true;
                return Err(Error::Disconnected);
            }
            match self
                .queue
                .try_send(&self.scratch[..=msg.len()], MESSAGE_PRIORITY)
            {
                Err(Error::Full) => {}
                done => return done,
            }
            match how {
                None => return Err(Error::Full),
                Some(deadline) => self.wait_slice(PollFlags::OUT, deadline)?,
            }
        }
    }

    /// `how` as for [`MqChannel::send_tagged`].
    fn recv_tagged(&mut self, buf: &mut [u8], how: Option<Option<Instant>>) -> Result<usize> {
        if let Some(kept) = take_unread(&mut self.unread, buf) {
            return kept;
        }
        if self.disconnected {
            return Err(Error::Disconnected);
        }
        self.receiving = true;
        loop {
            match self.queue.try_recv(&mut self.scratch) {
                Ok((n, _priority)) => return self.delivered(n, buf),
                Err(Error::Empty) => {}
                Err(e) => return Err(e),
            }
            if self.probe_due() && self.peer_gone()? {
                // All the peer sent was queued before it let go of the
                // lock: what is not queued now never will be.
                return match self.queue.try_recv(&mut self.scratch) {
                    Ok((n, _priority)) => self.delivered(n, buf),
                    Err(Error::Empty) => {
                        self.disconnected = true;
                        Err(Error::Disconnected)
                    }
                    Err(e) => Err(e),
                };
            }
            match how {
                None => return Err(Error::Empty),
                Some(deadline) => self.wait_slice(PollFlags::IN, deadline)?,
            }
        }
    }

    /// The received message `scratch[..n]`, untagged, delivered to `buf`.
    fn delivered(&mut self, n: usize, buf: &mut [u8]) -> Result<usize> {
        // A message, or the mark: proof that a peer existed.
        self.peer_seen = true;
        match untag(&self.scratch, n) {
            Ok(len) => deliver(&self.scratch[1..=len], buf, &mut self.unread),
            Err(Error::Disconnected) => {
                self.disconnected = true;
                Err(Error::Disconnected)
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for MqChannel {
    fn drop(&mut self) {
        // A receiving end sends nothing; a sending end sends its mark even
        // if it sent nothing else (its receiver may be waiting for it),
        // unless its receiver is known to be gone.
        if self.receiving || self.disconnected || self.peer_gone().unwrap_or(false) {
            return;
        }
        // Priority 0, below every message: it arrives after all of them.
        let _ = self.queue.send_timeout(&[TAG_CLOSE], 0, CLOSE_WAIT);
    }
}

impl MessageSender for MqChannel {
    fn max_message(&self) -> usize {
        self.queue.max_message().saturating_sub(1)
    }
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_tagged(msg, Some(None))
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_tagged(msg, None)
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_tagged(msg, after(timeout))
    }
    fn send_ready_fd(&self) -> Result<(std::os::fd::BorrowedFd<'_>, bool)> {
        Ok((self.queue.as_fd(), false))
    }
}

impl MessageReceiver for MqChannel {
    fn max_message(&self) -> usize {
        self.queue.max_message().saturating_sub(1)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_tagged(buf, Some(None))
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_tagged(buf, None)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_tagged(buf, after(timeout))
    }
    /// The queue's fd: readable while a message (or the close mark) is
    /// queued. A peer killed without its close mark is seen by the next
    /// receive's probe, not by the fd.
    fn ready_fd(&self) -> Result<std::os::fd::BorrowedFd<'_>> {
        Ok(self.queue.as_fd())
    }
    fn arm(&mut self) -> Result<bool> {
        Ok(!(self.unread.is_some() || self.disconnected))
    }
}
