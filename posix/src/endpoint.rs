//! Endpoints named by one address string, so that a program switches
//! transport by changing that string: [`listen`] on one side and
//! [`connect`] on the other give a two-way [`Connection`].
//!
//! | address | transport | what `listen` creates | clients |
//! | --- | --- | --- | --- |
//! | `shm:/name` | shared-memory rings | a unix socket `/dev/shm/name.sock`; each client gets two sealed `memfd` rings over it ([`crate::rendezvous`]) | any number |
//! | `fifo:path` | named pipes | FIFOs `path.c2s` and `path.s2c` | one |
//! | `mq:/name` | POSIX message queues | queues `/name.c2s` and `/name.s2c` | one |
//! | `unix:path` | unix stream socket | a listening socket | any number |
//! | `unix-dgram:path` | unix datagram sockets | a bound socket (the client binds `path.<pid>.<n>`) | one |
//! | `tcp:host:port` | TCP, `TCP_NODELAY` | a listening socket (port 0: any free port) | any number |
//! | `pipe` | anonymous pipes | nothing: a pipe joins a parent and its child, made with [`Framed::pipe`] | — |
//!
//! Start the listening side first. A listener of a one-client transport
//! (fifo, mq, unix-dgram: their kernel objects join two processes) answers
//! a second [`Listener::accept`] with [`Error::RoleTaken`], and so does its
//! second client's `connect`.
//!
//! The names a listener derives (`.c2s`, `.s2c`) are checked whole, and are
//! its own: one left by a listener that died (nobody holds it) is taken
//! over by the next `listen`; a live one is [`Error::AlreadyExists`];
//! anything that is not a FIFO, queue or segment of the effective uid is a
//! typed error and stays untouched. `connect` opens only objects of the
//! expected owner ([`EndpointOptions::owner`]) that their group and others
//! cannot write beyond [`EndpointOptions::mode`]; a shared-memory `connect`
//! talks only to a listening process of that owner. Where the kernel knows
//! the peer (shared memory and unix sockets: `SO_PEERCRED`; datagrams: the
//! hello's credentials), [`Connection::peer_credentials`] says who it is,
//! and [`EndpointOptions::peer_uid`] restricts a listener to one uid (others
//! are refused and counted: [`Listener::refused`]).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::address::{Address, MAX_UNIX_PATH_LEN};
use crate::dgram::Datagram;
use crate::fifo::{self, FifoOptions};
use crate::mqueue::MqChannel;
use crate::mqueue::MqOptions;
use crate::names::suffixed;
use crate::rendezvous::ShmListener;
use crate::transport::{Block, MessageReceiver, MessageSender, PeerCredentials};
use crate::{Error, Object, Options, Result, Role, lock};
use crate::{Framed, FramedListener, UnixOptions};

/// A two-way message connection over any transport; see [`listen`] for an
/// example.
pub struct Connection {
    tx: Box<dyn MessageSender + Send>,
    rx: Box<dyn MessageReceiver + Send>,
    transport: &'static str,
    peer: Option<PeerCredentials>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("transport", &self.transport)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Joins a sending and a receiving half.
    pub fn new(
        tx: impl MessageSender + Send + 'static,
        rx: impl MessageReceiver + Send + 'static,
        transport: &'static str,
    ) -> Connection {
        Connection {
            tx: Box::new(tx),
            rx: Box::new(rx),
            transport,
            peer: None,
        }
    }

    /// The same connection, naming its peer (see
    /// [`Connection::peer_credentials`]).
    pub fn with_peer_credentials(mut self, peer: Option<PeerCredentials>) -> Connection {
        self.peer = peer;
        self
    }

    /// Who the peer is, where the kernel says: the process, user and group
    /// at the other end of a shared-memory connection or a unix stream
    /// socket (`SO_PEERCRED` of the socket they met on, on both sides; for
    /// a listener, as it was when it started listening) or of a unix
    /// datagram pair (the credentials of its hello, on the listening side).
    /// `None` for the transports whose kernel objects do not tell (FIFOs,
    /// queues, TCP).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::endpoint::{connect, listen, EndpointOptions};
    ///
    /// let address = format!("unix:{}/doc-peer-{}.sock", std::env::temp_dir().display(), std::process::id());
    /// let mut listener = listen(&address, &EndpointOptions::default())?;
    /// let client = connect(&address, &EndpointOptions::default())?;
    /// let server = listener.accept()?;
    /// let peer = server.peer_credentials().unwrap();
    /// assert_eq!(peer.pid, std::process::id() as i32); // the client is us
    /// assert_eq!(client.peer_credentials().unwrap().uid, peer.uid);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.peer
    }

    /// The transport's name (`shm`, `fifo`, `mq`, `unix`, `unix-dgram`,
    /// `tcp`, `pipe`).
    pub fn transport(&self) -> &'static str {
        self.transport
    }

    /// The two halves, to use from two threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::endpoint::{connect, listen, EndpointOptions};
    /// use shmlane_posix::{MessageReceiver, MessageSender};
    ///
    /// let address = format!("unix:{}/doc-split-{}.sock", std::env::temp_dir().display(), std::process::id());
    /// let mut listener = listen(&address, &EndpointOptions::default())?;
    /// let client = connect(&address, &EndpointOptions::default())?;
    /// let (mut tx, mut rx) = client.split();
    /// let reader = std::thread::spawn(move || {
    ///     let mut buf = [0; 64];
    ///     rx.recv(&mut buf).map(|n| buf[..n].to_vec())
    /// });
    /// let mut server = listener.accept()?;
    /// tx.send(b"ping")?;
    /// let mut buf = [0; 64];
    /// let n = server.recv(&mut buf)?;
    /// server.send(&buf[..n])?;
    /// assert_eq!(reader.join().unwrap()?, b"ping");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn split(
        self,
    ) -> (
        Box<dyn MessageSender + Send>,
        Box<dyn MessageReceiver + Send>,
    ) {
        (self.tx, self.rx)
    }
}

impl MessageSender for Connection {
    fn max_message(&self) -> usize {
        self.tx.max_message()
    }
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.send(msg)
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.tx.try_send(msg)
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.tx.send_timeout(msg, timeout)
    }
    fn send_ready_fd(&self) -> Result<(std::os::fd::BorrowedFd<'_>, bool)> {
        self.tx.send_ready_fd()
    }
    fn arm_send(&mut self, len: usize) -> Result<bool> {
        self.tx.arm_send(len)
    }
}

impl MessageReceiver for Connection {
    fn max_message(&self) -> usize {
        self.rx.max_message()
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rx.recv(buf)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.rx.try_recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.rx.recv_timeout(buf, timeout)
    }
    fn ready_fd(&self) -> Result<std::os::fd::BorrowedFd<'_>> {
        self.rx.ready_fd()
    }
    fn arm(&mut self) -> Result<bool> {
        self.rx.arm()
    }
}

/// Sizes and rules for [`listen`] and [`connect`].
///
/// # Examples
///
/// ```
/// use shmlane_posix::endpoint::EndpointOptions;
/// use shmlane_posix::{Options, WaitMode};
///
/// let options = EndpointOptions {
///     max_message: 1024,
///     shm: Options::new().capacity(1 << 20).wait_mode(WaitMode::BusyPoll),
///     peer_uid: Some(1000), // unix sockets: only uid 1000 may connect
///     ..EndpointOptions::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// The longest message (byte streams, datagrams, queues); at most
    /// [`shmlane_core::MAX_MESSAGE`].
    pub max_message: usize,
    /// The shared-memory channels' options (capacity, wait mode, mode,
    /// owner, …); their maximum message is `max_message` when it fits the
    /// capacity.
    pub shm: Options,
    /// The message queues' capacity (messages); their message size is
    /// `max_message + 1` (one tag byte).
    pub mq_capacity: usize,
    /// Permission bits of the FIFOs, queues and socket files a `listen`
    /// creates (less the umask for FIFOs and sockets; a shared-memory
    /// listener's socket too: who may connect), and the most that the
    /// group and others of an object a `connect` opens may write. Default
    /// `0o600`.
    pub mode: u32,
    /// The uid the objects a `connect` opens must belong to (FIFOs, queues;
    /// shared memory too, unless [`Options::owner`] says otherwise).
    /// Default `None`: the effective uid.
    pub owner: Option<u32>,
    /// The only uid a listener accepts peers of, where the kernel tells
    /// (shared memory, unix stream and datagram sockets): others are
    /// refused with [`Error::PeerRefused`] and counted
    /// ([`Listener::refused`]); the next `accept` waits for the next
    /// client. Default `None`: any.
    pub peer_uid: Option<u32>,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            max_message: 4096,
            shm: Options::new().capacity(1 << 16),
            mq_capacity: 10,
            mode: 0o600,
            owner: None,
            peer_uid: None,
        }
    }
}

impl EndpointOptions {
    /// `max_message`, if any transport can frame it.
    fn max(&self) -> Result<usize> {
        if self.max_message > shmlane_core::MAX_MESSAGE {
            return Err(Error::InvalidMaxMessage {
                max_message: self.max_message,
                limit: shmlane_core::MAX_MESSAGE,
            });
        }
        Ok(self.max_message)
    }

    fn fifo(&self) -> FifoOptions {
        let fifo = FifoOptions::new().mode(self.mode);
        match self.owner {
            Some(uid) => fifo.owner(uid),
            None => fifo,
        }
    }

    fn mq(&self, max: usize) -> MqOptions {
        let mq = MqOptions::new()
            .capacity(self.mq_capacity)
            .max_message(max + 1)
            .mode(self.mode);
        match self.owner {
            Some(uid) => mq.owner(uid),
            None => mq,
        }
    }

    /// The shared-memory options: the message limit capped to what the
    /// ring can carry (a bad capacity is refused when the ring is made),
    /// and the endpoint's owner unless the shm options name one.
    fn shm(&self) -> Options {
        let limit = shmlane_core::max_message_limit(self.shm.get_capacity());
        let shm = self.shm.clone().max_message(self.max_message.min(limit));
        match (self.owner, self.shm.get_owner()) {
            (Some(uid), None) => shm.owner(uid),
            _ => shm,
        }
    }
}

/// Takes `role` on the queue of `channel` for this end of an endpoint: an
/// exclusive lock on the role's byte of its open file description, which
/// any other end that wants the same role of that queue finds taken. (A
/// queue lets any number of processes send and receive; an endpoint serves
/// one client.)
fn claim_queue(channel: &MqChannel, role: Role) -> Result<()> {
    let byte = match role {
        Role::Producer => lock::PRODUCER,
        Role::Consumer => lock::CONSUMER,
    };
    match lock::try_lock(channel.queue(), byte, false) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::RoleTaken(role)),
        Err(e) => Err(Error::io("fcntl(F_OFD_SETLK)", e)),
    }
}

/// How long a FIFO `connect` waits for the listener's reading end (which a
/// live listener holds from `listen` on): [`Error::TimedOut`] after it.
const FIFO_CONNECT_WAIT: Duration = Duration::from_secs(1);

fn path_suffixed(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".");
    os.push(suffix);
    PathBuf::from(os)
}

/// A listening endpoint; see [`listen`] for an example.
#[derive(Debug)]
pub struct Listener {
    kind: Kind,
    /// Clients refused for their uid.
    refused: u64,
}

#[derive(Debug)]
enum Kind {
    /// The unix socket where each client gets its rings.
    Shm(ShmListener),
    /// Two FIFOs: the reading end of `c2s` (which the listener holds from
    /// the start: a client's writer opens at once, and its presence lock
    /// tells a live listener from a dead one), and `s2c`, made, opened by
    /// the writer at `accept` (its `O_PATH` descriptor, to remove exactly
    /// that FIFO when the listener drops).
    Fifo {
        rx: Option<Framed>,
        s2c: PathBuf,
        s2c_made: OwnedFd,
        max: usize,
    },
    /// Two message queues, created.
    Mq(Option<(MqChannel, MqChannel)>),
    /// A listening unix stream or TCP socket.
    Stream(FramedListener),
    /// A bound datagram socket.
    Dgram {
        socket: Option<Datagram>,
        peer_uid: Option<u32>,
    },
}

/// Starts listening on `address`; [`Listener::accept`] then returns each
/// client's connection.
///
/// # Examples
///
/// ```
/// use shmlane_posix::endpoint::{connect, listen, EndpointOptions};
/// use shmlane_posix::{MessageReceiver, MessageSender};
///
/// let options = EndpointOptions::default();
/// for address in [format!("shm:/doc-endpoint-{}", std::process::id()), "tcp:127.0.0.1:0".to_owned()] {
///     let mut listener = listen(&address, &options)?;
///     let address = listener.local_address()?; // tcp: the real port
///     let client = std::thread::spawn(move || -> shmlane_posix::Result<Vec<u8>> {
///         let mut conn = connect(&address, &EndpointOptions::default())?;
///         conn.send(b"ping")?;
///         let mut buf = [0; 16];
///         let n = conn.recv(&mut buf)?;
///         Ok(buf[..n].to_vec())
///     });
///     let mut conn = listener.accept()?;
///     let mut buf = [0; 16];
///     let n = conn.recv(&mut buf)?;
///     conn.send(&buf[..n])?; // echo
///     assert_eq!(client.join().unwrap()?, b"ping");
/// }
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn listen(address: &str, options: &EndpointOptions) -> Result<Listener> {
    let max = options.max()?;
    let kind = match crate::address::parse(address)? {
        Address::Shm(name) => Kind::Shm(ShmListener::bind(
            &name,
            &options.shm(),
            options.mode,
            options.peer_uid,
        )?),
        Address::Fifo(path) => {
            let (c2s, s2c) = (path_suffixed(&path, "c2s"), path_suffixed(&path, "s2c"));
            // c2s first: holding it (a live listener's presence) is what
            // makes whatever is at s2c a dead listener's leftover.
            let rx = fifo::create_fifo_reclaiming(&c2s, options.mode, max)?;
            let s2c_made = fifo::make_fifo_replacing(&s2c, options.mode)?;
            Kind::Fifo {
                rx: Some(rx),
                s2c,
                s2c_made,
                max,
            }
        }
        Address::Mq(name) => {
            let mq = options.mq(max);
            let rx = MqChannel::create_reclaiming(&suffixed(Object::Queue, &name, "c2s")?, &mq)?;
            let tx = MqChannel::create_reclaiming(&suffixed(Object::Queue, &name, "s2c")?, &mq)?;
            claim_queue(&rx, Role::Consumer)?;
            claim_queue(&tx, Role::Producer)?;
            Kind::Mq(Some((tx, rx)))
        }
        Address::Unix(path) => {
            let unix = UnixOptions::new()
                .mode(options.mode)
                .peer_uid(options.peer_uid);
            Kind::Stream(FramedListener::bind_unix_with(path, &unix, max)?)
        }
        Address::Tcp { host, port } => {
            let host_port = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            Kind::Stream(FramedListener::bind_tcp(&host_port, max)?)
        }
        Address::UnixDgram(path) => Kind::Dgram {
            socket: Some(Datagram::bind_with(path, max, options.mode)?),
            peer_uid: options.peer_uid,
        },
        Address::Pipe => {
            return Err(Error::InvalidAddress {
                address: address.to_owned(),
                reason: "a pipe joins a parent and its child: make one with Framed::pipe",
            });
        }
    };
    Ok(Listener { kind, refused: 0 })
}

impl Listener {
    /// Waits for the next client and returns its connection. Shared memory,
    /// unix and TCP serve any number of clients; the one-way transports
    /// (fifo, mq) and datagrams serve one: afterwards [`Error::RoleTaken`].
    /// A peer refused for its uid (see [`EndpointOptions::peer_uid`]) is
    /// [`Error::PeerRefused`]; call again for the next one. A client that
    /// is gone before its handshake ends (or, on shared memory, says nothing
    /// for [`HANDSHAKE_TIMEOUT`](crate::rendezvous::HANDSHAKE_TIMEOUT)) is no
    /// client: the accept waits for the next.
    pub fn accept(&mut self) -> Result<Connection> {
        self.accept_within(Block::Until(None))
    }

    /// Like [`Listener::accept`], but waits at most `timeout`:
    /// [`Error::TimedOut`] when no client came.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::endpoint::{listen, EndpointOptions};
    /// use shmlane_posix::Error;
    ///
    /// let address = format!("shm:/doc-accept-timeout-{}", std::process::id());
    /// let mut listener = listen(&address, &EndpointOptions::default())?;
    /// let waited = listener.accept_timeout(Duration::from_millis(10));
    /// assert!(matches!(waited, Err(Error::TimedOut)));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<Connection> {
        self.accept_within(Block::after(timeout))
    }

    /// Like [`Listener::accept`], but does not wait for a client:
    /// [`Error::Empty`] when none is waiting. (A shared-memory client that
    /// is there still gets its handshake, which waits for its answer.)
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::endpoint::{connect, listen, EndpointOptions};
    /// use shmlane_posix::Error;
    ///
    /// let address = format!("shm:/doc-try-accept-{}", std::process::id());
    /// let mut listener = listen(&address, &EndpointOptions::default())?;
    /// assert!(matches!(listener.try_accept(), Err(Error::Empty)));
    /// let client = std::thread::spawn({
    ///     let address = address.clone();
    ///     move || connect(&address, &EndpointOptions::default())
    /// });
    /// let server = loop {
    ///     match listener.try_accept() {
    ///         Err(Error::Empty) => std::thread::yield_now(), // other work here
    ///         other => break other?,
    ///     }
    /// };
    /// let client = client.join().unwrap()?;
    /// assert_eq!(server.peer_credentials().unwrap().pid, std::process::id() as i32);
    /// assert_eq!(client.peer_credentials().unwrap().pid, std::process::id() as i32);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn try_accept(&mut self) -> Result<Connection> {
        self.accept_within(Block::No)
    }

    /// How many clients this listener refused for their uid (see
    /// [`EndpointOptions::peer_uid`]).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The descriptor that is readable while a client waits to be accepted
    /// (shared memory, unix, TCP, unix-dgram), to wait on with `poll`,
    /// epoll or a [`Selector`](crate::Selector) (a `Listener` is a
    /// [`Ready`](crate::select::Ready) side), then [`Listener::try_accept`].
    /// The one-way transports have none ([`Error::Unsupported`]): a queue's
    /// accept never waits, a FIFO's waits for the client's open, which no
    /// descriptor shows; use [`Listener::accept_timeout`].
    pub fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        match &self.kind {
            Kind::Shm(listener) => Ok(listener.fd()),
            Kind::Stream(listener) => Ok(listener.as_fd()),
            Kind::Dgram {
                socket: Some(socket),
                ..
            } => Ok(socket.receiving_fd()),
            Kind::Dgram { socket: None, .. } => Err(Error::RoleTaken(Role::Consumer)),
            Kind::Fifo { .. } | Kind::Mq(_) => Err(Error::Unsupported {
                what: "a readiness descriptor for a FIFO or queue listener",
            }),
        }
    }

    fn accept_within(&mut self, block: Block) -> Result<Connection> {
        let accepted = self.accept_kind(block);
        if let Err(Error::PeerRefused { .. }) = accepted {
            self.refused += 1;
        }
        accepted
    }

    fn accept_kind(&mut self, block: Block) -> Result<Connection> {
        let taken = || Error::RoleTaken(Role::Consumer);
        match &mut self.kind {
            Kind::Shm(listener) => {
                let joined = listener.accept(block)?;
                Ok(Connection::new(joined.tx, joined.rx, "shm")
                    .with_peer_credentials(Some(joined.peer)))
            }
            Kind::Fifo { rx, s2c, max, .. } => {
                if rx.is_none() {
                    return Err(taken());
                }
                // The client opens its reading end of s2c after its writer
                // of c2s: this waits (as an accept does) for that reader.
                let timeout = match block {
                    Block::No => Some(Duration::ZERO),
                    Block::Until(None) => None,
                    Block::Until(Some(deadline)) => {
                        Some(deadline.saturating_duration_since(std::time::Instant::now()))
                    }
                };
                let waiting = FifoOptions::new().writer_timeout(timeout);
                let tx = match Framed::open_fifo_writer_with(&*s2c, &waiting, *max) {
                    Err(Error::TimedOut) if matches!(block, Block::No) => {
                        return Err(Error::Empty);
                    }
                    other => other?,
                };
                let rx = rx.take().ok_or_else(taken)?;
                Ok(Connection::new(tx, rx, "fifo"))
            }
            Kind::Mq(pair) => {
                let (tx, rx) = pair.take().ok_or_else(taken)?;
                Ok(Connection::new(tx, rx, "mq"))
            }
            Kind::Stream(listener) => {
                let transport = if listener.local_port().is_some() {
                    "tcp"
                } else {
                    "unix"
                };
                let conn = listener.accept_within(block)?;
                let peer = conn.peer_credentials();
                let (tx, rx) = conn.split()?;
                Ok(Connection::new(tx, rx, transport).with_peer_credentials(peer))
            }
            Kind::Dgram { socket, peer_uid } => {
                let peer = socket
                    .as_mut()
                    .ok_or_else(taken)?
                    .accept_hello_within(*peer_uid, block)?;
                let (tx, rx) = socket.take().ok_or_else(taken)?.split()?;
                Ok(Connection::new(tx, rx, "unix-dgram").with_peer_credentials(Some(peer)))
            }
        }
    }

    /// The address clients connect to (for `tcp:…:0`, with the real port).
    pub fn local_address(&self) -> Result<String> {
        match &self.kind {
            Kind::Shm(listener) => Ok(format!("shm:{}", listener.name())),
            Kind::Fifo { s2c, .. } => Ok(format!(
                "fifo:{}",
                s2c.display().to_string().trim_end_matches(".s2c")
            )),
            Kind::Mq(Some((tx, _))) => {
                Ok(format!("mq:{}", tx.queue().name().trim_end_matches(".s2c")))
            }
            Kind::Stream(listener) => Ok(listener.address()),
            Kind::Dgram {
                socket: Some(socket),
                ..
            } => Ok(format!("unix-dgram:{}", socket.path().display())),
            _ => Err(Error::RoleTaken(Role::Consumer)),
        }
    }

    /// The transport's name, as [`Connection::transport`] gives it.
    pub fn transport(&self) -> &'static str {
        match &self.kind {
            Kind::Shm(_) => "shm",
            Kind::Fifo { .. } => "fifo",
            Kind::Mq(_) => "mq",
            Kind::Stream(listener) if listener.local_port().is_some() => "tcp",
            Kind::Stream(_) => "unix",
            Kind::Dgram { .. } => "unix-dgram",
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The c2s FIFO goes with its reading end (the listener's, or the
        // accepted connection's); s2c only while its path names ours.
        if let Kind::Fifo { s2c, s2c_made, .. } = &self.kind {
            fifo::unlink_if_named(s2c, s2c_made.as_fd());
        }
    }
}

/// Connects to a listener at `address` (started first).
///
/// # Examples
///
/// ```
/// use shmlane_posix::endpoint::{connect, EndpointOptions};
/// use shmlane_posix::Error;
///
/// // Nobody listens there:
/// let address = format!("shm:/doc-connect-nobody-{}", std::process::id());
/// assert!(matches!(connect(&address, &EndpointOptions::default()), Err(Error::NotFound { .. })));
/// assert!(matches!(
///     connect("carrier-pigeon:/x", &EndpointOptions::default()),
///     Err(Error::InvalidAddress { .. })
/// ));
/// ```
pub fn connect(address: &str, options: &EndpointOptions) -> Result<Connection> {
    let max = options.max()?;
    match crate::address::parse(address)? {
        Address::Shm(name) => {
            let joined = crate::rendezvous::connect(&name, &options.shm())?;
            Ok(Connection::new(joined.tx, joined.rx, "shm")
                .with_peer_credentials(Some(joined.peer)))
        }
        Address::Fifo(path) => {
            // The listener holds c2s's reading end: the writer opens at once
            // (or the listener is gone). Then our reading end of s2c, which
            // the listener's accept is waiting for.
            let fifo = options.fifo().writer_timeout(Some(FIFO_CONNECT_WAIT));
            let tx = Framed::open_fifo_writer_with(path_suffixed(&path, "c2s"), &fifo, max)?;
            let rx = Framed::open_fifo_reader_with(path_suffixed(&path, "s2c"), &fifo, max)?;
            Ok(Connection::new(tx, rx, "fifo"))
        }
        Address::Mq(name) => {
            let mq = options.mq(max);
            let tx = MqChannel::open_with(&suffixed(Object::Queue, &name, "c2s")?, &mq)?;
            let rx = MqChannel::open_with(&suffixed(Object::Queue, &name, "s2c")?, &mq)?;
            // One client: a second one finds the roles taken.
            claim_queue(&tx, Role::Producer)?;
            claim_queue(&rx, Role::Consumer)?;
            Ok(Connection::new(tx, rx, "mq"))
        }
        Address::Unix(path) => {
            let conn = Framed::connect_unix(path, max)?;
            let peer = conn.peer_credentials();
            let (tx, rx) = conn.split()?;
            Ok(Connection::new(tx, rx, "unix").with_peer_credentials(peer))
        }
        Address::Tcp { host, port } => {
            let host_port = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let (tx, rx) = Framed::connect_tcp(&host_port, max)?.split()?;
            Ok(Connection::new(tx, rx, "tcp"))
        }
        Address::UnixDgram(path) => {
            // `path.<pid>.<n>`: unique among this process's clients too.
            static CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let own = path_suffixed(&path, &format!("{}.{n}", std::process::id()));
            if own.as_os_str().len() > MAX_UNIX_PATH_LEN {
                return Err(Error::InvalidAddress {
                    address: address.to_owned(),
                    reason: "the client's socket path (the path, '.', the pid, '.' and a count) would be longer than 107 bytes",
                });
            }
            let mut socket = Datagram::bind_with(own, max, options.mode)?;
            socket.connect(&path)?;
            socket.send_hello()?;
            let (tx, rx) = socket.split()?;
            Ok(Connection::new(tx, rx, "unix-dgram"))
        }
        Address::Pipe => Err(Error::InvalidAddress {
            address: address.to_owned(),
            reason: "a pipe joins a parent and its child: make one with Framed::pipe",
        }),
    }
}
