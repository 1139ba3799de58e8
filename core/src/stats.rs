//! What a ring's sides have done, and a ring's header read from a copy of
//! its bytes: for tools that look at a live channel from a third process
//! (`shmlane ls`, `shmlane stat`) without claiming, mapping or disturbing it.
//!
//! Each side keeps its [`Counters`] in its own line of the header (see
//! [`crate::layout`]); [`Ring::counters`](crate::Ring::counters) reads them
//! through a ring handle, [`Snapshot::parse`] from bytes copied out of the
//! region (`pread` of a segment, a core dump). Both are statistics: written
//! by the sides, never trusted for anything, and read without
//! synchronisation, so two fields of one snapshot may be a few messages
//! apart.

use crate::error::{Corruption, Error};
use crate::layout::*;
use crate::ring::RoleState;

/// What one side of a ring has done since the ring was made, as it records
/// it in its own line of the shared header.
///
/// The producer counts the messages (and their payload bytes) it has
/// *published* — staged messages of a batch count once it is published —
/// and the consumer those it has consumed and released. All counts wrap at
/// 2^64.
///
/// # Examples
///
/// ```
/// use shmlane_core::{region_size, Config, Error, Region, Ring, Role, Spin};
///
/// let mut region = Region::<{ region_size(1024) }>::new();
/// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
/// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
/// assert_eq!(rx.try_recv(&mut [0; 8]), Err(Error::Empty));
/// tx.try_send(b"hello")?;
/// rx.try_recv(&mut [0; 8])?;
///
/// let sent = ring.counters(Role::Producer);
/// assert_eq!((sent.messages, sent.bytes), (1, 16)); // 8-byte header, 5 bytes, 3 of padding
/// let received = ring.counters(Role::Consumer);
/// assert_eq!((received.messages, received.stalls), (1, 1)); // one empty ring
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct Counters {
    /// Messages published (producer) or consumed (consumer).
    pub messages: u64,
    /// Bytes of the ring they took: their records (payload, the 8-byte
    /// record header, padding to 8) and the padding records at the end of
    /// a lap. This is the side's position, which the ring keeps anyway, so
    /// it costs nothing to count; the payload bytes alone would cost a
    /// count and a store per message more.
    pub bytes: u64,
    /// Calls that found the ring full (producer: a `try_` call that failed
    /// with [`Error::Full`], a blocking or timed call that had to wait) or
    /// empty (consumer: likewise with [`Error::Empty`]); once per call,
    /// however long it then waits.
    pub stalls: u64,
    /// Waits in which this side went to sleep (announced itself to its
    /// peer: in a blocking call, or an `arm` that returned
    /// [`Armed::Waiting`](crate::Armed::Waiting)); once per call. A side
    /// that spins never sleeps.
    pub sleeps: u64,
    /// Wake-ups this side sent its sleeping peer (each one a
    /// [`Wait::wake`](crate::Wait::wake) call).
    pub wakes: u64,
}

impl Counters {
    /// A side's counters from its line and its `position` (Relaxed loads:
    /// statistics).
    pub(crate) fn load(line: &LineCounters, position: u64) -> Counters {
        use core::sync::atomic::Ordering::Relaxed;
        Counters {
            messages: line.messages.load(Relaxed),
            bytes: position,
            stalls: line.stalls.load(Relaxed),
            sleeps: line.sleeps.load(Relaxed),
            wakes: line.wakes.load(Relaxed),
        }
    }
}

/// The header fields a ring must have right to be attached, read once
/// (from the atomics by [`Ring::attach`](crate::Ring::attach), from a copy
/// by [`Snapshot::parse`]) and checked by [`Identity::check`].
pub(crate) struct IdentityFields {
    pub init: u32,
    pub magic: u64,
    pub version: u32,
    pub header_size: u32,
    pub capacity: u64,
    pub max_message: u64,
    pub producer_state: u32,
    pub consumer_state: u32,
    pub waits: u32,
    pub write: u64,
    pub read: u64,
}

/// The largest capacity a ring can have here: [`MAX_CAPACITY`], and under
/// loom what its tracked cells cover.
#[cfg(loom)]
pub(crate) const fn max_capacity() -> u64 {
    8 * LOOM_CELLS as u64
}
#[cfg(not(loom))]
pub(crate) const fn max_capacity() -> u64 {
    MAX_CAPACITY as u64
}

impl IdentityFields {
    /// Checks the fields of a ring in a region of `len` bytes, in the
    /// order that gives the most telling error: `(capacity, max_message)`.
    pub(crate) fn check(&self, len: usize) -> Result<(u64, u64), Error> {
        if self.init != INIT_READY {
            return Err(if self.magic == MAGIC || self.magic == 0 {
                Error::Uninitialised
            } else {
                Error::BadMagic
            });
        }
        if self.magic != MAGIC {
            return Err(Error::BadMagic);
        }
        if self.version != LAYOUT_VERSION || self.header_size as usize != HEADER_SIZE {
            return Err(Error::VersionMismatch {
                found: self.version,
                expected: LAYOUT_VERSION,
            });
        }
        let capacity = self.capacity;
        if !capacity.is_power_of_two()
            || capacity < MIN_CAPACITY as u64
            || capacity > max_capacity()
        {
            return Err(Error::Corrupt(Corruption::Capacity));
        }
        let needed = region_size(capacity as usize);
        if len < needed {
            return Err(Error::RegionTooSmall {
                needed,
                available: len,
            });
        }
        if self.max_message > max_message_limit(capacity as usize) as u64 {
            return Err(Error::Corrupt(Corruption::MaxMessage));
        }
        if self.producer_state > STATE_CLOSED || self.consumer_state > STATE_CLOSED {
            return Err(Error::Corrupt(Corruption::State));
        }
        if self.waits & !WAITS_ALL != 0 {
            return Err(Error::Corrupt(Corruption::State));
        }
        if self.read & 7 != 0 {
            return Err(Error::Corrupt(Corruption::ReadPosition));
        }
        if crate::ring::window(self.write, self.read, capacity).is_none() {
            return Err(Error::Corrupt(Corruption::WritePosition));
        }
        Ok((capacity, self.max_message))
    }
}

/// A role state word as a [`RoleState`] (checked: at most
/// [`STATE_CLOSED`]).
pub(crate) fn role_state(word: u32) -> Result<RoleState, Error> {
    match word {
        STATE_IDLE => Ok(RoleState::Idle),
        STATE_ACTIVE => Ok(RoleState::Active),
        STATE_CLOSED => Ok(RoleState::Closed),
        _ => Err(Error::Corrupt(Corruption::State)),
    }
}

/// One side of a ring in a [`Snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Side {
    /// Its role's state in the header (whether its holder still lives is
    /// for the host to tell: shmlane-posix asks the role lock).
    pub state: RoleState,
    /// The holder id it recorded at its claim (shmlane-posix: its pid), or
    /// `None`; written by that side, so a hint to confirm (see
    /// [`Ring::holder_id`](crate::Ring::holder_id)).
    pub holder_id: Option<u32>,
    /// Its position: bytes published (producer) or consumed (consumer).
    pub position: u64,
    /// Whether it announced that it sleeps, waiting for its peer.
    pub asleep: bool,
    /// The CPU it said it is confined to, if any.
    pub cpu_hint: Option<u32>,
    /// What it has done.
    pub counters: Counters,
}

/// A ring's header read from a copy of its bytes, checked as
/// [`Ring::attach`](crate::Ring::attach) checks it.
///
/// # Examples
///
/// ```
/// use shmlane_core::{region_size, Config, Region, Ring, RoleState, Snapshot, Spin, HEADER_SIZE};
///
/// let mut region = Region::<{ region_size(1024) }>::new();
/// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
/// let mut tx = ring.producer(Spin::new())?;
/// tx.try_send(b"hello")?;
/// drop(tx);
///
/// // What a third process copies out of the segment (say, with pread).
/// let bytes = &region.as_mut_slice()[..HEADER_SIZE];
/// let snapshot = Snapshot::parse(bytes, region_size(1024))?;
/// assert_eq!(snapshot.capacity, 1024);
/// assert_eq!(snapshot.used, 16); // an 8-byte record header and 5 bytes, padded to 8
/// assert_eq!(snapshot.producer.state, RoleState::Closed);
/// assert_eq!(snapshot.producer.counters.messages, 1);
/// assert_eq!(snapshot.consumer.state, RoleState::Idle);
/// # Ok::<(), shmlane_core::Error>(())
/// ```
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Snapshot {
    /// Data bytes.
    pub capacity: usize,
    /// The longest message it accepts.
    pub max_message: usize,
    /// The fingerprint of its message type, `None` if untyped.
    pub message_type: Option<u64>,
    /// Bytes published and not yet consumed (record headers and padding
    /// included): the consumer's lag behind the producer.
    pub used: u64,
    /// The writing side.
    pub producer: Side,
    /// The reading side.
    pub consumer: Side,
}

#[cfg(not(loom))]
impl Snapshot {
    /// Reads and checks a ring's header from `header`, a copy of the first
    /// [`HEADER_SIZE`] (or more) bytes of a region that is `region_len`
    /// bytes long. Fails as [`Ring::attach`](crate::Ring::attach) would
    /// ([`Error::BadMagic`], [`Error::Uninitialised`],
    /// [`Error::VersionMismatch`], [`Error::RegionTooSmall`], which is also
    /// the error for fewer than [`HEADER_SIZE`] bytes, and
    /// [`Error::Corrupt`]): any bytes give a value or an error, never a
    /// panic.
    pub fn parse(header: &[u8], region_len: usize) -> Result<Snapshot, Error> {
        use crate::layout::offsets as at;
        let Some(header) = header.get(..HEADER_SIZE) else {
            return Err(Error::RegionTooSmall {
                needed: HEADER_SIZE,
                available: header.len(),
            });
        };
        let u64_at = |offset: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&header[offset..offset + 8]);
            u64::from_ne_bytes(word)
        };
        let u32_at = |offset: usize| {
            let mut word = [0; 4];
            word.copy_from_slice(&header[offset..offset + 4]);
            u32::from_ne_bytes(word)
        };
        let fields = IdentityFields {
            init: u32_at(at::INIT),
            magic: u64_at(at::MAGIC),
            version: u32_at(at::VERSION),
            header_size: u32_at(at::HEADER_SIZE_FIELD),
            capacity: u64_at(at::CAPACITY),
            max_message: u64_at(at::MAX_MESSAGE),
            producer_state: u32_at(at::PRODUCER_STATE),
            consumer_state: u32_at(at::CONSUMER_STATE),
            waits: u32_at(at::WAITS),
            write: u64_at(at::WRITE_POSITION),
            read: u64_at(at::READ_POSITION),
        };
        let (capacity, max_message) = fields.check(region_len)?;
        let nonzero = |word: u32| (word != 0).then_some(word);
        // A side from its state word, its position and the offsets of its
        // pid, of the word it sleeps on, of its CPU hint, of its counters.
        let side = |state, position, [pid, wait, cpu, counts]: [usize; 4]| -> Result<Side, Error> {
            Ok(Side {
                state: role_state(state)?,
                holder_id: nonzero(u32_at(pid)),
                position,
                asleep: u32_at(wait) & SLEEPING != 0,
                cpu_hint: u32_at(cpu).checked_sub(1),
                counters: Counters {
                    messages: u64_at(counts + at::COUNTER_MESSAGES),
                    bytes: position,
                    stalls: u64_at(counts + at::COUNTER_STALLS),
                    sleeps: u64_at(counts + at::COUNTER_SLEEPS),
                    wakes: u64_at(counts + at::COUNTER_WAKES),
                },
            })
        };
        Ok(Snapshot {
            capacity: capacity as usize,
            max_message: max_message as usize,
            message_type: match u64_at(at::MESSAGE_TYPE) {
                0 => None,
                fingerprint => Some(fingerprint),
            },
            used: fields.write.wrapping_sub(fields.read),
            producer: side(
                fields.producer_state,
                fields.write,
                [
                    at::PRODUCER_PID,
                    at::PRODUCER_WAIT,
                    at::PRODUCER_CPU,
                    at::PRODUCER_COUNTERS,
                ],
            )?,
            consumer: side(
                fields.consumer_state,
                fields.read,
                [
                    at::CONSUMER_PID,
                    at::CONSUMER_WAIT,
                    at::CONSUMER_CPU,
                    at::CONSUMER_COUNTERS,
                ],
            )?,
        })
    }
}
