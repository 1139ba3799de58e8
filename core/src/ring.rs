//! The ring: a single-producer/single-consumer queue of variable-length
//! messages in a caller-provided region.
//!
//! Invariants, with `write`/`read` the producer's/consumer's positions
//! (monotonic byte counts, wrapping at 2^64):
//!
//! - `read ≤ write ≤ read + capacity`, both multiples of 8;
//! - bytes `[read, write)` hold whole records, each inside the data area
//!   (a padding record fills a tail that a record would straddle);
//! - the producer writes only `[write, read + capacity)`, the consumer reads
//!   only `[read, write)`. The consumer learns of records through the
//!   record headers (an Acquire load of the Release store of the first
//!   header of what was published; see [`crate::layout`] for how "nothing
//!   yet" reads), the producer of room through the consumer's position
//!   (an Acquire load of its Release store), loaded only when its cached
//!   copy says the ring is full. So in a round trip only the lines of the
//!   records move between the cores.
//!
//! Each side keeps its own position in a local and publishes it; it never
//! reads its own position back from shared memory, and every value it does
//! read (the peer's position, record headers, role states) is loaded once
//! and checked before use. A peer that scribbles over the region can make
//! this side see [`Error::Corrupt`] or garbled payloads, but never makes it
//! touch memory outside the region, panic, or loop forever.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::error::{Corruption, Error, Role};
use crate::layout::*;
use crate::stats::{Counters, IdentityFields};
use crate::sync::{AtomicU32, AtomicU64, Ordering::*, fence};
use crate::wait::{Spin, Wait};

/// What [`Consumer::arm`] or [`Producer::arm`] found: whether a side that
/// waits outside the ring (on a readiness file descriptor, in an event
/// loop) may go to sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Armed {
    /// There is something to do now: a message (or room), or the peer
    /// closed, or the ring is corrupt. The next non-blocking call says which.
    Ready,
    /// Nothing now, and the peer was told (this side's announcement is in
    /// the wait word): it moves the word (`wait_word`) away from this
    /// ticket, and calls [`Wait::wake`], when that changes. So a side may
    /// sleep until the word no longer holds the ticket, then try again.
    Waiting(u32),
}

/// Where a role of a ring stands; see [`Ring::role_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleState {
    /// Nobody has claimed it yet.
    Idle,
    /// A handle holds it.
    Active,
    /// Its holder closed it (for good).
    Closed,
}

/// How to lay out a new ring.
///
/// # Examples
///
/// ```
/// use shmlane_core::Config;
///
/// // 64 KiB of data, messages of at most 1 KiB.
/// let config = Config::new(64 * 1024).max_message(1024);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    capacity: usize,
    max_message: Option<usize>,
    message_type: u64,
}

impl Config {
    /// A ring with `capacity` data bytes (a power of two from
    /// [`MIN_CAPACITY`] to [`MAX_CAPACITY`]) whose messages may be as long
    /// as [`max_message_limit`]`(capacity)`, that is half the capacity less
    /// a record header.
    pub const fn new(capacity: usize) -> Self {
        Config {
            capacity,
            max_message: None,
            message_type: 0,
        }
    }

    /// Caps the message length below the default.
    pub const fn max_message(mut self, max_message: usize) -> Self {
        self.max_message = Some(max_message);
        self
    }

    /// Records `fingerprint` in the new ring's header as the type of its
    /// messages (see [`message_type_of`](crate::message_type_of) and
    /// [`schema_id`](crate::schema_id)), so that an opener that expects
    /// another type fails at attach ([`Ring::expect_message_type`]) instead
    /// of reading garbage later. 0, the default, makes an untyped ring. The
    /// fingerprint is a label: it changes no behaviour of the ring.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{message_type_of, region_size, Config, Region, Ring};
    ///
    /// let mut region = Region::<{ region_size(256) }>::new();
    /// let config = Config::new(256).message_type(message_type_of::<[u64; 2]>());
    /// let ring = Ring::create_in(region.as_mut_slice(), config)?;
    /// assert_eq!(ring.message_type(), Some(message_type_of::<[u64; 2]>()));
    /// # Ok::<(), shmlane_core::Error>(())
    /// ```
    pub const fn message_type(mut self, fingerprint: u64) -> Self {
        self.message_type = fingerprint;
        self
    }

    /// The message type fingerprint this config records (0: untyped).
    pub const fn get_message_type(&self) -> u64 {
        self.message_type
    }

    /// The data capacity this config asks for.
    pub const fn capacity(&self) -> usize {
        self.capacity
    }

    /// Checks the config without creating anything: the errors
    /// [`Ring::create_in`] would return for it.
    pub fn check(&self) -> Result<(), Error> {
        self.validate().map(drop)
    }

    /// Checks the config: `(capacity, max_message)`.
    fn validate(&self) -> Result<(usize, usize), Error> {
        let capacity = self.capacity;
        if !capacity.is_power_of_two()
            || capacity < MIN_CAPACITY
            || capacity as u64 > crate::stats::max_capacity()
        {
            return Err(Error::InvalidCapacity { capacity });
        }
        let limit = max_message_limit(capacity);
        let max_message = self.max_message.unwrap_or(limit);
        if max_message > limit {
            return Err(Error::InvalidMaxMessage { max_message, limit });
        }
        Ok((capacity, max_message))
    }
}

/// Used bytes between a write and a read position, if they form a valid
/// window (`read ≤ write ≤ read + capacity`, both record-aligned).
#[inline(always)]
pub(crate) fn window(write: u64, read: u64, capacity: u64) -> Option<u64> {
    let used = write.wrapping_sub(read);
    (used <= capacity && (write | read) & 7 == 0).then_some(used)
}

/// A handle to a ring in a memory region: cheap to copy, shared by both
/// sides. Claim a side with [`Ring::producer`] or [`Ring::consumer`].
///
/// # Examples
///
/// ```
/// use shmlane_core::{region_size, Config, Region, Ring, Spin};
///
/// let mut region = Region::<{ region_size(4096) }>::new();
/// let ring = Ring::create_in(region.as_mut_slice(), Config::new(4096))?;
/// let mut tx = ring.producer(Spin::new())?;
/// let mut rx = ring.consumer(Spin::new())?;
///
/// tx.try_send(b"hello")?;
/// let msg = rx.try_read()?;
/// assert_eq!(&*msg, b"hello");
/// # Ok::<(), shmlane_core::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Ring<'a> {
    header: NonNull<Header>,
    data: NonNull<u8>,
    capacity: u64,
    /// `capacity - 1`: positions masked with it give the data offset.
    mask: u64,
    /// `capacity.trailing_zeros()`: positions shifted by it give the lap.
    shift: u32,
    max_message: u64,
    _region: PhantomData<&'a [core::cell::UnsafeCell<u8>]>,
}

// SAFETY: a `Ring` is a pair of pointers into a region that outlives 'a.
// Every access to the header goes through atomics; the data area is written
// only by the one `Producer` and read only by the one `Consumer` (each role
// is claimed once, by an atomic compare-exchange), in ranges that the
// Release/Acquire position protocol keeps disjoint.
unsafe impl Send for Ring<'_> {}
// SAFETY: as above; `&Ring` offers nothing beyond what a copy offers.
unsafe impl Sync for Ring<'_> {}

impl fmt::Debug for Ring<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("region", &self.header)
            .field("capacity", &self.capacity)
            .field("max_message", &self.max_message)
            .finish()
    }
}

/// Checks that `[region, region + len)` can hold a header.
fn check_region(region: NonNull<u8>, len: usize) -> Result<(), Error> {
    if region.as_ptr() as usize % REGION_ALIGN != 0 {
        return Err(Error::Misaligned {
            required: REGION_ALIGN,
        });
    }
    if len < HEADER_SIZE {
        return Err(Error::RegionTooSmall {
            needed: HEADER_SIZE,
            available: len,
        });
    }
    Ok(())
}

impl<'a> Ring<'a> {
    /// Initialises a new ring in `region`, overwriting whatever it held.
    ///
    /// The region must be aligned to [`REGION_ALIGN`] and hold at least
    /// [`region_size`]`(config.capacity())` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring};
    ///
    /// let mut region = Region::<{ region_size(256) }>::new();
    /// assert!(Ring::create_in(region.as_mut_slice(), Config::new(256)).is_ok());
    /// // Not a power of two:
    /// assert_eq!(
    ///     Ring::create_in(region.as_mut_slice(), Config::new(200)).unwrap_err(),
    ///     Error::InvalidCapacity { capacity: 200 }
    /// );
    /// ```
    pub fn create_in(region: &'a mut [u8], config: Config) -> Result<Self, Error> {
        let len = region.len();
        // SAFETY: the region is exclusively borrowed for 'a and is `len`
        // bytes long, so it is valid, initialised and unaliased for 'a.
        unsafe { Self::create(NonNull::from(region).cast(), len, config) }
    }

    /// Attaches to a ring that [`Ring::create_in`] (or another process,
    /// through a shared mapping) initialised in `region`, after checking
    /// every field of its header.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring};
    ///
    /// let mut region = Region::<{ region_size(256) }>::new();
    /// // A zeroed region has not been initialised by anyone:
    /// assert_eq!(Ring::attach_in(region.as_mut_slice()).unwrap_err(), Error::Uninitialised);
    /// Ring::create_in(region.as_mut_slice(), Config::new(256))?;
    /// let ring = Ring::attach_in(region.as_mut_slice())?;
    /// assert_eq!(ring.capacity(), 256);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn attach_in(region: &'a mut [u8]) -> Result<Self, Error> {
        let len = region.len();
        // SAFETY: as in `create_in`.
        unsafe { Self::attach(NonNull::from(region).cast(), len) }
    }

    /// Initialises a new ring in the region at `region`, `len` bytes long.
    ///
    /// # Safety
    ///
    /// - `region` must be valid for reads and writes of `len` bytes for the
    ///   whole lifetime `'a` (e.g. a mapping that stays mapped), and those
    ///   bytes must be initialised (any values).
    /// - During 'a, the region may be accessed only through rings created
    ///   or attached here (in this or another process); in particular no
    ///   Rust reference to its bytes may be live.
    /// - No one else may access the region while `create` runs.
    pub unsafe fn create(region: NonNull<u8>, len: usize, config: Config) -> Result<Self, Error> {
        let (capacity, max_message) = config.validate()?;
        check_region(region, len.max(HEADER_SIZE))?;
        if len < region_size(capacity) {
            return Err(Error::RegionTooSmall {
                needed: region_size(capacity),
                available: len,
            });
        }
        let header = region.cast::<Header>();
        // SAFETY: the region is valid for writes of `len ≥ HEADER_SIZE`
        // bytes, aligned for `Header` (checked above), and nobody else
        // accesses it during `create` (the caller's promise). Every byte of
        // the header is written, padding included, so a reader of the
        // region's bytes (another process, a file image) sees zeroes there,
        // not whatever a typed write leaves in padding.
        unsafe { region.write_bytes(0, HEADER_SIZE) };
        #[cfg(loom)]
        // SAFETY: as above; loom's atomics and cells need constructing.
        unsafe {
            header.write(Header::zeroed())
        };
        // SAFETY: initialised (all zeroes is a valid header of atomics);
        // shared access only, through atomics.
        let h = unsafe { header.as_ref() };
        h.init(capacity as u64, max_message as u64, config.message_type);
        // Release: an opener that sees INIT_READY (Acquire) sees every field above.
        h.identity.init.store(INIT_READY, Release);
        // SAFETY: the region holds an initialised header and `capacity`
        // data bytes; the caller guarantees validity for 'a.
        Ok(unsafe { Self::from_parts(region, capacity as u64, max_message as u64) })
    }

    /// Attaches to an initialised ring in the region at `region`, `len`
    /// bytes long, after checking its header.
    ///
    /// # Safety
    ///
    /// The first two conditions of [`Ring::create`].
    pub unsafe fn attach(region: NonNull<u8>, len: usize) -> Result<Self, Error> {
        check_region(region, len)?;
        // SAFETY: the region is valid, initialised and aligned for a
        // `Header` (checked above), and is accessed only through atomics;
        // any bit pattern is a valid atomic integer.
        let h = unsafe { region.cast::<Header>().as_ref() };
        let id = &*h.identity;

        // Acquire: pairs with the creator's Release store of INIT_READY
        // (loaded first: the other fields are read after it).
        let init = id.init.load(Acquire);
        // Relaxed: written before INIT_READY; the positions Acquire, as a
        // side that claims a role uses them (see `Ring::producer`).
        let fields = IdentityFields {
            init,
            magic: id.magic.load(Relaxed),
            version: id.version.load(Relaxed),
            header_size: id.header_size.load(Relaxed),
            capacity: id.capacity.load(Relaxed),
            max_message: id.max_message.load(Relaxed),
            producer_state: id.producer_state.load(Relaxed),
            consumer_state: id.consumer_state.load(Relaxed),
            waits: id.waits.load(Relaxed),
            write: h.producer.position.load(Acquire),
            read: h.consumer.position.load(Acquire),
        };
        let (capacity, max_message) = fields.check(len)?;
        // SAFETY: header checked; the caller guarantees validity for 'a.
        Ok(unsafe { Self::from_parts(region, capacity, max_message) })
    }

    /// # Safety
    ///
    /// `region` points to an initialised header followed by `capacity`
    /// data bytes, valid for 'a.
    unsafe fn from_parts(region: NonNull<u8>, capacity: u64, max_message: u64) -> Self {
        Ring {
            header: region.cast(),
            // SAFETY: the data area starts HEADER_SIZE bytes into the region,
            // inside it (the region holds at least HEADER_SIZE + capacity).
            data: unsafe { region.add(HEADER_SIZE) },
            capacity,
            mask: capacity - 1,
            shift: capacity.trailing_zeros(),
            max_message,
            _region: PhantomData,
        }
    }

    /// Data bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The longest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.max_message as usize
    }

    /// The fingerprint of the message type the ring's creator recorded
    /// ([`Config::message_type`]), or `None` for an untyped ring.
    ///
    /// Read once from shared memory that a hostile peer may write: any
    /// value is acceptable data (this side only compares it), never a
    /// promise about the bytes of the messages. A typed view checks every
    /// message's size and alignment by itself (see [`crate::typed`]).
    pub fn message_type(&self) -> Option<u64> {
        // Relaxed: written before the creator's Release store of `init`,
        // which attach loaded with Acquire; nothing is accessed through it.
        match self.header().identity.message_type.load(Relaxed) {
            0 => None,
            fingerprint => Some(fingerprint),
        }
    }

    /// Checks that the ring carries the message type an opener expects:
    /// `None` (an untyped opener) accepts any ring; `Some(f)` accepts only a
    /// ring whose creator recorded `f`, and fails with
    /// [`Error::TypeMismatch`] on any other, an untyped ring (`found: 0`)
    /// included. Call it after [`Ring::attach_in`] and before claiming a
    /// role, so that a mismatch leaves the ring as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{message_type_of, region_size, Config, Error, Region, Ring};
    ///
    /// let mut region = Region::<{ region_size(256) }>::new();
    /// let ours = message_type_of::<u64>();
    /// Ring::create_in(region.as_mut_slice(), Config::new(256).message_type(ours))?;
    /// let ring = Ring::attach_in(region.as_mut_slice())?;
    /// assert_eq!(ring.expect_message_type(Some(ours)), Ok(()));
    /// assert_eq!(ring.expect_message_type(None), Ok(())); // untyped openers attach
    /// let theirs = message_type_of::<u32>();
    /// assert_eq!(
    ///     ring.expect_message_type(Some(theirs)),
    ///     Err(Error::TypeMismatch { expected: theirs, found: ours })
    /// );
    /// # Ok::<(), Error>(())
    /// ```
    pub fn expect_message_type(&self, expected: Option<u64>) -> Result<(), Error> {
        let Some(expected) = expected else {
            return Ok(());
        };
        let found = self.message_type().unwrap_or(0);
        if found != expected {
            return Err(Error::TypeMismatch { expected, found });
        }
        Ok(())
    }

    /// The state of `role` as the shared header says now.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Region, Ring, Role, RoleState, Spin};
    ///
    /// let mut region = Region::<{ region_size(64) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(64))?;
    /// assert_eq!(ring.role_state(Role::Producer), Ok(RoleState::Idle));
    /// let tx = ring.producer(Spin::new())?;
    /// assert_eq!(ring.role_state(Role::Producer), Ok(RoleState::Active));
    /// drop(tx);
    /// assert_eq!(ring.role_state(Role::Producer), Ok(RoleState::Closed));
    /// # Ok::<(), shmlane_core::Error>(())
    /// ```
    pub fn role_state(&self, role: Role) -> Result<RoleState, Error> {
        let id = &self.header().identity;
        let word = match role {
            Role::Producer => &id.producer_state,
            Role::Consumer => &id.consumer_state,
        };
        crate::stats::role_state(word.load(Acquire))
    }

    /// What the side holding `role` has done (see [`Counters`]), as its
    /// line of the header says now: read without synchronisation, so the
    /// fields may be a message or two apart while the side runs.
    pub fn counters(&self, role: Role) -> Counters {
        let h = self.header();
        let line = match role {
            Role::Producer => &h.producer,
            Role::Consumer => &h.consumer,
        };
        // Relaxed: only numbers are read.
        Counters::load(&line.counters, line.position.load(Relaxed))
    }

    /// The CPU the holder of `role` said it is confined to (see
    /// [`Ring::set_cpu_hint`]), or `None`. Written by the peer: a hint, for
    /// choices that only make waiting faster or slower, never for safety.
    pub fn cpu_hint(&self, role: Role) -> Option<u32> {
        let id = &self.header().identity;
        let word = match role {
            Role::Producer => &id.producer_cpu,
            Role::Consumer => &id.consumer_cpu,
        };
        // Relaxed: a hint; nothing is accessed through it.
        word.load(Relaxed).checked_sub(1)
    }

    /// The holder id the side holding `role` recorded when it claimed it
    /// ([`Wait::holder_id`]: in shmlane-posix, its process id), or `None`
    /// when it gave none or has not claimed yet.
    ///
    /// Written by the peer, so only a hint: a side that watches its peer's
    /// liveness through it must confirm what it finds by other means (the
    /// posix gate opens a pidfd for it, then checks that the peer's role
    /// lock is still held, so that a reused pid is not taken for the peer).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Region, Ring, Role, Spin};
    ///
    /// let mut region = Region::<{ region_size(256) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(256))?;
    /// assert_eq!(ring.holder_id(Role::Producer), None);
    /// let _tx = ring.producer(Spin::new())?; // Spin gives no id
    /// assert_eq!(ring.holder_id(Role::Producer), None);
    /// # Ok::<(), shmlane_core::Error>(())
    /// ```
    pub fn holder_id(&self, role: Role) -> Option<u32> {
        let id = &self.header().identity;
        let word = match role {
            Role::Producer => &id.producer_pid,
            Role::Consumer => &id.consumer_pid,
        };
        // Acquire: pairs with the claim's Release store (see `claim`).
        match word.load(Acquire) {
            0 => None,
            holder => Some(holder),
        }
    }

    /// Says which CPU the holder of `role` (this side) is confined to, if
    /// any, for its peer's waits: a peer confined to the same CPU gives it
    /// up while it spins, instead of keeping this side from running.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Region, Ring, Role};
    ///
    /// let mut region = Region::<{ region_size(256) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(256))?;
    /// assert_eq!(ring.cpu_hint(Role::Producer), None);
    /// ring.set_cpu_hint(Role::Producer, Some(3));
    /// assert_eq!(ring.cpu_hint(Role::Producer), Some(3));
    /// # Ok::<(), shmlane_core::Error>(())
    /// ```
    pub fn set_cpu_hint(&self, role: Role, cpu: Option<u32>) {
        let id = &self.header().identity;
        let word = match role {
            Role::Producer => &id.producer_cpu,
            Role::Consumer => &id.consumer_cpu,
        };
        // Relaxed: a hint (see `cpu_hint`).
        word.store(cpu.map_or(0, |c| c.saturating_add(1)), Relaxed);
    }

    /// Claims the producer role. A second claim, while the first producer
    /// lives or after it closed, fails with [`Error::RoleTaken`].
    ///
    /// `wait` is how this side sleeps when the ring is full, and how it
    /// wakes a consumer that sleeps on an empty ring.
    pub fn producer<W: Wait>(&self, wait: W) -> Result<Producer<'a, W>, Error> {
        let h = self.header();
        // The positions are checked before the claim, so that a claim that
        // records how this side waits is never taken back (see `peer_sleep`).
        // Acquire: a producer that claims a ring someone else wrote to
        // before (not possible today, as roles are claimed once) would
        // see its predecessor's records.
        let write = h.producer.position.load(Acquire);
        let read = h.consumer.position.load(Acquire);
        if window(write, read, self.capacity).is_none() {
            return Err(Error::Corrupt(Corruption::WritePosition));
        }
        let peer = claim(&h.identity, Role::Producer, &wait)?;
        wake_after_claim(&wait, &h.producer.peer_wait);
        let mut producer = Producer {
            ring: *self,
            wait,
            write,
            published: write,
            first: 0,
            cached_read: read,
            limit: write,
            kind: 0,
            peer,
            poisoned: None,
            // Relaxed: a statistic (see `crate::layout`).
            messages: h.producer.counters.messages.load(Relaxed),
        };
        producer.set_limit();
        Ok(producer)
    }

    /// Claims the consumer role. A second claim, while the first consumer
    /// lives or after it closed, fails with [`Error::RoleTaken`].
    ///
    /// `wait` is how this side sleeps when the ring is empty, and how it
    /// wakes a producer that sleeps on a full ring.
    pub fn consumer<W: Wait>(&self, wait: W) -> Result<Consumer<'a, W>, Error> {
        let h = self.header();
        // Positions first, as in `producer`.
        let read = h.consumer.position.load(Acquire);
        let write = h.producer.position.load(Acquire);
        if window(write, read, self.capacity).is_none() {
            return Err(Error::Corrupt(Corruption::ReadPosition));
        }
        let peer = claim(&h.identity, Role::Consumer, &wait)?;
        wake_after_claim(&wait, &h.consumer.peer_wait);
        Ok(Consumer {
            ring: *self,
            wait,
            read,
            released: read,
            expect: (self.kind_at(KIND_MESSAGE, read) as u64) << 32,
            peer,
            poisoned: None,
            // Relaxed: statistics (see `crate::layout`).
            messages: h.consumer.counters.messages.load(Relaxed),
            waiting: false,
        })
    }

    #[inline(always)]
    pub(crate) fn header(&self) -> &'a Header {
        // SAFETY: `header` points to an initialised header valid for 'a
        // (the constructors' contract), accessed only through atomics.
        unsafe { self.header.as_ref() }
    }

    #[inline(always)]
    fn mask(&self) -> u64 {
        self.mask
    }

    /// Pointer to data byte `offset` (< capacity).
    #[inline(always)]
    pub(crate) fn data_at(&self, offset: u64) -> *mut u8 {
        debug_assert!(offset < self.capacity);
        // SAFETY: offset < capacity, so the result stays inside the data area.
        unsafe { self.data.as_ptr().add(offset as usize) }
    }

    /// Pointer to the payload of the record at position `start`, whose
    /// `len` bytes the caller checked to lie inside the data area.
    #[inline(always)]
    fn payload(&self, start: u64, len: u64) -> NonNull<u8> {
        let offset = (start & self.mask()) + RECORD_HEADER;
        // An empty message in the last 8 bytes has its (empty) payload at
        // `capacity`; any in-bounds pointer serves for zero bytes.
        let offset = if len == 0 { 0 } else { offset };
        // SAFETY: `data_at` returns a pointer into the data area, never null.
        unsafe { NonNull::new_unchecked(self.data_at(offset)) }
    }

    /// The record-header word at data offset `offset` (8-aligned, <
    /// capacity), as an atomic (under loom, the modelled one of that word).
    #[inline(always)]
    fn record_word(&self, offset: u64) -> &'a AtomicU64 {
        #[cfg(loom)]
        {
            &self.header().records[(offset / 8) as usize]
        }
        // SAFETY: the data area starts 8-aligned (HEADER_SIZE % 8 == 0 on a
        // REGION_ALIGN-aligned region) and offset is a multiple of 8 below
        // capacity, so 8 aligned bytes inside the region, valid for 'a.
        // Whenever this word may hold a header both sides access it only
        // through atomics; the payload writes and reads that reuse its bytes
        // in other laps are ordered with those by the position protocol.
        #[cfg(not(loom))]
        unsafe {
            AtomicU64::from_ptr(self.data_at(offset).cast())
        }
    }

    /// Loads the record header at data offset `offset` (8-aligned, <
    /// capacity): read once, whatever the peer does concurrently. Acquire:
    /// a header is the publication of its record (see [`crate::layout`]).
    #[inline(always)]
    pub(crate) fn load_record(&self, offset: u64) -> u64 {
        self.record_word(offset).load(Acquire)
    }

    /// Stores a record header at data offset `offset` (8-aligned, <
    /// capacity), unpublished: a later Release store publishes it.
    #[inline(always)]
    pub(crate) fn store_record(&self, offset: u64, kind: u32, len: u64) {
        // Relaxed: the first header of what is published is stored last,
        // with Release (`publish_record`), and carries this one.
        self.record_word(offset)
            .store(((kind as u64) << 32) | len, Relaxed);
    }

    /// Publishes a header word at `offset`: every record header and payload
    /// stored before it becomes visible with it.
    #[inline(always)]
    fn publish_record(&self, offset: u64, word: u64) {
        // Release: pairs with the consumer's Acquire `load_record`.
        self.record_word(offset).store(word, Release);
    }

    /// The kind word of a `base` record whose header sits at `position`.
    #[inline(always)]
    fn kind_at(&self, base: u32, position: u64) -> u32 {
        record_kind(base, position, self.shift)
    }
}

/// Fails with the corruption a side saw before, if any.
#[inline(always)]
fn trusted(poisoned: Option<Corruption>) -> Result<(), Error> {
    match poisoned {
        None => Ok(()),
        Some(what) => Err(Error::Corrupt(what)),
    }
}

/// Records `what` as the corruption a side saw, unless it saw one before,
/// and returns the first one as the error. A side that saw the ring broken
/// once never trusts it again: every later call fails the same way.
#[cold]
#[inline(never)]
fn poison(poisoned: &mut Option<Corruption>, what: Corruption) -> Error {
    Error::Corrupt(*poisoned.get_or_insert(what))
}

/// A role's state word and the shift of its bits in the `waits` word.
fn role_words(id: &Identity, role: Role) -> (&AtomicU32, u32, u32) {
    match role {
        Role::Producer => (
            &id.producer_state,
            WAITS_PRODUCER_SHIFT,
            WAITS_CONSUMER_SHIFT,
        ),
        Role::Consumer => (
            &id.consumer_state,
            WAITS_CONSUMER_SHIFT,
            WAITS_PRODUCER_SHIFT,
        ),
    }
}

/// Whether a side's peer may sleep until woken, as far as this side knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerSleep {
    /// The peer has not recorded how it waits yet: it may sleep.
    Unknown,
    /// The peer sleeps until woken: every publication checks its bit.
    Sleeps,
    /// The peer recorded that it never sleeps (it spins), compatibly with
    /// this side, so its record stays: publications skip the `SeqCst`
    /// fence and the check of its sleeper bit, which it never sets.
    NeverSleeps,
}

/// What the `waits` bits `peer` (already shifted down) say about a peer of a
/// side that sleeps (`sleeps`) and wakes (`wakes`) as given.
///
/// The record is the peer's word: a peer that says it never sleeps and then
/// sleeps is never woken, which harms only itself (this side's calls are
/// unaffected).
///
/// Only a record compatible with this side's is trusted to stay: an
/// incompatible peer unclaims its role and may be followed by another,
/// which may sleep. (A compatible record is never taken back: a claim
/// checks the ring's positions before it records anything, so the only
/// way back to an idle role after recording is [`Error::IncompatibleWait`].)
fn peer_sleep(peer: u32, sleeps: bool, wakes: bool) -> PeerSleep {
    if peer & WAITS_SET == 0 {
        return PeerSleep::Unknown;
    }
    let peer_sleeps = peer & WAITS_SLEEPS != 0;
    let compatible = (!sleeps || peer & WAITS_WAKES != 0) && (!peer_sleeps || wakes);
    match (compatible, peer_sleeps) {
        (true, false) => PeerSleep::NeverSleeps,
        (true, true) => PeerSleep::Sleeps,
        (false, _) => PeerSleep::Unknown,
    }
}

/// Looks again at how the peer of a side in `role` waits, if this side did
/// not know yet (the peer claimed its role after this side did).
#[cold]
fn learn_peer_sleep<W: Wait>(id: &Identity, role: Role, wait: &W) -> PeerSleep {
    let (_, _, theirs) = role_words(id, role);
    // Relaxed: a stale value only means "unknown" for a while longer.
    let peer = (id.waits.load(Relaxed) >> theirs) & (WAITS_SET | WAITS_SLEEPS | WAITS_WAKES);
    peer_sleep(peer, wait.sleeps(), wait.wakes())
}

/// Claims `role` for a side that waits with `wait`: marks the role active,
/// then records how this side waits and checks it against the peer's
/// record. Returns what that record says of the peer.
fn claim<W: Wait>(id: &Identity, role: Role, wait: &W) -> Result<PeerSleep, Error> {
    let (state, mine, theirs) = role_words(id, role);
    match state.compare_exchange(STATE_IDLE, STATE_ACTIVE, AcqRel, Acquire) {
        Ok(_) => {}
        Err(STATE_ACTIVE | STATE_CLOSED) => return Err(Error::RoleTaken(role)),
        Err(_) => return Err(Error::Corrupt(Corruption::State)),
    }
    let sleeps = if wait.sleeps() { WAITS_SLEEPS } else { 0 };
    let wakes = if wait.wakes() { WAITS_WAKES } else { 0 };
    // Of two sides recording at once, the later RMW on this one word sees
    // the earlier one's bits (RMWs of one location are totally ordered), so
    // at least one of them checks the other.
    let before = id
        .waits
        .fetch_or((WAITS_SET | sleeps | wakes) << mine, Relaxed);
    let peer = (before >> theirs) & (WAITS_SET | WAITS_SLEEPS | WAITS_WAKES);
    let mismatch = peer & WAITS_SET != 0
        && ((sleeps != 0 && peer & WAITS_WAKES == 0) || (peer & WAITS_SLEEPS != 0 && wakes == 0));
    if mismatch {
        unclaim(id, role);
        return Err(Error::IncompatibleWait);
    }
    // Release: a peer that reads the id with Acquire after our claim's
    // wake-up (see `wake_after_claim`) reads this one, not a stale 0. The id
    // is a hint the peer checks (see `Ring::holder_id`).
    let holder = match role {
        Role::Producer => &id.producer_pid,
        Role::Consumer => &id.consumer_pid,
    };
    holder.store(wait.holder_id(), Release);
    Ok(peer_sleep(peer, sleeps != 0, wakes != 0))
}

/// After a claim: moves the count of this side's line word on (keeping the
/// sleeper bit, as a close does) and wakes the peer, so that a peer that
/// went to sleep before this side existed looks again: at the role now
/// active, and at this side's holder id, if it watches its peer's liveness.
fn wake_after_claim<W: Wait>(wait: &W, word: &AtomicU32) {
    // Release (of the RMW): a peer that sees the new count (Acquire) sees
    // the claim and the holder id stored before it.
    word.fetch_add(2, AcqRel);
    wait.wake(word);
}

/// Gives back a role claimed by [`claim`] that its side could not use.
fn unclaim(id: &Identity, role: Role) {
    let (state, mine, _) = role_words(id, role);
    id.waits
        .fetch_and(!((WAITS_SET | WAITS_SLEEPS | WAITS_WAKES) << mine), Relaxed);
    let _ = state.compare_exchange(STATE_ACTIVE, STATE_IDLE, AcqRel, Relaxed);
}

/// Wakes the side sleeping on `word`, if it announced itself.
///
/// Called right after publishing a position. The SeqCst fence orders that
/// Release store before the load of the sleeper bit; the sleeper orders its
/// bit before its re-check of our position the same way. So either we see
/// the bit, or the sleeper's re-check sees our position: no lost wake-up.
#[inline(always)]
fn wake_sleeper<W: Wait>(wait: &W, word: &AtomicU32, counters: &LineCounters) {
    fence(SeqCst);
    if word.load(Relaxed) & SLEEPING != 0 {
        // Only the sleeper sets the bit and only we clear it, so adding one
        // clears it and moves the count on. Release: a spinning sleeper that
        // sees the new value (Acquire) also sees our position.
        word.fetch_add(1, AcqRel);
        wait.wake(word);
        LineCounters::bump(&counters.wakes);
    }
}

/// Announces that this side is about to sleep on `word`: returns the
/// value to wait on. Must be followed by a re-check of the ring.
#[inline(always)]
fn announce_sleep(word: &AtomicU32) -> u32 {
    let ticket = word.fetch_or(SLEEPING, Relaxed) | SLEEPING;
    // Pairs with the fence in `wake_sleeper`; see there.
    fence(SeqCst);
    ticket
}

/// Takes back an announcement (`ticket`, from [`announce_sleep`]) whose
/// re-check found what the side waited for, so that the peer's next
/// publication does not pay a wake-up call for a side that is awake.
///
/// The same transition the waker makes (add one: clears the bit, moves the
/// count on), and only if the word is still `ticket`: if the peer already
/// made it, nothing is left to take back. A peer that saw the bit just
/// before this and adds one after it sets the bit again: then its next
/// publication pays one needless wake-up, as it did before this existed;
/// no wake-up is ever lost (a later announcement waits for a change of
/// whatever value it sees).
#[inline]
fn withdraw_sleep(word: &AtomicU32, ticket: u32) {
    // Relaxed: nothing is published through this word by the sleeper.
    let _ = word.compare_exchange(ticket, ticket.wrapping_add(1), Relaxed, Relaxed);
}

/// Marks a role closed and wakes its peer, whether or not it announced sleep.
fn close_role<W: Wait>(wait: &W, state: &AtomicU32, word: &AtomicU32) {
    // Release: a peer that sees CLOSED sees every position published before.
    state.store(STATE_CLOSED, Release);
    // Move the count on (keeping the sleeper bit) so that a sleeper whose
    // ticket predates this returns at once. The release RMW carries the
    // CLOSED store to a sleeper that announces after it.
    word.fetch_add(2, AcqRel);
    wait.wake(word);
}

// ---------------------------------------------------------------------------
// Producer

/// The writing side of a ring.
///
/// Dropping it publishes anything staged and closes the ring for writing:
/// the consumer drains what was committed, then sees [`Error::Disconnected`].
pub struct Producer<'a, W: Wait = Spin> {
    ring: Ring<'a>,
    wait: W,
    /// Committed bytes (published or staged).
    pub(crate) write: u64,
    /// Last value stored to the shared write position.
    published: u64,
    /// The header word of the first record after `published`, stored only
    /// when the records up to `write` are published (see `Producer::stage`).
    first: u64,
    /// Last consumer position seen; reloaded only when the ring looks full.
    cached_read: u64,
    /// How far `write` may move with no padding and no look at the
    /// consumer's position: to `cached_read + capacity` or the end of
    /// `write`'s lap, whichever comes first (`write` itself once poisoned).
    /// Recomputed by every slow path (`Producer::set_limit`).
    limit: u64,
    /// The kind of a message record in `write`'s lap, shifted into a header
    /// word's upper half: valid below `limit`.
    kind: u64,
    /// Whether the consumer may sleep (and so must be looked at, after a
    /// fence, on every publication).
    peer: PeerSleep,
    /// The first corruption this side saw: from then on every call fails
    /// with it (see [`Error::Corrupt`]).
    poisoned: Option<Corruption>,
    /// Messages committed (published or staged): stored to this side's
    /// counters with each publication.
    messages: u64,
}

// SAFETY: the producer owns its role (claimed once); the ring handle is
// Send, and the wait implementation is Send by the bound.
unsafe impl<W: Wait + Send> Send for Producer<'_, W> {}

impl<W: Wait> fmt::Debug for Producer<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("ring", &self.ring)
            .field("write", &self.write)
            .field("published", &self.published)
            .field("cached_read", &self.cached_read)
            .finish_non_exhaustive()
    }
}

impl<'a, W: Wait> Producer<'a, W> {
    /// Data bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The longest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.ring.max_message()
    }

    /// The wait implementation this side uses.
    pub fn waiter(&self) -> &W {
        &self.wait
    }

    /// What this side has done (see [`Counters`]): what its peer and any
    /// third process see in its line of the header.
    pub fn counters(&self) -> Counters {
        self.ring.counters(Role::Producer)
    }

    /// Whether the consumer has closed its side.
    pub fn is_disconnected(&self) -> bool {
        self.peer_state() == Err(Error::Disconnected)
    }

    /// The consumer's state as the header says: `Ok` while it may read.
    #[inline(always)]
    fn peer_state(&self) -> Result<(), Error> {
        // Relaxed: only the value matters; it changes once, to CLOSED.
        match self.ring.header().identity.consumer_state.load(Relaxed) {
            STATE_IDLE | STATE_ACTIVE => Ok(()),
            STATE_CLOSED => Err(Error::Disconnected),
            _ => Err(Error::Corrupt(Corruption::State)),
        }
    }

    /// [`Producer::peer_state`], recording a corruption; once poisoned,
    /// never `Disconnected` but the corruption.
    #[inline(always)]
    fn check_peer(&mut self) -> Result<(), Error> {
        match self.peer_state() {
            Ok(()) => Ok(()),
            Err(Error::Corrupt(what)) => Err(self.poison(what)),
            Err(e) => Err(trusted(self.poisoned).err().unwrap_or(e)),
        }
    }

    /// Records a corruption (see the free [`poison`]) and makes every later
    /// call take the slow path of [`Producer::has_room`], which reports it:
    /// the cached read position then says the ring is full.
    #[cold]
    #[inline(never)]
    fn poison(&mut self, what: Corruption) -> Error {
        self.cached_read = self.write.wrapping_sub(self.ring.capacity);
        self.limit = self.write;
        poison(&mut self.poisoned, what)
    }

    /// Recomputes `limit` and `kind` for the current `write` and
    /// `cached_read`.
    #[inline(never)]
    fn set_limit(&mut self) {
        let capacity = self.ring.capacity;
        let room = capacity - self.write.wrapping_sub(self.cached_read).min(capacity);
        let tail = capacity - (self.write & self.ring.mask());
        self.limit = self.write.wrapping_add(room.min(tail));
        self.kind = (self.ring.kind_at(KIND_MESSAGE, self.write) as u64) << 32;
    }

    /// Where a `len`-byte message goes: (padding before it, bytes needed).
    #[inline(always)]
    fn placement(&self, len: u64) -> (u64, u64) {
        let record = record_size(len);
        let tail = self.ring.capacity - (self.write & self.ring.mask());
        if record <= tail {
            (0, record)
        } else {
            (tail, tail + record)
        }
    }

    /// Whether `needed` bytes are free after `write`. Reloads the consumer's
    /// position only when the cached one says no (one cache miss per lap of
    /// the ring, not per message).
    #[inline(always)]
    fn has_room(&mut self, needed: u64) -> Result<bool, Error> {
        let capacity = self.ring.capacity;
        if capacity - self.write.wrapping_sub(self.cached_read) >= needed {
            return Ok(true);
        }
        // A poisoned producer always gets here (see `poison`).
        trusted(self.poisoned)?;
        if self.peer == PeerSleep::Unknown {
            self.peer = learn_peer_sleep(&self.ring.header().identity, Role::Producer, &self.wait);
        }
        // Acquire: pairs with the consumer's Release store after it read
        // the bytes we are about to overwrite.
        let read = self.ring.header().consumer.position.load(Acquire);
        let Some(used) = window(self.write, read, capacity) else {
            return Err(self.poison(Corruption::ReadPosition));
        };
        self.cached_read = read;
        Ok(capacity - used >= needed)
    }

    fn check_len(&self, len: usize) -> Result<(), Error> {
        if len > self.max_message() {
            return Err(Error::TooLarge {
                len,
                max: self.max_message(),
            });
        }
        Ok(())
    }

    /// Where a `len`-byte message goes if it fits now: (padding, bytes).
    /// The common case (it fits below `limit`) is one comparison.
    #[inline(always)]
    fn room_for(&mut self, len: usize) -> Result<(u64, u64), Error> {
        self.check_peer()?;
        let record = record_size(len as u64);
        if self.limit.wrapping_sub(self.write) >= record {
            return Ok((0, record));
        }
        self.make_room(len as u64)
    }

    /// [`Producer::room_for`] past `limit`: padding to the lap's end, a
    /// look at the consumer's position; then a new `limit`.
    #[inline(never)]
    fn make_room(&mut self, len: u64) -> Result<(u64, u64), Error> {
        let (pad, needed) = self.placement(len);
        let room = self.has_room(needed)?;
        self.set_limit();
        if !room {
            LineCounters::bump(&self.ring.header().producer.counters.stalls);
            return Err(Error::Full);
        }
        Ok((pad, needed))
    }

    /// Reserves room for a `len`-byte message, or fails at once.
    #[inline(always)]
    fn reserve_slot(&mut self, len: usize) -> Result<Slot, Error> {
        self.check_len(len)?;
        let (pad, needed) = self.room_for(len)?;
        let start = self.write.wrapping_add(pad);
        let payload = (start & self.ring.mask()) + RECORD_HEADER;
        self.ring.header().track(payload, len as u64, true);
        let ptr = self.ring.payload(start, len as u64);
        Ok(Slot {
            ptr,
            len,
            pad,
            needed,
        })
    }

    /// Reserves room for a message of `len` bytes and hands it out to be
    /// written in place, or fails at once: [`Error::Full`] when there is no
    /// room now, [`Error::TooLarge`] above [`Producer::max_message`],
    /// [`Error::Disconnected`] once the consumer closed.
    /// [`WriteGrant::commit`] publishes the message; dropping the grant
    /// abandons it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    ///
    /// let mut grant = tx.try_reserve(16)?;
    /// grant[..5].copy_from_slice(b"hello");
    /// grant.commit(5); // only 5 of the 16 bytes are sent
    /// assert_eq!(&*rx.try_read()?, b"hello");
    /// # Ok::<(), shmlane_core::Error>(())
    /// ```
    #[inline]
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_, 'a, W>, Error> {
        let slot = self.reserve_slot(len)?;
        Ok(WriteGrant {
            slot,
            producer: self,
        })
    }

    /// Waits as long as it takes for room for a `len`-byte message (or for
    /// the consumer to close: [`Error::Disconnected`]), then reserves it like
    /// [`Producer::try_reserve`].
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_, 'a, W>, Error> {
        self.wait_for_room(len, None)?;
        self.try_reserve(len)
    }

    /// Like [`Producer::reserve`], but gives up with [`Error::TimedOut`] once
    /// `deadline` has passed. core has no clock: the deadline is the
    /// waiter's (rounds or ticks for [`Spin`], an instant for a futex gate).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        deadline: W::Deadline,
    ) -> Result<WriteGrant<'_, 'a, W>, Error> {
        self.wait_for_room(len, Some(deadline))?;
        self.try_reserve(len)
    }

    /// Copies `msg` into `slot`, reserved for it.
    #[inline(always)]
    fn copy_in(slot: &Slot, msg: &[u8]) {
        debug_assert_eq!(slot.len, msg.len());
        // SAFETY: the slot's `len == msg.len()` bytes at `ptr` are inside
        // the data area and reserved for us; `msg` is a distinct borrow
        // (a `&[u8]` can't point into the slot, which nothing else sees).
        unsafe { core::ptr::copy_nonoverlapping(msg.as_ptr(), slot.ptr.as_ptr(), msg.len()) };
    }

    /// Copies `msg` into the ring and publishes it, or fails at once
    /// ([`Error::Full`], [`Error::TooLarge`], [`Error::Disconnected`]);
    /// on failure nothing was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(64) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(64))?;
    /// let mut tx = ring.producer(Spin::new())?;
    /// tx.try_send(&[1; 24])?;
    /// tx.try_send(&[2; 24])?;
    /// assert_eq!(tx.try_send(&[3; 24]), Err(Error::Full));
    /// assert_eq!(tx.try_send(&[0; 25]), Err(Error::TooLarge { len: 25, max: 24 }));
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let slot = self.reserve_slot(msg.len())?;
        Self::copy_in(&slot, msg);
        // The whole reservation: its size is known, no need to compute it.
        self.commit_now(slot.pad, msg.len() as u64, slot.needed);
        Ok(())
    }

    /// Waits as long as it takes for `msg` to fit (or for the consumer to
    /// close: [`Error::Disconnected`]), then sends it like
    /// [`Producer::try_send`].
    pub fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.wait_for_room(msg.len(), None)?;
        self.try_send(msg)
    }

    /// Like [`Producer::send`], but gives up with [`Error::TimedOut`] once
    /// `deadline` (the waiter's, see [`Producer::reserve_timeout`]) has
    /// passed; then nothing was sent.
    pub fn send_timeout(&mut self, msg: &[u8], deadline: W::Deadline) -> Result<(), Error> {
        self.wait_for_room(msg.len(), Some(deadline))?;
        self.try_send(msg)
    }

    /// Bytes of the ring in use now: records the consumer has not released
    /// yet (headers and padding included), between 0 and
    /// [`Producer::capacity`]. A position that makes no sense counts as a
    /// full ring; the first send that needs the consumer's position (when
    /// the room this side knows of runs out) reports [`Error::Corrupt`].
    pub fn len(&self) -> usize {
        if self.poisoned.is_some() {
            return self.ring.capacity();
        }
        // Relaxed: only a number is read, nothing is accessed through it.
        let read = self.ring.header().consumer.position.load(Relaxed);
        window(self.write, read, self.ring.capacity).map_or(self.ring.capacity(), |n| n as usize)
    }

    /// Whether the consumer has released everything this side published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes free now: [`Producer::capacity`] − [`Producer::len`]. A message
    /// of `len` bytes needs 8 bytes of header and its length rounded up to
    /// 8, plus the rest of the data area when it would straddle its end.
    pub fn free_bytes(&self) -> usize {
        self.capacity() - self.len()
    }

    pub(crate) fn wait_for_room(
        &mut self,
        len: usize,
        deadline: Option<W::Deadline>,
    ) -> Result<(), Error> {
        self.check_len(len)?;
        let counters = &self.ring.header().producer.counters;
        // Spin only before the first sleep, as in `wait_for_message`.
        let mut spin = true;
        // Counted once per call: a full ring, a sleep.
        let mut slept = false;
        loop {
            self.check_peer()?;
            let (_, needed) = self.placement(len as u64);
            if self.has_room(needed)? {
                return Ok(());
            }
            if core::mem::take(&mut spin) {
                LineCounters::bump(&counters.stalls);
                if self.spin_for_room(needed)? {
                    return Ok(());
                }
            }
            let word = &self.ring.header().consumer.peer_wait;
            if !self.wait.sleeps() {
                // A spinner needs no announcement: it re-checks by itself
                // (and has no use for the word: see `Wait::wait`).
                self.wait.wait(word, 0, deadline)?;
                continue;
            }
            let ticket = announce_sleep(word);
            // Re-check after announcing: the consumer may have released
            // (or closed) before it could see our announcement.
            self.check_peer()?;
            if self.has_room(needed)? {
                withdraw_sleep(word, ticket);
                return Ok(());
            }
            if !core::mem::replace(&mut slept, true) {
                LineCounters::bump(&counters.sleeps);
            }
            self.wait.wait(word, ticket, deadline)?;
        }
    }

    /// Prepares to wait for room for a `len`-byte message outside the ring
    /// (on a readiness fd, say): announces this side on the consumer's wait
    /// word, then re-checks, the way a blocking send does before it sleeps.
    /// Returns [`Armed::Waiting`] with the value to wait on if there is
    /// still no room, else [`Armed::Ready`] (the announcement withdrawn).
    ///
    /// A ticket from a wait that did not happen costs at most one needless
    /// [`Wait::wake`] call by the consumer. Fails with
    /// [`Error::IncompatibleWait`] for a side whose wait does not
    /// [sleep](Wait::sleeps): its peer may skip looking at announcements.
    /// Fails as [`Producer::try_send`] would for a `len` it can never send.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Armed, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(64) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(64))?;
    /// let mut tx = ring.producer(Spin::new())?;
    /// // A spinner never arms: nobody would look at its announcement.
    /// assert_eq!(tx.arm(8), Err(Error::IncompatibleWait));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn arm(&mut self, len: usize) -> Result<Armed, Error> {
        if !self.wait.sleeps() {
            return Err(Error::IncompatibleWait);
        }
        self.check_len(len)?;
        let (_, needed) = self.placement(len as u64);
        let ready = |this: &mut Self| -> bool {
            // An error (the consumer closed, a corrupt position) is for
            // the next send to report: "ready".
            this.check_peer().is_err() || this.has_room(needed).unwrap_or(true)
        };
        if ready(self) {
            return Ok(Armed::Ready);
        }
        let word = &self.ring.header().consumer.peer_wait;
        let ticket = announce_sleep(word);
        if ready(self) {
            withdraw_sleep(word, ticket);
            return Ok(Armed::Ready);
        }
        LineCounters::bump(&self.ring.header().producer.counters.sleeps);
        Ok(Armed::Waiting(ticket))
    }

    /// The word a waiting producer sleeps on: [`Producer::arm`]'s ticket is
    /// a value of it.
    pub fn wait_word(&self) -> &'a AtomicU32 {
        &self.ring.header().consumer.peer_wait
    }

    /// Spins (unannounced) for room, as many rounds as the wait asks for.
    fn spin_for_room(&mut self, needed: u64) -> Result<bool, Error> {
        for _ in 0..self.wait.spin_rounds() {
            self.wait.pause();
            self.check_peer()?;
            if self.has_room(needed)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Starts a batch: messages sent or committed through it are published
    /// together, when it is published or dropped, by one Release store (the
    /// header of the first, written last).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    ///
    /// let mut batch = tx.batch();
    /// batch.try_send(b"one")?;
    /// batch.try_send(b"two")?;
    /// assert_eq!(rx.try_recv(&mut [0; 8]), Err(Error::Empty)); // not published yet
    /// assert_eq!(batch.publish(), 2);
    /// assert_eq!(&*rx.try_read()?, b"one");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn batch(&mut self) -> SendBatch<'_, 'a, W> {
        SendBatch {
            producer: self,
            staged: 0,
        }
    }

    /// The header word of a message of `len` bytes reserved at `write`
    /// (after `pad` bytes of padding: then the padding record's, and the
    /// message's own header is stored).
    #[inline(always)]
    fn record_word(&mut self, pad: u64, len: u64) -> u64 {
        if pad == 0 {
            // Below `limit`: in `write`'s lap.
            self.kind | len
        } else {
            self.store_padded(pad, len)
        }
    }

    /// Commits a message of `len` bytes reserved at `write` (after `pad`
    /// bytes of padding), taking `bytes` in all, and publishes it: the
    /// path of a message sent alone.
    #[inline(always)]
    fn commit_now(&mut self, pad: u64, len: u64, bytes: u64) {
        if self.write != self.published {
            // Staged messages of a batch that was leaked (`mem::forget`)
            // instead of ended: publish them first, in order.
            self.stage(pad, len, bytes);
            return self.publish();
        }
        let word = self.record_word(pad, len);
        self.advance(pad, bytes);
        self.publish_records(word);
    }

    /// Stages a message of `len` bytes reserved at `write` (after `pad`
    /// bytes of padding), taking `bytes` in all, for a batch. The first
    /// header after `published` is kept back in `first`: storing it
    /// publishes everything up to `write` at once.
    #[inline(always)]
    fn stage(&mut self, pad: u64, len: u64, bytes: u64) {
        let word = self.record_word(pad, len);
        if self.write == self.published {
            self.first = word;
        } else {
            let offset = self.write & self.ring.mask();
            self.ring
                .store_record(offset, (word >> 32) as u32, word & 0xffff_ffff);
        }
        self.advance(pad, bytes);
    }

    /// Stores the message header of a padded record (the message starts the
    /// next lap); returns the padding record's header word.
    #[inline(never)]
    fn store_padded(&mut self, pad: u64, len: u64) -> u64 {
        let start = self.write.wrapping_add(pad);
        let kind = self.ring.kind_at(KIND_MESSAGE, start);
        self.ring.store_record(start & self.ring.mask(), kind, len);
        ((self.ring.kind_at(KIND_PADDING, self.write) as u64) << 32) | pad
    }

    /// Moves `write` by `bytes`, past a committed record (and its padding).
    #[inline(always)]
    fn advance(&mut self, pad: u64, bytes: u64) {
        self.write = self.write.wrapping_add(bytes);
        self.messages = self.messages.wrapping_add(1);
        if pad != 0 {
            // Into the next lap: a new limit and kind.
            self.set_limit();
        }
    }

    /// Publishes every staged message, if any; wakes a sleeping consumer.
    #[inline(always)]
    fn publish(&mut self) {
        if self.write != self.published {
            self.publish_records(self.first);
        }
    }

    /// Publishes the records from `published` to `write`, the first of
    /// which has the header word `first`; wakes a sleeping consumer.
    #[inline(always)]
    fn publish_records(&mut self, first: u64) {
        let h = self.ring.header();
        let mask = self.ring.mask();
        // The word after the last record must read "nothing yet" when the
        // consumer gets there: 0, if the ring has room for it (else it is
        // the header at the consumer's position of one lap ago, whose lap
        // tag says the same; see `crate::layout`).
        if self.ring.capacity - self.write.wrapping_sub(self.cached_read) >= RECORD_HEADER {
            self.ring.store_record(self.write & mask, 0, 0);
        }
        self.ring.publish_record(self.published & mask, first);
        // Relaxed: statistics, on the line the position store below owns
        // anyway (before it: a reader that loads the position with Acquire
        // sees counts at least this high).
        h.producer.counters.messages.store(self.messages, Relaxed);
        // Release: for `Consumer::len` and the end of a closed ring, the
        // records are visible to a consumer that loads this position.
        h.producer.position.store(self.write, Release);
        self.published = self.write;
        if self.peer != PeerSleep::NeverSleeps {
            wake_sleeper(&self.wait, &h.producer.peer_wait, &h.producer.counters);
        }
    }

    /// Publishes what is committed and marks the role closed, waking a
    /// consumer that sleeps: the end of the producer, by `close` or `drop`.
    fn shut_down(&mut self) {
        self.publish();
        let h = self.ring.header();
        close_role(
            &self.wait,
            &h.identity.producer_state,
            &h.producer.peer_wait,
        );
    }

    /// Closes the producer side: the consumer reads what was sent, then
    /// [`Error::Disconnected`]. Dropping the producer does the same.
    pub fn close(self) {
        let mut this = ManuallyDrop::new(self);
        this.shut_down();
        // SAFETY: `this` is never used again and, in a `ManuallyDrop`, never
        // dropped, so `wait` is dropped exactly once, here; every other field
        // is `Copy` (a ring handle, positions, a corruption code).
        unsafe { core::ptr::drop_in_place(&mut this.wait) };
    }
}

impl<W: Wait> Drop for Producer<'_, W> {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Room reserved for one message: where its payload goes, how long it may
/// be, and the padding record before it (0 if none). Exists only inside a
/// grant, which holds its side's `&mut` borrow, so nothing else touches
/// these bytes while it lives.
pub(crate) struct Slot {
    ptr: NonNull<u8>,
    len: usize,
    pad: u64,
    /// Bytes the message takes if committed whole: padding and record (for a
    /// read, the record).
    needed: u64,
}

impl Slot {
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` lies inside the data area (checked at
        // reservation or read) and belongs to this side until its grant
        // ends (see the type's doc); the grant's borrow bounds the slice's.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` (through the grant's `&mut`)
        // makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// Room for one message, reserved by [`Producer::try_reserve`] (or
/// [`Producer::reserve`], [`Producer::reserve_timeout`]), to be written in
/// place. Dereferences to the reserved bytes (whose content is whatever the
/// ring held before).
///
/// [`WriteGrant::commit`] sends it; dropping it sends nothing.
#[must_use = "a write grant sends nothing unless committed"]
pub struct WriteGrant<'p, 'a, W: Wait> {
    pub(crate) slot: Slot,
    pub(crate) producer: &'p mut Producer<'a, W>,
}

impl<W: Wait> WriteGrant<'_, '_, W> {
    /// Commits the first `len` bytes as one message (`len` is clamped to the
    /// reserved length) and publishes it.
    #[inline]
    pub fn commit(self, len: usize) {
        let len = len.min(self.slot.len) as u64;
        let pad = self.slot.pad;
        self.producer.commit_now(pad, len, pad + record_size(len));
    }
}

/// Room for one message in a [`SendBatch`], from [`SendBatch::try_reserve`]:
/// like a [`WriteGrant`], but [`BatchWriteGrant::commit`] leaves the message
/// to be published with the rest of the batch.
#[must_use = "a write grant sends nothing unless committed"]
pub struct BatchWriteGrant<'p, 'a, W: Wait> {
    slot: Slot,
    producer: &'p mut Producer<'a, W>,
    /// The batch's count of staged messages.
    staged: &'p mut usize,
}

impl<W: Wait> BatchWriteGrant<'_, '_, W> {
    /// Commits the first `len` bytes as one message (`len` is clamped to the
    /// reserved length); the batch publishes it when it ends.
    pub fn commit(self, len: usize) {
        let len = len.min(self.slot.len) as u64;
        let pad = self.slot.pad;
        self.producer.stage(pad, len, pad + record_size(len));
        *self.staged += 1;
    }
}

/// The byte views and `Debug` of a grant type, all through its [`Slot`].
macro_rules! grant_views {
    ($grant:ident, mut) => {
        grant_views!($grant);
        impl<W: Wait> DerefMut for $grant<'_, '_, W> {
            fn deref_mut(&mut self) -> &mut [u8] {
                self.slot.bytes_mut()
            }
        }
    };
    ($grant:ident) => {
        impl<W: Wait> Deref for $grant<'_, '_, W> {
            type Target = [u8];
            fn deref(&self) -> &[u8] {
                self.slot.bytes()
            }
        }

        impl<W: Wait> fmt::Debug for $grant<'_, '_, W> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($grant))
                    .field("len", &self.slot.len)
                    .finish_non_exhaustive()
            }
        }
    };
}

grant_views!(WriteGrant, mut);
grant_views!(BatchWriteGrant, mut);

/// Messages sent through it are published together when it ends; see
/// [`Producer::batch`].
pub struct SendBatch<'p, 'a, W: Wait> {
    producer: &'p mut Producer<'a, W>,
    /// Messages staged so far.
    staged: usize,
}

impl<'a, W: Wait> SendBatch<'_, 'a, W> {
    /// Like [`Producer::try_reserve`]; the committed message waits for the
    /// batch.
    pub fn try_reserve(&mut self, len: usize) -> Result<BatchWriteGrant<'_, 'a, W>, Error> {
        let slot = self.producer.reserve_slot(len)?;
        Ok(BatchWriteGrant {
            slot,
            producer: self.producer,
            staged: &mut self.staged,
        })
    }

    /// Like [`Producer::try_send`]; the message waits for the batch.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let slot = self.producer.reserve_slot(msg.len())?;
        Producer::<W>::copy_in(&slot, msg);
        self.producer.stage(slot.pad, msg.len() as u64, slot.needed);
        self.staged += 1;
        Ok(())
    }

    /// Messages staged so far.
    pub fn len(&self) -> usize {
        self.staged
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.staged == 0
    }

    /// Publishes the staged messages (the first one's header, written last,
    /// with Release) and returns how many there were. Dropping the batch
    /// publishes them too.
    pub fn publish(self) -> usize {
        let mut this = ManuallyDrop::new(self);
        this.producer.publish();
        this.staged
    }
}

impl<W: Wait> Drop for SendBatch<'_, '_, W> {
    fn drop(&mut self) {
        self.producer.publish();
    }
}

impl<W: Wait> fmt::Debug for SendBatch<'_, '_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBatch")
            .field("staged", &self.staged)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Consumer

/// The reading side of a ring.
///
/// Dropping it closes the ring for reading: the producer's next send fails
/// with [`Error::Disconnected`].
pub struct Consumer<'a, W: Wait = Spin> {
    ring: Ring<'a>,
    wait: W,
    /// Consumed bytes (released or pending release).
    read: u64,
    /// Last value stored to the shared read position.
    released: u64,
    /// The upper half of the header of a message at `read`, in its lap:
    /// what the fast path of [`Consumer::next_message`] compares with.
    /// Recomputed by the slow path; `u64::MAX` (no header's upper half)
    /// once poisoned, so that every call takes the slow path.
    expect: u64,
    /// Whether the producer may sleep (see [`Producer`]'s field).
    peer: PeerSleep,
    /// The first corruption this side saw (see [`Producer`]'s field).
    poisoned: Option<Corruption>,
    /// Messages consumed: stored to this side's counters with each release.
    messages: u64,
    /// Inside a wait (or an arm) that already counted the empty ring: the
    /// slow path's "nothing yet" is not counted again for each re-check.
    waiting: bool,
}

// SAFETY: the consumer owns its role (claimed once); the ring handle is
// Send, and the wait implementation is Send by the bound.
unsafe impl<W: Wait + Send> Send for Consumer<'_, W> {}

impl<W: Wait> fmt::Debug for Consumer<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.ring)
            .field("read", &self.read)
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

impl<'a, W: Wait> Consumer<'a, W> {
    /// Data bytes in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The longest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.ring.max_message()
    }

    /// The wait implementation this side uses.
    pub fn waiter(&self) -> &W {
        &self.wait
    }

    /// What this side has done (see [`Counters`]), as its line of the
    /// header says.
    pub fn counters(&self) -> Counters {
        self.ring.counters(Role::Consumer)
    }

    /// Records a corruption (see the free [`poison`]); every later call
    /// fails with it (checked first thing in [`Consumer::next_message`]).
    #[cold]
    #[inline(never)]
    fn poison(&mut self, what: Corruption) -> Error {
        self.expect = u64::MAX;
        poison(&mut self.poisoned, what)
    }

    /// Finds the next message, skipping a padding record: `(start, len,
    /// record)` with `start == self.read` and `record` the bytes of its
    /// record. Consumes nothing but padding.
    ///
    /// The header at `read` says whether a record is there (see
    /// [`crate::layout`]): the common case, a message of this lap, is
    /// checked here; everything else in [`Consumer::next_message_slow`].
    #[inline(always)]
    fn next_message(&mut self) -> Result<(u64, u64, u64), Error> {
        let offset = self.read & self.ring.mask();
        // Read once (Acquire: the header publishes the record), then only
        // the local copy is used.
        let word = self.ring.load_record(offset);
        if word & !0xffff_ffff == self.expect {
            let len = word & 0xffff_ffff;
            let record = record_size(len);
            if len <= self.ring.max_message && offset + record <= self.ring.capacity {
                return Ok((self.read, len, record));
            }
            return Err(self.poison(Corruption::RecordLength));
        }
        self.next_message_slow(word)
    }

    /// [`Consumer::next_message`] for a header word that is not a message
    /// of this lap: padding (skipped), nothing yet ([`Error::Empty`], or
    /// [`Error::Disconnected`] once the producer closed), or corruption.
    ///
    /// Bounded: at most one padding record (padding must end at the data
    /// area's end, so the record after it starts at offset 0, where padding
    /// is refused) and one reload after seeing the producer closed.
    #[inline(never)]
    fn next_message_slow(&mut self, mut word: u64) -> Result<(u64, u64, u64), Error> {
        trusted(self.poisoned)?;
        let capacity = self.ring.capacity;
        let mask = self.ring.mask();
        let mut skipped_padding = false;
        let mut seen_closed = false;
        loop {
            // `read` may be in a new lap (after a record that ended at the
            // lap's end, or the padding below).
            self.expect = (self.ring.kind_at(KIND_MESSAGE, self.read) as u64) << 32;
            let offset = self.read & mask;
            let (kind, len) = ((word >> 32) as u32, word & 0xffff_ffff);
            let here = |base| self.ring.kind_at(base, self.read);
            let last_lap = |base| self.ring.kind_at(base, self.read.wrapping_sub(capacity));
            if kind == here(KIND_MESSAGE) {
                let record = record_size(len);
                if len > self.ring.max_message || offset + record > capacity {
                    return Err(self.poison(Corruption::RecordLength));
                }
                return Ok((self.read, len, record));
            } else if kind == here(KIND_PADDING) {
                let tail = capacity - offset;
                if skipped_padding || offset == 0 || len != tail {
                    return Err(self.poison(Corruption::Padding));
                }
                self.read = self.read.wrapping_add(tail);
                skipped_padding = true;
            } else if word == 0 || kind == last_lap(KIND_MESSAGE) || kind == last_lap(KIND_PADDING)
            {
                // Nothing yet.
                let id = &self.ring.header().identity;
                if self.peer == PeerSleep::Unknown {
                    self.peer = learn_peer_sleep(id, Role::Consumer, &self.wait);
                }
                // Acquire: a producer publishes before it closes; seeing
                // CLOSED we see its last header (so look once more).
                match id.producer_state.load(Acquire) {
                    STATE_IDLE | STATE_ACTIVE => {
                        if !self.waiting {
                            let counters = &self.ring.header().consumer.counters;
                            LineCounters::bump(&counters.stalls);
                        }
                        return Err(Error::Empty);
                    }
                    STATE_CLOSED if seen_closed => return self.end_of_messages(),
                    STATE_CLOSED => seen_closed = true,
                    _ => return Err(self.poison(Corruption::State)),
                }
            } else {
                return Err(self.poison(Corruption::RecordKind));
            }
            word = self.ring.load_record(self.read & mask);
        }
    }

    /// The producer closed and no record follows `read`: its last published
    /// position must be `read` (else the ring is corrupt), and then every
    /// message was read.
    #[cold]
    fn end_of_messages(&mut self) -> Result<(u64, u64, u64), Error> {
        // Acquire: ordered after the CLOSED state it followed (Release).
        let write = self.ring.header().producer.position.load(Acquire);
        if write != self.read {
            return Err(self.poison(Corruption::WritePosition));
        }
        Err(Error::Disconnected)
    }

    /// Finds the next message and returns its payload's place, or fails at
    /// once. Consumes nothing but padding.
    #[inline(always)]
    pub(crate) fn next_slot(&mut self) -> Result<Slot, Error> {
        let (start, len, record) = self.next_message()?;
        self.ring
            .header()
            .track((start & self.ring.mask()) + RECORD_HEADER, len, false);
        Ok(Slot {
            ptr: self.ring.payload(start, len),
            len: len as usize,
            pad: 0,
            needed: record,
        })
    }

    /// Hands out the next message in place, or fails at once with
    /// [`Error::Empty`] (nothing now) or [`Error::Disconnected`] (the
    /// producer closed and everything it sent has been read). Dropping the
    /// grant consumes the message and frees its room.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    /// assert_eq!(rx.try_read().err(), Some(Error::Empty));
    /// tx.try_send(b"ping")?;
    /// tx.close();
    /// assert_eq!(&*rx.try_read()?, b"ping");
    /// assert_eq!(rx.try_read().err(), Some(Error::Disconnected));
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_read(&mut self) -> Result<ReadGrant<'_, 'a, W>, Error> {
        let slot = self.next_slot()?;
        Ok(ReadGrant {
            slot,
            consumer: self,
        })
    }

    /// Waits as long as it takes for a message (or for the end of a closed
    /// producer's messages: [`Error::Disconnected`]) and hands it out like
    /// [`Consumer::try_read`].
    pub fn read(&mut self) -> Result<ReadGrant<'_, 'a, W>, Error> {
        self.wait_for_message(None)?;
        self.try_read()
    }

    /// Like [`Consumer::read`], but gives up with [`Error::TimedOut`] once
    /// `deadline` has passed. core has no clock: the deadline is the
    /// waiter's (rounds or ticks for [`Spin`], an instant for a futex gate).
    pub fn read_timeout(&mut self, deadline: W::Deadline) -> Result<ReadGrant<'_, 'a, W>, Error> {
        self.wait_for_message(Some(deadline))?;
        self.try_read()
    }

    /// Looks at the next message without consuming it, or fails at once
    /// like [`Consumer::try_read`]: the next read hands out the same message.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    /// tx.try_send(b"first")?;
    /// assert_eq!(rx.peek()?, b"first");
    /// assert_eq!(rx.peek()?, b"first");
    /// assert_eq!(&*rx.try_read()?, b"first");
    /// assert_eq!(rx.peek(), Err(Error::Empty));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn peek(&mut self) -> Result<&[u8], Error> {
        let slot = self.next_slot()?;
        // SAFETY: as in `Slot::bytes`: a checked, published payload inside
        // the data area, which the producer won't overwrite before this side
        // consumes and releases it — not before the `&mut self` borrow that
        // bounds the slice ends.
        Ok(unsafe { core::slice::from_raw_parts(slot.ptr.as_ptr(), slot.len) })
    }

    /// Copies the next message into `buf` and consumes it (without freeing
    /// its room yet): its length, or fails at once.
    #[inline(always)]
    fn take_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let (start, len, record) = self.next_message()?;
        if len > buf.len() as u64 {
            return Err(Error::BufferTooSmall {
                needed: len as usize,
                available: buf.len(),
            });
        }
        self.ring
            .header()
            .track((start & self.ring.mask()) + RECORD_HEADER, len, false);
        let src = self.ring.payload(start, len);
        // SAFETY: `src..src + len` is a checked, published record payload in
        // the data area that the producer won't touch until we release it;
        // `buf` is the caller's distinct memory and holds at least len bytes.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), buf.as_mut_ptr(), len as usize) };
        self.advance(record);
        Ok(len as usize)
    }

    /// Copies the next message into `buf` and returns its length, or fails
    /// at once with [`Error::Empty`], [`Error::Disconnected`] or
    /// [`Error::BufferTooSmall`] (the message stays in the ring).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    /// tx.try_send(b"hello")?;
    /// let mut buf = [0; 4];
    /// assert_eq!(rx.try_recv(&mut buf), Err(Error::BufferTooSmall { needed: 5, available: 4 }));
    /// let mut buf = [0; 16];
    /// let n = rx.try_recv(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let n = self.take_into(buf)?;
        self.release_consumed();
        Ok(n)
    }

    /// Waits as long as it takes for a message (see [`Consumer::read`]) and
    /// copies it like [`Consumer::try_recv`].
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.wait_for_message(None)?;
        self.try_recv(buf)
    }

    /// Like [`Consumer::recv`], but gives up with [`Error::TimedOut`] once
    /// `deadline` (the waiter's, see [`Consumer::read_timeout`]) has passed.
    pub fn recv_timeout(&mut self, buf: &mut [u8], deadline: W::Deadline) -> Result<usize, Error> {
        self.wait_for_message(Some(deadline))?;
        self.try_recv(buf)
    }

    /// Bytes of the ring the producer has published and this side has not
    /// consumed yet (headers and padding included), between 0 and
    /// [`Consumer::capacity`]. A position that makes no sense counts as a
    /// full ring; the next read reports it as [`Error::Corrupt`].
    pub fn len(&self) -> usize {
        if self.poisoned.is_some() {
            return self.ring.capacity();
        }
        // Relaxed: only a number is read, nothing is accessed through it.
        let write = self.ring.header().producer.position.load(Relaxed);
        window(write, self.read, self.ring.capacity).map_or(self.ring.capacity(), |n| n as usize)
    }

    /// Whether no message is waiting now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes free for the producer now: [`Consumer::capacity`] −
    /// [`Consumer::len`].
    pub fn free_bytes(&self) -> usize {
        self.capacity() - self.len()
    }

    /// Prepares to wait for a message outside the ring (on a readiness fd,
    /// in an event loop): announces this side on the producer's wait word,
    /// then re-checks, the way a blocking receive does before it sleeps.
    /// Returns [`Armed::Waiting`] with the value to wait on if there is
    /// still nothing, else [`Armed::Ready`] (the announcement withdrawn):
    /// a message, the producer's close, or a corrupt ring, which the next
    /// [`Consumer::try_read`] reports.
    ///
    /// A ticket from a wait that did not happen costs at most one needless
    /// [`Wait::wake`] call by the producer. Fails with
    /// [`Error::IncompatibleWait`] for a side whose wait does not
    /// [sleep](Wait::sleeps): its peer may skip looking at announcements.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Armed, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(64) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(64))?;
    /// let mut rx = ring.consumer(Spin::new())?;
    /// assert_eq!(rx.arm(), Err(Error::IncompatibleWait));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn arm(&mut self) -> Result<Armed, Error> {
        if !self.wait.sleeps() {
            return Err(Error::IncompatibleWait);
        }
        // Arming is not a receive: it counts a sleep, not an empty ring.
        self.waiting = true;
        let armed = self.arm_quietly();
        self.waiting = false;
        if let Ok(Armed::Waiting(_)) = armed {
            LineCounters::bump(&self.ring.header().consumer.counters.sleeps);
        }
        armed
    }

    /// [`Consumer::arm`] without the counting.
    fn arm_quietly(&mut self) -> Result<Armed, Error> {
        if !matches!(self.next_message(), Err(Error::Empty)) {
            return Ok(Armed::Ready);
        }
        let word = &self.ring.header().producer.peer_wait;
        let ticket = announce_sleep(word);
        if !matches!(self.next_message(), Err(Error::Empty)) {
            withdraw_sleep(word, ticket);
            return Ok(Armed::Ready);
        }
        Ok(Armed::Waiting(ticket))
    }

    /// The word a waiting consumer sleeps on: [`Consumer::arm`]'s ticket is
    /// a value of it.
    pub fn wait_word(&self) -> &'a AtomicU32 {
        &self.ring.header().producer.peer_wait
    }

    pub(crate) fn wait_for_message(&mut self, deadline: Option<W::Deadline>) -> Result<(), Error> {
        // The first look counts an empty ring; the re-checks of the wait
        // do not (see `waiting`).
        let first = self.next_message();
        if !matches!(first, Err(Error::Empty)) {
            return first.map(drop);
        }
        self.waiting = true;
        let waited = self.wait_while_empty(deadline);
        self.waiting = false;
        waited
    }

    /// [`Consumer::wait_for_message`] once the ring was found empty (so
    /// the first look is not repeated).
    fn wait_while_empty(&mut self, deadline: Option<W::Deadline>) -> Result<(), Error> {
        let counters = &self.ring.header().consumer.counters;
        // Counted once per wait.
        let mut slept = false;
        // Spin first, unannounced, but only before the first sleep: a sleep
        // that ends without a message (a time slice of the wait ran out)
        // goes straight back to sleep, so an idle side costs no CPU.
        let mut spin = true;
        loop {
            if core::mem::take(&mut spin) {
                for _ in 0..self.wait.spin_rounds() {
                    self.wait.pause();
                    match self.next_message() {
                        Err(Error::Empty) => {}
                        other => return other.map(drop),
                    }
                }
            }
            let word = &self.ring.header().producer.peer_wait;
            let waited = if self.wait.sleeps() {
                let ticket = announce_sleep(word);
                // Re-check after announcing: the producer may have published
                // (or closed) before it could see our announcement.
                match self.next_message() {
                    Err(Error::Empty) => {}
                    other => {
                        withdraw_sleep(word, ticket);
                        return other.map(drop);
                    }
                }
                if !core::mem::replace(&mut slept, true) {
                    LineCounters::bump(&counters.sleeps);
                }
                self.wait.wait(word, ticket, deadline)
            } else {
                // A spinner needs no announcement: it re-checks by itself,
                // never loading the word, which shares the producer's hot
                // line: a load per poll would pull it over once per message.
                self.wait.wait(word, 0, deadline)
            };
            match waited {
                // Woken (or a time slice ended): look again.
                Ok(()) => match self.next_message() {
                    Err(Error::Empty) => {}
                    other => return other.map(drop),
                },
                // The frontend saw the producer die: deliver what it
                // committed before reporting it.
                Err(Error::Disconnected) => {
                    return match self.next_message() {
                        Err(Error::Empty) => Err(Error::Disconnected),
                        other => other.map(drop),
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts a batch: messages read through it free their room together,
    /// with one Release store, when it is released or dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    /// for i in 0..3u8 {
    ///     tx.try_send(&[i])?;
    /// }
    /// let mut batch = rx.batch();
    /// let mut sum = 0;
    /// while let Ok(msg) = batch.try_read() {
    ///     sum += msg[0];
    /// }
    /// batch.release();
    /// assert_eq!(sum, 3);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn batch(&mut self) -> RecvBatch<'_, 'a, W> {
        RecvBatch { consumer: self }
    }

    /// Consumes the message at `read`, whose record is `record` bytes; its
    /// room is freed by the next [`Consumer::release`].
    #[inline(always)]
    fn advance(&mut self, record: u64) {
        self.read = self.read.wrapping_add(record);
        self.messages = self.messages.wrapping_add(1);
        if self.read & self.ring.mask() == 0 {
            // A new lap: the header here from the lap before (a record
            // already read) must not match `expect`.
            self.new_lap();
        }
    }

    /// `expect` for a `read` that just entered a new lap.
    #[inline(never)]
    fn new_lap(&mut self) {
        if self.poisoned.is_none() {
            self.expect = (self.ring.kind_at(KIND_MESSAGE, self.read) as u64) << 32;
        }
    }

    /// Frees every consumed record's room, if any; wakes a sleeping producer.
    #[inline(always)]
    fn release(&mut self) {
        if self.read != self.released {
            self.release_consumed();
        }
    }

    /// [`Consumer::release`], for a caller that just consumed a message.
    #[inline(always)]
    fn release_consumed(&mut self) {
        let h = self.ring.header();
        // Relaxed: statistics, on the line the position store owns anyway.
        h.consumer.counters.messages.store(self.messages, Relaxed);
        // Release: our reads of the records happen before a producer that
        // loads this position (Acquire) overwrites them.
        h.consumer.position.store(self.read, Release);
        self.released = self.read;
        if self.peer != PeerSleep::NeverSleeps {
            wake_sleeper(&self.wait, &h.consumer.peer_wait, &h.consumer.counters);
        }
    }

    /// Frees what was consumed and marks the role closed, waking a producer
    /// that sleeps: the end of the consumer, by `close` or `drop`.
    fn shut_down(&mut self) {
        self.release();
        let h = self.ring.header();
        close_role(
            &self.wait,
            &h.identity.consumer_state,
            &h.consumer.peer_wait,
        );
    }

    /// Closes the consumer side: the producer's next send fails with
    /// [`Error::Disconnected`]. Dropping the consumer does the same.
    pub fn close(self) {
        let mut this = ManuallyDrop::new(self);
        this.shut_down();
        // SAFETY: as in `Producer::close`: `this` is never used or dropped
        // again, `wait` is dropped once, here, and the rest is `Copy`.
        unsafe { core::ptr::drop_in_place(&mut this.wait) };
    }
}

impl<W: Wait> Drop for Consumer<'_, W> {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// One received message, in place, from [`Consumer::try_read`] (or
/// [`Consumer::read`], [`Consumer::read_timeout`]). Dereferences to its
/// bytes; releasing or dropping it consumes the message and frees its room.
#[must_use = "dropping a read grant at once consumes the message unread"]
pub struct ReadGrant<'c, 'a, W: Wait> {
    pub(crate) slot: Slot,
    pub(crate) consumer: &'c mut Consumer<'a, W>,
}

impl<W: Wait> ReadGrant<'_, '_, W> {
    /// Consumes the message and frees its room: what dropping the grant
    /// does, said out loud.
    pub fn release(self) {
        let mut this = ManuallyDrop::new(self);
        let record = this.slot.needed;
        this.consumer.advance(record);
        this.consumer.release_consumed();
    }
}

impl<W: Wait> Drop for ReadGrant<'_, '_, W> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.advance(self.slot.needed);
        self.consumer.release_consumed();
    }
}

/// One message read in a [`RecvBatch`], from [`RecvBatch::try_read`]: like a
/// [`ReadGrant`], but ending it only consumes the message; the batch frees
/// the room of all of them when it ends.
#[must_use = "dropping a read grant at once consumes the message unread"]
pub struct BatchReadGrant<'c, 'a, W: Wait> {
    slot: Slot,
    consumer: &'c mut Consumer<'a, W>,
}

impl<W: Wait> Drop for BatchReadGrant<'_, '_, W> {
    fn drop(&mut self) {
        self.consumer.advance(self.slot.needed);
    }
}

grant_views!(ReadGrant);
grant_views!(BatchReadGrant);

/// Messages read through it free their room together when it ends; see
/// [`Consumer::batch`].
pub struct RecvBatch<'c, 'a, W: Wait> {
    consumer: &'c mut Consumer<'a, W>,
}

impl<'a, W: Wait> RecvBatch<'_, 'a, W> {
    /// Like [`Consumer::try_read`]; the room is freed when the batch ends.
    pub fn try_read(&mut self) -> Result<BatchReadGrant<'_, 'a, W>, Error> {
        let slot = self.consumer.next_slot()?;
        Ok(BatchReadGrant {
            slot,
            consumer: self.consumer,
        })
    }

    /// Like [`Consumer::try_recv`]; the room is freed when the batch ends.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.consumer.take_into(buf)
    }

    /// Frees the room of every message read in the batch with one Release
    /// store. Dropping the batch does the same.
    pub fn release(self) {
        let mut this = ManuallyDrop::new(self);
        this.consumer.release();
    }
}

impl<W: Wait> Drop for RecvBatch<'_, '_, W> {
    fn drop(&mut self) {
        self.consumer.release();
    }
}

impl<W: Wait> fmt::Debug for RecvBatch<'_, '_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field(
                "pending",
                &self.consumer.read.wrapping_sub(self.consumer.released),
            )
            .finish()
    }
}
