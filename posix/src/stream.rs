//! Listening stream sockets: [`FramedListener`] accepts connections on a
//! unix stream socket ([`crate::unix`]) or a TCP port ([`crate::tcp`]) and
//! hands each out as a [`Framed`].
//!
//! The invariant: a connection is handed out only once it is admitted (a
//! unix peer of the uid asked for, see [`UnixOptions::peer_uid`](crate::UnixOptions::peer_uid)); a refused
//! one is closed and counted, and the listener goes on serving. A unix
//! listener's socket file is removed when it drops.

use std::os::fd::AsFd;

use rustix::event::PollFlags;

use crate::framed::Framed;
use crate::transport::{Block, poll_now, wait_ready};
use crate::{Error, Result};

/// A failed connect(2) as the error a caller can act on.
pub(crate) fn connect_err(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            name: "socket".to_owned(),
            object: crate::Object::Socket,
        },
        std::io::ErrorKind::ConnectionRefused => Error::Disconnected,
        std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            name: "socket".to_owned(),
            object: crate::Object::Socket,
        },
        _ => Error::io("connect", e),
    }
}

/// A listening unix stream or TCP socket whose connections carry framed
/// messages. (See [`Framed::connect_unix`] and [`Framed::connect_tcp`] for
/// examples.)
#[derive(Debug)]
pub struct FramedListener {
    pub(crate) listener: Listener,
    pub(crate) max: usize,
    /// The only uid a unix socket's peers may have (`None`: any).
    pub(crate) peer_uid: Option<u32>,
    /// Connections refused for their peer's uid.
    pub(crate) refused: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
pub(crate) enum Listener {
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
    Tcp(std::net::TcpListener),
}

impl FramedListener {
    /// How many connections [`FramedListener::accept`] refused for their
    /// peer's uid.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
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

    /// Waits for the next connection. On a unix socket restricted to a
    /// peer uid ([`UnixOptions::peer_uid`](crate::UnixOptions::peer_uid)), a connection from another uid
    /// is closed at once and is [`Error::PeerRefused`] (counted by
    /// [`FramedListener::refused`]); the next call waits for the next one.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Framed, FramedListener, MessageReceiver, MessageSender};
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
        self.accept_within(Block::Until(None))
    }

    /// Like [`FramedListener::accept`], but waits at most `timeout`:
    /// [`Error::TimedOut`] when no client came.
    pub fn accept_timeout(&self, timeout: std::time::Duration) -> Result<Framed> {
        self.accept_within(Block::after(timeout))
    }

    /// Like [`FramedListener::accept`], but never waits: [`Error::Empty`]
    /// when no client is waiting.
    pub fn try_accept(&self) -> Result<Framed> {
        self.accept_within(Block::No)
    }

    /// The next connection, waiting as `block` says. The listening socket
    /// is non-blocking, so a connection another thread took (or that went
    /// away) between the poll and the accept is waited past, not blocked on.
    pub(crate) fn accept_within(&self, block: Block) -> Result<Framed> {
        loop {
            match block {
                Block::No if !poll_now(self.as_fd())?.contains(PollFlags::IN) => {
                    return Err(Error::Empty);
                }
                Block::No => {}
                Block::Until(deadline) => wait_ready(self.as_fd(), PollFlags::IN, deadline)?,
            }
            let accepted = match &self.listener {
                Listener::Unix(l, _) => l.accept().map(|(s, _)| Accepted::Unix(s)),
                Listener::Tcp(l) => l.accept().map(|(s, _)| Accepted::Tcp(s)),
            };
            let accepted = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => match block {
                    Block::No => return Err(Error::Empty),
                    Block::Until(_) => continue,
                },
                Err(e) => return Err(Error::io("accept", e)),
            };
            return match accepted {
                Accepted::Unix(stream) => {
                    crate::unix::admit(&stream, self.peer_uid, &self.refused)?;
                    Framed::new(stream, self.max)
                }
                Accepted::Tcp(stream) => crate::tcp::framed(stream, self.max),
            };
        }
    }
}

/// A connection just accepted.
enum Accepted {
    Unix(std::os::unix::net::UnixStream),
    Tcp(std::net::TcpStream),
}

/// An accept that found nothing after all (taken by another thread, or the
/// client gave up in between): wait for the next.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::Interrupted | ErrorKind::ConnectionAborted
    )
}

impl std::os::fd::AsFd for FramedListener {
    /// The listening socket: readable while a client waits to be accepted.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.listener {
            Listener::Unix(l, _) => l.as_fd(),
            Listener::Tcp(l) => l.as_fd(),
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
