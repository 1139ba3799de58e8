//! Channels: a [`Sender`] and a [`Receiver`] in two processes, joined by a
//! shmlane ring in a shared-memory segment.
//!
//! Either side may create the segment (by name, or anonymously for a child
//! or an fd-passing peer) and the other opens it. Each side holds its role
//! lock on the segment for as long as it lives, so that the other side can
//! tell a crash from a quiet peer: a blocked call on the survivor returns
//! [`Error::Disconnected`] as soon as the kernel makes the peer's pidfd
//! readable (well under a millisecond; see [`crate::gate`] for how, and for
//! the [`PROBE_INTERVAL`](crate::gate::PROBE_INTERVAL) fallback), after
//! every message committed before it was received.
//!
//! The invariant: a side reports [`Error::Disconnected`] only when its peer
//! closed or provably died (its role lock is gone), and a receiver only
//! after everything committed before has been received.
//!
//! A ring serves one producer and one consumer for its whole life: after a
//! side closed or died, the survivor sees `Disconnected` and the channel is
//! done; create a new one (a stale name is reclaimed, see [`Segment`]).
//!
//! A named channel appears under its name only complete: its ring laid out
//! and the creator's role claimed (see [`Segment::create_with`]). An opener
//! checks the segment's type, owner and mode before it maps it
//! ([`Options::owner`], [`Options::mode`]).
//!
//! **Processes that fork.** A side's role lives as long as any process
//! holds its open file descriptions, whose locks are the proof of life. A
//! child made by `fork()` without `exec` inherits them (they are
//! close-on-exec, so an `exec` drops them): while such a child lives, the
//! side's death is not seen by its peer, and the child must not use the
//! handle (two processes would drive one side). Create channels after
//! forking, or let the child `exec` or exit.

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use shmlane_core::{
    Armed, AtomicU32, Config, Consumer, Counters, Producer, Ring, Role, region_size,
};

use crate::gate::{Gate, PeerWatch, WaitMode};
use crate::names::Expect;
use crate::ready::Doorbell;
use crate::segment::{DEFAULT_MODE, Segment};
use crate::{Error, Result, lock};

/// A zero-copy write grant of a [`Sender`]: write the message in place,
/// then [`commit`](shmlane_core::WriteGrant::commit) it.
pub type WriteGrant<'s> = shmlane_core::WriteGrant<'s, 'static, Gate>;
/// A zero-copy read grant of a [`Receiver`]: the message in place; dropping
/// it consumes the message.
pub type ReadGrant<'r> = shmlane_core::ReadGrant<'r, 'static, Gate>;
/// A write grant of a [`SendBatch`]: committed, it waits for the batch.
pub type BatchWriteGrant<'s> = shmlane_core::BatchWriteGrant<'s, 'static, Gate>;
/// A read grant of a [`RecvBatch`]: its room is freed when the batch ends.
pub type BatchReadGrant<'r> = shmlane_core::BatchReadGrant<'r, 'static, Gate>;
/// Messages published together; see [`Sender::batch`].
pub type SendBatch<'s> = shmlane_core::SendBatch<'s, 'static, Gate>;
/// Messages released together; see [`Receiver::batch`].
pub type RecvBatch<'r> = shmlane_core::RecvBatch<'r, 'static, Gate>;

/// How to create or open a channel.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::{Options, WaitMode};
///
/// let options = Options::new()
///     .capacity(1 << 20)
///     .max_message(4096)
///     .wait_mode(WaitMode::BusyPoll)
///     .open_timeout(Duration::from_millis(100));
/// assert_eq!(options.region_size()?, shmlane_core::region_size(1 << 20));
/// assert!(Options::new().capacity(usize::MAX).region_size().is_err()); // no overflow
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    capacity: usize,
    max_message: Option<usize>,
    mode: u32,
    wait: WaitMode,
    open_timeout: Duration,
    unlink_on_drop: bool,
    owner: Option<u32>,
    message_type: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: 64 * 1024,
            max_message: None,
            mode: DEFAULT_MODE,
            wait: WaitMode::SpinThenFutex,
            open_timeout: Duration::from_secs(1),
            unlink_on_drop: true,
            owner: None,
            message_type: None,
        }
    }
}

impl Options {
    /// The defaults: 64 KiB ring, messages up to half of it, mode 0600,
    /// spin-then-futex, 1 s to wait for a creator, name removed by the
    /// creator's drop.
    pub fn new() -> Self {
        Self::default()
    }

    /// Data bytes of the ring (a power of two, 64 B to 1 TiB), when creating.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Longest message, when creating (default and limit: half the capacity
    /// less 8 bytes).
    pub fn max_message(mut self, max_message: usize) -> Self {
        self.max_message = Some(max_message);
        self
    }

    /// Permission bits of a new named segment (default 0600), applied
    /// exactly: the umask does not filter them. When opening, the most the
    /// segment's group and others may be allowed to write: a segment that
    /// they may write beyond this is refused ([`Error::UnsafeMode`]).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How this side waits when it must (default: spin, then futex).
    pub fn wait_mode(mut self, wait: WaitMode) -> Self {
        self.wait = wait;
        self
    }

    /// How long opening waits for the creator to finish initialising.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// Whether the creator's drop removes the segment's name (default yes).
    /// With `false` the name outlives the creator, so that a late opener
    /// still finds the messages; it is reclaimed by the next creator of the
    /// name once no process holds the segment.
    pub fn unlink_on_drop(mut self, unlink: bool) -> Self {
        self.unlink_on_drop = unlink;
        self
    }

    /// The data capacity asked for.
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }

    /// The owner set with [`Options::owner`], if any.
    pub fn get_owner(&self) -> Option<u32> {
        self.owner
    }

    /// How long opening waits (see [`Options::open_timeout`]).
    pub(crate) fn get_open_timeout(&self) -> Duration {
        self.open_timeout
    }

    /// When opening: the uid the segment must belong to (default: the
    /// effective uid). A segment of anyone else is refused
    /// ([`Error::ForeignOwner`]) before anything is read or written.
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// The fingerprint of the channel's message type (see
    /// [`shmlane_core::message_type_of`] and [`shmlane_core::schema_id`]).
    /// When creating: recorded in the ring's header (0, like the default,
    /// makes an untyped channel). When opening: the type expected, so that a
    /// channel created for another type, or untyped, is refused at open with
    /// [`Error::TypeMismatch`] (nothing of it claimed), not read as garbage
    /// later (an opener with 0 expects an untyped channel). By default an
    /// opener accepts any channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Receiver, Sender};
    ///
    /// let _tx = Sender::create("/doc-options-type", &Options::new().message_type(7))?;
    /// let refused = Receiver::open("/doc-options-type", &Options::new().message_type(8));
    /// assert!(matches!(refused, Err(Error::TypeMismatch { expected: 8, found: 7, .. })));
    /// let _rx = Receiver::open("/doc-options-type", &Options::new())?; // untyped: any
    /// # Ok::<(), Error>(())
    /// ```
    pub fn message_type(mut self, fingerprint: u64) -> Self {
        self.message_type = Some(fingerprint);
        self
    }

    /// [`Options::message_type`] with the fingerprint of `T`,
    /// [`shmlane_core::message_type_of::<T>()`](shmlane_core::message_type_of)
    /// (for peers built by the same compiler; see there).
    pub fn typed<T>(self) -> Self {
        self.message_type(shmlane_core::message_type_of::<T>())
    }

    /// The fingerprint set with [`Options::message_type`], if any.
    pub fn get_message_type(&self) -> Option<u64> {
        self.message_type
    }

    /// Bytes of shared memory a channel with these options uses, or why no
    /// channel can have them ([`Error::InvalidCapacity`],
    /// [`Error::InvalidMaxMessage`]).
    pub fn region_size(&self) -> Result<usize> {
        self.config()?;
        Ok(region_size(self.capacity))
    }

    fn config(&self) -> Result<Config> {
        let mut config = Config::new(self.capacity).message_type(self.message_type.unwrap_or(0));
        if let Some(max) = self.max_message {
            config = config.max_message(max);
        }
        config.check()?;
        Ok(config)
    }
}

/// A side of a channel, set up: its segment and its claimed end of the ring
/// (a [`Producer`] or a [`Consumer`], which borrow the segment's mapping).
struct Side<E> {
    end: E,
    segment: Segment,
}

/// How a side claims its end of a ring: [`Ring::producer`] or
/// [`Ring::consumer`], with the side's gate.
type Claim<E> = fn(&Ring<'static>, Gate) -> std::result::Result<E, shmlane_core::Error>;

enum Start {
    /// The segment is fresh: lay out a new ring.
    Create(Config),
    /// The segment holds (or soon holds) a ring: wait for it (until the
    /// deadline, or as long as it takes), then attach, if it carries the
    /// message type expected (any, if none is).
    Attach(Option<Instant>, Option<u64>),
}

/// Creates or attaches the ring, takes `role`'s lock on `segment`, and
/// claims the role with `claim`. The lock is taken before the claim, so it
/// is held whenever the ring says the role is active: "active, but its lock
/// is free" means its holder died.
fn claim_side<E>(
    segment: &Segment,
    start: Start,
    role: Role,
    mode: WaitMode,
    claim: Claim<E>,
) -> Result<E> {
    let (byte, peer) = match role {
        Role::Producer => (lock::PRODUCER, Role::Consumer),
        Role::Consumer => (lock::CONSUMER, Role::Producer),
    };
    let (ptr, len) = (segment.as_ptr(), segment.len());
    let ring = match start {
        // SAFETY: the mapping is valid for `len` bytes until `segment`
        // drops; every user of the ring (the producer or consumer and the
        // gate's watch) is dropped before it (field order of `Side`, then of
        // Sender/Receiver), and the region is only accessed through rings.
        Start::Create(config) => unsafe { Ring::create(ptr, len, config) }?,
        Start::Attach(deadline, expected) => {
            let ring = loop {
                // SAFETY: as above.
                match unsafe { Ring::attach(ptr, len) } {
                    // A raw segment someone is still filling in (channels are
                    // named only once their ring is laid out).
                    Err(shmlane_core::Error::Uninitialised)
                        if deadline.is_none_or(|d| Instant::now() < d) =>
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    other => break other?,
                }
            };
            // Before the claim: a mismatch leaves the role to a right opener.
            if let Err(shmlane_core::Error::TypeMismatch { expected, found }) =
                ring.expect_message_type(expected)
            {
                return Err(Error::TypeMismatch {
                    name: segment.name().unwrap_or("<fd>").to_owned(),
                    expected,
                    found,
                });
            }
            ring
        }
    };
    // The lock before the claim; after the attach's checks, so that an
    // opener refused by them (a mismatched type) never holds it.
    if !lock::try_lock(segment.fd(), byte, false).map_err(|e| Error::io("fcntl", e))? {
        return Err(Error::RoleTaken(role));
    }
    let fd = segment
        .fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("dup", e))?;
    let gate = Gate::new(mode, Some(PeerWatch { fd, ring, peer }));
    let cpu = gate.confined_cpu();
    let end = claim(&ring, gate)?;
    // After the claim: the role is ours, and so is its hint.
    ring.set_cpu_hint(role, cpu);
    Ok(end)
}

impl<E> Side<E> {
    /// Creates the named segment with the ring laid out and the role
    /// claimed before the name appears (see [`Segment::create_with`]).
    fn create_named(name: &str, options: &Options, role: Role, claim: Claim<E>) -> Result<Self> {
        let config = options.config()?;
        let size = options.region_size()?;
        let (mut segment, end) = Segment::create_with(name, size, options.mode, |segment| {
            claim_side(segment, Start::Create(config), role, options.wait, claim)
        })?;
        segment.set_unlink_on_drop(options.unlink_on_drop);
        Ok(Side { end, segment })
    }

    fn open_named(name: &str, options: &Options, role: Role, claim: Claim<E>) -> Result<Self> {
        let deadline = Instant::now().checked_add(options.open_timeout);
        let segment = Segment::open_with(name, Expect::new(options.owner, options.mode))?;
        let start = Start::Attach(deadline, options.message_type);
        let end = claim_side(&segment, start, role, options.wait, claim)?;
        Ok(Side { end, segment })
    }

    /// A fresh anonymous segment and a descriptor of it for the peer: a new
    /// open file description, which holds none of this side's locks.
    fn create_anonymous(options: &Options, role: Role, claim: Claim<E>) -> Result<(Self, OwnedFd)> {
        let config = options.config()?;
        let segment = Segment::anonymous(options.region_size()?)?;
        segment.seal()?;
        let end = claim_side(&segment, Start::Create(config), role, options.wait, claim)?;
        let fd = segment.share_fd()?;
        Ok((Side { end, segment }, fd))
    }

    fn from_fd(fd: OwnedFd, options: &Options, role: Role, claim: Claim<E>) -> Result<Self> {
        let segment = Segment::from_fd(fd)?;
        let deadline = Instant::now().checked_add(options.open_timeout);
        let start = Start::Attach(deadline, options.message_type);
        let end = claim_side(&segment, start, role, options.wait, claim)?;
        Ok(Side { end, segment })
    }
}

pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A side's doorbell (its readiness fd), made before the side claims its
/// role: failing to make it (no descriptor left) then leaves the ring as it
/// was, instead of closing a role just claimed.
fn new_bell() -> Result<Doorbell> {
    Doorbell::new().map_err(|e| Error::io("eventfd", e))
}

/// A direct doorbell (see `Doorbell::direct`), the sending end of it for
/// the peer, and a copy of that end for this side's death watch.
fn new_direct_bell() -> Result<(Doorbell, OwnedFd, OwnedFd)> {
    let (bell, waker) = Doorbell::direct().map_err(|e| Error::io("socketpair", e))?;
    let own = waker.try_clone().map_err(|e| Error::io("dup", e))?;
    Ok((bell, waker, own))
}

/// The sides of a rendezvous connection ([`crate::rendezvous`]): their
/// readiness fds are rung by the peer directly (a byte on a datagram
/// socket whose sending end the peer gets), not through the bridge thread.
impl Sender {
    /// [`Sender::anonymous`] with a direct doorbell: the sender, the ring's
    /// fd and the doorbell's sending end, both for the peer.
    pub(crate) fn anonymous_direct(options: &Options) -> Result<(Sender, OwnedFd, OwnedFd)> {
        let (bell, waker, own) = new_direct_bell()?;
        let (side, fd) = Side::create_anonymous(options, Role::Producer, Ring::producer)?;
        let tx = Self::start(bell, side);
        tx.producer.waiter().set_own_bell(own);
        Ok((tx, fd, waker))
    }

    /// [`Sender::from_fd`] with a direct doorbell: the sender and the
    /// doorbell's sending end for the peer.
    pub(crate) fn from_fd_direct(fd: OwnedFd, options: &Options) -> Result<(Sender, OwnedFd)> {
        let (bell, waker, own) = new_direct_bell()?;
        let tx = Self::start(
            bell,
            Side::from_fd(fd, options, Role::Producer, Ring::producer)?,
        );
        tx.producer.waiter().set_own_bell(own);
        Ok((tx, waker))
    }

    /// From now on every wake of the receiver also rings its direct
    /// doorbell through `waker` (checked: `ready::is_peer_waker`).
    pub(crate) fn set_peer_bell(&self, waker: OwnedFd) {
        self.producer.waiter().set_peer_bell(waker);
    }
}

impl Receiver {
    /// [`Receiver::anonymous`] with a direct doorbell; see
    /// [`Sender::anonymous_direct`].
    pub(crate) fn anonymous_direct(options: &Options) -> Result<(Receiver, OwnedFd, OwnedFd)> {
        let (bell, waker, own) = new_direct_bell()?;
        let (side, fd) = Side::create_anonymous(options, Role::Consumer, Ring::consumer)?;
        let rx = Self::start(bell, side);
        rx.consumer.waiter().set_own_bell(own);
        Ok((rx, fd, waker))
    }

    /// [`Receiver::from_fd`] with a direct doorbell; see
    /// [`Sender::from_fd_direct`].
    pub(crate) fn from_fd_direct(fd: OwnedFd, options: &Options) -> Result<(Receiver, OwnedFd)> {
        let (bell, waker, own) = new_direct_bell()?;
        let rx = Self::start(
            bell,
            Side::from_fd(fd, options, Role::Consumer, Ring::consumer)?,
        );
        rx.consumer.waiter().set_own_bell(own);
        Ok((rx, waker))
    }

    /// See [`Sender::set_peer_bell`].
    pub(crate) fn set_peer_bell(&self, waker: OwnedFd) {
        self.consumer.waiter().set_peer_bell(waker);
    }
}

/// The common end of [`Sender::arm`] and [`Receiver::arm`]: what the ring's
/// `arm` found, turned into an armed doorbell (or "ready").
///
/// # Safety
///
/// `word` must be the side's wait word in the ring whose mapping outlives
/// `bell` (the field order of Sender and Receiver).
unsafe fn arm_doorbell(
    bell: &Doorbell,
    gate: &Gate,
    armed: std::result::Result<Armed, shmlane_core::Error>,
    word: &AtomicU32,
) -> Result<bool> {
    let ticket = match armed? {
        Armed::Ready => return Ok(false),
        Armed::Waiting(ticket) => ticket,
    };
    // Watch the peer's process as a sleeping side would, so that its death
    // moves the word (and so rings the bell).
    if gate.prepare_to_wait(word) {
        return Ok(false); // died: the next call drains, then says so
    }
    // SAFETY: the caller's contract.
    unsafe { bell.arm(word, ticket) }.map_err(|e| Error::io("futex_waitv", e))?;
    Ok(true)
}

// ---------------------------------------------------------------------------

/// The sending side of a channel.
///
/// # Examples
///
/// ```
/// use shmlane_posix::{Options, Receiver, Sender};
///
/// let mut tx = Sender::create("/doc-sender", &Options::new())?;
/// let mut rx = Receiver::open("/doc-sender", &Options::new())?; // usually another process
/// tx.send(b"hello")?;
/// let mut buf = [0; 64];
/// let n = rx.recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub struct Sender {
    // Field order matters: the producer and the doorbell's arm borrow the
    // segment's mapping.
    pub(crate) producer: Producer<'static, Gate>,
    bell: Doorbell,
    segment: Segment,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("segment", &self.segment)
            .field("producer", &self.producer)
            .finish()
    }
}

/// The readiness fd ([`Sender::ready_fd`]), for event loops that take an
/// `AsFd` (mio's `SourceFd`, tokio's `AsyncFd`).
impl std::os::fd::AsFd for Sender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.bell.fd()
    }
}

impl Sender {
    fn start(bell: Doorbell, side: Side<Producer<'static, Gate>>) -> Sender {
        Sender {
            producer: side.end,
            bell,
            segment: side.segment,
        }
    }

    /// Creates the channel's named segment and becomes its sender. A stale
    /// segment of that name (all its processes dead) is reclaimed; a live one
    /// is [`Error::AlreadyExists`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Sender};
    ///
    /// let tx = Sender::create("/doc-sender-create", &Options::new().capacity(4096))?;
    /// assert_eq!(tx.capacity(), 4096);
    /// assert!(matches!(
    ///     Sender::create("/doc-sender-create", &Options::new()),
    ///     Err(Error::AlreadyExists { .. })
    /// ));
    /// assert!(matches!(
    ///     Sender::create("/doc-sender-bad", &Options::new().capacity(1000)),
    ///     Err(Error::InvalidCapacity { capacity: 1000 })
    /// ));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn create(name: &str, options: &Options) -> Result<Sender> {
        let bell = new_bell()?;
        Ok(Self::start(
            bell,
            Side::create_named(name, options, Role::Producer, Ring::producer)?,
        ))
    }

    /// Opens a channel whose receiver created it, waiting up to the
    /// options' open timeout for the creator to finish. Only the options'
    /// wait mode and open timeout apply; the ring's sizes are the creator's.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let rx = Receiver::create("/doc-sender-open", &Options::new())?;
    /// let tx = Sender::open("/doc-sender-open", &Options::new())?;
    /// assert_eq!(tx.capacity(), rx.capacity());
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn open(name: &str, options: &Options) -> Result<Sender> {
        let bell = new_bell()?;
        Ok(Self::start(
            bell,
            Side::open_named(name, options, Role::Producer, Ring::producer)?,
        ))
    }

    /// Creates a channel in an anonymous, sealed segment and returns its
    /// sender, with an fd for the receiver's process: pass it with
    /// [`send_fd`](crate::fdpass::send_fd) or to a child, which calls
    /// [`Receiver::from_fd`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let (mut tx, fd) = Sender::anonymous(&Options::new())?;
    /// let mut rx = Receiver::from_fd(fd, &Options::new())?; // usually in the child
    /// tx.send(b"hi")?;
    /// assert_eq!(rx.recv_vec()?, b"hi");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn anonymous(options: &Options) -> Result<(Sender, OwnedFd)> {
        let bell = new_bell()?;
        let (side, fd) = Side::create_anonymous(options, Role::Producer, Ring::producer)?;
        Ok((Self::start(bell, side), fd))
    }

    /// Becomes the sender of a channel in an anonymous segment received as
    /// `fd` (see [`Receiver::anonymous`]). The segment must be sealed
    /// ([`Error::NotSealed`] otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let (mut rx, fd) = Receiver::anonymous(&Options::new())?;
    /// // `fd` would go to another process with `fdpass::send_fd`.
    /// let mut tx = Sender::from_fd(fd, &Options::new())?;
    /// tx.send(b"over the fd")?;
    /// assert_eq!(rx.recv_vec()?, b"over the fd");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd, options: &Options) -> Result<Sender> {
        let bell = new_bell()?;
        Ok(Self::start(
            bell,
            Side::from_fd(fd, options, Role::Producer, Ring::producer)?,
        ))
    }

    /// Sends `msg`, waiting for room as long as it takes (or until the
    /// receiver closes or dies: [`Error::Disconnected`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-send", &Options::new())?;
    /// let mut tx = Sender::open("/doc-send", &Options::new())?;
    /// std::thread::scope(|s| {
    ///     s.spawn(move || {
    ///         for i in 0..10_000u32 {
    ///             tx.send(&i.to_le_bytes()).unwrap(); // waits whenever the ring is full
    ///         }
    ///     });
    ///     assert_eq!(rx.by_ref().count(), 10_000);
    /// });
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        Ok(self.producer.send(msg)?)
    }

    /// Sends `msg` if there is room now: [`Error::Full`] otherwise
    /// (or [`Error::Disconnected`] once the receiver is known to be gone).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Sender};
    ///
    /// let mut tx = Sender::create("/doc-try-send", &Options::new().capacity(64))?;
    /// tx.try_send(&[0; 24])?;
    /// tx.try_send(&[0; 24])?;
    /// assert!(matches!(tx.try_send(&[0; 24]), Err(Error::Full)));
    /// assert!(matches!(tx.try_send(&[0; 25]), Err(Error::TooLarge { len: 25, max: 24 })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        match self.producer.try_send(msg) {
            Err(shmlane_core::Error::Full) if self.producer.waiter().peer_died_rate_limited() => {
                Err(Error::Disconnected)
            }
            other => Ok(other?),
        }
    }

    /// Sends `msg`, waiting for room at most `timeout` ([`Error::TimedOut`];
    /// nothing was sent).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::{Error, Options, Sender};
    ///
    /// let mut tx = Sender::create("/doc-send-timeout", &Options::new().capacity(64))?;
    /// tx.send(&[0; 24])?;
    /// tx.send(&[0; 24])?; // full now, and nobody receives
    /// let result = tx.send_timeout(&[0; 24], Duration::from_millis(10));
    /// assert!(matches!(result, Err(Error::TimedOut)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        match deadline(timeout) {
            Some(at) => Ok(self.producer.send_timeout(msg, at)?),
            None => self.send(msg),
        }
    }

    /// Reserves room for a `len`-byte message, waiting as long as it takes,
    /// to be written in place and committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut tx = Sender::create("/doc-reserve", &Options::new())?;
    /// let mut rx = Receiver::open("/doc-reserve", &Options::new())?;
    /// let mut grant = tx.reserve(8)?;
    /// grant.copy_from_slice(&42u64.to_le_bytes());
    /// grant.commit(8);
    /// let msg = rx.read()?;
    /// assert_eq!(u64::from_le_bytes(msg[..].try_into().unwrap()), 42);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>> {
        Ok(self.producer.reserve(len)?)
    }

    /// Reserves room for a `len`-byte message if there is room now
    /// ([`Error::Full`] otherwise); see [`Sender::reserve`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Sender};
    ///
    /// let mut tx = Sender::create("/doc-try-reserve", &Options::new().capacity(64))?;
    /// let grant = tx.try_reserve(24)?;
    /// grant.commit(24);
    /// tx.try_reserve(24)?.commit(24);
    /// assert!(matches!(tx.try_reserve(24), Err(Error::Full)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_>> {
        Ok(self.producer.try_reserve(len)?)
    }

    /// Reserves room for a `len`-byte message, waiting at most `timeout`;
    /// see [`Sender::reserve`] and [`Sender::send_timeout`].
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<WriteGrant<'_>> {
        match deadline(timeout) {
            Some(at) => Ok(self.producer.reserve_timeout(len, at)?),
            None => self.reserve(len),
        }
    }

    /// Starts a batch: its messages are published together, with one atomic
    /// store (and at most one wake-up), when it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut tx = Sender::create("/doc-send-batch", &Options::new())?;
    /// let mut rx = Receiver::open("/doc-send-batch", &Options::new())?;
    /// let mut batch = tx.batch();
    /// for tick in [b"a", b"b", b"c"] {
    ///     batch.try_send(tick)?;
    /// }
    /// assert_eq!(batch.publish(), 3);
    /// assert_eq!(rx.recv_vec()?, b"a");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn batch(&mut self) -> SendBatch<'_> {
        self.producer.batch()
    }

    /// Whether the receiver closed or died.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let tx = Sender::create("/doc-is-disconnected", &Options::new())?;
    /// let rx = Receiver::open("/doc-is-disconnected", &Options::new())?;
    /// assert!(!tx.is_disconnected());
    /// drop(rx);
    /// assert!(tx.is_disconnected());
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.producer.is_disconnected() || self.producer.waiter().peer_died()
    }

    /// The readiness fd of this sender: readable once [`Sender::arm`]
    /// armed it and then room came, or the receiver closed or died. The
    /// same contract as [`Receiver::ready_fd`], with sends for receives.
    ///
    /// # Examples
    ///
    /// ```
    /// use rustix::event::{poll, PollFd, PollFlags};
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut tx = Sender::create("/doc-send-ready", &Options::new().capacity(4096))?;
    /// let mut rx = Receiver::open("/doc-send-ready", &Options::new())?;
    /// while tx.try_send(&[0; 1000]).is_ok() {}
    /// assert!(tx.arm(1000)?); // full: wait for room
    /// rx.try_recv_vec()?; // usually another process
    /// let fd = tx.ready_fd()?;
    /// let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    /// assert_eq!(poll(&mut fds, None).unwrap(), 1);
    /// tx.try_send(&[0; 1000])?;
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.bell.fd())
    }

    /// Prepares to wait on [`Sender::ready_fd`] for room for a `len`-byte
    /// message: `true` when armed (no room now), `false` when there is
    /// something to do now (room, or the receiver closed or died). See
    /// [`Receiver::arm`].
    pub fn arm(&mut self, len: usize) -> Result<bool> {
        let bell = &self.bell;
        bell.clear();
        let armed = self.producer.arm(len);
        let word = self.producer.wait_word();
        // SAFETY: `word` is this ring's wait word; the mapping outlives the
        // doorbell (field order of `Sender`).
        unsafe { arm_doorbell(bell, self.producer.waiter(), armed, word) }
    }

    /// Bytes of the ring in use now (messages the receiver has not freed,
    /// with their 8-byte headers and padding); see
    /// [`shmlane_core::Producer::len`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Sender};
    ///
    /// let mut tx = Sender::create("/doc-sender-len", &Options::new().capacity(4096))?;
    /// assert!(tx.is_empty());
    /// tx.send(b"12345")?; // a header and 5 bytes rounded up to 8
    /// assert_eq!((tx.len(), tx.free_bytes()), (16, 4096 - 16));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.producer.len()
    }

    /// Whether the receiver has freed everything sent.
    pub fn is_empty(&self) -> bool {
        self.producer.is_empty()
    }

    /// Bytes free for messages now: [`Sender::capacity`] − [`Sender::len`].
    pub fn free_bytes(&self) -> usize {
        self.producer.free_bytes()
    }

    /// Data bytes of the ring.
    pub fn capacity(&self) -> usize {
        self.producer.capacity()
    }

    /// Longest message the channel carries.
    pub fn max_message(&self) -> usize {
        self.producer.max_message()
    }

    /// What this side has done: messages sent, ring bytes, full rings met,
    /// sleeps, wake-ups sent ([`Counters`]), as any
    /// process sees them in the header (`shmlane stat`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Sender};
    ///
    /// let mut tx = Sender::create("/doc-sender-counters", &Options::new())?;
    /// tx.send(b"12345")?;
    /// let c = tx.counters();
    /// assert_eq!((c.messages, c.bytes), (1, 16)); // a record: 8 + 5, padded to 8
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn counters(&self) -> Counters {
        self.producer.counters()
    }

    /// The segment the channel lives in.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }
}

// ---------------------------------------------------------------------------

/// The receiving side of a channel. Also an iterator over the messages, which
/// ends when the sender is gone and everything it sent has been received.
///
/// # Examples
///
/// ```
/// use shmlane_posix::{Options, Receiver, Sender};
///
/// let mut rx = Receiver::create("/doc-receiver", &Options::new())?;
/// let mut tx = Sender::open("/doc-receiver", &Options::new())?;
/// for word in ["one", "two", "three"] {
///     tx.send(word.as_bytes())?;
/// }
/// drop(tx);
/// let words: Vec<Vec<u8>> = rx.by_ref().collect::<Result<_, _>>()?;
/// assert_eq!(words, [&b"one"[..], b"two", b"three"]);
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub struct Receiver {
    // Field order matters: the consumer and the doorbell's arm borrow the
    // segment's mapping.
    pub(crate) consumer: Consumer<'static, Gate>,
    bell: Doorbell,
    segment: Segment,
    failed: bool,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("segment", &self.segment)
            .field("consumer", &self.consumer)
            .finish()
    }
}

/// The readiness fd ([`Receiver::ready_fd`]), for event loops that take
/// an `AsFd` (mio's `SourceFd`, tokio's `AsyncFd`).
impl std::os::fd::AsFd for Receiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.bell.fd()
    }
}

impl Receiver {
    fn start(bell: Doorbell, side: Side<Consumer<'static, Gate>>) -> Receiver {
        Receiver {
            consumer: side.end,
            bell,
            segment: side.segment,
            failed: false,
        }
    }

    /// Creates the channel's named segment and becomes its receiver; see
    /// [`Sender::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Receiver, Sender};
    ///
    /// let rx = Receiver::create("/doc-receiver-create", &Options::new().capacity(1 << 20))?;
    /// let tx = Sender::open("/doc-receiver-create", &Options::new())?;
    /// assert_eq!(tx.capacity(), 1 << 20); // the creator's size
    /// assert!(matches!(
    ///     Receiver::open("/doc-receiver-create", &Options::new()),
    ///     Err(Error::RoleTaken(_))
    /// ));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn create(name: &str, options: &Options) -> Result<Receiver> {
        let bell = new_bell()?;
        Ok(Self::start(
            bell,
            Side::create_named(name, options, Role::Consumer, Ring::consumer)?,
        ))
    }

    /// Opens a channel whose sender created it; see [`Sender::open`].
    pub fn open(name: &str, options: &Options) -> Result<Receiver> {
        let bell = new_bell()?;
        Ok(Self::start(
            bell,
            Side::open_named(name, options, Role::Consumer, Ring::consumer)?,
        ))
    }

    /// Creates a channel in an anonymous, sealed segment and returns its
    /// receiver, with an fd for the sender's process ([`Sender::from_fd`],
    /// which has an example).
    pub fn anonymous(options: &Options) -> Result<(Receiver, OwnedFd)> {
        let bell = new_bell()?;
        let (side, fd) = Side::create_anonymous(options, Role::Consumer, Ring::consumer)?;
        Ok((Self::start(bell, side), fd))
    }

    /// Becomes the receiver of a channel in an anonymous segment received as
    /// `fd` (see [`Sender::anonymous`], which has an example). The segment
    /// must be sealed ([`Error::NotSealed`] otherwise).
    pub fn from_fd(fd: OwnedFd, options: &Options) -> Result<Receiver> {
        let bell = new_bell()?;
        Ok(Self::start(
            bell,
            Side::from_fd(fd, options, Role::Consumer, Ring::consumer)?,
        ))
    }

    pub(crate) fn empty_or_gone(&self, e: shmlane_core::Error) -> Error {
        match e {
            shmlane_core::Error::Empty if self.consumer.waiter().peer_died_rate_limited() => {
                Error::Disconnected
            }
            e => e.into(),
        }
    }

    /// Copies the next message into `buf`, waiting as long as it takes, and
    /// returns its length. [`Error::BufferTooSmall`] leaves it queued;
    /// [`Error::Disconnected`] comes once the sender is gone and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-recv", &Options::new())?;
    /// let mut tx = Sender::open("/doc-recv", &Options::new())?;
    /// tx.send(b"12 bytes....")?;
    /// drop(tx);
    /// let mut buf = [0; 8];
    /// assert!(matches!(rx.recv(&mut buf), Err(Error::BufferTooSmall { needed: 12, .. })));
    /// let mut buf = [0; 16];
    /// assert_eq!(rx.recv(&mut buf)?, 12);
    /// assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        Ok(self.consumer.recv(buf)?)
    }

    /// Copies the next message into `buf` if there is one now.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Receiver};
    ///
    /// let mut rx = Receiver::create("/doc-try-recv", &Options::new())?;
    /// assert!(matches!(rx.try_recv(&mut [0; 16]), Err(Error::Empty)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.consumer
            .try_recv(buf)
            .map_err(|e| self.empty_or_gone(e))
    }

    /// Copies the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::{Error, Options, Receiver};
    ///
    /// let mut rx = Receiver::create("/doc-recv-timeout", &Options::new())?;
    /// let result = rx.recv_timeout(&mut [0; 8], Duration::from_millis(10));
    /// assert!(matches!(result, Err(Error::TimedOut)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        match deadline(timeout) {
            Some(at) => Ok(self.consumer.recv_timeout(buf, at)?),
            None => self.recv(buf),
        }
    }

    /// Receives the next message as a new vector, waiting as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-recv-vec", &Options::new())?;
    /// let mut tx = Sender::open("/doc-recv-vec", &Options::new())?;
    /// tx.send(b"owned")?;
    /// let msg: Vec<u8> = rx.recv_vec()?;
    /// assert_eq!(msg, b"owned");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn recv_vec(&mut self) -> Result<Vec<u8>> {
        Ok(self.read()?.to_vec())
    }

    /// Hands out the next message in place, waiting as long as it takes;
    /// dropping the grant consumes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-read", &Options::new())?;
    /// let mut tx = Sender::open("/doc-read", &Options::new())?;
    /// tx.send(&[1, 2, 3])?;
    /// let msg = rx.read()?; // a view into shared memory, no copy
    /// assert_eq!(msg.iter().sum::<u8>(), 6);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn read(&mut self) -> Result<ReadGrant<'_>> {
        Ok(self.consumer.read()?)
    }

    /// Hands out the next message in place if there is one now.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-try-read", &Options::new())?;
    /// let mut tx = Sender::open("/doc-try-read", &Options::new())?;
    /// assert!(matches!(rx.try_read(), Err(Error::Empty)));
    /// tx.send(b"now")?;
    /// assert_eq!(&*rx.try_read()?, b"now");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_read(&mut self) -> Result<ReadGrant<'_>> {
        if self.consumer.waiter().peer_died_rate_limited() {
            // Drain first: `read` reports Disconnected only when empty.
            return Ok(self.consumer.read()?);
        }
        Ok(self.consumer.try_read()?)
    }

    /// Hands out the next message in place, waiting at most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_posix::{Error, Options, Receiver};
    ///
    /// let mut rx = Receiver::create("/doc-read-timeout", &Options::new())?;
    /// assert!(matches!(rx.read_timeout(Duration::from_millis(5)), Err(Error::TimedOut)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read_timeout(&mut self, timeout: Duration) -> Result<ReadGrant<'_>> {
        match deadline(timeout) {
            Some(at) => Ok(self.consumer.read_timeout(at)?),
            None => self.read(),
        }
    }

    /// Starts a batch: the room of the messages read through it is freed
    /// together when it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-recv-batch", &Options::new())?;
    /// let mut tx = Sender::open("/doc-recv-batch", &Options::new())?;
    /// for i in 0..5u8 {
    ///     tx.send(&[i])?;
    /// }
    /// let mut batch = rx.batch();
    /// let mut total = 0;
    /// while let Ok(msg) = batch.try_read() {
    ///     total += msg[0];
    /// }
    /// batch.release();
    /// assert_eq!(total, 10);
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn batch(&mut self) -> RecvBatch<'_> {
        self.consumer.batch()
    }

    /// Whether the sender is known to have died (its process ended without
    /// closing). Messages it committed may still be queued.
    pub fn sender_died(&self) -> bool {
        self.consumer.waiter().peer_died()
    }

    /// The readiness fd of this receiver, for `poll`, `epoll`, mio or
    /// tokio: readable once [`Receiver::arm`] armed it and then a message
    /// came, or the sender closed or died (see [`crate::Selector`] for a
    /// ready-made loop). An `eventfd` named nowhere (see the design notes in
    /// `posix/src/ready.rs`), the same fd for the receiver's life, also
    /// reachable through `AsFd`. (A `Result` for callers written against
    /// [`crate::MessageReceiver::ready_fd`]; it does not fail.)
    ///
    /// The contract, the same for level- and edge-triggered registrations:
    /// call [`Receiver::arm`]; if it says armed (`true`), wait for the fd;
    /// when it is readable (or `arm` said `false`), receive with
    /// [`Receiver::try_recv`] / [`Receiver::try_read`] until `Empty`, then
    /// arm again. `arm` resets the fd, so a level-triggered loop does not
    /// spin on a stale readiness. Readable means "try again": a stale arm
    /// may make it readable with nothing to receive.
    ///
    /// Only a side that sleeps ([`WaitMode::SpinThenFutex`], the default)
    /// has readiness: a busy-polling side's peer never looks at its
    /// announcements ([`Error::IncompatibleWait`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use rustix::event::{poll, PollFd, PollFlags};
    /// use shmlane_posix::{Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-ready-fd", &Options::new())?;
    /// let mut tx = Sender::open("/doc-ready-fd", &Options::new())?;
    /// assert!(rx.arm()?); // nothing yet: wait for the fd
    /// tx.send(b"ding")?; // usually another process
    /// let fd = rx.ready_fd()?;
    /// let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    /// assert_eq!(poll(&mut fds, None).unwrap(), 1);
    /// assert_eq!(rx.try_recv_vec()?, b"ding");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn ready_fd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.bell.fd())
    }

    /// Prepares to wait on [`Receiver::ready_fd`]: resets the fd, then
    /// announces this side to the sender and re-checks the ring. Returns
    /// `true` when armed (nothing to receive now: the fd becomes readable
    /// when that changes), `false` when there is something to do now (a
    /// message, or the sender closed or died: the next `try_recv` says
    /// which). See [`Receiver::ready_fd`] for the contract.
    ///
    /// Costs a few atomic operations and, when it arms, a `futex` wake of
    /// the process's bridge thread; the sender's next publication pays one
    /// `futex` wake. Nothing is paid while nobody arms.
    pub fn arm(&mut self) -> Result<bool> {
        let bell = &self.bell;
        bell.clear();
        let armed = self.consumer.arm();
        let word = self.consumer.wait_word();
        // SAFETY: `word` is this ring's wait word; the mapping outlives the
        // doorbell (field order of `Receiver`).
        unsafe { arm_doorbell(bell, self.consumer.waiter(), armed, word) }
    }

    /// [`Receiver::try_recv`] into a new vector: the message, or `Empty`
    /// at once.
    pub fn try_recv_vec(&mut self) -> Result<Vec<u8>> {
        let grant = self.try_read()?;
        Ok(grant.to_vec())
    }

    /// Looks at the next message in place without consuming it, if there is
    /// one now (like [`Receiver::try_read`], which then hands out the same
    /// message).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-peek", &Options::new())?;
    /// let mut tx = Sender::open("/doc-peek", &Options::new())?;
    /// tx.send(b"next")?;
    /// assert_eq!(rx.peek()?, b"next");
    /// assert_eq!(rx.recv_vec()?, b"next");
    /// assert!(matches!(rx.peek(), Err(Error::Empty)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn peek(&mut self) -> Result<&[u8]> {
        if let Err(e) = self.consumer.peek() {
            return Err(self.empty_or_gone(e));
        }
        // Found above: the same message, from this side's cached view.
        Ok(self.consumer.peek()?)
    }

    /// Bytes of the ring holding messages not received yet (with their
    /// 8-byte headers and padding); see [`shmlane_core::Consumer::len`].
    pub fn len(&self) -> usize {
        self.consumer.len()
    }

    /// Whether no message is waiting now.
    pub fn is_empty(&self) -> bool {
        self.consumer.is_empty()
    }

    /// Bytes free for the sender now: [`Receiver::capacity`] −
    /// [`Receiver::len`].
    pub fn free_bytes(&self) -> usize {
        self.consumer.free_bytes()
    }

    /// Data bytes of the ring.
    pub fn capacity(&self) -> usize {
        self.consumer.capacity()
    }

    /// Longest message the channel carries.
    pub fn max_message(&self) -> usize {
        self.consumer.max_message()
    }

    /// What this side has done: messages received, ring bytes, empty
    /// rings met, sleeps, wake-ups sent ([`Counters`]).
    pub fn counters(&self) -> Counters {
        self.consumer.counters()
    }

    /// The segment the channel lives in.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }
}

impl Iterator for Receiver {
    type Item = Result<Vec<u8>>;

    /// The next message, waiting as long as it takes; `None` once the sender
    /// is gone and drained, or after an error (which is yielded once).
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.recv_vec() {
            Ok(msg) => Some(Ok(msg)),
            Err(Error::Disconnected) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
