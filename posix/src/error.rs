//! The one error type of `shmlane-posix`.
//!
//! The invariant: every failure is a variant a caller can act on, and says
//! what it is about (the [`Object`] and its name, the limit, the system
//! call); an error never stands for a lost message: `Full`, `Empty`,
//! `TooLarge` and `BufferTooSmall` leave the message with the caller or in
//! the channel.

use std::fmt;
use std::io;

use shmlane_core::{Corruption, Role};

/// Everything that can go wrong, as variants a caller can act on.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmlane_posix::{Error, Options, Receiver};
///
/// let mut rx = Receiver::create("/doc-error", &Options::new())?;
/// let mut buf = [0; 64];
/// match rx.recv_timeout(&mut buf, Duration::from_millis(1)) {
///     Ok(n) => println!("got {n} bytes"),
///     Err(Error::TimedOut) => println!("nothing yet"), // try again later
///     Err(Error::Disconnected) => println!("sender gone"), // stop
///     Err(e) => return Err(e),                          // a real problem
/// }
/// # Ok::<(), Error>(())
/// ```
///
/// Errors from the ring itself (`Full`, `Empty`, `Disconnected`, …) keep
/// their meaning from [`shmlane_core::Error`]; the rest are about segments,
/// names and the operating system.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No room now (non-blocking send); nothing was sent.
    Full,
    /// No message now (non-blocking receive).
    Empty,
    /// The peer closed its side or its process died. A receiver sees this
    /// only after every message committed before has been received.
    Disconnected,
    /// A call with a timeout ran out of time; nothing was sent or received.
    TimedOut,
    /// The message is longer than the channel's maximum message size.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// The channel's maximum message size.
        max: usize,
    },
    /// The caller's buffer cannot hold the next message, which stays queued.
    BufferTooSmall {
        /// Length of the next message.
        needed: usize,
        /// Length of the caller's buffer.
        available: usize,
    },
    /// Another live handle holds this side of the channel.
    RoleTaken(Role),
    /// The name is not valid; `reason` says why.
    InvalidName {
        /// What the name was to name.
        object: Object,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The capacity is not a power of two in the supported range.
    InvalidCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// The maximum message size does not fit the capacity.
    InvalidMaxMessage {
        /// The size asked for.
        max_message: usize,
        /// The largest size the capacity allows.
        limit: usize,
    },
    /// A live object (or one that is not shmlane's) already has this name.
    /// Stale objects of dead processes are reclaimed instead.
    AlreadyExists {
        /// What is there.
        object: Object,
        /// The name.
        name: String,
    },
    /// The object at this name belongs to another user (and no option named
    /// that user as the expected owner). Nothing of it was read, written or
    /// removed.
    ForeignOwner {
        /// The name or path.
        name: String,
        /// Its owner's uid.
        owner: u32,
        /// The uid it was expected to belong to (by default the effective uid).
        expected: u32,
    },
    /// The object at this name lets its group or others write to it beyond
    /// the mode the caller asked for, so someone else could change what
    /// this process reads or sends. Nothing of it was read or written.
    UnsafeMode {
        /// The name or path.
        name: String,
        /// Its permission bits.
        mode: u32,
        /// The permission bits the caller allowed.
        allowed: u32,
    },
    /// The object at this name is not of the kind expected (a symbolic
    /// link, a FIFO, a directory, …). It is never followed, opened for I/O
    /// or removed.
    WrongType {
        /// The name or path.
        name: String,
        /// What was found.
        found: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A connecting peer's credentials were refused by the listener (see
    /// `EndpointOptions::peer_uid`); its connection was closed.
    PeerRefused {
        /// The peer's process id.
        pid: i32,
        /// The peer's user id.
        uid: u32,
        /// The peer's group id.
        gid: u32,
    },
    /// The peer's way of waiting cannot be combined with this side's: one
    /// side sleeps and the other cannot wake it (see
    /// [`shmlane_core::Error::IncompatibleWait`]).
    IncompatibleWait,
    /// No object has this name.
    NotFound {
        /// What was looked for.
        object: Object,
        /// The name.
        name: String,
    },
    /// The object belongs to another user, or its mode forbids access.
    PermissionDenied {
        /// What was refused.
        object: Object,
        /// The name, or `"<fd>"` for an anonymous segment.
        name: String,
    },
    /// The system cannot provide the memory (the `/dev/shm` size limit, the
    /// memory cgroup, `RLIMIT_AS`, …).
    NoSpace {
        /// Bytes asked for.
        bytes: usize,
    },
    /// The object is not a shmlane segment; `reason` says what it is.
    NotASegment {
        /// What was found instead.
        reason: &'static str,
    },
    /// The segment is smaller than its ring needs.
    TooSmall {
        /// Size of the segment.
        size: usize,
        /// Size needed.
        needed: usize,
    },
    /// The segment was laid out by an incompatible shmlane version.
    VersionMismatch {
        /// Layout version found.
        found: u32,
        /// Layout version this build speaks.
        expected: u32,
    },
    /// The creator did not finish initialising the segment in time.
    NotReady,
    /// An anonymous segment received from elsewhere is not sealed against
    /// resizing, so its sender could make this process die of `SIGBUS`.
    NotSealed,
    /// A value read from shared memory broke the protocol.
    Corrupt(Corruption),
    /// The channel was created for messages of another type than the one
    /// this side expects ([`Options::message_type`](crate::Options::message_type));
    /// nothing of it was claimed.
    TypeMismatch {
        /// The channel's name, or `"<fd>"` for an anonymous segment.
        name: String,
        /// The fingerprint this side expects.
        expected: u64,
        /// The fingerprint the channel's creator recorded (0: untyped).
        found: u64,
    },
    /// A message is not as long as the type it is received as (see
    /// [`shmlane_core::typed`]); it stays queued, for an untyped receive.
    WrongSize {
        /// Bytes of the type.
        expected: usize,
        /// Bytes of the message.
        found: usize,
    },
    /// A value could not be encoded (`serde` feature): its `Serialize`
    /// failed, or the encoder does not support what it asked for. Nothing
    /// was sent.
    Encode {
        /// The encoder's reason.
        reason: String,
    },
    /// A received message is not an encoding of the type asked for
    /// (`serde` feature). The message was received: its bytes are here.
    Decode {
        /// The decoder's reason.
        reason: String,
        /// The message's bytes.
        message: Vec<u8>,
    },
    /// An endpoint address could not be parsed; `reason` says what is wrong.
    InvalidAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A byte-stream peer announced a frame longer than the maximum; the
    /// stream cannot be trusted any further.
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The maximum message size.
        max: usize,
    },
    /// A byte stream ended in the middle of a frame.
    Truncated,
    /// A request exceeds a system limit; `limit` names it (e.g.
    /// `/proc/sys/fs/mqueue/msg_max`).
    LimitExceeded {
        /// The limit, as the file or resource that sets it.
        limit: &'static str,
        /// The value asked for.
        requested: u64,
        /// The limit's current value.
        max: u64,
    },
    /// This transport or object cannot do what was asked; `what` says
    /// what (e.g. a readiness descriptor for a FIFO listener).
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
    /// An operating-system call failed.
    Io {
        /// The call, e.g. `"mmap"`.
        op: &'static str,
        /// What it returned.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, source: impl Into<io::Error>) -> Self {
        Error::Io {
            op,
            source: source.into(),
        }
    }
}

impl From<shmlane_core::Error> for Error {
    fn from(e: shmlane_core::Error) -> Self {
        use shmlane_core::Error as E;
        match e {
            E::Full => Error::Full,
            E::Empty => Error::Empty,
            E::Disconnected => Error::Disconnected,
            E::TimedOut => Error::TimedOut,
            E::TooLarge { len, max } => Error::TooLarge { len, max },
            E::BufferTooSmall { needed, available } => Error::BufferTooSmall { needed, available },
            E::RoleTaken(role) => Error::RoleTaken(role),
            E::InvalidCapacity { capacity } => Error::InvalidCapacity { capacity },
            E::InvalidMaxMessage { max_message, limit } => {
                Error::InvalidMaxMessage { max_message, limit }
            }
            E::RegionTooSmall { needed, available } => Error::TooSmall {
                size: available,
                needed,
            },
            E::Uninitialised => Error::NotReady,
            E::BadMagic => Error::NotASegment {
                reason: "it does not start with shmlane's magic bytes",
            },
            E::VersionMismatch { found, expected } => Error::VersionMismatch { found, expected },
            E::Corrupt(what) => Error::Corrupt(what),
            E::IncompatibleWait => Error::IncompatibleWait,
            // Names the ring's segment only where the channel maps it.
            E::TypeMismatch { expected, found } => Error::TypeMismatch {
                name: "<ring>".to_owned(),
                expected,
                found,
            },
            E::WrongSize { expected, found } => Error::WrongSize { expected, found },
            // A mapping is page-aligned; anything else is a bug here.
            E::Misaligned { .. } => Error::NotASegment {
                reason: "its mapping is misaligned",
            },
            _ => Error::Corrupt(Corruption::State),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Full => f.write_str("channel is full"),
            Error::Empty => f.write_str("channel is empty"),
            Error::Disconnected => f.write_str("peer disconnected"),
            Error::TimedOut => f.write_str("timed out"),
            Error::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the maximum of {max}")
            }
            Error::BufferTooSmall { needed, available } => write!(
                f,
                "next message has {needed} bytes but the buffer holds {available}"
            ),
            Error::RoleTaken(role) => write!(f, "the {role} side is held by another handle"),
            Error::InvalidName {
                object,
                name,
                reason,
            } => write!(f, "invalid {object} name {name:?}: {reason}"),
            Error::InvalidCapacity { capacity } => write!(
                f,
                "capacity {capacity} is not a power of two between {} and {}",
                shmlane_core::MIN_CAPACITY,
                shmlane_core::MAX_CAPACITY
            ),
            Error::InvalidMaxMessage { max_message, limit } => write!(
                f,
                "maximum message size {max_message} exceeds the limit {limit} for this capacity"
            ),
            Error::AlreadyExists { object, name } => write!(
                f,
                "{object} {name:?} exists and is in use (or is not one of shmlane's)"
            ),
            Error::ForeignOwner {
                name,
                owner,
                expected,
            } => write!(
                f,
                "{name:?} belongs to uid {owner}, not to the expected uid {expected}"
            ),
            Error::UnsafeMode {
                name,
                mode,
                allowed,
            } => write!(
                f,
                "{name:?} has mode {mode:o}: group or others may write to it beyond the allowed mode {allowed:o}"
            ),
            Error::WrongType {
                name,
                found,
                expected,
            } => write!(f, "{name:?} is {found}, not {expected}"),
            Error::PeerRefused { pid, uid, gid } => write!(
                f,
                "refused a peer with unexpected credentials (pid {pid}, uid {uid}, gid {gid})"
            ),
            Error::IncompatibleWait => f.write_str(
                "the peer's wait cannot be combined with this side's: one sleeps and the other cannot wake it",
            ),
            Error::NotFound { object, name } => write!(f, "no {object} named {name:?}"),
            Error::PermissionDenied { object, name } => {
                write!(f, "permission denied for {object} {name:?}")
            }
            Error::NoSpace { bytes } => {
                write!(
                    f,
                    "the system cannot provide {bytes} bytes of shared memory"
                )
            }
            Error::NotASegment { reason } => write!(f, "not a shmlane segment: {reason}"),
            Error::TooSmall { size, needed } => {
                write!(
                    f,
                    "segment of {size} bytes is too small, {needed} are needed"
                )
            }
            Error::VersionMismatch { found, expected } => write!(
                f,
                "segment layout version {found} is not the supported version {expected}"
            ),
            Error::NotReady => {
                f.write_str("segment creator did not finish initialising it in time")
            }
            Error::NotSealed => f.write_str("anonymous segment is not sealed against resizing"),
            Error::Corrupt(what) => write!(f, "corrupt ring: {what}"),
            Error::TypeMismatch {
                name,
                expected,
                found,
            } => write!(
                f,
                "channel {name:?} carries messages of type {found:#018x} (0: untyped), not the expected {expected:#018x}"
            ),
            Error::WrongSize { expected, found } => write!(
                f,
                "message of {found} bytes is not a value of the expected {expected} bytes"
            ),
            Error::Encode { reason } => write!(f, "cannot encode the value: {reason}"),
            Error::Decode { reason, message } => write!(
                f,
                "message of {} bytes does not decode as the expected type: {reason}",
                message.len()
            ),
            Error::InvalidAddress { address, reason } => {
                write!(f, "invalid address {address:?}: {reason}")
            }
            Error::FrameTooLarge { len, max } => {
                write!(
                    f,
                    "peer sent a frame of {len} bytes, over the maximum of {max}"
                )
            }
            Error::Truncated => f.write_str("stream ended in the middle of a message"),
            Error::LimitExceeded {
                limit,
                requested,
                max,
            } => write!(f, "{requested} exceeds the system limit {limit} = {max}"),
            Error::Unsupported { what } => write!(f, "not supported: {what}"),
            Error::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What kind of object a name or an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Object {
    /// A shared-memory segment (`/dev/shm`, `memfd`).
    Segment,
    /// A POSIX message queue.
    Queue,
    /// A named pipe.
    Fifo,
    /// A unix or TCP socket (or a unix socket's file).
    Socket,
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Object::Segment => "shared-memory segment",
            Object::Queue => "message queue",
            Object::Fifo => "FIFO",
            Object::Socket => "socket",
        })
    }
}

impl From<Error> for io::Error {
    /// The error as an [`io::Error`] of the matching [`io::ErrorKind`] (the
    /// original inside, as its source), for code that speaks `std::io`: an
    /// [`Error::Io`] gives back its own error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    ///
    /// let e: std::io::Error = shmlane_posix::Error::TimedOut.into();
    /// assert_eq!(e.kind(), ErrorKind::TimedOut);
    /// let e: std::io::Error = shmlane_posix::Error::Empty.into();
    /// assert_eq!(e.kind(), ErrorKind::WouldBlock);
    /// ```
    fn from(e: Error) -> io::Error {
        use io::ErrorKind as K;
        let e = match e {
            Error::Io { source, .. } => return source,
            e => e,
        };
        let kind = match &e {
            Error::Full | Error::Empty => K::WouldBlock,
            Error::Disconnected => K::BrokenPipe,
            Error::TimedOut => K::TimedOut,
            Error::NotFound { .. } => K::NotFound,
            Error::AlreadyExists { .. } => K::AlreadyExists,
            Error::PermissionDenied { .. }
            | Error::ForeignOwner { .. }
            | Error::UnsafeMode { .. }
            | Error::PeerRefused { .. } => K::PermissionDenied,
            Error::NoSpace { .. } => K::OutOfMemory,
            Error::Truncated => K::UnexpectedEof,
            Error::TooLarge { .. }
            | Error::InvalidName { .. }
            | Error::InvalidCapacity { .. }
            | Error::InvalidMaxMessage { .. }
            | Error::InvalidAddress { .. }
            | Error::BufferTooSmall { .. } => K::InvalidInput,
            Error::RoleTaken(_) => K::ResourceBusy,
            Error::LimitExceeded { .. } => K::QuotaExceeded,
            Error::WrongType { .. } => K::InvalidInput,
            Error::Unsupported { .. } => K::Unsupported,
            _ => K::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
