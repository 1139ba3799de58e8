//! Typed messages over a channel: [`Sender`] and [`Receiver`] forward
//! shmlane-core's typed API (see [`shmlane_core::typed`] for the types it
//! takes, the 8-byte alignment of every payload and the hostile-peer rule),
//! with this crate's blocking, non-blocking and timeout calls, dead-peer
//! detection and errors.
//!
//! A channel may be created typed ([`Options::typed`](crate::Options::typed)
//! or [`Options::message_type`](crate::Options::message_type)): its header
//! then records the fingerprint of the message type, and an opener that
//! expects another type (or a typed opener of an untyped channel) gets
//! [`Error::TypeMismatch`] at open. An untyped opener opens any channel.
//!
//! ```
//! use shmlane_posix::{Error, Options, Receiver, Sender};
//! use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//!
//! #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct Quote {
//!     bid: u64,
//!     ask: u64,
//! }
//!
//! let options = Options::new().typed::<Quote>();
//! let mut tx = Sender::create("/doc-typed-quotes", &options)?;
//! // Another program, built for another type, is refused at open:
//! assert!(matches!(
//!     Receiver::open("/doc-typed-quotes", &Options::new().typed::<u64>()),
//!     Err(Error::TypeMismatch { .. })
//! ));
//! let mut rx = Receiver::open("/doc-typed-quotes", &options)?; // usually another process
//!
//! let mut quote = tx.reserve_value::<Quote>()?; // in place, in shared memory
//! quote.bid = 10_841;
//! quote.ask = 10_843;
//! quote.commit();
//! let quote = rx.read_value::<Quote>()?; // a `&Quote` into the ring, no copy
//! assert_eq!((quote.bid, quote.ask), (10_841, 10_843));
//! quote.release();
//!
//! tx.send_value(&Quote { bid: 1, ask: 2 })?;
//! assert_eq!(rx.recv_value::<Quote>()?, Quote { bid: 1, ask: 2 });
//! # Ok::<(), Error>(())
//! ```

use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[cfg(doc)]
use crate::Error;
use crate::channel::deadline;
use crate::gate::Gate;
use crate::{Receiver, Result, Sender};

/// A value reserved in place by a [`Sender`]: write it, then
/// [`commit`](shmlane_core::ValueWriteGrant::commit) it; dropping it sends
/// nothing.
pub type ValueWriteGrant<'s, T> = shmlane_core::ValueWriteGrant<'s, 'static, T, Gate>;
/// A value received in place by a [`Receiver`]: dereferences to the `T` in
/// the ring; dropping it consumes the message.
pub type ValueReadGrant<'r, T> = shmlane_core::ValueReadGrant<'r, 'static, T, Gate>;

impl Sender {
    /// Sends the bytes of `value` as one message, waiting for room as long
    /// as it takes; see [`Sender::send`].
    pub fn send_value<T: IntoBytes + Immutable + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.send(value.as_bytes())
    }

    /// Sends the bytes of `value` if there is room now; see
    /// [`Sender::try_send`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Sender};
    ///
    /// let mut tx = Sender::create("/doc-try-send-value", &Options::new().capacity(64))?;
    /// tx.try_send_value(&[7u64; 3])?;
    /// tx.try_send_value(&[8u64; 3])?;
    /// assert!(matches!(tx.try_send_value(&[9u64; 3]), Err(Error::Full)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_send_value<T: IntoBytes + Immutable + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.try_send(value.as_bytes())
    }

    /// Sends the bytes of `value`, waiting for room at most `timeout`; see
    /// [`Sender::send_timeout`].
    pub fn send_value_timeout<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        self.send_timeout(value.as_bytes(), timeout)
    }

    /// Reserves room for a `T` in place, waiting as long as it takes (see
    /// [`Sender::reserve`] and [`shmlane_core::Producer::try_reserve_value`]:
    /// the value starts as whatever bytes were there).
    pub fn reserve_value<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueWriteGrant<'_, T>> {
        Ok(self.producer.reserve_value()?)
    }

    /// Reserves room for a `T` in place if there is room now
    /// ([`Error::Full`] otherwise); see [`Sender::reserve_value`].
    pub fn try_reserve_value<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueWriteGrant<'_, T>> {
        Ok(self.producer.try_reserve_value()?)
    }

    /// Reserves room for a `T` in place, waiting at most `timeout`; see
    /// [`Sender::reserve_value`].
    pub fn reserve_value_timeout<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
        timeout: Duration,
    ) -> Result<ValueWriteGrant<'_, T>> {
        match deadline(timeout) {
            Some(at) => Ok(self.producer.reserve_value_timeout(at)?),
            None => self.reserve_value(),
        }
    }
}

impl Receiver {
    /// Copies the next message out as a `T`, waiting as long as it takes.
    /// A message that is not `size_of::<T>()` bytes is
    /// [`Error::WrongSize`] and stays queued (an untyped
    /// [`Receiver::recv`] takes it).
    pub fn recv_value<T: FromBytes>(&mut self) -> Result<T> {
        Ok(self.consumer.recv_value()?)
    }

    /// Copies the next message out as a `T` if there is one now; see
    /// [`Receiver::recv_value`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::{Error, Options, Receiver, Sender};
    ///
    /// let mut rx = Receiver::create("/doc-try-recv-value", &Options::new())?;
    /// let mut tx = Sender::open("/doc-try-recv-value", &Options::new())?;
    /// assert!(matches!(rx.try_recv_value::<u32>(), Err(Error::Empty)));
    /// tx.send(b"abc")?;
    /// assert!(matches!(
    ///     rx.try_recv_value::<u32>(),
    ///     Err(Error::WrongSize { expected: 4, found: 3 })
    /// ));
    /// assert_eq!(rx.try_recv_vec()?, b"abc"); // still queued
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_recv_value<T: FromBytes>(&mut self) -> Result<T> {
        self.consumer
            .try_recv_value()
            .map_err(|e| self.empty_or_gone(e))
    }

    /// Copies the next message out as a `T`, waiting at most `timeout`; see
    /// [`Receiver::recv_value`].
    pub fn recv_value_timeout<T: FromBytes>(&mut self, timeout: Duration) -> Result<T> {
        match deadline(timeout) {
            Some(at) => Ok(self.consumer.recv_value_timeout(at)?),
            None => self.recv_value(),
        }
    }

    /// Hands out the next message in place as a `&T`, waiting as long as it
    /// takes; dropping the grant consumes it. [`Error::WrongSize`] leaves
    /// the message queued. Mind the hostile-peer rule of
    /// [`shmlane_core::typed`]: copy the value before relying on checks of it.
    pub fn read_value<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueReadGrant<'_, T>> {
        Ok(self.consumer.read_value()?)
    }

    /// Hands out the next message in place as a `&T` if there is one now;
    /// see [`Receiver::read_value`].
    pub fn try_read_value<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ValueReadGrant<'_, T>> {
        if self.consumer.waiter().peer_died_rate_limited() {
            // Drain first, as `try_read` does.
            return Ok(self.consumer.read_value()?);
        }
        Ok(self.consumer.try_read_value()?)
    }

    /// Hands out the next message in place as a `&T`, waiting at most
    /// `timeout`; see [`Receiver::read_value`].
    pub fn read_value_timeout<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
        timeout: Duration,
    ) -> Result<ValueReadGrant<'_, T>> {
        match deadline(timeout) {
            Some(at) => Ok(self.consumer.read_value_timeout(at)?),
            None => self.read_value(),
        }
    }
}
