//! Messages as unix datagrams behind the message API of
//! [`crate::transport`], and the close mark that this transport and the
//! message-queue channel ([`crate::mqueue::MqChannel`]) share.
//!
//! Both kernels keep message boundaries, but neither tells a receiver that
//! its peer is gone. So each message carries one tag byte: `0` for a
//! message, `1` for "the sender closed", which the sending end sends when
//! it drops. A receiver returns [`Error::Disconnected`] at that mark, after
//! every message sent before it. A mark that cannot be sent (no room), or
//! a peer killed with SIGKILL, is noticed all the same, in bounded time: a
//! receiver with nothing to read checks, every
//! [`PROBE_INTERVAL`], whether its peer still
//! exists, and once it does not, receives what is still queued and then
//! returns [`Error::Disconnected`] (see [`Datagram`] and [`MqChannel`](crate::mqueue::MqChannel) for
//! how each checks). A datagram server, which knows its client's pid from
//! the hello, instead waits on the client's pidfd and its socket at once
//! and probes only when the pidfd says the process ended: no periodic
//! wake-ups (see `PeerProcess`).
//!
//! Invariants of this module:
//!
//! - Only the peer's traffic is delivered. A [`Datagram`] receives only
//!   from the peer's socket (the kernel refuses every other sender once
//!   the pair is connected, and anything queued before that is checked by
//!   its source address and dropped); an [`MqChannel`](crate::mqueue::MqChannel) uses only a queue
//!   that [`crate::mqueue`] checked (owner and mode).
//! - Nothing accepted for sending is lost while the peer is there to read
//!   it: no receive queue is ever purged by the kernel (see [`Datagram`]),
//!   and a message too long for the receiver is an error of its own
//!   ([`Error::FrameTooLarge`]), never cut short and passed off as whole.
//! - Every close reaches the peer or the peer learns of it within about a
//!   probe interval (as above).
//! - Bad input from the peer is a typed error, never a panic.
//!
//! The calls that wait as long as it takes wait inside the kernel's send
//! or receive call itself, as plain blocking calls do, in slices (a socket
//! timeout) between which they check on the peer; the other calls never
//! wait (`MSG_DONTWAIT`) or wait in `poll` until their deadline. A message
//! queue waits in `poll`, see [`crate::mqueue`].

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, Shutdown, SocketAddrUnix};

use crate::gate::PROBE_INTERVAL;
use crate::mqueue::CLOSE_WAIT;
use crate::transport::{
    MessageReceiver, MessageSender, PeerCredentials, deliver, take_unread, wait_ready,
};
use crate::unix::bind_unix_path;
use crate::{Error, Result, Role};

mod pair;
use pair::*;

pub(crate) const TAG_MESSAGE: u8 = 0;
pub(crate) const TAG_CLOSE: u8 = 1;
const TAG_HELLO: u8 = 2;
const TAG_WELCOME: u8 = 3;

/// A tagged message in `buf`, or the end: the payload's length.
pub(crate) fn untag(buf: &[u8], n: usize) -> Result<usize> {
    match buf.first() {
        Some(&TAG_MESSAGE) if n >= 1 => Ok(n - 1),
        Some(&TAG_CLOSE) => Err(Error::Disconnected),
        _ => Err(Error::Truncated),
    }
}

/// Bytes of the random token a client's hello carries and the server's
/// welcome echoes: only the server that received the hello can know it.
const NONCE_LEN: usize = 16;

/// Room for a handshake datagram: tag, token, and a socket path.
const HANDSHAKE_MAX: usize = 1 + NONCE_LEN + 108;

/// The longest `sun_path` the kernel takes (108 bytes, one for a NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The largest `max_message` a [`Datagram`] accepts (far above what the
/// kernel's socket buffers let through, so a real limit is the kernel's).
pub const MAX_DATAGRAM: usize = 1 << 24;

/// Default permission bits of a [`Datagram`]'s socket file (the umask
/// applies too): only its owner may send to it.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// One unix datagram socket pair, bound to a path, joined to exactly one
/// peer.
///
/// # The pair and its handshake
///
/// Each end has two sockets: one *bound* at its path, which only receives,
/// and one *sending* socket with an abstract name the kernel picks
/// (autobind), which only sends. A client [`Datagram::connect`]s its
/// sending socket to the server's path and sends its hello
/// ([`Datagram::send_hello`]): a random token and the path of its own
/// bound socket. The server ([`Datagram::accept_hello`]) connects its bound
/// socket to the client's sending socket (the hello's source address, which
/// the kernel vouches for) and its sending socket to the client's path, and
/// answers with a welcome that echoes the token; the client's bound socket,
/// on that welcome, connects to the server's sending socket. From then on
/// the kernel refuses datagrams from any other sender (`EPERM`); datagrams
/// that others queued before are told apart by their source address and
/// dropped, never delivered (counted by [`Datagram::dropped_datagrams`]).
/// So nobody else can inject messages or a close mark.
///
/// Why two sockets: when a connected datagram socket sends to a peer that
/// has closed, the kernel purges that socket's own receive queue, so a
/// socket that both received and sent would lose what the peer sent just
/// before it closed. Here the sockets that receive never send.
///
/// The server records the client's credentials from the hello
/// (`SCM_CREDENTIALS`, which the kernel fills in and a process cannot
/// forge), the client the server's from the welcome:
/// [`Datagram::peer_credentials`]. [`Datagram::accept_hello_from`] refuses
/// a client of another uid.
///
/// # Ends
///
/// A send finds the peer gone ([`Error::Disconnected`]) once its bound
/// socket is closed or its receiving half dropped; a send that waits for
/// room also checks, every 100 ms, that the peer's socket still exists (see
/// below). A receive returns [`Error::Disconnected`] at the peer's close
/// mark, or, when there is nothing to read, once the peer's bound socket is
/// gone (its file removed or replaced, or nothing bound to it any more: a
/// fresh socket's `connect` to it is refused): checked at most every
/// [`PROBE_INTERVAL`], after which what is still queued is received first.
/// A peer killed with SIGKILL is noticed so, within about a probe interval.
///
/// # Paths
///
/// [`Datagram::bind`] creates the socket file with mode 0600 (less the
/// umask; [`Datagram::bind_with`] takes another) before anything can
/// connect to it. A socket file left at the path by a dead process of the
/// same user is replaced; one of another user is [`Error::ForeignOwner`],
/// a live socket [`Error::AlreadyExists`], and a symbolic link (never
/// followed) or any other file [`Error::WrongType`]. The file is removed when the last half drops,
/// if it is still the one bind made. A client's path in its hello is made
/// absolute, so a server in another working directory finds it; it must
/// fit a socket address (107 bytes).
///
/// # Examples
///
/// ```
/// use shmlane_posix::dgram::Datagram;
/// use shmlane_posix::{MessageReceiver, MessageSender};
///
/// let dir = std::env::temp_dir();
/// let id = std::process::id();
/// let mut server = Datagram::bind(dir.join(format!("doc-dg-s-{id}")), 1024)?;
/// let mut client = Datagram::bind(dir.join(format!("doc-dg-c-{id}")), 1024)?;
/// client.connect(server.path())?;
/// client.send_hello()?;
/// server.accept_hello()?;
/// client.send(b"one datagram")?;
/// let mut buf = [0; 1024];
/// assert_eq!(server.recv(&mut buf)?, 12);
/// drop(client); // sends the close mark
/// assert!(matches!(server.recv(&mut buf), Err(shmlane_posix::Error::Disconnected)));
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug)]
pub struct Datagram {
    shared: Arc<Shared>,
    half: Half,
    max: usize,
    /// `max + 1` bytes: a received datagram, or a small one being sent.
    scratch: Vec<u8>,
    unread: Option<Vec<u8>>,
    /// Where every datagram received must come from: the peer's sending
    /// socket (known from its hello, or, on a client, from the welcome).
    source: Option<SocketAddrUnix>,
    /// When the peer was last probed (receiving, or waiting to send).
    last_probe: Option<Instant>,
    /// Receiving: the peer was found gone; what is queued is the rest.
    peer_gone: bool,
    /// Receiving: the watch on the peer's process, where its pid is known
    /// (a server, from the hello's credentials): see [`PeerProcess`].
    process: PeerProcess,
    /// [`Error::Disconnected`] was returned: every later call returns it.
    disconnected: bool,
}

/// Which calls a [`Datagram`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    /// Both: not split.
    Both,
    /// The sending half of [`Datagram::split`].
    Sending,
    /// The receiving half of [`Datagram::split`].
    Receiving,
}

/// How a receiving [`Datagram`] learns that its peer's process ended
/// without waking every [`PROBE_INTERVAL`]: a server knows its client's
/// pid (the kernel's credentials of the hello), opens a pidfd for it, and
/// waits in `poll` on its socket and the pidfd at once, with no timeout.
/// When the pidfd turns readable it probes the peer's socket (the truth,
/// as for the other probes); a probe that finds the peer still there (the
/// pid was reused, or a forked child holds the socket) ends the watch, and
/// the receive goes back to probing every interval. A client does not know
/// its server's pid and always probes.
#[derive(Debug)]
enum PeerProcess {
    /// Not tried yet.
    Unwatched,
    /// The peer's pidfd, and whether it turned readable.
    Watched(OwnedFd, bool),
    /// No pid, no pidfd, or a watch that proved wrong: probe.
    Unwatchable,
}

/// How often a blocking [`Datagram`] send that waits for room checks that
/// the peer's socket still exists.
const LIVENESS_CHECK: Duration = Duration::from_millis(100);

/// The longest message that [`Datagram`] copies behind its tag to send it
/// as one buffer (cheaper than two); longer ones go out as two parts.
const SMALL_MESSAGE: usize = 1024;

/// The least [`Datagram`] maximum for which a receive into a buffer of at
/// least that size receives straight into it, without a copy.
const DIRECT_MIN: usize = 4096;

/// Whether the flags of a socket call that may wait (`Some(deadline)`)
/// or not (`None`) include `MSG_DONTWAIT`: only a call that waits as long
/// as it takes waits in the kernel.
fn dontwait(deadline: Option<Option<Instant>>) -> bool {
    deadline != Some(None)
}

impl Datagram {
    /// Binds a datagram socket at `path` for messages of at most
    /// `max_message` bytes, its file of mode 0600 (less the umask):
    /// [`Datagram::bind_with`] with [`DEFAULT_SOCKET_MODE`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use shmlane_posix::dgram::Datagram;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-dg-bind-{}", std::process::id()));
    /// let socket = Datagram::bind(&path, 512)?;
    /// let mode = std::fs::symlink_metadata(&path).unwrap().permissions().mode();
    /// assert_eq!(mode & 0o077, 0); // nobody else may send to it
    /// drop(socket);
    /// assert!(!path.exists());
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>, max_message: usize) -> Result<Datagram> {
        Self::bind_with(path, max_message, DEFAULT_SOCKET_MODE)
    }

    /// Binds a datagram socket at `path` for messages of at most
    /// `max_message` bytes (up to [`MAX_DATAGRAM`]), its socket file created
    /// with the permission bits `mode` less the umask (set on the socket
    /// before it is bound, so the file never has others). To send to it, a
    /// process needs write permission on the file (and search permission on
    /// the directories above).
    ///
    /// A socket file at `path` that nobody is bound to, owned by the
    /// effective uid, is replaced (a dead process of ours left it); a
    /// socket file of another user is [`Error::ForeignOwner`]; a live
    /// socket is [`Error::AlreadyExists`]; a symbolic link (never
    /// followed) or any other file is [`Error::WrongType`]. Nothing of
    /// those is removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use shmlane_posix::dgram::Datagram;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-dg-bind-with-{}", std::process::id()));
    /// let socket = Datagram::bind_with(&path, 512, 0o660)?; // the group may send too
    /// let mode = std::fs::symlink_metadata(&path).unwrap().permissions().mode();
    /// assert_eq!(mode & 0o007, 0);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn bind_with(path: impl AsRef<Path>, max_message: usize, mode: u32) -> Result<Datagram> {
        let path = path.as_ref();
        if max_message > MAX_DATAGRAM {
            return Err(Error::InvalidMaxMessage {
                max_message,
                limit: MAX_DATAGRAM,
            });
        }
        let address = socket_address(path)?;
        let absolute = std::path::absolute(path).map_err(|e| Error::io("getcwd", e))?;
        let me = rustix::process::geteuid().as_raw();
        // A stale socket file is replaced only if it is ours. (Checked here
        // and again by the probe below, which runs right before removal.)
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() && meta.uid() != me {
                return Err(Error::ForeignOwner {
                    name: path.display().to_string(),
                    owner: meta.uid(),
                    expected: me,
                });
            }
        }
        let rx = bind_unix_path(
            path,
            |_| {
                let rx = dgram_socket()?;
                // Before bind: credentials come with every datagram from
                // the first (a hello, a welcome) until the handshake is done.
                rustix::net::sockopt::set_socket_passcred(&rx, true)?;
                // The socket's mode becomes its file's (less the umask).
                rustix::fs::fchmod(&rx, rustix::fs::Mode::from_raw_mode(mode & 0o777))?;
                rustix::net::bind(&rx, &address)?;
                Ok(rx)
            },
            |p| {
                // Stale only if ours: anything else counts as live.
                let ours = std::fs::symlink_metadata(p).is_ok_and(|m| m.uid() == me);
                if !ours {
                    return Ok(());
                }
                let probe = dgram_socket()?;
                rustix::net::connect(&probe, &address)?;
                Ok(())
            },
        )?;
        let file = socket_file(path).ok_or_else(|| Error::NotFound {
            name: path.display().to_string(),
            object: crate::Object::Socket,
        })?;
        let setup = || -> std::io::Result<OwnedFd> {
            rustix::net::sockopt::set_socket_timeout(
                &rx,
                rustix::net::sockopt::Timeout::Recv,
                Some(PROBE_INTERVAL),
            )?;
            let tx = dgram_socket()?;
            // An abstract name of the kernel's choosing: the peer's bound
            // socket connects to it.
            rustix::net::bind(&tx, &SocketAddrUnix::new_unnamed())?;
            rustix::net::sockopt::set_socket_timeout(
                &tx,
                rustix::net::sockopt::Timeout::Send,
                Some(LIVENESS_CHECK),
            )?;
            Ok(tx)
        };
        let tx = match setup() {
            Ok(tx) => tx,
            Err(e) => {
                if socket_file(path) == Some(file) {
                    let _ = std::fs::remove_file(path);
                }
                return Err(Error::io("socket", e));
            }
        };
        Ok(Datagram::new(
            Arc::new(Shared {
                rx,
                tx,
                path: path.to_owned(),
                absolute,
                file,
                peer: OnceLock::new(),
                nonce: OnceLock::new(),
                credentials: OnceLock::new(),
                close: AtomicU8::new(OPEN),
                dropped: AtomicU64::new(0),
            }),
            Half::Both,
            max_message,
        ))
    }

    fn new(shared: Arc<Shared>, half: Half, max: usize) -> Datagram {
        Datagram {
            shared,
            half,
            max,
            scratch: vec![0; max + 1],
            unread: None,
            source: None,
            last_probe: None,
            process: PeerProcess::Unwatched,
            peer_gone: false,
            disconnected: false,
        }
    }

    /// The path this socket is bound to.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::Datagram;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-dg-path-{}", std::process::id()));
    /// assert_eq!(Datagram::bind(&path, 64)?.path(), path);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The receiving socket: readable while a datagram (a hello) waits.
    pub(crate) fn receiving_fd(&self) -> BorrowedFd<'_> {
        self.shared.rx()
    }

    /// The peer's credentials as the kernel reported them with its hello
    /// (on the server) or its welcome (on a client, once a receive has
    /// seen it): `None` before.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::Datagram;
    ///
    /// let dir = std::env::temp_dir();
    /// let id = std::process::id();
    /// let mut server = Datagram::bind(dir.join(format!("doc-dg-cred-s-{id}")), 64)?;
    /// let mut client = Datagram::bind(dir.join(format!("doc-dg-cred-c-{id}")), 64)?;
    /// assert_eq!(server.peer_credentials(), None);
    /// client.connect(server.path())?;
    /// client.send_hello()?;
    /// let hello = server.accept_hello_from(Some(rustix::process::geteuid().as_raw()))?;
    /// assert_eq!(hello.pid, std::process::id() as i32);
    /// assert_eq!(server.peer_credentials(), Some(hello));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.shared.credentials.get().copied()
    }

    /// How many datagrams were received and dropped, never delivered: from
    /// a sender other than the peer (queued before the pair was connected),
    /// hellos refused or malformed, anything before the handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::Datagram;
    ///
    /// let path = std::env::temp_dir().join(format!("doc-dg-dropped-{}", std::process::id()));
    /// assert_eq!(Datagram::bind(&path, 64)?.dropped_datagrams(), 0);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn dropped_datagrams(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Splits into a sending half and a receiving half, which share the
    /// sockets (each may go to its own thread). The sending half sends the
    /// close mark when it drops; if there is no room for it then, the
    /// receiving half sends it as soon as there is (between the slices of
    /// its waits, and when it drops). The receiving half, when it drops,
    /// shuts its socket for receiving and discards what is queued, so the
    /// peer's sends (even one waiting for room) find it gone. The socket
    /// file is removed when both have dropped. A half called the other way
    /// returns [`Error::RoleTaken`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::Datagram;
    /// use shmlane_posix::{MessageReceiver, MessageSender};
    ///
    /// let dir = std::env::temp_dir();
    /// let id = std::process::id();
    /// let mut server = Datagram::bind(dir.join(format!("doc-dg-split-s-{id}")), 64)?;
    /// let mut client = Datagram::bind(dir.join(format!("doc-dg-split-c-{id}")), 64)?;
    /// client.connect(server.path())?;
    /// client.send_hello()?;
    /// server.accept_hello()?;
    /// let (mut tx, mut rx) = client.split()?;
    /// tx.send(b"ping")?;
    /// let mut buf = [0; 64];
    /// let n = server.recv(&mut buf)?;
    /// server.send(&buf[..n])?;
    /// assert_eq!(rx.recv(&mut buf)?, 4);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn split(mut self) -> Result<(Datagram, Datagram)> {
        let mut receiver = Datagram::new(self.shared.clone(), Half::Receiving, self.max);
        receiver.unread = self.unread.take();
        receiver.source = self.source.take();
        receiver.peer_gone = self.peer_gone;
        receiver.disconnected = self.disconnected;
        self.half = Half::Sending;
        Ok((self, receiver))
    }

    fn send_tagged(
        &mut self,
        tag: u8,
        msg: &[u8],
        deadline: Option<Option<Instant>>,
    ) -> Result<()> {
        if self.half == Half::Receiving {
            return Err(Error::RoleTaken(Role::Producer));
        }
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        // A small message is copied behind its tag and sent as one buffer;
        // a larger one goes out as tag and message, without the copy.
        let small = msg.len() <= SMALL_MESSAGE;
        let mut scratch = std::mem::take(&mut self.scratch);
        if small {
            scratch[0] = tag;
            scratch[1..=msg.len()].copy_from_slice(msg);
        }
        let tag = [tag];
        let message = Tagged {
            whole: &scratch[..=msg.len()],
            parts: [IoSlice::new(&tag), IoSlice::new(msg)],
            small,
        };
        let sent = self.send_message(&message, deadline);
        self.scratch = scratch;
        sent
    }

    /// Sends `message` to the peer, as long as `deadline` allows.
    fn send_message(
        &mut self,
        message: &Tagged<'_>,
        deadline: Option<Option<Instant>>,
    ) -> Result<()> {
        if self.shared.peer.get().is_none() {
            return Err(Error::NotFound {
                name: "datagram peer (call connect or accept_hello)".to_owned(),
                object: crate::Object::Socket,
            });
        }
        if self.disconnected {
            return Err(Error::Disconnected);
        }
        let flags = if dontwait(deadline) {
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT
        } else {
            SendFlags::NOSIGNAL
        };
        loop {
            match message.send(self.shared.tx(), flags) {
                Ok(_) => return Ok(()),
                Err(Errno::AGAIN) => match deadline {
                    None => return Err(Error::Full),
                    // A blocking send waited `LIVENESS_CHECK` for room in
                    // vain: is the peer still there?
                    Some(None) => {
                        if self.shared.peer_gone() {
                            self.disconnected = true;
                            return Err(Error::Disconnected);
                        }
                    }
                    Some(Some(d)) => {
                        let slice = Instant::now() + LIVENESS_CHECK;
                        match wait_ready(self.shared.tx(), PollFlags::OUT, Some(d.min(slice))) {
                            Err(Error::TimedOut) if d > slice => {
                                if self.shared.peer_gone() {
                                    self.disconnected = true;
                                    return Err(Error::Disconnected);
                                }
                            }
                            Err(e) => return Err(e),
                            Ok(()) => {}
                        }
                    }
                },
                Err(Errno::INTR) => {}
                // Nothing bound to the peer's socket any more (refused,
                // then not connected), its receiving half dropped (EPIPE),
                // or it is joined to another socket (EPERM).
                Err(Errno::CONNREFUSED | Errno::NOTCONN | Errno::PIPE | Errno::PERM) => {
                    self.disconnected = true;
                    return Err(Error::Disconnected);
                }
                Err(e) => return Err(Error::io("send", e)),
            }
        }
    }

    fn recv_tagged(&mut self, buf: &mut [u8], deadline: Option<Option<Instant>>) -> Result<usize> {
        if let Some(kept) = take_unread(&mut self.unread, buf) {
            return kept;
        }
        if self.half == Half::Sending {
            return Err(Error::RoleTaken(Role::Consumer));
        }
        if self.disconnected {
            return Err(Error::Disconnected);
        }
        if self.shared.peer.get().is_none() {
            return Err(Error::NotFound {
                name: "datagram peer (call connect or accept_hello)".to_owned(),
                object: crate::Object::Socket,
            });
        }
        loop {
            let watched = deadline.is_some() && !self.peer_gone && self.watch_peer_process();
            // Once the peer is gone, what is queued is all there is: no wait.
            // A watched peer is waited for in `poll`, not in the receive.
            let nowait = dontwait(deadline) || self.peer_gone || watched;
            let received = if self.source.is_none() {
                self.await_welcome(nowait).map(|_| None)
            } else {
                self.recv_one(buf, nowait).map(Some)
            };
            match received {
                Ok(Some(Some(received))) => {
                    if let Err(Error::Disconnected) = received {
                        // The peer's close mark.
                        self.disconnected = true;
                    }
                    return received;
                }
                Ok(_) => {} // dropped, or the handshake: the next one
                Err(Errno::AGAIN) => {
                    if self.peer_gone {
                        self.disconnected = true;
                        return Err(Error::Disconnected);
                    }
                    let fired = matches!(self.process, PeerProcess::Watched(_, true));
                    let due = self
                        .last_probe
                        .is_none_or(|t| t.elapsed() >= PROBE_INTERVAL);
                    if fired || (!watched && due) {
                        self.last_probe = Some(Instant::now());
                        // A close mark our sending half could not send.
                        self.shared.flush_close_mark(Duration::ZERO);
                        if self.shared.peer_gone() {
                            // Receive what it sent before it went first.
                            self.peer_gone = true;
                            continue;
                        }
                        if fired {
                            // Its process ended, its socket did not: the
                            // watch was wrong. Probe from now on.
                            self.process = PeerProcess::Unwatchable;
                            continue;
                        }
                    }
                    match deadline {
                        None => return Err(Error::Empty),
                        Some(until) if watched => self.wait_for_peer(until)?,
                        // The receive timeout: a slice; probe, go on.
                        Some(None) => {}
                        Some(Some(d)) => {
                            let slice = Instant::now() + PROBE_INTERVAL;
                            match wait_ready(self.shared.rx(), PollFlags::IN, Some(d.min(slice))) {
                                Err(Error::TimedOut) if d > slice => {}
                                done => done?,
                            }
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(Error::io("recvmsg", e)),
            }
        }
    }

    /// Whether this receiving end watches its peer's process (see
    /// [`PeerProcess`]), starting the watch if it can. Not while a close
    /// mark of ours is pending: the probes send it.
    fn watch_peer_process(&mut self) -> bool {
        if self.shared.close.load(Ordering::Acquire) == PENDING {
            return false;
        }
        if matches!(self.process, PeerProcess::Unwatched) {
            let pid = self
                .shared
                .credentials
                .get()
                .and_then(|c| rustix::process::Pid::from_raw(c.pid));
            let pidfd = pid.and_then(|pid| {
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
            });
            self.process = match pidfd {
                // The pidfd is the peer's only if the peer is there after
                // it was opened (else the next probe finds it gone).
                Some(pidfd) if !self.shared.peer_gone() => PeerProcess::Watched(pidfd, false),
                _ => PeerProcess::Unwatchable,
            };
        }
        matches!(self.process, PeerProcess::Watched(..))
    }

    /// Waits until the socket is readable or the watched peer's process
    /// ended (marking the watch fired), not past `until`.
    fn wait_for_peer(&mut self, until: Option<Instant>) -> Result<()> {
        let PeerProcess::Watched(pidfd, fired) = &mut self.process else {
            return Ok(());
        };
        let mut fds = [
            rustix::event::PollFd::from_borrowed_fd(self.shared.rx(), PollFlags::IN),
            rustix::event::PollFd::from_borrowed_fd(pidfd.as_fd(), PollFlags::IN),
        ];
        let timeout = until.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            }
        });
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => return Err(Error::TimedOut),
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(Error::io("poll", e)),
        }
        if !fds[1].revents().is_empty() {
            *fired = true;
        }
        Ok(())
    }

    /// One datagram from the bound socket, if it is the peer's: `Ok(None)`
    /// if it was dropped (another sender's, a handshake repeated), else
    /// `Some` of what the receive returns (the close mark is
    /// [`Error::Disconnected`]).
    fn recv_one(
        &mut self,
        buf: &mut [u8],
        dontwait: bool,
    ) -> std::result::Result<Option<Result<usize>>, Errno> {
        let mut flags = RecvFlags::TRUNC;
        if dontwait {
            flags |= RecvFlags::DONTWAIT;
        }
        let mut no_control = rustix::net::RecvAncillaryBuffer::default();
        // A large message that surely fits `buf` is received straight into
        // it, behind its tag; otherwise into `scratch` and copied.
        let direct = self.max >= DIRECT_MIN && buf.len() >= self.max;
        let mut tag = [TAG_HELLO]; // (not a message, if nothing came)
        let got = if direct {
            let mut parts = [
                IoSliceMut::new(&mut tag),
                IoSliceMut::new(&mut buf[..self.max]),
            ];
            rustix::net::recvmsg(self.shared.rx(), &mut parts, &mut no_control, flags)?
        } else {
            let mut parts = [IoSliceMut::new(&mut self.scratch)];
            let got = rustix::net::recvmsg(self.shared.rx(), &mut parts, &mut no_control, flags)?;
            tag[0] = self.scratch[0];
            got
        };
        let from = got.address.and_then(|a| SocketAddrUnix::try_from(a).ok());
        if from.is_none() || from != self.source {
            self.shared.dropped();
            return Ok(None);
        }
        let n = got.bytes;
        if n == 0 {
            return Ok(Some(Err(Error::Truncated)));
        }
        if n > self.max + 1 {
            // Consumed: the next datagram is whole again.
            return Ok(Some(Err(Error::FrameTooLarge {
                len: n - 1,
                max: self.max,
            })));
        }
        Ok(match tag[0] {
            // A hello sent twice, a welcome: part of the handshake.
            TAG_HELLO | TAG_WELCOME => None,
            TAG_MESSAGE if direct => Some(Ok(n - 1)),
            TAG_MESSAGE => Some(deliver(&self.scratch[1..n], buf, &mut self.unread)),
            _ => Some(untag(&tag, n)),
        })
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
    /// One send on `socket`, to the socket it is connected to.
    fn send(&self, socket: BorrowedFd<'_>, flags: SendFlags) -> std::result::Result<usize, Errno> {
        if self.small {
            rustix::net::send(socket, self.whole, flags)
        } else {
            let mut no_control = rustix::net::SendAncillaryBuffer::default();
            rustix::net::sendmsg(socket, &self.parts, &mut no_control, flags)
        }
    }
}

pub(crate) fn after(timeout: Duration) -> Option<Option<Instant>> {
    Some(Instant::now().checked_add(timeout))
}

impl Drop for Datagram {
    fn drop(&mut self) {
        if self.half != Half::Receiving
            && self.shared.peer.get().is_some()
            && !self.disconnected
            && self.shared.close.load(Ordering::Acquire) == OPEN
        {
            let done = self.shared.send_close_mark(CLOSE_WAIT);
            let state = if done { SENT } else { PENDING };
            self.shared.close.store(state, Ordering::Release);
        }
        if self.half == Half::Receiving {
            // Nobody receives here any more: the peer's sends find it so
            // (EPIPE), and one waiting for room (its datagrams queued here)
            // wakes as they are discarded.
            let _ = rustix::net::shutdown(self.shared.rx(), Shutdown::Read);
            let mut sink = [0u8; 1];
            // Bounded: nothing new is queued after the shutdown, and an
            // empty queue then reads as 0 bytes.
            for _ in 0..1_000_000 {
                match rustix::net::recv(self.shared.rx(), &mut sink, RecvFlags::DONTWAIT) {
                    Ok((_, 0)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            self.shared.flush_close_mark(CLOSE_WAIT);
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
    fn send_ready_fd(&self) -> Result<(BorrowedFd<'_>, bool)> {
        Ok((self.shared.tx(), false))
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
    /// The receiving socket: readable while a datagram (or the close mark)
    /// waits; a datagram of someone else's is dropped by the receive. A
    /// peer killed without its close mark is seen by the next receive's
    /// probe, not by the fd.
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.shared.rx())
    }
    fn arm(&mut self) -> Result<bool> {
        Ok(!(self.unread.is_some() || self.peer_gone || self.disconnected))
    }
}
