//! Messages as unix datagrams, and over a POSIX message queue, behind the
//! message API of [`crate::transport`].
//!
//! Both kernels keep message boundaries, but neither knows "the peer is
//! gone". So each message carries one tag byte: `0` for a message, `1` for
//! "the sender closed", which the sender sends when it drops. A receiver
//! returns [`Error::Disconnected`] at that mark, after every message sent
//! before it. (A sender killed with SIGKILL sends no mark: use the timeout
//! calls, or the shared-memory channel, which notices dead peers.)
//!
//! The calls that wait as long as it takes wait inside the kernel's send
//! or receive call itself, as plain blocking calls do: the sockets stay in
//! blocking mode and the other calls pass `MSG_DONTWAIT` (a message queue
//! gets a deadline instead, see [`crate::mqueue`]).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, SocketAddrUnix};

use rustix::event::PollFlags;

use crate::gate::PROBE_INTERVAL;
use crate::mqueue::{MessageQueue, MqOptions};
use crate::transport::{
    MessageReceiver, MessageSender, bind_unix_path, deliver, take_unread, wait_ready,
};
use crate::{Error, Result, lock};

const TAG_MESSAGE: u8 = 0;
const TAG_CLOSE: u8 = 1;
const TAG_HELLO: u8 = 2;

/// A tagged message in `buf`, or the end: the payload's length.
fn untag(buf: &[u8], n: usize) -> Result<usize> {
    match buf.first() {
        Some(&TAG_MESSAGE) if n >= 1 => Ok(n - 1),
        Some(&TAG_CLOSE) => Err(Error::Disconnected),
        _ => Err(Error::Truncated),
    }
}

/// One unix datagram socket, bound to a path, that sends to one peer path
/// and receives from anyone.
///
/// Messages to the peer leave through a second, unbound socket connected
/// to the peer's socket (made by [`Datagram::connect`] or
/// [`Datagram::accept_hello`]), so that a send need not look the path up
/// again; the bound socket itself is never connected, so it still receives
/// from anyone. If that connection breaks (the peer's socket closed), or
/// could not be made, messages go to the peer's path as it is then, as
/// `sendto` does. A send finds the peer gone ([`Error::Disconnected`]) when
/// its socket is closed, when its receiving half is dropped, or when nothing
/// is bound at its path any more; a blocking send that waits for room looks
/// at the path again every 100 ms.
///
/// # Examples
///
/// ```
/// use shmlane_posix::dgram::Datagram;
/// use shmlane_posix::transport::{MessageReceiver, MessageSender};
///
/// let dir = std::env::temp_dir();
/// let (a, b) = (dir.join(format!("doc-dg-a-{}", std::process::id())), dir.join(format!("doc-dg-b-{}", std::process::id())));
/// let mut server = Datagram::bind(&a, 1024)?;
/// let mut client = Datagram::bind(&b, 1024)?;
/// client.connect(&a)?;
/// client.send(b"one datagram")?;
/// let mut buf = [0; 1024];
/// assert_eq!(server.recv(&mut buf)?, 12);
/// drop(client); // sends the close mark
/// assert!(matches!(server.recv(&mut buf), Err(shmlane_posix::Error::Disconnected)));
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug)]
pub struct Datagram {
    /// Bound to `path`, never connected; in blocking mode (see the module
    /// docs).
    socket: UnixDatagram,
    path: PathBuf,
    /// Where to send: the peer's address, made once, or why its path can't
    /// be one (too long), which each send reports as `sendto` would.
    peer: Option<std::result::Result<SocketAddrUnix, Errno>>,
    /// An unbound socket connected to the peer's, which messages leave by
    /// (none until a peer is set, or if that connection broke).
    to_peer: Option<UnixDatagram>,
    max: usize,
    scratch: Vec<u8>,
    unread: Option<Vec<u8>>,
    /// Whether this handle removes the socket file when it drops.
    owns_path: bool,
}

/// How often a blocking [`Datagram`] send that waits for room checks that
/// the peer's path still leads to a socket (the peer may have dropped its
/// receiving half, or be gone, while its socket lives on).
const LIVENESS_CHECK: Duration = Duration::from_millis(100);

/// The longest message that [`Datagram`] copies behind its tag to send it
/// as one buffer (cheaper than two); longer ones go out as two parts.
const SMALL_MESSAGE: usize = 1024;

/// The least [`Datagram`] maximum for which a receive into a buffer of at
/// least that size receives straight into it, without a copy.
const DIRECT_MIN: usize = 4096;

/// The flags of a socket call that may wait (`Some(deadline)`) or not
/// (`None`): only one that waits as long as it takes waits in the kernel;
/// the others pass `MSG_DONTWAIT` (and a timed one waits in `poll`).
fn dontwait(deadline: Option<Option<Instant>>) -> bool {
    deadline != Some(None)
}

impl Datagram {
    /// Binds a datagram socket at `path` for messages of at most
    /// `max_message` bytes. A socket file left by a dead process is
    /// replaced; any other file is [`Error::AlreadyExists`]. The file is
    /// removed on drop.
    pub fn bind(path: impl AsRef<Path>, max_message: usize) -> Result<Datagram> {
        let path = path.as_ref();
        // A datagram socket nobody has bound refuses a connect.
        let socket = bind_unix_path(
            path,
            |p| UnixDatagram::bind(p),
            |p| UnixDatagram::unbound()?.connect(p),
        )?;
        let datagram = Datagram {
            socket,
            path: path.to_owned(),
            peer: None,
            to_peer: None,
            max: max_message,
            scratch: vec![0; max_message + 1],
            unread: None,
            owns_path: true,
        };
        // A blocking send by the path gives up after a while, to look the
        // path up again (see `send_tagged`). (On failure, the drop removes
        // the path.)
        datagram
            .socket
            .set_write_timeout(Some(LIVENESS_CHECK))
            .map_err(|e| Error::io("setsockopt(SO_SNDTIMEO)", e))?;
        Ok(datagram)
    }

    /// The path this socket is bound to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Splits into a sending half (which sends the close mark when it
    /// drops) and a receiving half (which, when it drops, removes the
    /// socket file and shuts the socket for receiving, so that the peer's
    /// sends find it gone), each with its own descriptor of the one socket.
    pub fn split(mut self) -> Result<(Datagram, Datagram)> {
        let socket = self.socket.try_clone().map_err(|e| Error::io("dup", e))?;
        let receiver = Datagram {
            socket,
            path: self.path.clone(),
            peer: None,
            to_peer: None,
            max: self.max,
            scratch: vec![0; self.max + 1],
            unread: self.unread.take(),
            owns_path: true,
        };
        self.owns_path = false;
        Ok((self, receiver))
    }

    /// Sends to the socket bound at `peer` from now on.
    pub fn connect(&mut self, peer: impl AsRef<Path>) -> Result<()> {
        self.set_peer(peer.as_ref());
        Ok(())
    }

    /// Sends to `path` from now on: connects a socket to the one bound
    /// there, if there is one now. (Without one, each send looks the path
    /// up.)
    fn set_peer(&mut self, path: &Path) {
        self.peer = Some(SocketAddrUnix::new(path));
        self.to_peer = UnixDatagram::unbound()
            .and_then(|s| {
                s.connect(path)?;
                // As for the bound socket (see `bind`).
                s.set_write_timeout(Some(LIVENESS_CHECK))?;
                Ok(s)
            })
            .ok();
    }

    /// Introduces this socket to the peer set with `connect` (the peer's
    /// [`Datagram::accept_hello`] learns where to answer).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::Datagram;
    /// use shmlane_posix::transport::{MessageReceiver, MessageSender};
    ///
    /// let dir = std::env::temp_dir();
    /// let id = std::process::id();
    /// let mut server = Datagram::bind(dir.join(format!("doc-hello-s-{id}")), 64)?;
    /// let mut client = Datagram::bind(dir.join(format!("doc-hello-c-{id}")), 64)?;
    /// client.connect(server.path())?;
    /// client.send_hello()?;
    /// server.accept_hello()?; // now it can answer
    /// server.send(b"welcome")?;
    /// assert_eq!(client.recv(&mut [0; 64])?, 7);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn send_hello(&mut self) -> Result<()> {
        self.send_tagged(TAG_HELLO, &[], Some(None))
    }

    /// Waits for a peer's [`Datagram::send_hello`] and sends to that peer
    /// from now on.
    pub fn accept_hello(&mut self) -> Result<()> {
        loop {
            match self.socket.recv_from(&mut self.scratch) {
                Ok((n, from)) => {
                    if n >= 1 && self.scratch[0] == TAG_HELLO {
                        let path = from.as_pathname().ok_or_else(|| Error::InvalidAddress {
                            address: "datagram peer".to_owned(),
                            reason: "the peer's socket has no path to answer to",
                        })?;
                        self.set_peer(path);
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait(self.socket.as_fd(), rustix::event::PollFlags::IN, None)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("recvfrom", e)),
            }
        }
    }

    fn send_tagged(
        &mut self,
        tag: u8,
        msg: &[u8],
        deadline: Option<Option<Instant>>,
    ) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        let Some(peer) = &self.peer else {
            return Err(Error::NotFound {
                name: "datagram peer (call connect)".to_owned(),
            });
        };
        let address = peer.as_ref().map_err(|e| Error::io("sendto", *e))?;
        let flags = if dontwait(deadline) {
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT
        } else {
            SendFlags::NOSIGNAL
        };
        // A small message is copied behind its tag and sent as one buffer;
        // a larger one goes out as tag and message, without the copy.
        let small = msg.len() <= SMALL_MESSAGE;
        if small {
            self.scratch[0] = tag;
            self.scratch[1..=msg.len()].copy_from_slice(msg);
        }
        let tag = [tag];
        let message = Tagged {
            whole: &self.scratch[..=msg.len()],
            parts: [IoSlice::new(&tag), IoSlice::new(msg)],
            small,
        };
        loop {
            // A hello goes from the bound socket: it tells the peer our path.
            let connected = self.to_peer.as_ref().filter(|_| tag[0] != TAG_HELLO);
            let sent = match connected {
                Some(to_peer) => message.send(to_peer, None, flags),
                None => message.send(&self.socket, Some(address), flags),
            };
            match sent {
                Ok(_) => return Ok(()),
                Err(Errno::AGAIN) => match deadline {
                    None => return Err(Error::Full),
                    // A blocking send waited `LIVENESS_CHECK` for room in
                    // vain. By the path (which the next try looks up), the
                    // peer is gone once nothing is bound there.
                    Some(None) if connected.is_none() => {}
                    // Through the connection: once by the path, without
                    // waiting, before waiting again.
                    Some(None) => {
                        match message.send(&self.socket, Some(address), flags | SendFlags::DONTWAIT)
                        {
                            Ok(_) => return Ok(()),
                            Err(Errno::AGAIN | Errno::INTR) => {}
                            Err(e) => {
                                // (Later sends go by the path too, and agree.)
                                self.to_peer = None;
                                return Err(send_error(e));
                            }
                        }
                    }
                    Some(Some(d)) => {
                        let fd = connected.map_or(self.socket.as_fd(), |s| s.as_fd());
                        wait(fd, rustix::event::PollFlags::OUT, Some(d))?
                    }
                },
                Err(Errno::INTR) => {}
                // The connected peer socket is gone: from now on send to
                // whatever is bound at the path (nothing, usually: then
                // the next try says Disconnected).
                Err(Errno::CONNREFUSED | Errno::NOTCONN) if connected.is_some() => {
                    self.to_peer = None
                }
                Err(e) => return Err(send_error(e)),
            }
        }
    }

    fn recv_tagged(&mut self, buf: &mut [u8], deadline: Option<Option<Instant>>) -> Result<usize> {
        if let Some(kept) = take_unread(&mut self.unread, buf) {
            return kept;
        }
        let flags = if dontwait(deadline) {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        // A large message that surely fits `buf` is received straight into
        // it, behind its tag; otherwise into `scratch` and copied.
        let direct = self.max >= DIRECT_MIN && buf.len() >= self.max;
        loop {
            let received = if direct {
                let mut tag = [TAG_HELLO]; // (not a message, if nothing came)
                let mut parts = [
                    IoSliceMut::new(&mut tag),
                    IoSliceMut::new(&mut buf[..self.max]),
                ];
                let mut no_control = rustix::net::RecvAncillaryBuffer::default();
                rustix::net::recvmsg(&self.socket, &mut parts, &mut no_control, flags)
                    .map(|got| untag(&tag, got.bytes))
            } else {
                rustix::net::recv(&self.socket, &mut self.scratch[..], flags)
                    .map(|(n, _)| untag(&self.scratch, n))
            };
            match received {
                Ok(len) if direct => return len,
                Ok(len) => return deliver(&self.scratch[1..=len?], buf, &mut self.unread),
                Err(Errno::AGAIN) => match deadline {
                    None => return Err(Error::Empty),
                    Some(d) => wait(self.socket.as_fd(), rustix::event::PollFlags::IN, d)?,
                },
                Err(Errno::INTR) => {}
                Err(e) => return Err(Error::io("recv", e)),
            }
        }
    }
}

/// A tagged message ready to send: `whole`, the tag and message copied
/// together, if `small`; else `parts`.
struct Tagged<'a> {
    whole: &'a [u8],
    parts: [IoSlice<'a>; 2],
    small: bool,
}

impl Tagged<'_> {
    /// One send on `socket`, to `address` if given (else to the socket it
    /// is connected to).
    fn send(
        &self,
        socket: &UnixDatagram,
        address: Option<&SocketAddrUnix>,
        flags: SendFlags,
    ) -> std::result::Result<usize, Errno> {
        let mut no_control = rustix::net::SendAncillaryBuffer::default();
        match (address, self.small) {
            (None, true) => rustix::net::send(socket, self.whole, flags),
            (None, false) => rustix::net::sendmsg(socket, &self.parts, &mut no_control, flags),
            (Some(to), true) => rustix::net::sendto(socket, self.whole, flags, to),
            (Some(to), false) => {
                rustix::net::sendmsg_addr(socket, to, &self.parts, &mut no_control, flags)
            }
        }
    }
}

/// A failed send as an error: the peer is gone if nothing is bound at its
/// path (any more), or its receiving half was dropped (`EPIPE`).
fn send_error(e: Errno) -> Error {
    match e {
        Errno::CONNREFUSED | Errno::NOENT | Errno::PIPE => Error::Disconnected,
        e => Error::io("sendto", e),
    }
}

fn wait(
    fd: std::os::fd::BorrowedFd<'_>,
    events: rustix::event::PollFlags,
    deadline: Option<Instant>,
) -> Result<()> {
    crate::transport::wait_ready(fd, events, deadline)
}

fn after(timeout: Duration) -> Option<Option<Instant>> {
    Some(Instant::now().checked_add(timeout))
}

impl Drop for Datagram {
    fn drop(&mut self) {
        if self.peer.is_some() {
            let _ = self.send_tagged(
                TAG_CLOSE,
                &[],
                Some(Instant::now().checked_add(Duration::from_millis(100))),
            );
        }
        if self.owns_path {
            // Nobody receives here any more: a sender connected to this
            // socket (which a sending half of it may keep open) gets EPIPE,
            // as one sending by the path finds it gone.
            let _ = self.socket.shutdown(std::net::Shutdown::Read);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl MessageSender for Datagram {
    fn max_message(&self) -> usize {
        self.max
    }
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_tagged(TAG_MESSAGE, msg, Some(None))
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_tagged(TAG_MESSAGE, msg, None)
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_tagged(TAG_MESSAGE, msg, after(timeout))
    }
}

impl MessageReceiver for Datagram {
    fn max_message(&self) -> usize {
        self.max
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
}

/// A POSIX message queue behind the message API: all messages at one
/// priority, plus the close mark (see the module docs). For priorities use
/// [`MessageQueue`] directly.
///
/// A channel is one way: one handle sends, the other receives. How each end
/// learns that the other is gone:
///
/// - A sending handle sends the close mark when it drops (priority 0, so it
///   comes after every message), waiting at most [`CLOSE_WAIT`] for room.
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
/// use shmlane_posix::dgram::MqChannel;
/// use shmlane_posix::mqueue::MqOptions;
/// use shmlane_posix::transport::{MessageReceiver, MessageSender};
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

/// How long a dropping [`MqChannel`] (or [`Datagram`]) waits for room to
/// send its close mark. If it cannot, the peer still learns of the close
/// (see [`MqChannel`] and [`Datagram`]).
pub const CLOSE_WAIT: Duration = Duration::from_millis(100);

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
    /// use shmlane_posix::dgram::MqChannel;
    /// use shmlane_posix::mqueue::MqOptions;
    /// use shmlane_posix::transport::MessageReceiver;
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
    pub(crate) fn create_reclaiming(name: &str, options: &MqOptions) -> Result<MqChannel> {
        Ok(Self::wrap(MessageQueue::create_reclaiming(name, options)?))
    }

    /// Opens the existing queue `name`, which must belong to the effective
    /// uid and be writable by nobody else ([`MessageQueue::open`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::MqChannel;
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
    /// use shmlane_posix::dgram::MqChannel;
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
    /// use shmlane_posix::dgram::MqChannel;
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
            match self.queue.try_receive(&mut self.scratch) {
                Ok((n, _priority)) => return self.delivered(n, buf),
                Err(Error::Empty) => {}
                Err(e) => return Err(e),
            }
            if self.probe_due() && self.peer_gone()? {
                // All the peer sent was queued before it let go of the
                // lock: what is not queued now never will be.
                return match self.queue.try_receive(&mut self.scratch) {
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
}
