//! Waiting on many channel sides at once: [`Selector`], what iceoryx2's
//! WaitSet and ipc-channel's `IpcReceiverSet` give.
//!
//! A selector arms every side it is given ([`Ready::arm`]: announce, then
//! re-check), returns at once the ones with something to do, and otherwise
//! sleeps in one `poll` on all their readiness fds until one is readable or
//! the timeout passes. No thread and no state of its own beyond a buffer:
//! the sides keep their readiness fds, so a selector can be made per call
//! or kept.
//!
//! The invariant: `select` never sleeps past a side that was ready when it
//! was called (the arm's re-check) or became ready after (the fd), and what
//! it reports is a hint to try: a side it names may turn out `Empty` (a
//! stale arm, or another thread got there first).

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};

use crate::{Error, MessageReceiver, MessageSender, Result, Sender};

/// A channel side a [`Selector`] can wait on: it can arm a readiness fd.
pub trait Ready {
    /// Prepares to wait: `true` when armed (nothing to do now; the fd
    /// becomes readable when that changes), `false` when there is something
    /// to do now. See [`Receiver::arm`](crate::Receiver::arm).
    fn arm(&mut self) -> Result<bool>;

    /// The fd that becomes ready once armed and ready.
    fn ready_fd(&self) -> Result<BorrowedFd<'_>>;

    /// Whether [`Ready::ready_fd`] is waited on for writability (a kernel
    /// object's room) rather than readability (the default).
    fn writable(&self) -> bool {
        false
    }
}

/// Every receiver of every transport: the shared-memory receiver arms its
/// readiness fd, the others wait on their kernel object's fd (see
/// [`MessageReceiver::ready_fd`]).
impl<T: MessageReceiver + ?Sized> Ready for T {
    fn arm(&mut self) -> Result<bool> {
        MessageReceiver::arm(self)
    }
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        MessageReceiver::ready_fd(self)
    }
}

/// A sender is ready when a message of its [`Sender::max_message`] fits
/// (or the receiver is gone); use [`Sender::arm`] directly to wait for room
/// for a given length.
impl Ready for Sender {
    fn arm(&mut self) -> Result<bool> {
        let len = self.max_message();
        Sender::arm(self, len)
    }
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Sender::ready_fd(self)
    }
}

/// Room to send a `len`-byte message on a sender of any transport, as a
/// [`Ready`] side: a shared-memory sender's readiness fd, or a kernel
/// object's writability.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::endpoint::{connect, listen, EndpointOptions};
/// use shmlane_posix::select::{Ready, Room};
/// use shmlane_posix::Selector;
///
/// let address = format!("unix:{}/doc-room-{}.sock", std::env::temp_dir().display(), std::process::id());
/// let mut listener = listen(&address, &EndpointOptions::default())?;
/// let mut client = connect(&address, &EndpointOptions::default())?;
/// let _server = listener.accept()?;
/// let mut room = Room::new(&mut client, 64);
/// let mut sides: [&mut dyn Ready; 1] = [&mut room];
/// assert_eq!(Selector::new().select(&mut sides, Some(Duration::from_secs(5)))?, [0]);
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug)]
pub struct Room<'a, S: MessageSender + ?Sized> {
    sender: &'a mut S,
    len: usize,
}

impl<'a, S: MessageSender + ?Sized> Room<'a, S> {
    /// Room for a `len`-byte message on `sender`.
    pub fn new(sender: &'a mut S, len: usize) -> Self {
        Room { sender, len }
    }
}

impl<S: MessageSender + ?Sized> Ready for Room<'_, S> {
    fn arm(&mut self) -> Result<bool> {
        self.sender.arm_send(self.len)
    }
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.sender.send_ready_fd()?.0)
    }
    fn writable(&self) -> bool {
        // The shared-memory sender's fd is read (a doorbell); the others'
        // written.
        matches!(self.sender.send_ready_fd(), Ok((_, false)))
    }
}

/// Waits on any number of channel sides; see the module doc.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::{Options, Receiver, Selector, Sender};
/// use shmlane_posix::select::Ready;
///
/// let mut a = Receiver::create("/doc-select-a", &Options::new())?;
/// let mut b = Receiver::create("/doc-select-b", &Options::new())?;
/// let mut tx_b = Sender::open("/doc-select-b", &Options::new())?;
/// let mut selector = Selector::new();
/// let mut sides: [&mut dyn Ready; 2] = [&mut a, &mut b];
/// // Nothing yet: the timeout passes.
/// assert!(selector.select(&mut sides, Some(Duration::from_millis(1)))?.is_empty());
/// tx_b.send(b"for b")?; // usually another process
/// assert_eq!(selector.select(&mut sides, None)?, [1]);
/// assert_eq!(b.try_recv_vec()?, b"for b");
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Selector {
    ready: Vec<usize>,
}

impl Selector {
    /// A selector.
    pub fn new() -> Self {
        Selector::default()
    }

    /// Waits until at least one of `sides` has something to do (or its
    /// peer closed or died), or `timeout` passes (`None`: as long as it
    /// takes). Returns the indices, into `sides`, of those ready; empty
    /// when the timeout passed. Then receive (or send) on each until
    /// `Empty` (`Full`) before selecting again.
    pub fn select(
        &mut self,
        sides: &mut [&mut dyn Ready],
        timeout: Option<Duration>,
    ) -> Result<Vec<usize>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.ready.clear();
        for (i, side) in sides.iter_mut().enumerate() {
            if !side.arm()? {
                self.ready.push(i);
            }
        }
        if !self.ready.is_empty() {
            return Ok(self.ready.clone());
        }
        loop {
            let fds = sides
                .iter()
                .map(|side| {
                    let events = if side.writable() {
                        PollFlags::OUT
                    } else {
                        PollFlags::IN
                    };
                    side.ready_fd().map(|fd| (fd, events))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut polled: Vec<PollFd<'_>> = fds
                .iter()
                .map(|(fd, events)| PollFd::from_borrowed_fd(*fd, *events))
                .collect();
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let spec = left.map(|left| rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            });
            match poll(&mut polled, spec.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("poll", e)),
            }
            self.ready.extend(
                polled
                    .iter()
                    .enumerate()
                    .filter(|(_, fd)| !fd.revents().is_empty())
                    .map(|(i, _)| i),
            );
            if !self.ready.is_empty() || left.is_some_and(|l| l.is_zero()) {
                return Ok(self.ready.clone());
            }
            // Nothing and time left: EINTR-like early return of poll; again.
        }
    }
}

/// A listener is a side too: ready while a client waits to be accepted
/// (then [`Listener::try_accept`](crate::endpoint::Listener::try_accept)).
/// Only the listeners with a readiness fd (shared memory, unix, TCP,
/// unix-dgram; see [`Listener::ready_fd`](crate::endpoint::Listener::ready_fd)).
impl Ready for crate::endpoint::Listener {
    fn arm(&mut self) -> Result<bool> {
        let fd = crate::endpoint::Listener::ready_fd(self)?;
        Ok(!crate::transport::poll_now(fd)?.contains(PollFlags::IN))
    }
    fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        crate::endpoint::Listener::ready_fd(self)
    }
}
