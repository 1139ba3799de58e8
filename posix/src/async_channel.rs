//! Channel sides for the tokio runtime (feature `tokio`): `.await` a
//! message or room without a system call per message.
//!
//! [`AsyncReceiver`] and [`AsyncSender`] wrap a [`Receiver`] / [`Sender`]
//! and its readiness fd ([`Receiver::ready_fd`]) in tokio's `AsyncFd`. A
//! receive first looks at the ring; when it is empty it polls the ring for
//! a short spin window, yielding to the runtime between looks (other tasks
//! run meanwhile), and only then arms the fd and awaits it. So a busy
//! channel costs no system call and no wake-up; an idle one costs the
//! sender one `futex` wake per message that finds the receiver armed, and
//! the receiver nothing at all while it waits. The zero-copy grants are the
//! synchronous ones: `read().await` returns the same [`ReadGrant`].
//!
//! **Cancel safety.** Every method is cancel-safe: a message is taken
//! (received, read, sent, reserved) only inside one poll, by the
//! synchronous call that returns it, so a future dropped before it
//! completes has taken nothing and lost nothing. What a dropped `read` or
//! `reserve` future leaves is at most an armed readiness fd, which the next
//! call resets.
//!
//! Timeouts are tokio's: `tokio::time::timeout(d, rx.recv_vec())` (and
//! cancel safety makes that lossless).
//!
//! The invariant: an async side awaits its fd only after arming it found
//! nothing to do (announce, then re-check: see [`Receiver::arm`]), so it
//! never sleeps past a message, a close or a death.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::endpoint::{Connection, EndpointOptions, Listener};
use crate::{
    Error, MessageReceiver, MessageSender, ReadGrant, Receiver, Result, Sender, WriteGrant,
};

/// How long an async side polls the ring, yielding to the runtime between
/// looks, before it arms its fd and awaits it: the same window as a
/// blocking side's spin phase (some 50 µs), so that a reply that comes
/// within it costs neither side a system call.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The readiness fd as tokio registers it. The fd itself belongs to the
/// channel side, which outlives this (field order of the async sides).
#[derive(Debug)]
struct Bell(RawFd);

impl AsRawFd for Bell {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Registers `fd` with the current tokio runtime for `interest`.
///
/// # Safety
///
/// `fd` must stay open, the same file, until the returned `AsyncFd` drops:
/// its owner must outlive it (the async types keep their registrations in
/// fields before their owner's).
unsafe fn registered_for(fd: RawFd, interest: Interest) -> Result<AsyncFd<Bell>> {
    // tokio panics without a runtime; this is a typed error instead.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::io(
            "tokio AsyncFd",
            std::io::Error::other("not called within a tokio runtime"),
        ));
    }
    // SAFETY: the caller keeps `fd` open and the same until the AsyncFd drops.
    unsafe { AsyncFd::register_with_interest(Bell(fd), interest) }
        .map_err(|e| Error::io("epoll_ctl (tokio AsyncFd)", e.into_parts().1))
}

/// Waits for `fd` to be readable, then forgets that readiness (the arm
/// that follows resets the fd itself).
async fn wait_readable(fd: &AsyncFd<Bell>) -> Result<()> {
    let mut guard = fd
        .readable()
        .await
        .map_err(|e| Error::io("epoll_wait (tokio)", e))?;
    guard.clear_ready();
    Ok(())
}

/// The receiving side of a channel, for tokio.
///
/// # Examples
///
/// ```
/// use shmlane_posix::async_channel::{AsyncReceiver, AsyncSender};
/// use shmlane_posix::{Options, Receiver, Sender};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let rx = Receiver::create("/doc-async-rx", &Options::new())?;
/// let tx = Sender::open("/doc-async-rx", &Options::new())?; // usually another process
/// let (mut rx, mut tx) = (AsyncReceiver::new(rx)?, AsyncSender::new(tx)?);
/// tx.send(b"hello").await?;
/// assert_eq!(rx.recv_vec().await?, b"hello");
/// let mut grant = tx.reserve(5).await?; // zero copy, both ways
/// grant.copy_from_slice(b"world");
/// grant.commit(5);
/// assert_eq!(&*rx.read().await?, b"world");
/// # Ok::<(), shmlane_posix::Error>(())
/// # }).unwrap();
/// ```
pub struct AsyncReceiver {
    // Field order matters: the registration is dropped before the fd.
    fd: AsyncFd<Bell>,
    inner: Receiver,
    spin: Duration,
}

impl std::fmt::Debug for AsyncReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncReceiver")
            .field("inner", &self.inner)
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

impl AsyncReceiver {
    /// Wraps `rx`, registering its readiness fd with the current tokio
    /// runtime (an I/O-enabled runtime must be running: else an
    /// [`Error::Io`]). `rx` must sleep when it waits
    /// ([`crate::WaitMode::SpinThenFutex`], the default): a busy-polling
    /// side has no readiness.
    pub fn new(rx: Receiver) -> Result<Self> {
        Self::with_spin(rx, DEFAULT_SPIN)
    }

    /// [`AsyncReceiver::new`] with a spin window of `spin` instead of
    /// [`DEFAULT_SPIN`] (zero: arm at once, the lowest CPU per idle wait).
    pub fn with_spin(rx: Receiver, spin: Duration) -> Result<Self> {
        // SAFETY: the fd is `rx`'s readiness fd, open as long as `rx`, which
        // the AsyncReceiver drops after the registration (field order).
        let fd = unsafe { registered_for(rx.ready_fd()?.as_raw_fd(), Interest::READABLE) }?;
        Ok(AsyncReceiver {
            fd,
            inner: rx,
            spin,
        })
    }

    /// Waits until there is something to do: a message, or the sender
    /// closed or died (which the synchronous call then reports).
    async fn ready(&mut self) -> Result<()> {
        if !matches!(self.inner.peek(), Err(Error::Empty)) {
            return Ok(());
        }
        let start = Instant::now();
        while start.elapsed() < self.spin {
            tokio::task::yield_now().await;
            if !matches!(self.inner.peek(), Err(Error::Empty)) {
                return Ok(());
            }
        }
        while self.inner.arm()? {
            wait_readable(&self.fd).await?;
        }
        Ok(())
    }

    /// Receives the next message into `buf`: its length. As
    /// [`Receiver::recv`], awaiting instead of blocking. Cancel-safe.
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            self.ready().await?;
            match self.inner.try_recv(buf) {
                Err(Error::Empty) => {}
                other => return other,
            }
        }
    }

    /// Receives the next message into a new vector. Cancel-safe.
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>> {
        loop {
            self.ready().await?;
            match self.inner.try_recv_vec() {
                Err(Error::Empty) => {}
                other => return other,
            }
        }
    }

    /// The next message in place, zero-copy: the same grant as
    /// [`Receiver::read`]. Cancel-safe (the grant is taken when the future
    /// completes).
    pub async fn read(&mut self) -> Result<ReadGrant<'_>> {
        loop {
            self.ready().await?;
            if !matches!(self.inner.peek(), Err(Error::Empty)) {
                break;
            }
        }
        self.inner.try_read()
    }

    /// The synchronous receiver (for `try_recv`, `len`, …).
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.inner
    }

    /// The synchronous receiver, unwrapped (deregistered from tokio).
    pub fn into_inner(self) -> Receiver {
        let AsyncReceiver { fd, inner, .. } = self;
        drop(fd);
        inner
    }
}

/// The sending side of a channel, for tokio; see [`AsyncReceiver`].
pub struct AsyncSender {
    // Field order matters: the registration is dropped before the fd.
    fd: AsyncFd<Bell>,
    inner: Sender,
}

impl std::fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSender")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncSender {
    /// Wraps `tx`, registering its readiness fd with the current tokio
    /// runtime; see [`AsyncReceiver::new`].
    pub fn new(tx: Sender) -> Result<Self> {
        // SAFETY: as in `AsyncReceiver::with_spin`, for `tx`.
        let fd = unsafe { registered_for(tx.ready_fd()?.as_raw_fd(), Interest::READABLE) }?;
        Ok(AsyncSender { fd, inner: tx })
    }

    /// Waits until a `len`-byte message fits, or the receiver is gone.
    async fn room(&mut self, len: usize) -> Result<()> {
        while self.inner.arm(len)? {
            wait_readable(&self.fd).await?;
        }
        Ok(())
    }

    /// Sends `msg`, awaiting room. As [`Sender::send`]. Cancel-safe.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            match self.inner.try_send(msg) {
                Err(Error::Full) => self.room(msg.len()).await?,
                other => return other,
            }
        }
    }

    /// Room for a `len`-byte message, zero-copy: the same grant as
    /// [`Sender::reserve`]. Cancel-safe.
    pub async fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>> {
        // `room` returns once `arm` saw room (only this side takes it) or
        // the receiver gone, which `try_reserve` then reports.
        self.room(len).await?;
        self.inner.try_reserve(len)
    }

    /// The synchronous sender.
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.inner
    }

    /// The synchronous sender, unwrapped (deregistered from tokio).
    pub fn into_inner(self) -> Sender {
        let AsyncSender { fd, inner } = self;
        drop(fd);
        inner
    }
}

// ---------------------------------------------------------------------------
// Any transport: the one-address API, async

/// A [`Connection`] of any transport, for tokio: what
/// [`connect_async`] and [`AsyncListener::accept`] return.
///
/// Receiving waits on the receiver's [`MessageReceiver::ready_fd`]
/// (the shared-memory readiness fd, or the kernel object's own), sending on
/// [`MessageSender::send_ready_fd`]. A shared-memory connection polls its
/// ring for [`DEFAULT_SPIN`] first, as [`AsyncReceiver`] does; the others
/// wait on their fd at once (polling them would be a system call per look).
/// `send`, `recv` and `recv_vec` are cancel-safe: a message is taken or
/// given only by the non-blocking call inside one poll.
///
/// # Examples
///
/// ```
/// use shmlane_posix::async_channel::{connect_async, listen_async};
/// use shmlane_posix::endpoint::EndpointOptions;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let address = format!("unix:{}/doc-async-{}.sock", std::env::temp_dir().display(), std::process::id());
/// let mut listener = listen_async(&address, &EndpointOptions::default()).await?;
/// let mut client = connect_async(&address, &EndpointOptions::default()).await?;
/// let mut server = listener.accept().await?;
/// client.send(b"hi").await?;
/// assert_eq!(server.recv_vec().await?, b"hi");
/// # Ok::<(), shmlane_posix::Error>(())
/// # }).unwrap();
/// ```
pub struct AsyncConnection {
    // Field order matters: the registrations are dropped before the fds.
    rx_fd: AsyncFd<Bell>,
    tx_fd: AsyncFd<Bell>,
    tx_readable: bool,
    conn: Connection,
    buf: Vec<u8>,
}

impl std::fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncConnection")
            .field("transport", &self.conn.transport())
            .finish_non_exhaustive()
    }
}

impl AsyncConnection {
    /// Wraps `conn`, registering its fds with the current tokio runtime.
    pub fn new(conn: Connection) -> Result<Self> {
        let rx = MessageReceiver::ready_fd(&conn)?.as_raw_fd();
        let (tx, tx_readable) = conn.send_ready_fd()?;
        let tx = tx.as_raw_fd();
        let interest = if tx_readable {
            Interest::READABLE
        } else {
            Interest::WRITABLE
        };
        // SAFETY: both fds belong to `conn`, which the AsyncConnection
        // drops after the registrations (field order), and neither changes
        // while it lives.
        let rx_fd = unsafe { registered_for(rx, Interest::READABLE) }?;
        // SAFETY: as above.
        let tx_fd = unsafe { registered_for(tx, interest) }?;
        Ok(AsyncConnection {
            rx_fd,
            tx_fd,
            tx_readable,
            conn,
            buf: Vec::new(),
        })
    }

    /// Receives the next message into `buf`: its length. Cancel-safe.
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        // Shared memory: look at the ring for the spin window, yielding to
        // the runtime between looks, before waiting on the fd.
        let spin = self.conn.transport() == "shm";
        let start = Instant::now();
        loop {
            match self.conn.try_recv(buf) {
                Err(Error::Empty) => {}
                other => return other,
            }
            if spin && start.elapsed() < DEFAULT_SPIN {
                tokio::task::yield_now().await;
                continue;
            }
            if MessageReceiver::arm(&mut self.conn)? {
                wait_readable(&self.rx_fd).await?;
            }
        }
    }

    /// Receives the next message into a new vector. Cancel-safe.
    pub async fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let max = MessageReceiver::max_message(&self.conn);
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(max, 0);
        let result = self.recv(&mut buf).await.map(|n| buf[..n].to_vec());
        self.buf = buf;
        result
    }

    /// Sends `msg`, waiting for room. Cancel-safe.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        loop {
            match self.conn.try_send(msg) {
                Err(Error::Full) => {
                    if self.conn.arm_send(msg.len())? {
                        let mut guard = if self.tx_readable {
                            self.tx_fd.readable().await
                        } else {
                            self.tx_fd.writable().await
                        }
                        .map_err(|e| Error::io("epoll_wait (tokio)", e))?;
                        guard.clear_ready();
                    }
                }
                other => return other,
            }
        }
    }

    /// The transport's name (see [`Connection::transport`]).
    pub fn transport(&self) -> &'static str {
        self.conn.transport()
    }

    /// The synchronous connection (deregistered from tokio).
    pub fn into_inner(self) -> Connection {
        let AsyncConnection {
            rx_fd, tx_fd, conn, ..
        } = self;
        drop((rx_fd, tx_fd));
        conn
    }
}

/// Connects to `address` (see [`crate::endpoint::connect`]) on tokio's
/// blocking pool (opening may wait for the listener), then registers the
/// connection with the runtime. Cancel-safe: a connection made after the
/// future was dropped is closed.
pub async fn connect_async(address: &str, options: &EndpointOptions) -> Result<AsyncConnection> {
    let (address, options) = (address.to_owned(), options.clone());
    let conn = tokio::task::spawn_blocking(move || crate::endpoint::connect(&address, &options))
        .await
        .map_err(|e| Error::io("spawn_blocking (tokio)", std::io::Error::other(e)))??;
    AsyncConnection::new(conn)
}

/// Listens on `address` (see [`crate::endpoint::listen`]).
pub async fn listen_async(address: &str, options: &EndpointOptions) -> Result<AsyncListener> {
    let (address, options) = (address.to_owned(), options.clone());
    let listener = tokio::task::spawn_blocking(move || crate::endpoint::listen(&address, &options))
        .await
        .map_err(|e| Error::io("spawn_blocking (tokio)", std::io::Error::other(e)))??;
    // Where the listener has a readiness fd, accepts wait on it.
    let ready = match listener.ready_fd() {
        // SAFETY: the fd belongs to `listener`, which the AsyncListener
        // drops after the registration (field order) and never replaces
        // while one is registered (accepts through the fd keep it).
        Ok(fd) => Some(unsafe { registered_for(fd.as_raw_fd(), Interest::READABLE) }?),
        Err(_) => None,
    };
    Ok(AsyncListener {
        ready,
        inner: Some(listener),
    })
}

/// A listener of any transport, for tokio; see [`listen_async`].
#[derive(Debug)]
pub struct AsyncListener {
    // Field order matters: the registration is dropped before the listener.
    /// The listener's readiness fd, registered (shm, unix, TCP,
    /// unix-dgram); `None` for FIFO and queue listeners.
    ready: Option<AsyncFd<Bell>>,
    /// `None` while an accept runs on the blocking pool.
    inner: Option<Listener>,
}

impl AsyncListener {
    /// Accepts the next client, then registers its connection.
    ///
    /// Shared memory, unix, TCP and unix-dgram listeners wait on their
    /// readiness fd and take the client with a non-blocking `try_accept`:
    /// **cancel-safe** (a dropped accept loses no client: one that was not
    /// accepted waits for the next call). A FIFO or queue listener (no
    /// readiness fd) accepts on tokio's blocking pool: **not cancel-safe**
    /// there (a dropped future takes the listener with it; later calls fail
    /// with [`Error::NotReady`]).
    pub async fn accept(&mut self) -> Result<AsyncConnection> {
        if let Some(ready) = &self.ready {
            let listener = self.inner.as_mut().ok_or(Error::NotReady)?;
            let accepted = loop {
                let mut guard = ready
                    .readable()
                    .await
                    .map_err(|e| Error::io("tokio AsyncFd", e))?;
                match listener.try_accept() {
                    Err(Error::Empty) => guard.clear_ready(),
                    accepted => break accepted?,
                }
            };
            if listener.ready_fd().is_err() {
                // A one-client listener (unix-dgram) handed its socket to
                // the connection, which registers it itself.
                self.ready = None;
            }
            return AsyncConnection::new(accepted);
        }
        let mut listener = self.inner.take().ok_or(Error::NotReady)?;
        let (listener, accepted) = tokio::task::spawn_blocking(move || {
            let accepted = listener.accept();
            (listener, accepted)
        })
        .await
        .map_err(|e| Error::io("spawn_blocking (tokio)", std::io::Error::other(e)))?;
        self.inner = Some(listener);
        AsyncConnection::new(accepted?)
    }

    /// The address a client connects to (see [`Listener::local_address`]).
    pub fn local_address(&self) -> Result<String> {
        self.inner.as_ref().ok_or(Error::NotReady)?.local_address()
    }
}
