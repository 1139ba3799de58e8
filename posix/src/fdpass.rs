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
    let fds = [fd];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let sent = rustix::net::sendmsg(
            socket.as_fd(),
            &[IoSlice::new(b"F")],
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

/// Receives an fd sent with [`send_fd`] from the unix socket `socket`.
/// [`Error::Disconnected`] if the peer closed the socket first.
pub fn recv_fd(socket: impl AsFd) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match rustix::net::recvmsg(
            socket.as_fd(),
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            other => break other.map_err(|e| Error::io("recvmsg", e))?,
        }
    };
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                received.get_or_insert(fd);
            }
        }
    }
    match received {
        Some(fd) => Ok(fd),
        None if msg.bytes == 0 => Err(Error::Disconnected),
        None => Err(Error::NotASegment {
            reason: "the message carried no file descriptor",
        }),
    }
}
