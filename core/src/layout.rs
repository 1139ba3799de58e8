//! The shared-memory layout: a `#[repr(C)]` header followed by the data area.
//!
//! ```text
//! offset  size  what
//!      0   128  identity line (written once by the creator, then read-only)
//!                 0  magic          u64  b"SHMLANE\0" in memory order
//!                 8  version        u32  LAYOUT_VERSION
//!                12  header_size    u32  HEADER_SIZE
//!                16  capacity       u64  data bytes, a power of two
//!                24  max_message    u64  longest payload accepted
//!                32  producer_state u32  IDLE / ACTIVE / CLOSED
//!                36  consumer_state u32  IDLE / ACTIVE / CLOSED
//!                40  init           u32  INIT_READY, stored last (Release)
//!                44  waits          u32  how each side waits (WAITS_* bits)
//!                48  producer_cpu   u32  hint: the CPU the producer is confined to, + 1
//!                52  consumer_cpu   u32  hint: the same for the consumer (0: none)
//!                56  producer_pid   u32  the producer's holder id (shmlane-posix: its pid; 0: none)
//!                60  consumer_pid   u32  the same for the consumer
//!                64  message_type   u64  fingerprint of the message type (0: untyped)
//!    128   128  producer line: write position u64 @0, peer_wait word u32 @8,
//!                 counters u64 @16..48 (see below)
//!    256   128  consumer line: read position u64 @0, peer_wait word u32 @8,
//!                 counters u64 @16..48
//!    384     …  data area, `capacity` bytes of 8-byte aligned records
//! ```
//!
//! Each of the three lines is a `CacheLine`: 128 bytes, aligned to 128, on
//! every target. The size is this crate's, not a dependency's guess per
//! architecture: 128 bytes is a pair of 64-byte lines (the adjacent-line
//! prefetcher of x86 moves pairs) and the line of Apple's and some Arm
//! cores, so the producer's and consumer's hot words never share what the
//! hardware moves between cores. The header records its own size, so a ring
//! of another layout refuses to attach instead of misreading.
//!
//! A record is an 8-byte header, `len | kind << 32` stored as one `u64`,
//! followed by `len` payload bytes and padding up to a multiple of 8. A
//! record never straddles the end of the data area: when one would, the
//! producer first writes a padding record (kind [`KIND_PADDING`], `len` =
//! the bytes to the end) that the consumer skips.
//!
//! Every payload is therefore aligned to [`PAYLOAD_ALIGN`] (8) bytes: it
//! starts right after its 8-byte record header, at a multiple of 8 from the
//! start of a data area that begins [`HEADER_SIZE`] (384) bytes into a
//! region aligned to [`REGION_ALIGN`] (128), which both `create` and
//! `attach` check. The typed views ([`crate::typed`]) rely on it; they still
//! check the alignment of every payload they hand out. No more than 8: the
//! header sits in front of the payload and records are packed at 8-byte
//! steps, so a payload starts at 8 modulo 64 as often as at 0. A 64-byte
//! guarantee would need another record format (records padded to 64, up to
//! 56 more bytes per message, or headers kept apart from the payloads).
//!
//! The header is also the record's publication: the consumer polls the
//! header at its read position, not the producer's position (one line moves
//! between the cores per message instead of two). A record's `kind` carries
//! the lap of the ring it was written in ([`record_kind`]: bits 8..16 are
//! `(position / capacity) mod 256`), and the header word at the producer's
//! published position is always 0 or a header of the previous lap, never
//! stale payload: before the producer publishes records up to position
//! `w` (by storing the first one's header with Release), it stores 0 at `w`
//! when the ring has room for that word. (When it has not, the word at `w`
//! is the header at the consumer's position one lap ago.) So a consumer
//! tells "nothing yet" (0, or the previous lap's tag) from a record (this
//! lap's tag) by the header alone. The producer still publishes its position
//! (Release, after the header), for `len` and for the end of a closed ring.
//!
//! Each side counts what it does in its own line, after its position
//! ([`crate::Counters`]): at 16 the messages it published (producer) or
//! consumed (consumer), at 24 the calls that found the ring full (producer)
//! or empty (consumer), at 32 the waits in which it went to sleep, at 40
//! the wake-ups it sent its sleeping peer. (The bytes it moved through the
//! ring are its position.) Only the line's owner writes them (plain Relaxed
//! stores, no read-modify-write): the message count is kept in the side's
//! handle and stored next to each store of its position, whose line the
//! side owns anyway, so the counts add no traffic between the cores and
//! three instructions per message per side; the others change only on slow
//! paths (full, empty, sleep, wake). A third process reads them at any time
//! (a copy of the header: [`crate::Snapshot`]); they are statistics, never
//! trusted for anything.
//!
//! The role states live in the identity line, not next to the positions:
//! they are written only when a side claims or closes, so each side can check
//! the other's state on every operation without pulling the peer's hot line
//! into its cache.

use core::mem::{align_of, size_of};

use crate::sync::Ordering::Relaxed;
use crate::sync::{AtomicU32, AtomicU64};

/// `b"SHMLANE\0"` as the `u64` whose in-memory bytes spell it.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"SHMLANE\0");
/// Version of this layout; bumped on any incompatible change (3: records
/// carry their lap, and the consumer polls them; 4: a claim records its
/// holder's id and wakes a waiting peer, which may then watch the holder;
/// 5: the identity line records the fingerprint of the message type at
/// offset 64, see [`crate::message_type_of`]; 6: each side keeps its
/// [`crate::Counters`] in its line, from offset 16).
pub const LAYOUT_VERSION: u32 = 6;
/// Value of the init word once the creator has finished initialising.
pub const INIT_READY: u32 = 0x5244_5952; // "RYDR"
/// Record kind of a message, in lap 0 (see [`record_kind`]).
pub const KIND_MESSAGE: u32 = 0x4d53_0001;
/// Record kind of a padding record that fills the tail of the data area, in
/// lap 0 (see [`record_kind`]).
pub const KIND_PADDING: u32 = 0x4d53_0002;
/// The bits of a record kind that hold its lap tag.
pub const KIND_LAP_MASK: u32 = 0xff00;

/// The `kind` of a record of kind `base` ([`KIND_MESSAGE`] or
/// [`KIND_PADDING`]) whose header is at ring position `position` in a ring
/// of capacity `1 << capacity_shift`: `base` with the lap,
/// `(position >> capacity_shift) mod 256`, in bits 8..16.
///
/// # Examples
///
/// ```
/// use shmlane_core::layout::{record_kind, KIND_MESSAGE};
///
/// // A 4 KiB ring (shift 12): position 4096 + 8 is in lap 1.
/// assert_eq!(record_kind(KIND_MESSAGE, 4104, 12), KIND_MESSAGE | 0x100);
/// assert_eq!(record_kind(KIND_MESSAGE, 256 << 12, 12), KIND_MESSAGE); // lap 256 = 0
/// ```
#[inline(always)]
pub const fn record_kind(base: u32, position: u64, capacity_shift: u32) -> u32 {
    base | (((position >> capacity_shift) as u32) << 8 & KIND_LAP_MASK)
}
/// Bytes of a record header.
pub const RECORD_HEADER: u64 = 8;
/// The alignment every message payload has, in every ring: see the
/// module's documentation for why it is 8 and not 64.
pub const PAYLOAD_ALIGN: usize = 8;

/// Role state: nobody has claimed the role yet.
pub const STATE_IDLE: u32 = 0;
/// Role state: a live handle holds the role.
pub const STATE_ACTIVE: u32 = 1;
/// Role state: the role's holder closed it; it cannot be claimed again.
pub const STATE_CLOSED: u32 = 2;

/// The `waits` bits of one side (shifted by [`WAITS_PRODUCER_SHIFT`] or
/// [`WAITS_CONSUMER_SHIFT`]): it has claimed its role and recorded them.
pub const WAITS_SET: u32 = 1 << 0;
/// The `waits` bits of one side: it may sleep until woken.
pub const WAITS_SLEEPS: u32 = 1 << 1;
/// The `waits` bits of one side: it wakes a sleeping peer.
pub const WAITS_WAKES: u32 = 1 << 2;
/// Where the producer's bits sit in the `waits` word.
pub const WAITS_PRODUCER_SHIFT: u32 = 0;
/// Where the consumer's bits sit in the `waits` word.
pub const WAITS_CONSUMER_SHIFT: u32 = 4;
/// Every bit the `waits` word may hold.
pub const WAITS_ALL: u32 = 0x77;

/// Low bit of a wait word: a peer announced that it is (about to be) asleep.
pub const SLEEPING: u32 = 1;

/// Bytes of one line of the header: its alignment and size on every target.
pub const LINE_SIZE: usize = 128;

/// `T` alone on a [`LINE_SIZE`]-byte line: `#[repr(C)]`, so `T` sits at
/// offset 0, and aligned (hence sized) to 128 bytes, so that nothing else
/// shares the line. The crate's own type, so the shared layout cannot change
/// with a dependency or a target.
#[repr(C, align(128))]
pub(crate) struct CacheLine<T>(pub T);

impl<T> core::ops::Deref for CacheLine<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Fields written once by the creator.
#[repr(C)]
pub(crate) struct Identity {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub header_size: AtomicU32,
    pub capacity: AtomicU64,
    pub max_message: AtomicU64,
    pub producer_state: AtomicU32,
    pub consumer_state: AtomicU32,
    pub init: AtomicU32,
    /// How each side waits: its `WAITS_*` bits, set when it claims its role,
    /// so that a side that sleeps never pairs with one that cannot wake it.
    pub waits: AtomicU32,
    /// The CPU the producer is confined to, plus one; 0 when it is not
    /// confined to one or did not say ([`crate::Ring::set_cpu_hint`]). A
    /// hint, read only to decide how a waiting peer spins. (In what was the
    /// identity line's padding: rings made before it say 0.)
    pub producer_cpu: AtomicU32,
    /// The same for the consumer.
    pub consumer_cpu: AtomicU32,
    /// The producer's holder id ([`crate::Wait::holder_id`]: in
    /// shmlane-posix, its process id), stored when it claims its role; 0
    /// when it gave none. Written by the peer: a peer that watches this
    /// side's liveness through it must check what it finds (see
    /// [`crate::Ring::holder_id`]).
    pub producer_pid: AtomicU32,
    /// The same for the consumer.
    pub consumer_pid: AtomicU32,
    /// The fingerprint of the type of the ring's messages
    /// ([`crate::Config::message_type`]), 0 for an untyped ring. Written by
    /// the creator before `init`; a label an opener compares with the one
    /// it expects, never trusted for safety (see [`crate::Ring::message_type`]).
    pub message_type: AtomicU64,
}

/// One side's hot line: its position and the word its peer sleeps on.
#[repr(C)]
pub(crate) struct Line {
    /// Producer line: bytes written and published. Consumer line: bytes
    /// consumed and released. Monotonic, wrapping at 2^64.
    pub position: AtomicU64,
    /// The eventcount the *peer* waits on (the producer line's is where the
    /// consumer sleeps for messages, the consumer line's where the producer
    /// sleeps for room): the peer sets its [`SLEEPING`] bit in it, and this
    /// line's owner bumps it after moving `position` while the bit is set.
    pub peer_wait: AtomicU32,
    pub reserved: AtomicU32,
    /// What this line's owner did ([`crate::Counters`]), written only by it.
    /// Statistics, not synchronisation: `core`'s atomics even under loom,
    /// so that a model explores only the protocol's operations.
    pub counters: LineCounters,
}

/// The counters of one side, in its line (see the module doc).
#[repr(C)]
pub(crate) struct LineCounters {
    /// Messages published (producer) or consumed (consumer).
    pub messages: core::sync::atomic::AtomicU64,
    /// Calls that found the ring full (producer) or empty (consumer).
    pub stalls: core::sync::atomic::AtomicU64,
    /// Waits in which this side went to sleep.
    pub sleeps: core::sync::atomic::AtomicU64,
    /// Wake-ups this side sent its sleeping peer.
    pub wakes: core::sync::atomic::AtomicU64,
}

impl LineCounters {
    /// Adds one to `counter`, which only this line's owner writes: a load
    /// and a store, no read-modify-write (nothing else writes it).
    #[inline(always)]
    pub(crate) fn bump(counter: &core::sync::atomic::AtomicU64) {
        use core::sync::atomic::Ordering::Relaxed;
        // Relaxed: a statistic; nothing is published or read through it.
        counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
    }
}

/// The shared header at the start of every ring region.
#[repr(C)]
pub(crate) struct Header {
    pub identity: CacheLine<Identity>,
    pub producer: CacheLine<Line>,
    pub consumer: CacheLine<Line>,
    /// loom cannot see races on raw memory, so under loom every 8-byte word
    /// of the data area gets a tracked cell that the ring "touches" whenever
    /// it reads or writes that word: a missing happens-before edge between
    /// producer and consumer is then reported as a causality violation.
    #[cfg(loom)]
    pub cells: [loom::cell::UnsafeCell<()>; LOOM_CELLS],
    /// And every 8-byte word of the data area that may hold a record header
    /// gets a modelled atomic, since the headers publish the records: loom
    /// must see their Release stores and Acquire loads.
    #[cfg(loom)]
    pub records: [AtomicU64; LOOM_CELLS],
}

/// Number of tracked 8-byte words under loom (so capacity ≤ 8 × this).
#[cfg(loom)]
pub(crate) const LOOM_CELLS: usize = 64;

impl Header {
    /// An all-zero header, for loom, whose atomics and cells must be
    /// constructed (natively, zeroed memory is one already).
    #[cfg(loom)]
    pub(crate) fn zeroed() -> Self {
        let line = || {
            CacheLine(Line {
                position: AtomicU64::new(0),
                peer_wait: AtomicU32::new(0),
                reserved: AtomicU32::new(0),
                counters: LineCounters {
                    messages: 0.into(),
                    stalls: 0.into(),
                    sleeps: 0.into(),
                    wakes: 0.into(),
                },
            })
        };
        Header {
            identity: CacheLine(Identity {
                magic: AtomicU64::new(0),
                version: AtomicU32::new(0),
                header_size: AtomicU32::new(0),
                capacity: AtomicU64::new(0),
                max_message: AtomicU64::new(0),
                producer_state: AtomicU32::new(STATE_IDLE),
                consumer_state: AtomicU32::new(STATE_IDLE),
                init: AtomicU32::new(0),
                waits: AtomicU32::new(0),
                producer_cpu: AtomicU32::new(0),
                consumer_cpu: AtomicU32::new(0),
                producer_pid: AtomicU32::new(0),
                consumer_pid: AtomicU32::new(0),
                message_type: AtomicU64::new(0),
            }),
            producer: line(),
            consumer: line(),
            cells: core::array::from_fn(|_| loom::cell::UnsafeCell::new(())),
            records: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Writes the creator's identity fields into a zeroed header (positions,
    /// wait words and states start at zero: [`STATE_IDLE`]). Not ready yet:
    /// the creator stores [`INIT_READY`] last.
    pub(crate) fn init(&self, capacity: u64, max_message: u64, message_type: u64) {
        let id = &*self.identity;
        // Relaxed: published by the creator's Release store of `init`.
        id.magic.store(MAGIC, Relaxed);
        id.version.store(LAYOUT_VERSION, Relaxed);
        id.header_size.store(HEADER_SIZE as u32, Relaxed);
        id.capacity.store(capacity, Relaxed);
        id.max_message.store(max_message, Relaxed);
        id.message_type.store(message_type, Relaxed);
    }

    /// Tells loom that `len` payload bytes of the data area at `offset` are
    /// read (`write == false`) or written now. Nothing outside loom.
    ///
    /// A payload write also puts junk in the modelled record words it
    /// covers, as real payload bytes would: a consumer that took stale
    /// payload for a header would then see it (as a corrupt record).
    #[inline(always)]
    pub(crate) fn track(&self, offset: u64, len: u64, write: bool) {
        #[cfg(loom)]
        {
            let first = ((offset / 8) as usize).min(LOOM_CELLS);
            let end = (offset.saturating_add(len).div_ceil(8) as usize).min(LOOM_CELLS);
            for (cell, record) in self.cells[first..end].iter().zip(&self.records[first..end]) {
                if write {
                    cell.with_mut(|_| ());
                    // Relaxed: junk, as unordered as the payload bytes.
                    record.store(0xdead_beef_dead_beef, Relaxed);
                } else {
                    cell.with(|_| ());
                }
            }
        }
        #[cfg(not(loom))]
        let _ = (self, offset, len, write);
    }
}

/// Size in bytes of the shared header; the data area starts here.
pub const HEADER_SIZE: usize = size_of::<Header>();
/// Alignment the region's start must have.
pub const REGION_ALIGN: usize = align_of::<Header>();
/// Smallest supported data capacity in bytes.
pub const MIN_CAPACITY: usize = 64;
/// Largest supported data capacity in bytes (1 TiB).
pub const MAX_CAPACITY: usize = if usize::BITS >= 64 { 1 << 40 } else { 1 << 30 };

/// The longest message any ring carries: a record header holds the length
/// in 32 bits, and a record (header, payload, padding to 8) must not wrap.
pub const MAX_MESSAGE: usize = (u32::MAX - 7) as usize - RECORD_HEADER as usize;

/// Bytes a region needs for a ring of `capacity` data bytes. Saturates at
/// `usize::MAX` for a capacity no ring can have (above [`MAX_CAPACITY`]),
/// which [`Config::check`](crate::Config::check) refuses.
///
/// # Examples
///
/// ```
/// use shmlane_core::{region_size, HEADER_SIZE};
///
/// assert_eq!(region_size(4096), HEADER_SIZE + 4096);
/// assert_eq!(region_size(usize::MAX), usize::MAX); // no overflow, no panic
/// ```
pub const fn region_size(capacity: usize) -> usize {
    HEADER_SIZE.saturating_add(capacity)
}

/// The largest payload a ring of `capacity` bytes can carry: a record of
/// half the capacity always fits into an empty ring, wherever the write
/// position stands (tail padding + record ≤ capacity); and never more than
/// [`MAX_MESSAGE`]. Zero for a capacity too small for any record.
///
/// # Examples
///
/// ```
/// use shmlane_core::{max_message_limit, MAX_MESSAGE};
///
/// assert_eq!(max_message_limit(4096), 2040);
/// assert_eq!(max_message_limit(8), 0); // no underflow
/// assert_eq!(max_message_limit(1 << 40), MAX_MESSAGE); // lengths fit 32 bits
/// ```
pub const fn max_message_limit(capacity: usize) -> usize {
    let half = (capacity / 2).saturating_sub(RECORD_HEADER as usize);
    if half < MAX_MESSAGE {
        half
    } else {
        MAX_MESSAGE
    }
}

/// Bytes a record with a `len`-byte payload occupies.
#[inline(always)]
pub(crate) const fn record_size(len: u64) -> u64 {
    RECORD_HEADER + ((len + 7) & !7)
}

/// A suitably aligned, zeroed memory region of `N` bytes for a ring,
/// for `static`s on bare metal, stack or `Box` buffers in tests.
///
/// # Examples
///
/// ```
/// use shmlane_core::{region_size, Config, Region, Ring};
///
/// let mut region = Region::<{ region_size(1024) }>::new();
/// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024)).unwrap();
/// assert_eq!(ring.capacity(), 1024);
/// ```
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Region<const N: usize>([u8; N]);

impl<const N: usize> Region<N> {
    /// A zeroed region.
    pub const fn new() -> Self {
        Region([0; N])
    }

    /// The region's bytes, to hand to [`Ring::create_in`](crate::Ring::create_in)
    /// or [`Ring::attach_in`](crate::Ring::attach_in).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for Region<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Byte offsets of the header's fields from the start of the region: the
/// ABI that a program in another language reads and writes. The C header
/// `core/include/shmlane.h` states the same values (`SHMLANE_OFF_*`), and a
/// test compiles it and compares them with these.
///
/// # Examples
///
/// ```
/// use shmlane_core::layout::offsets;
///
/// assert_eq!(offsets::MESSAGE_TYPE, 64);
/// assert_eq!(offsets::WRITE_POSITION, 128); // the producer's line
/// assert_eq!(offsets::DATA, shmlane_core::HEADER_SIZE);
/// ```
#[cfg(not(loom))]
pub mod offsets {
    use super::{HEADER_SIZE, Header, Identity, Line, LineCounters};
    use core::mem::offset_of;

    /// `magic`, u64.
    pub const MAGIC: usize = offset_of!(Header, identity) + offset_of!(Identity, magic);
    /// `version`, u32.
    pub const VERSION: usize = offset_of!(Header, identity) + offset_of!(Identity, version);
    /// `header_size`, u32.
    pub const HEADER_SIZE_FIELD: usize =
        offset_of!(Header, identity) + offset_of!(Identity, header_size);
    /// `capacity`, u64.
    pub const CAPACITY: usize = offset_of!(Header, identity) + offset_of!(Identity, capacity);
    /// `max_message`, u64.
    pub const MAX_MESSAGE: usize = offset_of!(Header, identity) + offset_of!(Identity, max_message);
    /// `producer_state`, u32.
    pub const PRODUCER_STATE: usize =
        offset_of!(Header, identity) + offset_of!(Identity, producer_state);
    /// `consumer_state`, u32.
    pub const CONSUMER_STATE: usize =
        offset_of!(Header, identity) + offset_of!(Identity, consumer_state);
    /// `init`, u32.
    pub const INIT: usize = offset_of!(Header, identity) + offset_of!(Identity, init);
    /// `waits`, u32.
    pub const WAITS: usize = offset_of!(Header, identity) + offset_of!(Identity, waits);
    /// `producer_cpu`, u32.
    pub const PRODUCER_CPU: usize =
        offset_of!(Header, identity) + offset_of!(Identity, producer_cpu);
    /// `consumer_cpu`, u32.
    pub const CONSUMER_CPU: usize =
        offset_of!(Header, identity) + offset_of!(Identity, consumer_cpu);
    /// `producer_pid`, u32.
    pub const PRODUCER_PID: usize =
        offset_of!(Header, identity) + offset_of!(Identity, producer_pid);
    /// `consumer_pid`, u32.
    pub const CONSUMER_PID: usize =
        offset_of!(Header, identity) + offset_of!(Identity, consumer_pid);
    /// `message_type`, u64.
    pub const MESSAGE_TYPE: usize =
        offset_of!(Header, identity) + offset_of!(Identity, message_type);
    /// The producer line's position (bytes written and published), u64.
    pub const WRITE_POSITION: usize = offset_of!(Header, producer) + offset_of!(Line, position);
    /// The producer line's `peer_wait`: where the consumer sleeps, u32.
    pub const CONSUMER_WAIT: usize = offset_of!(Header, producer) + offset_of!(Line, peer_wait);
    /// The consumer line's position (bytes consumed and released), u64.
    pub const READ_POSITION: usize = offset_of!(Header, consumer) + offset_of!(Line, position);
    /// The consumer line's `peer_wait`: where the producer sleeps, u32.
    pub const PRODUCER_WAIT: usize = offset_of!(Header, consumer) + offset_of!(Line, peer_wait);
    /// The producer's counters ([`crate::Counters`] but `bytes`, which is
    /// the position: four u64, `COUNTER_*` apart), on its line.
    pub const PRODUCER_COUNTERS: usize = offset_of!(Header, producer) + offset_of!(Line, counters);
    /// The consumer's counters, on its line.
    pub const CONSUMER_COUNTERS: usize = offset_of!(Header, consumer) + offset_of!(Line, counters);
    /// Within a side's counters: messages published or consumed, u64.
    pub const COUNTER_MESSAGES: usize = offset_of!(LineCounters, messages);
    /// Within a side's counters: calls that found the ring full (producer)
    /// or empty (consumer), u64.
    pub const COUNTER_STALLS: usize = offset_of!(LineCounters, stalls);
    /// Within a side's counters: waits that went to sleep, u64.
    pub const COUNTER_SLEEPS: usize = offset_of!(LineCounters, sleeps);
    /// Within a side's counters: wake-ups sent to the sleeping peer, u64.
    pub const COUNTER_WAKES: usize = offset_of!(LineCounters, wakes);
    /// The data area.
    pub const DATA: usize = HEADER_SIZE;
}

// The layout is an ABI: pin it. (loom's atomics are larger, so not under loom.)
#[cfg(not(loom))]
mod pinned {
    use super::*;
    use core::mem::offset_of;
    use static_assertions::{const_assert, const_assert_eq};

    const_assert_eq!(size_of::<Identity>(), 72);
    const_assert_eq!(offset_of!(Identity, magic), 0);
    const_assert_eq!(offset_of!(Identity, version), 8);
    const_assert_eq!(offset_of!(Identity, header_size), 12);
    const_assert_eq!(offset_of!(Identity, capacity), 16);
    const_assert_eq!(offset_of!(Identity, max_message), 24);
    const_assert_eq!(offset_of!(Identity, producer_state), 32);
    const_assert_eq!(offset_of!(Identity, consumer_state), 36);
    const_assert_eq!(offset_of!(Identity, init), 40);
    const_assert_eq!(offset_of!(Identity, waits), 44);
    const_assert_eq!(offset_of!(Identity, producer_cpu), 48);
    const_assert_eq!(offset_of!(Identity, consumer_cpu), 52);
    const_assert_eq!(offset_of!(Identity, producer_pid), 56);
    const_assert_eq!(offset_of!(Identity, consumer_pid), 60);
    const_assert_eq!(offset_of!(Identity, message_type), 64);

    const_assert_eq!(size_of::<Line>(), 48);
    const_assert_eq!(offset_of!(Line, position), 0);
    const_assert_eq!(offset_of!(Line, peer_wait), 8);
    const_assert_eq!(offset_of!(Line, counters), 16);
    const_assert_eq!(size_of::<LineCounters>(), 32);
    const_assert_eq!(offset_of!(LineCounters, messages), 0);
    const_assert_eq!(offset_of!(LineCounters, stalls), 8);
    const_assert_eq!(offset_of!(LineCounters, sleeps), 16);
    const_assert_eq!(offset_of!(LineCounters, wakes), 24);
    const_assert!(size_of::<Line>() <= LINE_SIZE);

    // Same-size atomics have the same layout as the plain integers, so the
    // header is readable from any language as u64/u32 fields.
    const_assert_eq!(size_of::<AtomicU64>(), 8);
    const_assert_eq!(align_of::<AtomicU64>(), 8);
    const_assert_eq!(size_of::<AtomicU32>(), 4);

    // Three lines, each alone on its (prefetch-pair of) cache line(s), the
    // same on every target.
    const_assert_eq!(align_of::<CacheLine<u8>>(), LINE_SIZE);
    const_assert_eq!(size_of::<CacheLine<u8>>(), LINE_SIZE);
    const_assert_eq!(size_of::<CacheLine<Identity>>(), LINE_SIZE);
    const_assert_eq!(offset_of!(Header, identity), 0);
    const_assert_eq!(offset_of!(Header, producer), LINE_SIZE);
    const_assert_eq!(offset_of!(Header, consumer), 2 * LINE_SIZE);
    const_assert_eq!(size_of::<Header>(), 3 * LINE_SIZE);
    const_assert_eq!(align_of::<Header>(), LINE_SIZE);

    const_assert_eq!(HEADER_SIZE, 384);
    const_assert_eq!(REGION_ALIGN, 128);

    // A maximal record (header + payload padded to 8) fits in 32 bits.
    const_assert!(MAX_MESSAGE as u64 + RECORD_HEADER + 7 <= u32::MAX as u64);
    const_assert_eq!(MAX_MESSAGE % 8, 0);

    // Records stay 8-byte aligned inside an aligned data area, and so do
    // their payloads (one record header after the record's start).
    const_assert_eq!(HEADER_SIZE % 8, 0);
    const_assert!(REGION_ALIGN >= 8);
    const_assert_eq!(HEADER_SIZE % PAYLOAD_ALIGN, 0);
    const_assert_eq!(REGION_ALIGN % PAYLOAD_ALIGN, 0);
    const_assert_eq!(RECORD_HEADER as usize % PAYLOAD_ALIGN, 0);
    const_assert!(align_of::<Region<1>>() >= REGION_ALIGN);
}
