//! # shmlane-posix
//!
//! Channels between processes on one Linux host over a [`shmlane_core`]
//! ring in shared memory: zero copy, blocking or busy-polling, and neither
//! side can hang or crash the other.
//!
//! - [`Segment`]: named (`shm_open`) and anonymous (`memfd`, sealed)
//!   shared-memory segments, fd passing over unix sockets, stale-segment
//!   reclamation.
//! - [`Gate`]: the futex implementation of the ring's wait trait, with
//!   dead-peer detection through open-file-description locks.
//! - [`Sender`] / [`Receiver`]: the channel, created or opened by name, or
//!   anonymous; blocking, non-blocking and timeout calls and zero-copy grants.
//!
//! ```
//! use shmlane_posix::{Options, Receiver, Sender};
//!
//! // Process A:
//! let mut tx = Sender::create("/lib-doc-quotes", &Options::new().capacity(1 << 16))?;
//! // Process B (here the same process, for the example):
//! let mut rx = Receiver::open("/lib-doc-quotes", &Options::new())?;
//!
//! tx.send(b"EURUSD 1.0842")?;
//! let msg = rx.read()?; // zero copy: a view into the shared ring
//! assert_eq!(&*msg, b"EURUSD 1.0842");
//! # Ok::<(), shmlane_posix::Error>(())
//! ```
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations, clippy::undocumented_unsafe_blocks)]

pub mod address;
#[cfg(feature = "tokio")]
pub mod async_channel;
pub mod channel;
pub mod dgram;
pub mod endpoint;
mod error;
pub mod fdpass;
pub mod fifo;
pub mod framed;
pub mod framing;
pub mod gate;
pub mod inspect;
mod lock;
pub mod mqueue;
pub mod names;
pub mod pipe;
mod ready;
pub mod rendezvous;
pub mod segment;
pub mod select;
#[cfg(feature = "serde")]
pub mod serde;
mod sigpipe;
pub mod stream;
pub mod tcp;
pub mod transport;
pub mod typed;
pub mod unix;
mod watch;

pub use channel::{
    BatchReadGrant, BatchWriteGrant, Options, ReadGrant, Receiver, RecvBatch, SendBatch, Sender,
    WriteGrant,
};
pub use error::{Error, Object, Result};
pub use framed::Framed;
pub use gate::{Gate, WaitMode};
pub use segment::Segment;
pub use select::Selector;
pub use shmlane_core::{Corruption, Counters, Role};
pub use stream::FramedListener;
pub use transport::{MessageReceiver, MessageSender, PeerCredentials};
pub use typed::{ValueReadGrant, ValueWriteGrant};
pub use unix::UnixOptions;

/// The README's examples, compiled (and, unless marked `no_run`, run) as
/// doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
