//! Messages as unix datagrams, and over a POSIX message queue, behind the
//! message API of [`crate::transport`].
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
//! returns [`Error::Disconnected`] (see [`Datagram`] and [`MqChannel`] for
//! how each checks).
//!
//! Invariants of this module:
//!
//! - Only the peer's traffic is delivered. A [`Datagram`] receives only
//!   from the peer's socket (the kernel refuses every other sender once
//!   the pair is connected, and anything queued before that is checked by
//!   its source address and dropped); an [`MqChannel`] uses only a queue
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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, Shutdown, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::gate::PROBE_INTERVAL;
use crate::mqueue::{MessageQueue, MqOptions};
use crate::transport::{
    MessageReceiver, MessageSender, PeerCredentials, bind_unix_path, deliver, take_unread,
    wait_ready,
};
use crate::{Error, Result, Role, lock};

const TAG_MESSAGE: u8 = 0;
const TAG_CLOSE: u8 = 1;
const TAG_HELLO: u8 = 2;
const TAG_WELCOME: u8 = 3;

/// A tagged message in `buf`, or the end: the payload's length.
fn untag(buf: &[u8], n: usize) -> Result<usize> {
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
/// use shmlane_posix::transport::{MessageReceiver, MessageSender};
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

/// What the halves of one [`Datagram`] share.
#[derive(Debug)]
struct Shared {
    /// Bound at `path`; only receives. In blocking mode, with a receive
    /// timeout of [`PROBE_INTERVAL`] (the slices of a blocking receive).
    rx: OwnedFd,
    /// Autobound (an abstract name); only sends. In blocking mode, with a
    /// send timeout of [`LIVENESS_CHECK`].
    tx: OwnedFd,
    path: PathBuf,
    /// `path` made absolute, as a hello tells it to the server.
    absolute: PathBuf,
    /// Device and inode of the socket file bind made at `path`.
    file: (u64, u64),
    /// The peer's bound socket, once known.
    peer: OnceLock<PeerPath>,
    /// A client's hello token, made by `connect`.
    nonce: OnceLock<[u8; NONCE_LEN]>,
    credentials: OnceLock<PeerCredentials>,
    /// Where this end's close mark is: [`OPEN`], [`PENDING`] or [`SENT`].
    close: AtomicU8,
    /// Datagrams received and dropped (see [`Datagram::dropped_datagrams`]).
    dropped: AtomicU64,
}

/// The close mark is still to be sent, when the sending end drops.
const OPEN: u8 = 0;
/// The sending end dropped without room for its mark: the receiving half
/// sends it when it can.
const PENDING: u8 = 1;
/// Sent, or there is nobody to send it to.
const SENT: u8 = 2;

/// The peer's bound socket.
#[derive(Debug)]
struct PeerPath {
    path: PathBuf,
    /// Device and inode of its socket file when this end joined it: a file
    /// of another inode at that path later is not the peer.
    file: (u64, u64),
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

/// The device and inode of what is at `path` (not following a link), if it
/// is a socket file.
fn socket_file(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

/// A new unix datagram socket (close-on-exec, blocking).
fn dgram_socket() -> std::result::Result<OwnedFd, Errno> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
}

/// `path` as a socket address: [`Error::InvalidAddress`] if it does not fit.
fn socket_address(path: &Path) -> Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|_| Error::InvalidAddress {
        address: path.display().to_string(),
        reason: "a unix socket path has at most 107 bytes and no NUL",
    })
}

/// A random hello token.
fn nonce() -> Result<[u8; NONCE_LEN]> {
    let mut token = [0u8; NONCE_LEN];
    let mut filled = 0;
    while filled < NONCE_LEN {
        let rest = &mut token[filled..];
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes during
        // the call; flags 0 (the urandom source, blocking only until the
        // kernel's pool is first initialised, long before any program runs).
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => filled += n,
            Err(_) => match Errno::from_io_error(&std::io::Error::last_os_error()) {
                Some(Errno::INTR) => {}
                e => return Err(Error::io("getrandom", e.unwrap_or(Errno::IO))),
            },
        }
    }
    Ok(token)
}

/// A datagram received with its sender's credentials: its real length
/// (`MSG_TRUNC`: possibly more than was copied), its source address and
/// the credentials, if the kernel attached them.
struct Handshake {
    len: usize,
    source: Option<SocketAddrUnix>,
    credentials: Option<PeerCredentials>,
}

/// `recvmsg` on `fd` into `buf`, asking for `SCM_CREDENTIALS` (which the
/// kernel attaches while `SO_PASSCRED` is set on the receiving socket).
///
/// Called through libc, not rustix: rustix's `UCred` holds the pid as a
/// non-zero type, and the kernel reports pid 0 for a sender outside this
/// process's pid namespace.
fn recv_with_credentials(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    dontwait: bool,
) -> std::result::Result<Handshake, Errno> {
    // SAFETY: all-zero is a valid `sockaddr_un` and `msghdr` (plain C
    // structs of integers and pointers).
    let mut name: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    // Room for one `ucred`, aligned for a `cmsghdr` (u64 alignment is at
    // least that of `cmsghdr` on Linux).
    let mut control = [0u64; 8];
    let control_len = std::mem::size_of_val(&control);
    // SAFETY: CMSG_SPACE only computes a size.
    let needed = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32) } as usize;
    debug_assert!(needed <= control_len);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut name).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control_len as _;
    let mut flags = libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;
    if dontwait {
        flags |= libc::MSG_DONTWAIT;
    }
    // SAFETY: `msg` points at `name`, `iov` (which points at `buf`) and
    // `control`, all valid for writes of the lengths given and alive
    // during the call.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    let Ok(len) = usize::try_from(n) else {
        return Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO));
    };
    let mut credentials = None;
    // SAFETY: `msg` was filled in by the kernel: CMSG_FIRSTHDR/NXTHDR walk
    // the control data within `msg_controllen`, and each header they
    // return is within `control`; CMSG_DATA of an SCM_CREDENTIALS header
    // points at a `ucred`, read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == libc::SOL_SOCKET
                && header.cmsg_type == libc::SCM_CREDENTIALS
                && header.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::ucred>() as u32) as usize
            {
                let cred = libc::CMSG_DATA(cmsg).cast::<libc::ucred>().read_unaligned();
                credentials = Some(PeerCredentials {
                    pid: cred.pid,
                    uid: cred.uid,
                    gid: cred.gid,
                });
            } else if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS
            {
                // Nobody sends us descriptors; close any (MSG_CMSG_CLOEXEC
                // made them close-on-exec meanwhile).
                let data = libc::CMSG_DATA(cmsg);
                let bytes = header.cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    let fd = data.cast::<libc::c_int>().add(i).read_unaligned();
                    libc::close(fd);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let source = source_address(&name, msg.msg_namelen as usize);
    Ok(Handshake {
        len,
        source,
        credentials,
    })
}

/// The address in `name` of `len` bytes, if it is a named one.
fn source_address(name: &libc::sockaddr_un, len: usize) -> Option<SocketAddrUnix> {
    let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let bytes: Vec<u8> = name.sun_path[..len.checked_sub(offset)?.min(name.sun_path.len())]
        .iter()
        .map(|&c| c as u8)
        .collect();
    match bytes.split_first() {
        None => None,
        Some((0, abstract_name)) => SocketAddrUnix::new_abstract_name(abstract_name).ok(),
        Some(_) => {
            let path = bytes.split(|&b| b == 0).next().unwrap_or_default();
            SocketAddrUnix::new(std::ffi::OsStr::from_bytes(path)).ok()
        }
    }
}

impl Shared {
    fn rx(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    fn tx(&self) -> BorrowedFd<'_> {
        self.tx.as_fd()
    }

    /// Whether the peer's bound socket is gone: its file removed or
    /// replaced, or nothing bound to it (a fresh socket's connect is
    /// refused). `false` while no peer is known, or when it cannot tell.
    fn peer_gone(&self) -> bool {
        let Some(peer) = self.peer.get() else {
            return false;
        };
        match std::fs::symlink_metadata(&peer.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == peer.file => {}
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) => return false,
        }
        let Ok(probe) = dgram_socket() else {
            return false;
        };
        let Ok(address) = SocketAddrUnix::new(&peer.path) else {
            return false;
        };
        // Refused: the file is there, but no socket is bound to it (its
        // process closed it or died). EPERM: it is connected to another
        // socket (ours): alive.
        matches!(
            rustix::net::connect(&probe, &address),
            Err(Errno::CONNREFUSED | Errno::NOENT)
        )
    }

    /// Sends this end's close mark, waiting at most `wait` for room:
    /// whether it is done (sent, or nobody left to send it to).
    fn send_close_mark(&self, wait: Duration) -> bool {
        if self.peer.get().is_none() {
            return true;
        }
        let deadline = Instant::now() + wait;
        loop {
            match rustix::net::send(
                self.tx(),
                &[TAG_CLOSE],
                SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
            ) {
                Ok(_) => return true,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    if self.peer_gone() {
                        return true;
                    }
                    if wait_ready(self.tx(), PollFlags::OUT, Some(deadline)).is_err() {
                        return false;
                    }
                }
                // The peer is gone (or never was ours): nothing to tell.
                Err(_) => return true,
            }
        }
    }

    /// Sends a close mark left [`PENDING`] by the sending half, if there
    /// is room now (waiting at most `wait`).
    fn flush_close_mark(&self, wait: Duration) {
        if self.close.load(Ordering::Acquire) == PENDING && self.send_close_mark(wait) {
            self.close.store(SENT, Ordering::Release);
        }
    }

    /// One more datagram dropped.
    fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Only the file bind made: the path may hold another by now.
        if socket_file(&self.path) == Some(self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

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
    /// use shmlane_posix::transport::{MessageReceiver, MessageSender};
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

    /// Connects this socket to the server bound at `peer`, to send there
    /// from now on; then send the hello ([`Datagram::send_hello`]).
    /// [`Error::NotFound`] if no socket is bound there,
    /// [`Error::PermissionDenied`] if its mode refuses us,
    /// [`Error::RoleTaken`] if it is joined to another client already.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::Datagram;
    /// use shmlane_posix::Error;
    ///
    /// let dir = std::env::temp_dir();
    /// let mut client = Datagram::bind(dir.join(format!("doc-dg-connect-{}", std::process::id())), 64)?;
    /// assert!(matches!(client.connect(dir.join("doc-dg-nobody-there")), Err(Error::NotFound { .. })));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn connect(&mut self, peer: impl AsRef<Path>) -> Result<()> {
        let path = peer.as_ref();
        self.check_unjoined()?;
        let address = socket_address(path)?;
        let name = || path.display().to_string();
        match rustix::net::connect(self.shared.tx(), &address) {
            Ok(()) => {}
            Err(Errno::NOENT | Errno::CONNREFUSED | Errno::NOTDIR) => {
                return Err(Error::NotFound { name: name() });
            }
            Err(Errno::ACCESS) => return Err(Error::PermissionDenied { name: name() }),
            // Its socket is connected to another one: it serves a client.
            Err(Errno::PERM) => return Err(Error::RoleTaken(Role::Consumer)),
            Err(e) => return Err(Error::io("connect", e)),
        }
        let Some(file) = socket_file(path) else {
            self.disconnect_tx();
            return Err(Error::NotFound { name: name() });
        };
        let _ = self.shared.nonce.set(nonce()?);
        let _ = self.shared.peer.set(PeerPath {
            path: path.to_owned(),
            file,
        });
        Ok(())
    }

    /// `Err` if this socket has a peer already.
    fn check_unjoined(&self) -> Result<()> {
        if self.shared.peer.get().is_some() {
            return Err(Error::InvalidAddress {
                address: self.shared.path.display().to_string(),
                reason: "this datagram socket is joined to a peer already",
            });
        }
        Ok(())
    }

    /// Undoes a connect of the sending socket (`AF_UNSPEC`).
    fn disconnect_tx(&self) {
        let _ = rustix::net::connect_unspec(self.shared.tx());
    }

    /// Introduces this socket to the server set with
    /// [`Datagram::connect`]: its hello carries this socket's path and a
    /// random token, which the server's welcome echoes. Messages may follow
    /// at once; the server reads them after the hello.
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
        let Some(nonce) = self.shared.nonce.get() else {
            return Err(Error::NotFound {
                name: "datagram peer (call connect)".to_owned(),
            });
        };
        let path = self.shared.absolute.as_os_str().as_bytes();
        if path.len() > MAX_SOCKET_PATH {
            return Err(Error::InvalidAddress {
                address: self.shared.absolute.display().to_string(),
                reason: "the absolute path of this socket is too long for a hello",
            });
        }
        let mut hello = Vec::with_capacity(HANDSHAKE_MAX);
        hello.push(TAG_HELLO);
        hello.extend_from_slice(nonce);
        hello.extend_from_slice(path);
        self.send_raw(&hello)
    }

    /// Sends `datagram` as it is, waiting as long as it takes (a
    /// handshake: from either half).
    fn send_raw(&mut self, datagram: &[u8]) -> Result<()> {
        let message = Tagged {
            whole: datagram,
            parts: [IoSlice::new(&[]), IoSlice::new(&[])],
            small: true,
        };
        self.send_message(&message, Some(None))
    }

    /// Waits for a client's hello and joins that client
    /// ([`Datagram::accept_hello_from`] with no uid asked for).
    ///
    /// # Examples
    ///
    /// See [`Datagram::send_hello`].
    pub fn accept_hello(&mut self) -> Result<()> {
        self.accept_hello_from(None).map(drop)
    }

    /// Waits for a client's hello and joins that client: from then on this
    /// socket receives only from it, and sends to it; returns its
    /// credentials (also [`Datagram::peer_credentials`]).
    ///
    /// With `uid` set, a hello from a process of another effective uid is
    /// dropped and refused: [`Error::PeerRefused`] with its credentials
    /// (call again to wait for the next hello). A datagram that is not a
    /// well-formed hello (or whose path is not a socket of the sender's
    /// uid, or not reachable) is dropped and counted, and the wait goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::dgram::Datagram;
    /// use shmlane_posix::Error;
    ///
    /// let dir = std::env::temp_dir();
    /// let id = std::process::id();
    /// let me = rustix::process::geteuid().as_raw();
    /// let mut server = Datagram::bind(dir.join(format!("doc-dg-from-s-{id}")), 64)?;
    /// let mut client = Datagram::bind(dir.join(format!("doc-dg-from-c-{id}")), 64)?;
    /// client.connect(server.path())?;
    /// client.send_hello()?;
    /// assert!(matches!(server.accept_hello_from(Some(me + 1)), Err(Error::PeerRefused { .. })));
    /// assert_eq!(server.dropped_datagrams(), 1);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn accept_hello_from(&mut self, uid: Option<u32>) -> Result<PeerCredentials> {
        if self.half == Half::Sending {
            return Err(Error::RoleTaken(Role::Consumer));
        }
        self.check_unjoined()?;
        let mut buf = [0u8; HANDSHAKE_MAX];
        loop {
            let got = match recv_with_credentials(self.shared.rx(), &mut buf, false) {
                Ok(got) => got,
                // The receive timeout (a probe slice): nothing to probe yet.
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(Error::io("recvmsg", e)),
            };
            match self.hello(&buf, &got, uid)? {
                Some(credentials) => return Ok(credentials),
                None => self.shared.dropped(),
            }
        }
    }

    /// Joins the client of the hello `buf` (received as `got`), if it is a
    /// well-formed hello of an acceptable client: its credentials, `None`
    /// to drop it, [`Error::PeerRefused`] to refuse it (counted as dropped).
    fn hello(
        &mut self,
        buf: &[u8],
        got: &Handshake,
        uid: Option<u32>,
    ) -> Result<Option<PeerCredentials>> {
        if got.len > buf.len() || got.len <= 1 + NONCE_LEN || buf[0] != TAG_HELLO {
            return Ok(None);
        }
        let (Some(source), Some(credentials)) = (&got.source, got.credentials) else {
            return Ok(None);
        };
        if uid.is_some_and(|uid| credentials.uid != uid) {
            self.shared.dropped();
            return Err(Error::PeerRefused {
                pid: credentials.pid,
                uid: credentials.uid,
                gid: credentials.gid,
            });
        }
        let nonce = &buf[1..=NONCE_LEN];
        let path = Path::new(std::ffi::OsStr::from_bytes(&buf[1 + NONCE_LEN..got.len]));
        // Its own socket: a client cannot name another user's.
        let owner_ok = std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == credentials.uid);
        let (Some(file), true, Ok(address)) = (socket_file(path), owner_ok, socket_address(path))
        else {
            return Ok(None);
        };
        if rustix::net::connect(self.shared.tx(), &address).is_err() {
            return Ok(None);
        }
        // The same file still (not swapped while we looked), and only the
        // client's sending socket may send here from now on.
        if socket_file(path) != Some(file)
            || rustix::net::connect(self.shared.rx(), source).is_err()
        {
            self.disconnect_tx();
            return Ok(None);
        }
        self.source = Some(source.clone());
        let _ = self.shared.peer.set(PeerPath {
            path: path.to_owned(),
            file,
        });
        let _ = self.shared.credentials.set(credentials);
        let _ = rustix::net::sockopt::set_socket_passcred(self.shared.rx(), false);
        let mut welcome = [0u8; 1 + NONCE_LEN];
        welcome[0] = TAG_WELCOME;
        welcome[1..].copy_from_slice(nonce);
        self.send_raw(&welcome)?;
        Ok(Some(credentials))
    }

    /// On a client: reads what came before the server's welcome, until the
    /// welcome (then this socket receives only from the server). `Ok(true)`
    /// once it is in; `Err(AGAIN)` when nothing is queued.
    fn await_welcome(&mut self, dontwait: bool) -> std::result::Result<bool, Errno> {
        let mut buf = [0u8; HANDSHAKE_MAX];
        let got = recv_with_credentials(self.shared.rx(), &mut buf, dontwait)?;
        let nonce = self.shared.nonce.get();
        let welcome = got.len == 1 + NONCE_LEN
            && buf[0] == TAG_WELCOME
            && nonce.is_some_and(|n| buf[1..=NONCE_LEN] == n[..]);
        let source = got.source.filter(|s| s.abstract_name().is_some());
        let Some(source) = source.filter(|_| welcome) else {
            self.shared.dropped();
            return Ok(false);
        };
        // From now on only the server's sending socket may send here. (If
        // it closed already, its datagrams queued so far still count.)
        let _ = rustix::net::connect(self.shared.rx(), &source);
        self.source = Some(source);
        if let Some(credentials) = got.credentials {
            let _ = self.shared.credentials.set(credentials);
        }
        let _ = rustix::net::sockopt::set_socket_passcred(self.shared.rx(), false);
        Ok(true)
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
            });
        }
        loop {
            // Once the peer is gone, what is queued is all there is: no wait.
            let nowait = dontwait(deadline) || self.peer_gone;
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
                    if self
                        .last_probe
                        .is_none_or(|t| t.elapsed() >= PROBE_INTERVAL)
                    {
                        self.last_probe = Some(Instant::now());
                        // A close mark our sending half could not send.
                        self.shared.flush_close_mark(Duration::ZERO);
                        if self.shared.peer_gone() {
                            // Receive what it sent before it went first.
                            self.peer_gone = true;
                            continue;
                        }
                    }
                    match deadline {
                        None => return Err(Error::Empty),
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

fn after(timeout: Duration) -> Option<Option<Instant>> {
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
