//! The one error type of the crate.
//!
//! The invariant: a bad value read from the shared region is
//! [`Error::Corrupt`] (naming what was bad), never a panic; and the
//! non-blocking errors (`Full`, `Empty`, `TooLarge`, `BufferTooSmall`)
//! leave the message with the caller or in the ring.

use core::fmt;

/// Which side of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The single writer.
    Producer,
    /// The single reader.
    Consumer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        })
    }
}

/// Which check a value read from shared memory failed.
///
/// A [`Error::Corrupt`] means the peer (or something else with access to the
/// region) broke the protocol. The honest side stops trusting the ring; it
/// never reads or writes outside the region because of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Corruption {
    /// The capacity in the header is not a supported power of two.
    Capacity,
    /// The maximum message size in the header does not fit the capacity.
    MaxMessage,
    /// The producer's published position is behind the reader, more than
    /// one capacity ahead of it, or not record-aligned.
    WritePosition,
    /// The consumer's published position is ahead of the writer, more than
    /// one capacity behind it, or not record-aligned.
    ReadPosition,
    /// A role state word holds a value the protocol never writes.
    State,
    /// A record header names an unknown record kind.
    RecordKind,
    /// A message record is longer than the maximum message size, extends
    /// past the published data or past the end of the buffer.
    RecordLength,
    /// A padding record does not end exactly at the end of the buffer.
    Padding,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Corruption::Capacity => "capacity is not a supported power of two",
            Corruption::MaxMessage => "maximum message size does not fit the capacity",
            Corruption::WritePosition => "write position is outside the valid window",
            Corruption::ReadPosition => "read position is outside the valid window",
            Corruption::State => "role state word holds an unknown value",
            Corruption::RecordKind => "record header has an unknown kind",
            Corruption::RecordLength => "message record length is out of bounds",
            Corruption::Padding => "padding record does not end at the end of the buffer",
        })
    }
}

/// Everything that can go wrong, as variants a caller can act on.
///
/// The non-blocking calls return [`Error::Full`] / [`Error::Empty`] when they
/// would have to wait; nothing is lost in either case (the message stays with
/// the caller, or in the ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// No room for the message now; try again after the consumer catches up.
    Full,
    /// No message now; try again after the producer sends.
    Empty,
    /// The peer closed its side (or, in a frontend, died). A consumer sees
    /// this only after every committed message has been received.
    Disconnected,
    /// A blocking call reached its deadline.
    TimedOut,
    /// The message is longer than the ring's maximum message size.
    TooLarge {
        /// Length asked for.
        len: usize,
        /// The ring's maximum message size.
        max: usize,
    },
    /// The caller's buffer cannot hold the next message; the message stays
    /// in the ring.
    BufferTooSmall {
        /// Length of the next message.
        needed: usize,
        /// Length of the caller's buffer.
        available: usize,
    },
    /// The role is already claimed by another handle.
    RoleTaken(Role),
    /// The region does not start at the alignment the header needs, or (for
    /// a typed view in place) a message's payload is not aligned for its
    /// type; then the message stays in the ring.
    Misaligned {
        /// Required alignment of the region's start, or of the payload, in
        /// bytes.
        required: usize,
    },
    /// The region is too small for the header and the data area.
    RegionTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// The requested capacity is not a power of two in the supported range.
    InvalidCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// The requested maximum message size does not fit the capacity.
    InvalidMaxMessage {
        /// The size asked for.
        max_message: usize,
        /// The largest size this capacity allows.
        limit: usize,
    },
    /// The region's creator has not finished initialising it (yet).
    Uninitialised,
    /// The region does not start with shmlane's magic bytes: it is not a ring.
    BadMagic,
    /// The region was laid out by an incompatible version or build of shmlane
    /// (layout version or header size differ).
    VersionMismatch {
        /// Layout version found in the region.
        found: u32,
        /// Layout version this build speaks.
        expected: u32,
    },
    /// A value read from shared memory broke the protocol. Once a side has
    /// seen this, every later call on it returns the same error: it no
    /// longer trusts the ring.
    Corrupt(Corruption),
    /// This side and its peer wait in ways that cannot be combined: one of
    /// them sleeps until woken (see [`Wait::sleeps`](crate::Wait::sleeps))
    /// and the other cannot wake it (see [`Wait::wakes`](crate::Wait::wakes)),
    /// so a wake-up would be lost. The role was not claimed; claim it with a
    /// wait that does not sleep, or one that wakes.
    IncompatibleWait,
    /// The ring was created for messages of another type than the one this
    /// side expects (see [`Ring::expect_message_type`](crate::Ring::expect_message_type));
    /// 0 is an untyped ring.
    TypeMismatch {
        /// The fingerprint this side expects.
        expected: u64,
        /// The fingerprint recorded in the ring (0: untyped).
        found: u64,
    },
    /// A message is not as long as the type it is read as: it stays in the
    /// ring, and an untyped receive still takes it.
    WrongSize {
        /// Bytes of the type.
        expected: usize,
        /// Bytes of the message.
        found: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Full => f.write_str("ring is full"),
            Error::Empty => f.write_str("ring is empty"),
            Error::Disconnected => f.write_str("peer disconnected"),
            Error::TimedOut => f.write_str("timed out"),
            Error::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the maximum of {max}")
            }
            Error::BufferTooSmall { needed, available } => write!(
                f,
                "next message has {needed} bytes but the buffer holds {available}"
            ),
            Error::RoleTaken(role) => write!(f, "the {role} role is already claimed"),
            Error::Misaligned { required } => {
                write!(f, "region or payload must be aligned to {required} bytes")
            }
            Error::RegionTooSmall { needed, available } => write!(
                f,
                "region of {available} bytes is too small, {needed} are needed"
            ),
            Error::InvalidCapacity { capacity } => write!(
                f,
                "capacity {capacity} is not a power of two between {} and {}",
                crate::MIN_CAPACITY,
                crate::MAX_CAPACITY
            ),
            Error::InvalidMaxMessage { max_message, limit } => write!(
                f,
                "maximum message size {max_message} exceeds the limit {limit} for this capacity"
            ),
            Error::Uninitialised => f.write_str("region is not initialised (yet)"),
            Error::BadMagic => f.write_str("region is not a shmlane ring (bad magic)"),
            Error::VersionMismatch { found, expected } => write!(
                f,
                "ring layout version {found} is not the supported version {expected}"
            ),
            Error::Corrupt(what) => write!(f, "corrupt ring: {what}"),
            Error::IncompatibleWait => f.write_str(
                "the peer's wait cannot be combined with this one: one sleeps and the other cannot wake it",
            ),
            Error::TypeMismatch { expected, found } => write!(
                f,
                "ring carries messages of type {found:#018x} (0: untyped), not the expected {expected:#018x}"
            ),
            Error::WrongSize { expected, found } => write!(
                f,
                "message of {found} bytes is not a value of the expected {expected} bytes"
            ),
        }
    }
}

impl core::error::Error for Error {}
