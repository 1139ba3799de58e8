//! # shmlane-core
//!
//! A lock-free single-producer/single-consumer ring of variable-length
//! messages, laid out in a memory region the caller provides (a shared
//! mapping between two processes, a `static` on bare metal, a buffer in a
//! test). Messages are written and read in place through grants (zero
//! copy), or copied; batches publish or free many messages with one atomic
//! store. A blocking gate lets an idle side sleep without costing the busy
//! side a system call.
//!
//! One vocabulary, here and in `shmlane-posix`:
//!
//! | | copies | zero-copy grant |
//! |---|---|---|
//! | wait as long as it takes | [`send`](Producer::send) / [`recv`](Consumer::recv) | [`reserve`](Producer::reserve) / [`read`](Consumer::read) |
//! | never wait | [`try_send`](Producer::try_send) / [`try_recv`](Consumer::try_recv) | [`try_reserve`](Producer::try_reserve) / [`try_read`](Consumer::try_read) |
//! | wait at most | [`send_timeout`](Producer::send_timeout) / [`recv_timeout`](Consumer::recv_timeout) | [`reserve_timeout`](Producer::reserve_timeout) / [`read_timeout`](Consumer::read_timeout) |
//!
//! Values of plain-bytes types go the same ways, copied or in place, with
//! `_value` appended (`send_value`, `read_value`, …): see [`typed`] for
//! the API, the alignment it guarantees (8 bytes) and the rule a `&T` into
//! memory a hostile peer can write follows. A ring may record the type of
//! its messages ([`Config::message_type`]), and an opener that expects
//! another gets [`Error::TypeMismatch`] ([`Ring::expect_message_type`]).
//!
//! core has no clock, so its `_timeout` methods take the [`Wait`]'s
//! deadline (rounds or ticks of [`Spin`]; shmlane-posix's take a
//! `Duration`). [`Consumer::peek`] looks without consuming; `len`,
//! `is_empty` and `free_bytes` tell how full the ring is.
//!
//! `#![no_std]`, no allocation, no system calls: the OS-facing parts (shared
//! memory segments, the futex gate, dead-peer detection) live in
//! `shmlane-posix`.
//!
//! The peer is not trusted: every value read from the region is read once
//! and checked, and a bad one is [`Error::Corrupt`], never a panic, an
//! out-of-bounds access or an endless loop.
//!
//! ```
//! use shmlane_core::{region_size, Config, Region, Ring, Spin};
//!
//! let mut region = Region::<{ region_size(4096) }>::new();
//! let ring = Ring::create_in(region.as_mut_slice(), Config::new(4096))?;
//! let mut tx = ring.producer(Spin::new())?;
//! let mut rx = ring.consumer(Spin::new())?;
//!
//! std::thread::scope(|s| {
//!     s.spawn(move || {
//!         for i in 0..1000u32 {
//!             // Zero-copy: write the message where the consumer will read it.
//!             let mut grant = tx.reserve(4).unwrap();
//!             grant.copy_from_slice(&i.to_le_bytes());
//!             grant.commit(4);
//!         }
//!         // Dropping `tx` closes the ring for writing.
//!     });
//!     let mut expected = 0u32;
//!     while let Ok(msg) = rx.read() {
//!         assert_eq!(u32::from_le_bytes(msg[..].try_into().unwrap()), expected);
//!         expected += 1;
//!     }
//!     assert_eq!(expected, 1000); // then `Disconnected`
//! });
//! # Ok::<(), shmlane_core::Error>(())
//! ```
//!
//! The shared layout is documented, and pinned with `static_assertions`, in
//! the [`layout`] module.

#![no_std]
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations, clippy::undocumented_unsafe_blocks)]

#[cfg(any(test, loom))]
extern crate std;

mod error;
pub mod layout;
mod ring;
pub mod stats;
mod sync;
pub mod typed;
mod wait;

pub use error::{Corruption, Error, Role};
pub use layout::{
    HEADER_SIZE, MAX_CAPACITY, MAX_MESSAGE, MIN_CAPACITY, PAYLOAD_ALIGN, REGION_ALIGN, Region,
    max_message_limit, region_size,
};
pub use ring::{
    Armed, BatchReadGrant, BatchWriteGrant, Config, Consumer, Producer, ReadGrant, RecvBatch, Ring,
    RoleState, SendBatch, WriteGrant,
};
#[cfg(not(loom))]
pub use stats::Snapshot;
pub use stats::{Counters, Side};
pub use sync::AtomicU32;
pub use typed::{ValueReadGrant, ValueWriteGrant, message_type_of, schema_id};
pub use wait::{Spin, Wait};
/// The crate the typed API's traits come from ([`typed`]): derive them with
/// `zerocopy`'s `derive` feature, in a dependency on the same version.
pub use zerocopy;

#[cfg(test)]
mod tests;
