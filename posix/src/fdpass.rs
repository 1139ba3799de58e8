//! File-descriptor passing over unix sockets (`SCM_RIGHTS`): how an
//! anonymous segment (a sealed `memfd`) reaches a process that has no name
//! to open.
//!
//! The invariant: a received descriptor is close-on-exec from the instant
//! it exists (`MSG_CMSG_CLOEXEC`), at most one is kept per message (extra
//! ones a hostile peer attached are closed), and a peer that sends none is
//! a typed error, never a descriptor number made up.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::{Error, Result};

/// Sends `fd` over the unix socket `socket` (`SCM_RIGHTS`), with one byte
/// of payload.
///
/// # Examples
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use shmlane_posix::fdpass::{recv_fd, send_fd};
/// use shmlane_posix::Segment;
///
/// let (a, b) = UnixStream::pair().unwrap();
/// let seg = Segment::anonymous(4096)?;
/// seg.seal()?;
/// send_fd(&a, seg.fd())?;
/// let received = Segment::from_fd(recv_fd(&b)?)?;
/// assert_eq!(received.len(), 4096);
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn send_fd(socket: impl AsFd, fd: BorrowedFd<'_>) -> Result<()> {
    send_fds(socket, b"F", &[fd])
}

/// Receives an fd sent with [`send_fd`] from the unix socket `socket`.
/// [`Error::Disconnected`] if the peer closed the socket first.
pub fn recv_fd(socket: impl AsFd) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let got = recv_fds::<1>(socket, &mut byte)?;
    match got.fds {
        [Some(fd)] => Ok(fd),
        _ if got.bytes == 0 => Err(Error::Disconnected),
        _ => Err(Error::NotASegment {
            reason: "the message carried no file descriptor",
        }),
    }
}

/// The most descriptors one message of [`send_fds`] carries.
pub(crate) const MAX_FDS: usize = 4;

/// Sends `payload` (not empty) with the descriptors `fds` (at most
/// [`MAX_FDS`]) in one message.
pub(crate) fn send_fds(socket: impl AsFd, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    debug_assert!(!payload.is_empty() && fds.len() <= MAX_FDS);
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(Error::io("sendmsg", Errno::INVAL));
        }
        let sent = rustix::net::sendmsg(
            socket.as_fd(),
            &[IoSlice::new(payload)],
            &mut control,
            SendFlags::NOSIGNAL,
        );
        return match sent {
            Ok(_) => Ok(()),
            Err(Errno::INTR) => continue,
            Err(Errno::PIPE | Errno::CONNRESET) => Err(Error::Disconnected),
            Err(e) => Err(Error::io("sendmsg", e)),
        };
    }
}

/// One message of [`recv_fds`].
pub(crate) struct Received<const N: usize> {
    /// Payload bytes received (0: the peer closed the socket).
    pub bytes: usize,
    /// The payload was longer than the buffer (the rest is lost).
    pub truncated: bool,
    /// Descriptors were dropped by the kernel (`MSG_CTRUNC`): more than
    /// this side has room for, or none left to give this process.
    pub dropped_fds: bool,
    /// The descriptors, in the order sent.
    pub fds: [Option<OwnedFd>; N],
}

/// Receives one message into `buf` with up to `N` descriptors (`N` at
/// most [`MAX_FDS`]). Any beyond `N` that a hostile peer attached are
/// closed.
pub(crate) fn recv_fds<const N: usize>(socket: impl AsFd, buf: &mut [u8]) -> Result<Received<N>> {
    // Room for more than we keep: extras arrive (and are closed) instead of
    // being cut off with MSG_CTRUNC.
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS + 8))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match rustix::net::recvmsg(
            socket.as_fd(),
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            Err(Errno::CONNRESET) => return Err(Error::Disconnected),
            other => break other.map_err(|e| Error::io("recvmsg", e))?,
        }
    };
    let mut received: [Option<OwnedFd>; N] = std::array::from_fn(|_| None);
    let mut slots = received.iter_mut();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                // Extras drop (close) here.
                if let Some(slot) = slots.next() {
                    *slot = Some(fd);
                }
            }
        }
    }
    Ok(Received {
        bytes: msg.bytes,
        truncated: msg.flags.contains(rustix::net::ReturnFlags::TRUNC),
        dropped_fds: msg.flags.contains(rustix::net::ReturnFlags::CTRUNC),
        fds: received,
    })
}
