//! Many clients per shared-memory listener: `listen("shm:/name")` binds a
//! unix stream socket at `/dev/shm/name.sock`, and each client that
//! connects there gets a ring pair of its own.
//!
//! The protocol, one connection per client, closed once the rings are in
//! place:
//!
//! 1. The client connects and checks who listens (`SO_PEERCRED`): a
//!    process of the expected owner (the effective uid, or
//!    [`Options::owner`]), or [`Error::ForeignOwner`]: a socket another
//!    user squats at the name never receives anything.
//! 2. The listener admits the client by its uid ([`EndpointOptions`]'
//!    `peer_uid`; others are refused, closed and counted), creates two
//!    anonymous rings (`memfd`s, sealed against shrinking and growing) with
//!    its own [`Options`], claims its ends, and sends, in one message
//!    (`SCM_RIGHTS`) after a [`HELLO`] tag, both rings' descriptors and the
//!    sending ends of its two sides' doorbells.
//! 3. The client maps the rings ([`Segment::from_fd`](crate::Segment::from_fd)
//!    refuses an unsealed one), claims the other ends and answers one
//!    [`ACK`] byte with the sending ends of its own two doorbells; only then
//!    does the listener hand the connection out.
//!
//! The doorbells are each side's readiness fd (what a `Selector`, epoll or
//! tokio waits on): the receiving end of a unix datagram socket pair, whose
//! sending end the peer's gate rings with one byte whenever it wakes this
//! side, as it wakes a futex sleeper. So a side waiting on its fd is woken
//! by the peer directly, with no bridge thread between (the channels of
//! [`Sender::create`](crate::Sender::create) and friends have no one to
//! exchange them with, and go through the bridge). Each end received is
//! checked to be a datagram socket of a pair the peer made (`SO_PEERCRED`),
//! so that a hostile peer cannot make this process send on its behalf to
//! some other socket; a send on it never waits (`MSG_DONTWAIT`).
//!
//! Why the listener makes the rings: it decides how much memory it maps
//! (a client cannot hand it a sealed terabyte), the rings get its capacity,
//! wait mode and message type (a client of another type fails at attach:
//! [`Error::TypeMismatch`]), and no per-client name ever exists in
//! `/dev/shm`: nothing is left behind after a crash. The sealing is the
//! listener's, so a hostile client cannot shrink the memory under it
//! (`SIGBUS`); the client checks the seals just as carefully.
//!
//! The invariant: a connection is handed out only once both ends of both
//! rings are claimed (so each side's death is seen by the other through the
//! role locks and the pid watch, with no periodic wake-up), and a client
//! that fails the handshake — gone, silent past [`HANDSHAKE_TIMEOUT`], or
//! garbled — is dropped with its rings. Handshakes run side by side: the
//! listener sends every waiting client its rings at once and hands out
//! whichever answers first, so a hostile client that never answers holds
//! two rings for a while but delays nobody.
//!
//! A client waits for its rings as long as [`Options::open_timeout`] says
//! (default 1 s): they come when the listener next calls an `accept`.
//!
//! [`EndpointOptions`]: crate::endpoint::EndpointOptions

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use rustix::event::{PollFlags, epoll};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::address::MAX_UNIX_PATH_LEN;
use crate::fdpass::{recv_fds, send_fds};
use crate::names::suffixed;
use crate::ready::is_peer_waker;
use crate::transport::{Block, PeerCredentials, wait_ready};
use crate::unix::{admit, unix_peer};
use crate::{Error, Object, Options, Receiver, Result, Sender};

/// The tag of the listener's message that carries the two rings (and says
/// which protocol it speaks: the last byte is its version).
pub const HELLO: &[u8; 8] = b"SHMLRDV\x01";
/// The client's answer once it holds both rings.
pub const ACK: u8 = b'A';
/// How long a listener keeps a client's rings waiting for its answer
/// before it drops them. Handshakes run side by side (up to 64 at once),
/// so a silent client delays no other.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the listener of the shared-memory name `name` listens:
/// `/dev/shm/<name>.sock`, after the name rules (the whole `<name>.sock` is
/// checked, as a segment name) and the limit of a socket path.
pub(crate) fn socket_path(name: &str) -> Result<PathBuf> {
    let name = suffixed(Object::Segment, name, "sock")?;
    let path = format!("/dev/shm{name}");
    if path.len() > MAX_UNIX_PATH_LEN {
        return Err(Error::InvalidAddress {
            address: format!("shm:{}", name.trim_end_matches(".sock")),
            reason: "the listener's socket, /dev/shm/<name>.sock, would be longer than 107 bytes",
        });
    }
    Ok(PathBuf::from(path))
}

/// The most clients whose handshake a listener runs at once: each holds
/// two rings until it answers (or [`HANDSHAKE_TIMEOUT`] passes). Further
/// clients wait in the socket's backlog.
const MAX_PENDING: usize = 64;

/// A listening shared-memory endpoint (see the module's protocol).
#[derive(Debug)]
pub(crate) struct ShmListener {
    socket: UnixListener,
    path: PathBuf,
    name: String,
    options: Options,
    peer_uid: Option<u32>,
    /// Clients refused for their uid (counted by `admit`; the endpoint's
    /// `Listener::refused` counts every transport's).
    refused: AtomicU64,
    /// Readable when the socket has a client to take in or a pending
    /// client has answered (or hung up): the listener's readiness fd.
    epoll: OwnedFd,
    /// Clients sent their rings, not yet answered: handshakes run side by
    /// side, so a slow or silent client delays nobody else.
    pending: Vec<Pending>,
    /// Whether the socket is in the epoll set: not while [`MAX_PENDING`]
    /// handshakes run (a waiting client would make it readable forever).
    socket_watched: bool,
}

/// A client sent its rings, waiting for its answer.
#[derive(Debug)]
struct Pending {
    stream: UnixStream,
    joined: Joined,
    deadline: Instant,
}

/// One accepted (or connected) client: its rings and who is at the other
/// end.
pub(crate) struct Joined {
    pub tx: Sender,
    pub rx: Receiver,
    pub peer: PeerCredentials,
}

impl std::fmt::Debug for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl ShmListener {
    /// Binds the socket of `name` (a stale one of ours is replaced, see
    /// [`crate::unix::bind_unix_path`]), file mode `mode` less the umask,
    /// rings made with `options`; only peers of `peer_uid`, if set.
    pub(crate) fn bind(
        name: &str,
        options: &Options,
        mode: u32,
        peer_uid: Option<u32>,
    ) -> Result<ShmListener> {
        // A bad capacity is refused before anything is bound.
        options.region_size()?;
        let path = socket_path(name)?;
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::io("epoll_create", e))?;
        let socket = crate::unix::bind_unix_path(
            &path,
            |p| crate::unix::listen_unix(p, mode),
            |p| UnixStream::connect(p).map(drop),
        )?;
        watch(&epoll, socket.as_fd())?;
        Ok(ShmListener {
            socket,
            path,
            name: name.to_owned(),
            options: options.clone(),
            peer_uid,
            refused: AtomicU64::new(0),
            epoll,
            pending: Vec::new(),
            socket_watched: true,
        })
    }

    /// The shared-memory name clients connect to.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Readable while a client waits to be taken in or has answered.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// The next client that completes the handshake, waiting as `block`
    /// says: [`Error::Empty`] when `Block::No` finds none ready,
    /// [`Error::TimedOut`] at the deadline, [`Error::PeerRefused`] for a
    /// client of another uid (call again for the next).
    pub(crate) fn accept(&mut self, block: Block) -> Result<Joined> {
        loop {
            let now = Instant::now();
            // Silent past their time: dropped with their rings.
            self.pending.retain(|p| p.deadline > now);
            self.take_in()?;
            let held = self.pending.len();
            if let Some(joined) = self.answered() {
                return Ok(joined);
            }
            if self.pending.len() < held {
                // Clients that hung up freed their slots: take in the ones
                // waiting in the backlog (and watch the socket again, if a
                // full house had taken it out of the set) before sleeping,
                // or nothing would wake us for them.
                continue;
            }
            let deadline = match block {
                Block::No => return Err(Error::Empty),
                Block::Until(deadline) => deadline,
            };
            // Until something happens, the caller's deadline, or the first
            // pending client's.
            let first = self.pending.iter().map(|p| p.deadline).min();
            let until = match (deadline, first) {
                (Some(d), Some(f)) => Some(d.min(f)),
                (d, f) => d.or(f),
            };
            match wait_ready(self.fd(), PollFlags::IN, until) {
                Err(Error::TimedOut) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Err(Error::TimedOut);
                }
                Err(Error::TimedOut) => {} // a pending client's time is up
                other => other?,
            }
        }
    }

    /// Takes in the clients waiting on the socket (while fewer than
    /// [`MAX_PENDING`] handshakes run): admits each by its uid, makes its
    /// rings and sends them.
    fn take_in(&mut self) -> Result<()> {
        let taken = self.take_in_some();
        let full = self.pending.len() >= MAX_PENDING;
        if full == self.socket_watched {
            let socket = self.socket.as_fd();
            if full {
                epoll::delete(&self.epoll, socket).map_err(|e| Error::io("epoll_ctl", e))?;
            } else {
                watch(&self.epoll, socket)?;
            }
            self.socket_watched = !full;
        }
        taken
    }

    fn take_in_some(&mut self) -> Result<()> {
        while self.pending.len() < MAX_PENDING {
            let stream = match rustix::net::accept_with(&self.socket, SocketFlags::CLOEXEC) {
                Ok(fd) => UnixStream::from(fd),
                Err(Errno::AGAIN) => return Ok(()),
                // Gave up in between.
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(e) => return Err(Error::io("accept", e)),
            };
            admit(&stream, self.peer_uid, &self.refused)?;
            let Some(peer) = unix_peer(stream.as_fd()) else {
                continue;
            };
            let (rx, c2s, rx_bell) = Receiver::anonymous_direct(&self.options)?;
            let (tx, s2c, tx_bell) = Sender::anonymous_direct(&self.options)?;
            let fds = [c2s.as_fd(), s2c.as_fd(), rx_bell.as_fd(), tx_bell.as_fd()];
            match send_fds(&stream, HELLO, &fds) {
                Ok(()) => {}
                Err(Error::Disconnected) => continue, // gone already
                Err(e) => return Err(e),
            }
            watch(&self.epoll, stream.as_fd())?;
            self.pending.push(Pending {
                stream,
                joined: Joined { tx, rx, peer },
                deadline: Instant::now() + HANDSHAKE_TIMEOUT,
            });
            // Our copies of the client's descriptors close here: from now
            // on the memory lives as long as the mappings.
        }
        Ok(())
    }

    /// The first pending client that answered [`ACK`] (with its
    /// doorbells). Every other that hung up or answered anything else is
    /// dropped with its rings on the way (closing its stream also takes it
    /// out of the epoll set), so that dead clients are freed at every
    /// accept; later good answers stay pending for the next call.
    fn answered(&mut self) -> Option<Joined> {
        let mut found = None;
        let mut i = 0;
        while i < self.pending.len() {
            let stream = &self.pending[i].stream;
            let readable = crate::transport::poll_now(stream.as_fd()).is_ok_and(|r| !r.is_empty());
            if !readable || (found.is_some() && !hung_up(stream)) {
                i += 1;
                continue;
            }
            let pending = self.pending.swap_remove(i);
            if let Some(joined) = complete(pending) {
                found = Some(joined);
            }
        }
        found
    }
}

/// Whether the client at the other end of `stream` hung up (EOF next).
fn hung_up(stream: &UnixStream) -> bool {
    let mut byte = [0u8; 1];
    let flags = rustix::net::RecvFlags::DONTWAIT | rustix::net::RecvFlags::PEEK;
    match rustix::net::recv(stream, &mut byte, flags) {
        Ok((0, _)) => true,
        Ok(_) | Err(Errno::AGAIN | Errno::INTR) => false,
        Err(_) => true, // reset
    }
}

/// The connection of a pending client whose stream is readable: its
/// answer and the sending ends of its doorbells (its sender's, for our
/// receiver's wakes; its receiver's, for our sender's), each a socket pair
/// the client made. `None` (the client and its rings dropped) for anything
/// else.
fn complete(pending: Pending) -> Option<Joined> {
    let mut answer = [0u8; 1];
    let got = recv_fds::<2>(&pending.stream, &mut answer).ok()?;
    let pid = pending.joined.peer.pid;
    let [Some(tx_bell), Some(rx_bell)] = got.fds else {
        return None;
    };
    let good = got.bytes == 1
        && !got.truncated
        && answer[0] == ACK
        && is_peer_waker(tx_bell.as_fd(), pid)
        && is_peer_waker(rx_bell.as_fd(), pid);
    if !good {
        return None;
    }
    pending.joined.rx.set_peer_bell(tx_bell);
    pending.joined.tx.set_peer_bell(rx_bell);
    Some(pending.joined)
}

/// Adds `fd` to the listener's epoll set (for input).
fn watch(epoll: &OwnedFd, fd: BorrowedFd<'_>) -> Result<()> {
    epoll::add(
        epoll,
        fd,
        epoll::EventData::new_u64(0),
        epoll::EventFlags::IN,
    )
    .map_err(|e| Error::io("epoll_ctl", e))
}

impl Drop for ShmListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Connects to the listener of the shared-memory name `name` and takes the
/// client's ends of the rings it makes. `options` supplies the wait mode,
/// message type, expected owner (of the listening process) and how long to
/// wait for the rings ([`Options::open_timeout`]).
pub(crate) fn connect(name: &str, options: &Options) -> Result<Joined> {
    let path = socket_path(name)?;
    let not_found = || Error::NotFound {
        name: name.to_owned(),
        object: Object::Socket,
    };
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("socket", e))?;
    let addr =
        rustix::net::SocketAddrUnix::new(path.as_path()).map_err(|e| Error::io("socket", e))?;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            // No socket, or one nobody serves (its listener died).
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::CONNREFUSED) => {
                return Err(not_found());
            }
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                return Err(Error::PermissionDenied {
                    name: name.to_owned(),
                    object: Object::Socket,
                });
            }
            Err(e) => return Err(Error::io("connect", e)),
        }
    }
    let stream = UnixStream::from(fd);
    let peer = unix_peer(stream.as_fd()).ok_or_else(not_found)?;
    let expected = options.get_owner().unwrap_or_else(crate::names::euid);
    if peer.uid != expected {
        return Err(Error::ForeignOwner {
            name: path.display().to_string(),
            owner: peer.uid,
            expected,
        });
    }
    let wait = Instant::now().checked_add(options.get_open_timeout());
    wait_ready(stream.as_fd(), PollFlags::IN, wait)?;
    let mut tag = [0u8; HELLO.len()];
    let got = recv_fds::<4>(&stream, &mut tag)?;
    if got.bytes == 0 {
        // Closed without rings: the listener refused us (our uid), or went.
        return Err(Error::Disconnected);
    }
    if got.truncated || got.bytes != HELLO.len() || &tag != HELLO {
        return Err(Error::NotASegment {
            reason: "the listener's hello is not shmlane's (or of another version)",
        });
    }
    let [Some(c2s), Some(s2c), Some(rx_bell), Some(tx_bell)] = got.fds else {
        if got.dropped_fds {
            // The kernel could not give us the descriptors (EMFILE), or a
            // listener sent more than fit.
            return Err(Error::io(
                "recvmsg (descriptors dropped)",
                rustix::io::Errno::MFILE,
            ));
        }
        return Err(Error::NotASegment {
            reason: "the listener's hello did not carry two rings and two doorbells",
        });
    };
    if !is_peer_waker(rx_bell.as_fd(), peer.pid) || !is_peer_waker(tx_bell.as_fd(), peer.pid) {
        return Err(Error::NotASegment {
            reason: "the listener's doorbells are not socket pairs it made",
        });
    }
    let (tx, tx_waker) = Sender::from_fd_direct(c2s, options)?;
    let (rx, rx_waker) = Receiver::from_fd_direct(s2c, options)?;
    // Our sender wakes the listener's receiver, our receiver its sender.
    tx.set_peer_bell(rx_bell);
    rx.set_peer_bell(tx_bell);
    send_fds(&stream, &[ACK], &[tx_waker.as_fd(), rx_waker.as_fd()])?;
    Ok(Joined { tx, rx, peer })
}
