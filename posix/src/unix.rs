//! Unix stream sockets: connecting to a path, listening at one, the socket
//! file's mode and who the peer is.
//!
//! The invariant: a unix socket file is created with the mode asked for
//! (set on the socket before it is bound, so it never has more), a stale one
//! is replaced only if it is ours and nobody serves it (never a symbolic
//! link, another user's socket or any other file), and an accepted
//! connection is handed out only if its peer's credentials are acceptable
//! ([`UnixOptions::peer_uid`]). Connections are [`Framed`]; the listener is
//! the [`FramedListener`] of [`crate::stream`].

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::framed::Framed;
use crate::stream::{FramedListener, Listener, connect_err};
use crate::transport::PeerCredentials;
use crate::{Error, Object, Result};

/// Binds a unix socket at `path` with `bind`. A socket file there that is
/// ours (owned by the effective uid) and that nobody serves (`probe`, a
/// connect, is refused: its process died) is replaced; a live socket is
/// [`Error::AlreadyExists`], another user's socket [`Error::ForeignOwner`]
/// and anything else (a symbolic link, which is never followed, a regular
/// file, …) [`Error::WrongType`]; none of those is removed.
///
/// `probe` is given a path to the very inode checked (through
/// `/proc/self/fd`), not `path`, which may name something else by then; and
/// the name is removed only while it still names that inode.
pub(crate) fn bind_unix_path<T>(
    path: &std::path::Path,
    bind: impl Fn(&std::path::Path) -> std::io::Result<T>,
    probe: impl Fn(&std::path::Path) -> std::io::Result<()>,
) -> Result<T> {
    use std::io::ErrorKind;
    let name = || path.display().to_string();
    let bind_err = |e: std::io::Error| match e.kind() {
        ErrorKind::AddrInUse => Error::AlreadyExists {
            object: Object::Socket,
            name: name(),
        },
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            object: Object::Socket,
            name: name(),
        },
        _ => Error::io("bind", e),
    };
    match bind(path) {
        Ok(bound) => Ok(bound),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            remove_stale_socket(path, &probe)?;
            bind(path).map_err(bind_err)
        }
        Err(e) => Err(bind_err(e)),
    }
}

/// Removes the socket file at `path` if it is ours and nobody serves it
/// (see [`bind_unix_path`]): `Ok(true)` if this call removed it,
/// `Ok(false)` if it was gone already.
pub(crate) fn remove_stale_socket(
    path: &std::path::Path,
    probe: impl Fn(&std::path::Path) -> std::io::Result<()>,
) -> Result<bool> {
    use std::os::fd::AsRawFd;
    let name = path.display().to_string();
    let Some(p) = path.to_str() else {
        return Err(Error::AlreadyExists {
            object: Object::Socket,
            name,
        });
    };
    // Type and owner only: a dead socket of ours goes whatever its mode.
    let ours = crate::names::Expect::new(None, 0o777);
    let at = match crate::names::open_checked(
        rustix::fs::CWD,
        p,
        OFlags::PATH,
        Object::Socket,
        ours,
        &name,
    ) {
        Ok(at) => at,
        Err(Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let inode = format!("/proc/self/fd/{}", at.as_raw_fd());
    let refused = probe(std::path::Path::new(&inode))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
    if !refused {
        return Err(Error::AlreadyExists {
            object: Object::Socket,
            name,
        });
    }
    if !crate::names::still_names(rustix::fs::CWD, p, at.as_fd()) {
        return Ok(false);
    }
    match rustix::fs::unlinkat(rustix::fs::CWD, p, rustix::fs::AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(Error::io("unlink", e)),
    }
}

impl Framed {
    /// Connects to a unix stream socket listening at `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Framed, FramedListener, MessageReceiver, MessageSender};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-unix-{}.sock", std::process::id()));
    /// let listener = FramedListener::bind_unix(&path, 256)?;
    /// let mut client = Framed::connect_unix(&path, 256)?;
    /// let mut server = listener.accept()?;
    /// client.send(b"ping")?;
    /// let mut buf = [0; 256];
    /// assert_eq!(server.recv(&mut buf)?, 4);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn connect_unix(path: impl AsRef<std::path::Path>, max_message: usize) -> Result<Framed> {
        let stream = std::os::unix::net::UnixStream::connect(path.as_ref()).map_err(connect_err)?;
        Framed::new(stream, max_message)
    }
}

/// The credentials of a unix socket's peer; `None` for any other socket.
pub(crate) fn unix_peer(fd: BorrowedFd<'_>) -> Option<PeerCredentials> {
    use rustix::net::{AddressFamily, sockopt};
    if sockopt::socket_domain(fd).ok()? != AddressFamily::UNIX {
        return None;
    }
    let cred = sockopt::socket_peercred(fd).ok()?;
    Some(PeerCredentials {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
    })
}

/// Lets an accepted connection through if its peer has the uid asked
/// for (any, if `None`); otherwise counts it in `refused`, and the caller
/// closes it: [`Error::PeerRefused`].
pub(crate) fn admit(
    stream: &std::os::unix::net::UnixStream,
    peer_uid: Option<u32>,
    refused: &std::sync::atomic::AtomicU64,
) -> Result<()> {
    let Some(uid) = peer_uid else {
        return Ok(());
    };
    let peer = unix_peer(stream.as_fd());
    if peer.is_some_and(|p| p.uid == uid) {
        return Ok(());
    }
    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let peer = peer.unwrap_or(PeerCredentials {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    });
    Err(Error::PeerRefused {
        pid: peer.pid,
        uid: peer.uid,
        gid: peer.gid,
    })
}

/// How [`FramedListener::bind_unix_with`] makes a unix stream socket: the
/// permission bits of its file, and whose connections it accepts.
///
/// # Examples
///
/// ```
/// use shmlane_posix::UnixOptions;
///
/// // The default: only the owner may connect (mode 0o600), from any uid
/// // that can (the owner, and root).
/// let private = UnixOptions::new();
/// // Anyone may connect, but only connections from uid 1000 are accepted.
/// let guarded = UnixOptions::new().mode(0o666).peer_uid(Some(1000));
/// # let _ = (private, guarded);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixOptions {
    mode: u32,
    peer_uid: Option<u32>,
}

impl Default for UnixOptions {
    fn default() -> Self {
        UnixOptions::new()
    }
}

impl UnixOptions {
    /// Mode `0o600`, peers of any uid.
    pub fn new() -> UnixOptions {
        UnixOptions {
            mode: 0o600,
            peer_uid: None,
        }
    }

    /// The permission bits of the socket's file (connecting needs write
    /// permission on it). The effective mode is `mode & !umask`. Default
    /// `0o600`.
    pub fn mode(mut self, mode: u32) -> UnixOptions {
        self.mode = mode & 0o777;
        self
    }

    /// The uid that connecting peers must have (their effective uid when
    /// they connected, from `SO_PEERCRED`); a connection from anyone else
    /// is closed by [`FramedListener::accept`] ([`Error::PeerRefused`]).
    /// Default `None`: any uid.
    pub fn peer_uid(mut self, uid: Option<u32>) -> UnixOptions {
        self.peer_uid = uid;
        self
    }
}

/// A new unix stream socket whose file will have mode `mode & !umask`,
/// bound at `path` and listening; non-blocking: its accepts wait in
/// `poll` (see `FramedListener::accept_within`), so that a client that went
/// away (or another thread took) between the poll and the accept is waited
/// past, not blocked on.
pub(crate) fn listen_unix(
    path: &std::path::Path,
    mode: u32,
) -> std::io::Result<std::os::unix::net::UnixListener> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    // The socket's inode gives its mode, less the umask, to the file that
    // bind creates: set it before, so that the file never has another.
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode))?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&fd, 128)?;
    Ok(std::os::unix::net::UnixListener::from(fd))
}

impl FramedListener {
    /// Listens on a unix stream socket at `path` with the default
    /// [`UnixOptions`]: only its owner (and root) may connect. See
    /// [`FramedListener::bind_unix_with`].
    pub fn bind_unix(
        path: impl AsRef<std::path::Path>,
        max_message: usize,
    ) -> Result<FramedListener> {
        FramedListener::bind_unix_with(path, &UnixOptions::new(), max_message)
    }

    /// Listens on a unix stream socket at `path`, whose file has the mode
    /// of `options` (less the umask) from the start, and which accepts
    /// only peers of the uid they name, if any. A socket file of ours left
    /// there by a dead process (nobody accepts on it) is replaced; a live
    /// one is [`Error::AlreadyExists`], another user's
    /// [`Error::ForeignOwner`], any other file (a symbolic link is never
    /// followed) [`Error::WrongType`], and none of those is removed. The
    /// socket file is removed when the listener drops.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use shmlane_posix::{Framed, FramedListener, UnixOptions};
    ///
    /// let path = std::env::temp_dir().join(format!("doc-unix-with-{}.sock", std::process::id()));
    /// let me = rustix::process::geteuid().as_raw();
    /// let options = UnixOptions::new().mode(0o660).peer_uid(Some(me));
    /// let listener = FramedListener::bind_unix_with(&path, &options, 256)?;
    /// let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    /// assert_eq!(mode & !0o660, 0); // 0o660 less the umask
    /// let _client = Framed::connect_unix(&path, 256)?;
    /// let server = listener.accept()?; // our own uid: accepted
    /// assert_eq!(server.peer_credentials().unwrap().uid, me);
    /// assert_eq!(listener.refused(), 0);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn bind_unix_with(
        path: impl AsRef<std::path::Path>,
        options: &UnixOptions,
        max_message: usize,
    ) -> Result<FramedListener> {
        let path = path.as_ref();
        let mode = options.mode;
        let listener = bind_unix_path(
            path,
            |p| listen_unix(p, mode),
            |p| std::os::unix::net::UnixStream::connect(p).map(drop),
        )?;
        Ok(FramedListener {
            listener: Listener::Unix(listener, path.to_owned()),
            max: max_message,
            peer_uid: options.peer_uid,
            refused: std::sync::atomic::AtomicU64::new(0),
        })
    }
}
