//! TCP connections as a message transport: connecting, listening, and the
//! socket options every connection gets.
//!
//! The invariant: every connection, connected or accepted, has
//! `TCP_NODELAY` set (a message leaves at once, not when Nagle's timer
//! says), and carries framed messages as a [`Framed`].

use crate::framed::Framed;
use crate::stream::{FramedListener, Listener, connect_err};
use crate::{Error, Result};

/// A connected TCP stream as a [`Framed`], with `TCP_NODELAY`.
pub(crate) fn framed(stream: std::net::TcpStream, max_message: usize) -> Result<Framed> {
    stream
        .set_nodelay(true)
        .map_err(|e| Error::io("setsockopt(TCP_NODELAY)", e))?;
    Framed::new(stream, max_message)
}

impl Framed {
    /// Connects to a TCP listener at `host:port`, with `TCP_NODELAY` (every
    /// message leaves at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Framed, FramedListener, MessageReceiver, MessageSender};
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
        framed(stream, max_message)
    }
}

impl FramedListener {
    /// Listens on TCP at `host:port` (port 0: a free port, see
    /// [`FramedListener::local_port`]).
    pub fn bind_tcp(host_port: &str, max_message: usize) -> Result<FramedListener> {
        let listener = std::net::TcpListener::bind(host_port).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => Error::AlreadyExists {
                name: host_port.to_owned(),
                object: crate::Object::Socket,
            },
            _ => Error::io("bind", e),
        })?;
        // Waited on with poll (see `FramedListener::accept_within`).
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("fcntl", e))?;
        Ok(FramedListener {
            listener: Listener::Tcp(listener),
            max: max_message,
            peer_uid: None,
            refused: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The TCP port listened on (`None` for a unix socket).
    pub fn local_port(&self) -> Option<u16> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Listener::Unix(..) => None,
        }
    }
}
