//! How a [`Datagram`] pair comes to be and ends: the two sockets of each
//! end and what its halves share, the hello and welcome that join a client
//! to its server (a random token, the client's path, the credentials the
//! kernel attaches), the checks on the peer's socket file, and the close
//! mark that must reach the peer.
//!
//! The invariant: an end is joined to exactly one peer, the one whose hello
//! carried the token and whose credentials the kernel vouched for; after
//! that the kernel refuses datagrams from anyone else, and what others
//! queued before is dropped by its source address.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use super::*;
use crate::transport::PeerCredentials;
use crate::{Error, Result, Role};

/// What the halves of one [`Datagram`] share.
#[derive(Debug)]
pub(super) struct Shared {
    /// Bound at `path`; only receives. In blocking mode, with a receive
    /// timeout of [`PROBE_INTERVAL`] (the slices of a blocking receive).
    pub(super) rx: OwnedFd,
    /// Autobound (an abstract name); only sends. In blocking mode, with a
    /// send timeout of [`LIVENESS_CHECK`].
    pub(super) tx: OwnedFd,
    pub(super) path: PathBuf,
    /// `path` made absolute, as a hello tells it to the server.
    pub(super) absolute: PathBuf,
    /// Device and inode of the socket file bind made at `path`.
    pub(super) file: (u64, u64),
    /// The peer's bound socket, once known.
    pub(super) peer: OnceLock<PeerPath>,
    /// A client's hello token, made by `connect`.
    pub(super) nonce: OnceLock<[u8; NONCE_LEN]>,
    pub(super) credentials: OnceLock<PeerCredentials>,
    /// Where this end's close mark is: [`OPEN`], [`PENDING`] or [`SENT`].
    pub(super) close: AtomicU8,
    /// Datagrams received and dropped (see [`Datagram::dropped_datagrams`]).
    pub(super) dropped: AtomicU64,
}

/// The close mark is still to be sent, when the sending end drops.
pub(super) const OPEN: u8 = 0;
/// The sending end dropped without room for its mark: the receiving half
/// sends it when it can.
pub(super) const PENDING: u8 = 1;
/// Sent, or there is nobody to send it to.
pub(super) const SENT: u8 = 2;

/// The peer's bound socket.
#[derive(Debug)]
pub(super) struct PeerPath {
    pub(super) path: PathBuf,
    /// Device and inode of its socket file when this end joined it: a file
    /// of another inode at that path later is not the peer.
    pub(super) file: (u64, u64),
}

/// The device and inode of what is at `path` (not following a link), if it
/// is a socket file.
pub(super) fn socket_file(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

/// A new unix datagram socket (close-on-exec, blocking).
pub(super) fn dgram_socket() -> std::result::Result<OwnedFd, Errno> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
}

/// `path` as a socket address: [`Error::InvalidAddress`] if it does not fit.
pub(super) fn socket_address(path: &Path) -> Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|_| Error::InvalidAddress {
        address: path.display().to_string(),
        reason: "a unix socket path has at most 107 bytes and no NUL",
    })
}

/// A random hello token.
pub(super) fn nonce() -> Result<[u8; NONCE_LEN]> {
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
pub(super) struct Handshake {
    pub(super) len: usize,
    pub(super) source: Option<SocketAddrUnix>,
    pub(super) credentials: Option<PeerCredentials>,
}

/// `recvmsg` on `fd` into `buf`, asking for `SCM_CREDENTIALS` (which the
/// kernel attaches while `SO_PASSCRED` is set on the receiving socket).
///
/// Called through libc, not rustix: rustix's `UCred` holds the pid as a
/// non-zero type, and the kernel reports pid 0 for a sender outside this
/// process's pid namespace.
pub(super) fn recv_with_credentials(
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
pub(super) fn source_address(name: &libc::sockaddr_un, len: usize) -> Option<SocketAddrUnix> {
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
    pub(super) fn rx(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    pub(super) fn tx(&self) -> BorrowedFd<'_> {
        self.tx.as_fd()
    }

    /// Whether the peer's bound socket is gone: its file removed or
    /// replaced, or nothing bound to it (a fresh socket's connect is
    /// refused). `false` while no peer is known, or when it cannot tell.
    pub(super) fn peer_gone(&self) -> bool {
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
    pub(super) fn send_close_mark(&self, wait: Duration) -> bool {
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
    pub(super) fn flush_close_mark(&self, wait: Duration) {
        if self.close.load(Ordering::Acquire) == PENDING && self.send_close_mark(wait) {
            self.close.store(SENT, Ordering::Release);
        }
    }

    /// One more datagram dropped.
    pub(super) fn dropped(&self) {
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

impl Datagram {
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
                return Err(Error::NotFound {
                    object: crate::Object::Socket,
                    name: name(),
                });
            }
            Err(Errno::ACCESS) => {
                return Err(Error::PermissionDenied {
                    object: crate::Object::Socket,
                    name: name(),
                });
            }
            // Its socket is connected to another one: it serves a client.
            Err(Errno::PERM) => return Err(Error::RoleTaken(Role::Consumer)),
            Err(e) => return Err(Error::io("connect", e)),
        }
        let Some(file) = socket_file(path) else {
            self.disconnect_tx();
            return Err(Error::NotFound {
                object: crate::Object::Socket,
                name: name(),
            });
        };
        let _ = self.shared.nonce.set(nonce()?);
        let _ = self.shared.peer.set(PeerPath {
            path: path.to_owned(),
            file,
        });
        Ok(())
    }

    /// `Err` if this socket has a peer already.
    pub(super) fn check_unjoined(&self) -> Result<()> {
        if self.shared.peer.get().is_some() {
            return Err(Error::InvalidAddress {
                address: self.shared.path.display().to_string(),
                reason: "this datagram socket is joined to a peer already",
            });
        }
        Ok(())
    }

    /// Undoes a connect of the sending socket (`AF_UNSPEC`).
    pub(super) fn disconnect_tx(&self) {
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
    /// use shmlane_posix::{MessageReceiver, MessageSender};
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
                object: crate::Object::Socket,
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
    pub(super) fn send_raw(&mut self, datagram: &[u8]) -> Result<()> {
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
        self.accept_hello_within(uid, crate::transport::Block::Until(None))
    }

    /// [`Datagram::accept_hello_from`], waiting as `block` says:
    /// [`Error::Empty`] (never waits) or [`Error::TimedOut`] when no hello
    /// came.
    pub(crate) fn accept_hello_within(
        &mut self,
        uid: Option<u32>,
        block: crate::transport::Block,
    ) -> Result<PeerCredentials> {
        use crate::transport::Block;
        if self.half == Half::Sending {
            return Err(Error::RoleTaken(Role::Consumer));
        }
        self.check_unjoined()?;
        let mut buf = [0u8; HANDSHAKE_MAX];
        loop {
            if let Block::Until(Some(deadline)) = block {
                let fd = self.shared.rx();
                crate::transport::wait_ready(fd, rustix::event::PollFlags::IN, Some(deadline))?;
            }
            let dontwait = !matches!(block, Block::Until(None));
            let got = match recv_with_credentials(self.shared.rx(), &mut buf, dontwait) {
                Ok(got) => got,
                Err(Errno::AGAIN) if matches!(block, Block::No) => return Err(Error::Empty),
                // The receive timeout (a probe slice), or taken by another
                // thread after the poll: nothing yet.
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
    pub(super) fn hello(
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
    pub(super) fn await_welcome(&mut self, dontwait: bool) -> std::result::Result<bool, Errno> {
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
}
