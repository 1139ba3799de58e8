//! Endpoints named by one address string, so that a program switches
//! transport by changing that string: [`listen`] on one side and
//! [`connect`] on the other give a two-way [`Connection`].
//!
//! | address | transport | what `listen` creates |
//! | --- | --- | --- |
//! | `shm:/name` | shared-memory rings | channels `/name.c2s` and `/name.s2c` |
//! | `fifo:path` | named pipes | FIFOs `path.c2s` and `path.s2c` |
//! | `mq:/name` | POSIX message queues | queues `/name.c2s` and `/name.s2c` |
//! | `unix:path` | unix stream socket | a listening socket |
//! | `unix-dgram:path` | unix datagram socket | a bound socket (the client binds `path.<pid>`) |
//! | `tcp:host:port` | TCP, `TCP_NODELAY` | a listening socket (port 0: any free port) |
//! | `pipe` | anonymous pipes | nothing: a pipe joins a parent and its child, made with [`Framed::pipe`] |
//!
//! Start the listening side first. The one-way transports serve one client
//! per listener; sockets serve any number.

use std::path::PathBuf;
use std::time::Duration;

use crate::address::Address;
use crate::dgram::{Datagram, MqChannel};
use crate::mqueue::MqOptions;
use crate::transport::{Framed, FramedListener, MessageReceiver, MessageSender};
use crate::{Error, Options, Receiver, Result, Sender};

/// A two-way message connection over any transport; see [`listen`] for an
/// example.
pub struct Connection {
    tx: Box<dyn MessageSender + Send>,
    rx: Box<dyn MessageReceiver + Send>,
    transport: &'static str,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("transport", &self.transport)
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
        }
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
    /// use shmlane_posix::transport::{MessageReceiver, MessageSender};
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
}

/// Sizes for [`listen`] and [`connect`].
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
///     ..EndpointOptions::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// The longest message (byte streams, datagrams, queues).
    pub max_message: usize,
    /// The shared-memory channels' options (capacity, wait mode, …); their
    /// maximum message is `max_message` when it fits the capacity.
    pub shm: Options,
    /// The message queues' capacity (messages); their message size is
    /// `max_message + 1` (one tag byte).
    pub mq_capacity: usize,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            max_message: 4096,
            shm: Options::new().capacity(1 << 16),
            mq_capacity: 10,
        }
    }
}

use crate::names::suffixed;

fn path_suffixed(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".");
    os.push(suffix);
    PathBuf::from(os)
}

/// A listening endpoint; see [`listen`] for an example.
#[derive(Debug)]
pub enum Listener {
    /// Shared-memory channels, created, waiting for their client.
    Shm(Option<(Sender, Receiver)>),
    /// Two FIFOs, created (removed when the listener drops).
    Fifo {
        /// The client-to-server FIFO.
        c2s: PathBuf,
        /// The server-to-client FIFO.
        s2c: PathBuf,
        /// The longest message.
        max: usize,
    },
    /// Two message queues, created.
    Mq(Option<(MqChannel, MqChannel)>),
    /// A listening unix stream or TCP socket.
    Stream(FramedListener),
    /// A bound datagram socket.
    Dgram(Option<Datagram>),
}

/// Starts listening on `address`; [`Listener::accept`] then returns each
/// client's connection.
///
/// # Examples
///
/// ```
/// use shmlane_posix::endpoint::{connect, listen, EndpointOptions};
/// use shmlane_posix::transport::{MessageReceiver, MessageSender};
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
    let max = options.max_message;
    match crate::address::parse(address)? {
        Address::Shm(name) => {
            let shm = shm_options(options);
            let rx = Receiver::create(&suffixed(&name, "c2s")?, &shm)?;
            let tx = Sender::create(&suffixed(&name, "s2c")?, &shm)?;
            Ok(Listener::Shm(Some((tx, rx))))
        }
        Address::Fifo(path) => {
            let (c2s, s2c) = (path_suffixed(&path, "c2s"), path_suffixed(&path, "s2c"));
            for fifo in [&c2s, &s2c] {
                rustix::fs::mkfifoat(
                    rustix::fs::CWD,
                    fifo,
                    rustix::fs::Mode::from_raw_mode(0o600),
                )
                .map_err(|e| match e {
                    rustix::io::Errno::EXIST => Error::AlreadyExists {
                        name: fifo.display().to_string(),
                    },
                    e => Error::io("mkfifo", e),
                })?;
            }
            Ok(Listener::Fifo { c2s, s2c, max })
        }
        Address::Mq(name) => {
            let mq = MqOptions::new()
                .capacity(options.mq_capacity)
                .max_message(max + 1);
            let rx = MqChannel::create(&suffixed(&name, "c2s")?, &mq)?;
            let tx = MqChannel::create(&suffixed(&name, "s2c")?, &mq)?;
            Ok(Listener::Mq(Some((tx, rx))))
        }
        Address::Unix(path) => Ok(Listener::Stream(FramedListener::bind_unix(path, max)?)),
        Address::Tcp { host, port } => {
            let host_port = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            Ok(Listener::Stream(FramedListener::bind_tcp(&host_port, max)?))
        }
        Address::UnixDgram(path) => Ok(Listener::Dgram(Some(Datagram::bind(path, max)?))),
        Address::Pipe => Err(Error::InvalidAddress {
            address: address.to_owned(),
            reason: "a pipe joins a parent and its child: make one with Framed::pipe",
        }),
    }
}

/// The shared-memory options of an endpoint: its message limit, capped to
/// what the ring can carry (a bad capacity is refused when the ring is made).
fn shm_options(options: &EndpointOptions) -> Options {
    let limit = shmlane_core::max_message_limit(options.shm.get_capacity());
    options
        .shm
        .clone()
        .max_message(options.max_message.min(limit))
}

impl Listener {
    /// Waits for the next client and returns its connection. The one-way
    /// transports (shm, fifo, mq) and datagrams serve one client:
    /// afterwards [`Error::RoleTaken`].
    pub fn accept(&mut self) -> Result<Connection> {
        let taken = || Error::RoleTaken(shmlane_core::Role::Consumer);
        match self {
            Listener::Shm(pair) => {
                let (tx, rx) = pair.take().ok_or_else(taken)?;
                Ok(Connection::new(tx, rx, "shm"))
            }
            Listener::Fifo { c2s, s2c, max } => {
                // Same order as the client: the c2s reader meets its writer,
                // then the s2c writer meets its reader.
                let rx = Framed::open_fifo_reader(&*c2s, *max)?;
                let tx = Framed::open_fifo_writer(&*s2c, *max)?;
                Ok(Connection::new(tx, rx, "fifo"))
            }
            Listener::Mq(pair) => {
                let (tx, rx) = pair.take().ok_or_else(taken)?;
                Ok(Connection::new(tx, rx, "mq"))
            }
            Listener::Stream(listener) => {
                let transport = if listener.local_port().is_some() {
                    "tcp"
                } else {
                    "unix"
                };
                let (tx, rx) = listener.accept()?.split()?;
                Ok(Connection::new(tx, rx, transport))
            }
            Listener::Dgram(socket) => {
                let mut socket = socket.take().ok_or_else(taken)?;
                socket.accept_hello()?;
                let (tx, rx) = socket.split()?;
                Ok(Connection::new(tx, rx, "unix-dgram"))
            }
        }
    }

    /// The address clients connect to (for `tcp:…:0`, with the real port).
    pub fn local_address(&self) -> Result<String> {
        match self {
            Listener::Shm(Some((tx, _))) => {
                let name = tx.segment().name().unwrap_or_default();
                Ok(format!("shm:{}", name.trim_end_matches(".s2c")))
            }
            Listener::Fifo { c2s, .. } => Ok(format!(
                "fifo:{}",
                c2s.display().to_string().trim_end_matches(".c2s")
            )),
            Listener::Mq(Some((tx, _))) => {
                Ok(format!("mq:{}", tx.queue().name().trim_end_matches(".s2c")))
            }
            Listener::Stream(listener) => Ok(listener.address()),
            Listener::Dgram(Some(socket)) => Ok(format!("unix-dgram:{}", socket.path().display())),
            _ => Err(Error::RoleTaken(shmlane_core::Role::Consumer)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Fifo { c2s, s2c, .. } = self {
            let _ = std::fs::remove_file(c2s);
            let _ = std::fs::remove_file(s2c);
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
    let max = options.max_message;
    match crate::address::parse(address)? {
        Address::Shm(name) => {
            let shm = shm_options(options);
            let tx = Sender::open(&suffixed(&name, "c2s")?, &shm)?;
            let rx = Receiver::open(&suffixed(&name, "s2c")?, &shm)?;
            Ok(Connection::new(tx, rx, "shm"))
        }
        Address::Fifo(path) => {
            let tx = Framed::open_fifo_writer(path_suffixed(&path, "c2s"), max)?;
            let rx = Framed::open_fifo_reader(path_suffixed(&path, "s2c"), max)?;
            Ok(Connection::new(tx, rx, "fifo"))
        }
        Address::Mq(name) => {
            let tx = MqChannel::open(&suffixed(&name, "c2s")?)?;
            let rx = MqChannel::open(&suffixed(&name, "s2c")?)?;
            Ok(Connection::new(tx, rx, "mq"))
        }
        Address::Unix(path) => {
            let (tx, rx) = Framed::connect_unix(path, max)?.split()?;
            Ok(Connection::new(tx, rx, "unix"))
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
            let own = path_suffixed(&path, &std::process::id().to_string());
            let mut socket = Datagram::bind(own, max)?;
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
