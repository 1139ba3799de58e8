//! Typed messages: values of plain-bytes types, copied or viewed in place.
//!
//! The same vocabulary as the byte API, with `_value` appended:
//!
//! | | copies | zero-copy grant |
//! |---|---|---|
//! | wait as long as it takes | [`send_value`](Producer::send_value) / [`recv_value`](Consumer::recv_value) | [`reserve_value`](Producer::reserve_value) / [`read_value`](Consumer::read_value) |
//! | never wait | [`try_send_value`](Producer::try_send_value) / [`try_recv_value`](Consumer::try_recv_value) | [`try_reserve_value`](Producer::try_reserve_value) / [`try_read_value`](Consumer::try_read_value) |
//! | wait at most | [`send_value_timeout`](Producer::send_value_timeout) / [`recv_value_timeout`](Consumer::recv_value_timeout) | [`reserve_value_timeout`](Producer::reserve_value_timeout) / [`read_value_timeout`](Consumer::read_value_timeout) |
//!
//! A value's message is its bytes, nothing else: `size_of::<T>()` bytes in
//! the type's in-memory layout (so both sides must agree on the type, its
//! `#[repr(C)]` layout and their byte order; see [`message_type_of`] for
//! how a ring records which type it carries).
//!
//! The types are those [`zerocopy`] can prove to be plain bytes: a sent
//! value is [`IntoBytes`] + [`Immutable`] (no padding, no interior
//! mutability), a received one [`FromBytes`] (every bit pattern is a value),
//! a view in place also [`KnownLayout`] + [`Immutable`] (and, to write it,
//! [`IntoBytes`]). Derive them with `zerocopy`'s `derive` feature (the
//! crate is re-exported as `shmlane_core::zerocopy`, but its derives name
//! `::zerocopy`, so depend on the same version of `zerocopy` yourself).
//!
//! **Alignment.** Every payload is aligned to [`PAYLOAD_ALIGN`] = 8 bytes
//! (see [`crate::layout`] for why 8 and not 64), so a type aligned to at
//! most 8 is viewed in place; one aligned to more is refused at compile time by
//! the in-place calls (copy it with [`Consumer::recv_value`], which needs
//! no alignment). The casts are zerocopy's checked ones: a message whose
//! length is not `size_of::<T>()` is [`Error::WrongSize`], a payload that
//! is not aligned for `T` (which a ring never makes) [`Error::Misaligned`];
//! both leave the message in the ring, where an untyped
//! [`Consumer::try_recv`] still takes it.
//!
//! **The hostile-peer rule.** The payload is in memory the peer can write
//! at any time, also while this side holds a view of it. So the typed API
//! hands out only references that stay valid whatever bytes the peer
//! writes: `T: FromBytes` means every bit pattern is a `T`, which is why
//! `bool`, `char`, enums, references and `NonZero*` (whose invalid bit
//! patterns would be undefined behaviour) are refused by the trait bounds,
//! at compile time. A valid `T` is not a trustworthy one: a hostile peer
//! may change its fields between two reads of them. Check invariants
//! (indices in range, lengths that add up) on a copy:
//! [`Consumer::recv_value`], or `*grant` for a `Copy` type, then use the
//! copy. A `&T` from [`Consumer::read_value`] is for a well-behaved peer
//! and for reads whose result is checked again where it is used.
//!
//! ```
//! use shmlane_core::{region_size, Config, Region, Ring, Spin};
//! use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//!
//! #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, Clone, Copy, PartialEq)]
//! #[repr(C)]
//! struct Tick {
//!     price: u64,
//!     qty: u32,
//!     venue: u32,
//! }
//!
//! let mut region = Region::<{ region_size(4096) }>::new();
//! let ring = Ring::create_in(region.as_mut_slice(), Config::new(4096))?;
//! let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
//!
//! // Copying:
//! tx.try_send_value(&Tick { price: 10_842, qty: 5, venue: 1 })?;
//! assert_eq!(rx.try_recv_value::<Tick>()?.price, 10_842);
//!
//! // In place: write the fields where the consumer reads them.
//! let mut grant = tx.try_reserve_value::<Tick>()?;
//! grant.price = 10_843;
//! grant.qty = 7;
//! grant.venue = 2;
//! grant.commit();
//! let tick = rx.try_read_value::<Tick>()?;
//! assert_eq!((tick.price, tick.qty), (10_843, 7));
//! # Ok::<(), shmlane_core::Error>(())
//! ```

use core::fmt;
use core::mem::{align_of, size_of};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use zerocopy::{ConvertError, FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::Error;
use crate::layout::PAYLOAD_ALIGN;
use crate::ring::{Consumer, Producer, ReadGrant, WriteGrant};
use crate::wait::Wait;

// ---------------------------------------------------------------------------
// Fingerprints

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`, continuing from `hash`.
const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// Folds the size and alignment into `hash`; never 0 (the untyped mark).
const fn finish(hash: u64, size: usize, align: usize) -> u64 {
    let hash = fnv1a(hash, &(size as u64).to_le_bytes());
    let hash = fnv1a(hash, &(align as u64).to_le_bytes());
    if hash == 0 { FNV_OFFSET } else { hash }
}

/// The fingerprint of the message type `T`, for
/// [`Config::message_type`](crate::Config::message_type) and
/// [`Ring::expect_message_type`](crate::Ring::expect_message_type): the
/// 64-bit FNV-1a hash of the bytes `"shmlane type\0"`, then
/// [`core::any::type_name::<T>()`](core::any::type_name), then
/// `size_of::<T>()` and `align_of::<T>()` as little-endian `u64`s; never 0
/// (a hash of 0 becomes the FNV offset basis).
///
/// `type_name` is not guaranteed to be stable: two programs built from the
/// same source by different compiler versions may name a type differently
/// (and two crates may name different types alike, which the size and
/// alignment only partly tell apart). For peers built separately, or not
/// in Rust, give the type a schema id with [`schema_id`] instead. Either is
/// a check against mistakes, not against a hostile peer, which can write
/// any fingerprint (and any bytes: see the module's hostile-peer rule).
///
/// # Examples
///
/// ```
/// use shmlane_core::message_type_of;
///
/// assert_eq!(message_type_of::<u64>(), message_type_of::<u64>());
/// assert_ne!(message_type_of::<u64>(), message_type_of::<i64>());
/// assert_ne!(message_type_of::<[u8; 4]>(), 0);
/// ```
pub fn message_type_of<T>() -> u64 {
    let hash = fnv1a(FNV_OFFSET, b"shmlane type\0");
    let hash = fnv1a(hash, core::any::type_name::<T>().as_bytes());
    finish(hash, size_of::<T>(), align_of::<T>())
}

/// The fingerprint of a message type named by a schema id of the user's
/// choosing, of `size` bytes aligned to `align`: stable across compilers,
/// programs and languages. The 64-bit FNV-1a hash of the bytes
/// `"shmlane schema\0"`, then `id`, `size` and `align` as little-endian
/// `u64`s; never 0. (The prefix differs from [`message_type_of`]'s, so a
/// schema id is never mistaken for a type name.)
///
/// # Examples
///
/// ```
/// use shmlane_core::schema_id;
///
/// const TICK_V1: u64 = schema_id(0x7469_636b_0001, 16, 8);
/// assert_ne!(TICK_V1, schema_id(0x7469_636b_0002, 16, 8)); // version 2 of the schema
/// assert_ne!(TICK_V1, schema_id(0x7469_636b_0001, 24, 8)); // another size
/// ```
pub const fn schema_id(id: u64, size: usize, align: usize) -> u64 {
    let hash = fnv1a(FNV_OFFSET, b"shmlane schema\0");
    let hash = fnv1a(hash, &id.to_le_bytes());
    finish(hash, size, align)
}

// ---------------------------------------------------------------------------
// Checked casts

/// Fails to compile for a `T` that a payload may not be aligned for.
const fn assert_payload_align<T>() {
    assert!(
        align_of::<T>() <= PAYLOAD_ALIGN,
        "shmlane: a value viewed in place must be aligned to at most 8 bytes (PAYLOAD_ALIGN)"
    );
}

/// The error for a `T` that `len` payload bytes at an address that is
/// `aligned` (or not) for it cannot hold: size first, then alignment.
fn cast_error<T>(len: usize, aligned: bool) -> Error {
    if len != size_of::<T>() {
        Error::WrongSize {
            expected: size_of::<T>(),
            found: len,
        }
    } else {
        debug_assert!(!aligned);
        Error::Misaligned {
            required: align_of::<T>(),
        }
    }
}

/// `bytes` as a `&T`, through zerocopy's checked cast.
pub(crate) fn view<T: FromBytes + KnownLayout + Immutable>(bytes: &[u8]) -> Result<&T, Error> {
    let len = bytes.len();
    T::ref_from_bytes(bytes).map_err(|e| match e {
        ConvertError::Alignment(_) => cast_error::<T>(len, false),
        ConvertError::Size(_) => cast_error::<T>(len, true),
    })
}

/// `bytes` as a `&mut T`, through zerocopy's checked cast.
pub(crate) fn view_mut<T: FromBytes + IntoBytes + KnownLayout>(
    bytes: &mut [u8],
) -> Result<&mut T, Error> {
    let len = bytes.len();
    T::mut_from_bytes(bytes).map_err(|e| match e {
        ConvertError::Alignment(_) => cast_error::<T>(len, false),
        ConvertError::Size(_) => cast_error::<T>(len, true),
    })
}

// ---------------------------------------------------------------------------
// Producer

impl<'a, W: Wait> Producer<'a, W> {
    /// Copies the bytes of `value` into the ring as one message and
    /// publishes it, or fails at once like [`Producer::try_send`] (then
    /// nothing was sent). `T` may be unsized (`[u32]`, say): the message is
    /// then `size_of_val(value)` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    /// tx.try_send_value(&[1u32, 2, 3])?;
    /// assert_eq!(rx.try_recv_value::<[u32; 3]>()?, [1, 2, 3]);
    /// # Ok::<(), shmlane_core::Error>(())
    /// ```
    #[inline]
    pub fn try_send_value<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), Error> {
        self.try_send(value.as_bytes())
    }

    /// Waits as long as it takes for room (see [`Producer::send`]), then
    /// sends `value` like [`Producer::try_send_value`].
    pub fn send_value<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), Error> {
        self.send(value.as_bytes())
    }

    /// Like [`Producer::send_value`], but gives up with [`Error::TimedOut`]
    /// once `deadline` (the waiter's) has passed; then nothing was sent.
    pub fn send_value_timeout<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
        deadline: W::Deadline,
    ) -> Result<(), Error> {
        self.send_timeout(value.as_bytes(), deadline)
    }

    /// Reserves room for a `T` and hands it out to be written in place, or
    /// fails at once like [`Producer::try_reserve`]`(size_of::<T>())`.
    /// [`ValueWriteGrant::commit`] publishes it; dropping the grant sends
    /// nothing (as a dropped [`WriteGrant`] does).
    ///
    /// The value starts as whatever bytes the ring held there (a `T` all
    /// the same, as `T: FromBytes`): write every field, or assign a whole
    /// value (`*grant = value`). `T` must be aligned to at most 8 bytes,
    /// which is checked at compile time:
    ///
    /// ```compile_fail,E0080
    /// use shmlane_core::{region_size, Config, Region, Ring, Spin};
    ///
    /// #[derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable)]
    /// #[repr(C, align(16))]
    /// struct Wide([u8; 16]);
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024)).unwrap();
    /// let mut tx = ring.producer(Spin::new()).unwrap();
    /// let _ = tx.try_reserve_value::<Wide>(); // error: aligned to more than 8
    /// ```
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
    /// let mut grant = tx.try_reserve_value::<[u64; 4]>()?;
    /// *grant = [1, 2, 3, 4];
    /// grant[3] = 40;
    /// grant.commit();
    /// assert_eq!(*rx.try_read_value::<[u64; 4]>()?, [1, 2, 3, 40]);
    ///
    /// drop(tx.try_reserve_value::<u64>()?); // abandoned: nothing sent
    /// assert_eq!(rx.try_recv_value::<u64>(), Err(Error::Empty));
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_reserve_value<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueWriteGrant<'_, 'a, T, W>, Error> {
        const { assert_payload_align::<T>() };
        let grant = self.try_reserve(size_of::<T>())?;
        ValueWriteGrant::new(grant)
    }

    /// Waits as long as it takes for room for a `T` (see
    /// [`Producer::reserve`]), then reserves it like
    /// [`Producer::try_reserve_value`].
    pub fn reserve_value<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueWriteGrant<'_, 'a, T, W>, Error> {
        const { assert_payload_align::<T>() };
        self.wait_for_room(size_of::<T>(), None)?;
        self.try_reserve_value()
    }

    /// Like [`Producer::reserve_value`], but gives up with
    /// [`Error::TimedOut`] once `deadline` (the waiter's) has passed.
    pub fn reserve_value_timeout<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
        deadline: W::Deadline,
    ) -> Result<ValueWriteGrant<'_, 'a, T, W>, Error> {
        const { assert_payload_align::<T>() };
        self.wait_for_room(size_of::<T>(), Some(deadline))?;
        self.try_reserve_value()
    }
}

/// Room for one `T`, reserved by [`Producer::try_reserve_value`] (or
/// [`Producer::reserve_value`], [`Producer::reserve_value_timeout`]), to be
/// written in place: dereferences to the `T` in the ring, aligned to
/// `align_of::<T>()` (at most 8).
///
/// [`ValueWriteGrant::commit`] sends it; dropping it sends nothing, like a
/// dropped [`WriteGrant`]. Until the commit the consumer cannot see these
/// bytes, so only this side writes them.
#[must_use = "a write grant sends nothing unless committed"]
pub struct ValueWriteGrant<'p, 'a, T, W: Wait> {
    grant: WriteGrant<'p, 'a, W>,
    /// The reserved bytes as a `T`, from zerocopy's checked cast of the
    /// grant's bytes; valid while the grant lives.
    value: NonNull<T>,
}

impl<'p, 'a, T: FromBytes + IntoBytes + KnownLayout, W: Wait> ValueWriteGrant<'p, 'a, T, W> {
    /// Wraps a grant of `size_of::<T>()` bytes, checking (through
    /// zerocopy) that they can hold a `T`; if not, the grant is dropped,
    /// which sends nothing.
    fn new(mut grant: WriteGrant<'p, 'a, W>) -> Result<Self, Error> {
        let value = NonNull::from(view_mut::<T>(&mut grant)?);
        Ok(ValueWriteGrant { grant, value })
    }
}

impl<T, W: Wait> ValueWriteGrant<'_, '_, T, W> {
    /// Publishes the value as one message of `size_of::<T>()` bytes.
    #[inline]
    pub fn commit(self) {
        self.grant.commit(size_of::<T>());
    }
}

impl<T, W: Wait> Deref for ValueWriteGrant<'_, '_, T, W> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `value` is zerocopy's checked cast of the grant's bytes
        // (size and alignment checked, any bits a `T`: `T: FromBytes`),
        // which stay reserved for this grant, unseen by the consumer, while
        // it lives; the grant's borrow bounds the reference's.
        unsafe { self.value.as_ref() }
    }
}

impl<T, W: Wait> DerefMut for ValueWriteGrant<'_, '_, T, W> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only view (the
        // grant never hands out its bytes otherwise), and whatever is
        // written is a valid `T`'s bytes to the consumer (`T: IntoBytes`).
        unsafe { self.value.as_mut() }
    }
}

impl<T: fmt::Debug, W: Wait> fmt::Debug for ValueWriteGrant<'_, '_, T, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueWriteGrant").field(&**self).finish()
    }
}

// ---------------------------------------------------------------------------
// Consumer

impl<'a, W: Wait> Consumer<'a, W> {
    /// Copies the next message out as a `T` and consumes it, or fails at
    /// once: [`Error::Empty`], [`Error::Disconnected`] as
    /// [`Consumer::try_recv`] does, and [`Error::WrongSize`] for a message
    /// that is not `size_of::<T>()` bytes, which stays in the ring. Needs
    /// no alignment: any `T: FromBytes` is copied out.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Error, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    /// tx.try_send(b"abc")?;
    /// assert_eq!(rx.try_recv_value::<u32>(), Err(Error::WrongSize { expected: 4, found: 3 }));
    /// assert_eq!(rx.try_recv(&mut [0; 8])?, 3); // still there, untyped
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn try_recv_value<T: FromBytes>(&mut self) -> Result<T, Error> {
        let slot = self.next_slot()?;
        let bytes = slot.bytes();
        let Ok(value) = T::read_from_bytes(bytes) else {
            // Only the size can be wrong; the slot consumed nothing.
            return Err(cast_error::<T>(bytes.len(), true));
        };
        // Consumes the message and frees its room.
        drop(ReadGrant {
            slot,
            consumer: self,
        });
        Ok(value)
    }

    /// Waits as long as it takes for a message (see [`Consumer::recv`]) and
    /// copies it out like [`Consumer::try_recv_value`].
    pub fn recv_value<T: FromBytes>(&mut self) -> Result<T, Error> {
        self.wait_for_message(None)?;
        self.try_recv_value()
    }

    /// Like [`Consumer::recv_value`], but gives up with [`Error::TimedOut`]
    /// once `deadline` (the waiter's) has passed.
    pub fn recv_value_timeout<T: FromBytes>(&mut self, deadline: W::Deadline) -> Result<T, Error> {
        self.wait_for_message(Some(deadline))?;
        self.try_recv_value()
    }

    /// Hands out the next message in place as a `&T`, or fails at once:
    /// [`Error::Empty`], [`Error::Disconnected`] as [`Consumer::try_read`]
    /// does, [`Error::WrongSize`] for a message that is not
    /// `size_of::<T>()` bytes and [`Error::Misaligned`] for a payload not
    /// aligned for `T` (which a ring never makes: payloads are aligned to
    /// 8, and `T` to at most 8, checked at compile time); on an error the
    /// message stays in the ring. Dropping the grant consumes the message.
    ///
    /// Mind the module's hostile-peer rule: the `&T` is always a valid `T`,
    /// but a hostile peer may change it while it is held. A type with
    /// invalid bit patterns is refused at compile time:
    ///
    /// ```compile_fail,E0277
    /// # use shmlane_core::{region_size, Config, Region, Ring, Spin};
    /// # let mut region = Region::<{ region_size(1024) }>::new();
    /// # let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024)).unwrap();
    /// # let mut rx = ring.consumer(Spin::new()).unwrap();
    /// let flag = rx.try_read_value::<bool>(); // error: `bool` is not `FromBytes`
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_core::{region_size, Config, Region, Ring, Spin};
    ///
    /// let mut region = Region::<{ region_size(1024) }>::new();
    /// let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024))?;
    /// let (mut tx, mut rx) = (ring.producer(Spin::new())?, ring.consumer(Spin::new())?);
    /// tx.try_send_value(&0x1122_3344_5566_7788u64)?;
    /// let value = rx.try_read_value::<u64>()?;
    /// assert_eq!(*value, 0x1122_3344_5566_7788);
    /// assert_eq!(&*value as *const u64 as usize % 8, 0); // in place, aligned
    /// value.release();
    /// # Ok::<(), shmlane_core::Error>(())
    /// ```
    #[inline]
    pub fn try_read_value<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueReadGrant<'_, 'a, T, W>, Error> {
        const { assert_payload_align::<T>() };
        let slot = self.next_slot()?;
        // On an error the slot is dropped unconsumed: the message stays.
        let value = NonNull::from(view::<T>(slot.bytes())?);
        Ok(ValueReadGrant {
            grant: ReadGrant {
                slot,
                consumer: self,
            },
            value,
        })
    }

    /// Waits as long as it takes for a message (see [`Consumer::read`]) and
    /// hands it out like [`Consumer::try_read_value`].
    pub fn read_value<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueReadGrant<'_, 'a, T, W>, Error> {
        const { assert_payload_align::<T>() };
        self.wait_for_message(None)?;
        self.try_read_value()
    }

    /// Like [`Consumer::read_value`], but gives up with [`Error::TimedOut`]
    /// once `deadline` (the waiter's) has passed.
    pub fn read_value_timeout<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
        deadline: W::Deadline,
    ) -> Result<ValueReadGrant<'_, 'a, T, W>, Error> {
        const { assert_payload_align::<T>() };
        self.wait_for_message(Some(deadline))?;
        self.try_read_value()
    }
}

/// One received message in place as a `T`, from
/// [`Consumer::try_read_value`] (or [`Consumer::read_value`],
/// [`Consumer::read_value_timeout`]): dereferences to the `T` in the ring,
/// aligned to `align_of::<T>()` (at most 8). Releasing or dropping it
/// consumes the message and frees its room, like a [`ReadGrant`].
///
/// The `&T` is valid for as long as the grant lives whatever the peer
/// writes (`T: FromBytes`), but a hostile peer may change its value
/// meanwhile: copy it (`*grant`, or [`Consumer::recv_value`]) before
/// checking invariants you then rely on.
#[must_use = "dropping a read grant at once consumes the message unread"]
pub struct ValueReadGrant<'c, 'a, T, W: Wait> {
    grant: ReadGrant<'c, 'a, W>,
    /// The message's bytes as a `T`, from zerocopy's checked cast; valid
    /// while the grant lives.
    value: NonNull<T>,
}

impl<T, W: Wait> ValueReadGrant<'_, '_, T, W> {
    /// Consumes the message and frees its room: what dropping the grant
    /// does, said out loud.
    pub fn release(self) {
        self.grant.release();
    }
}

impl<T, W: Wait> Deref for ValueReadGrant<'_, '_, T, W> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `value` is zerocopy's checked cast of the message's bytes
        // (size and alignment checked; `T: FromBytes + Immutable`, so any
        // bits the peer writes are a `T` and no interior mutability hides in
        // it). The producer does not reuse these bytes before this grant
        // releases them (it holds the consumer's `&mut` borrow), and the
        // grant's borrow bounds the reference's.
        unsafe { self.value.as_ref() }
    }
}

impl<T: fmt::Debug, W: Wait> fmt::Debug for ValueReadGrant<'_, '_, T, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueReadGrant").field(&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misaligned_payload_is_a_typed_error() {
        #[repr(C, align(8))]
        struct Buf([u8; 24]);
        let mut buf = Buf([7; 24]);
        // Offset 4 of an 8-aligned buffer: 4-aligned, not 8-aligned.
        assert_eq!(
            view::<u64>(&buf.0[4..12]).copied(),
            Err(Error::Misaligned { required: 8 })
        );
        assert_eq!(
            view_mut::<u64>(&mut buf.0[4..12]).copied(),
            Err(Error::Misaligned { required: 8 })
        );
        // A wrong size is reported as such, aligned or not.
        assert_eq!(
            view::<u64>(&buf.0[4..16]).copied(),
            Err(Error::WrongSize {
                expected: 8,
                found: 12
            })
        );
        assert_eq!(
            view::<u64>(&buf.0[8..12]).copied(),
            Err(Error::WrongSize {
                expected: 8,
                found: 4
            })
        );
        assert_eq!(
            view::<u64>(&buf.0[8..16]).copied(),
            Ok(0x0707_0707_0707_0707)
        );
    }

    #[test]
    fn fingerprints_are_never_zero_and_tell_types_apart() {
        let all = [
            message_type_of::<u64>(),
            message_type_of::<i64>(),
            message_type_of::<[u8; 8]>(),
            message_type_of::<[u32; 2]>(),
            message_type_of::<()>(),
            schema_id(0, 0, 1),
            schema_id(1, 8, 8),
            schema_id(1, 8, 4),
            schema_id(2, 8, 8),
        ];
        for (i, a) in all.iter().enumerate() {
            assert_ne!(*a, 0);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Pinned: the hash is an ABI between separately built programs.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(schema_id(1, 8, 8), schema_id(1, 8, 8));
    }
}
