//! Messages of any `serde` type over any transport (the `serde` feature):
//! values encoded with [`postcard`], a compact, stable, `no_std`-friendly
//! binary format with a written specification.
//!
//! [`SerdeSender`] and [`SerdeReceiver`] are implemented for every
//! [`MessageSender`] and [`MessageReceiver`]: the shared-memory channel,
//! [`Framed`](crate::Framed) pipes and sockets, datagrams and message
//! queues alike. Where the typed zero-copy API ([`crate::typed`]) takes
//! only plain-bytes types, this one takes strings, vectors, enums, maps —
//! at the cost of an encode and a decode (and a copy) per message.
//!
//! **Bounds.** An encoded value is one message, so it is at most the
//! transport's [`max_message`](MessageSender::max_message) bytes: a longer
//! one is [`Error::TooLarge`] and nothing is sent. A receive reads into a
//! buffer of at most the receiver's `max_message` bytes (4 KiB at first,
//! then the message's size), which is the decode bound: postcard decodes
//! from those bytes only, and a length prefix that
//! claims more than the message holds fails instead of allocating for it
//! (serde's own collections also cap what they reserve up front). A message
//! that does not decode as the type, or has bytes left over, is
//! [`Error::Decode`], which carries the message's bytes; nothing panics.
//! (One thing the byte bound does not bound: a sequence of zero-sized
//! values, `Vec<()>`, may claim 2^64 elements that take no bytes; don't
//! receive such types from a peer you don't trust.)
//!
//! The peer is not trusted by the decoder, but what decodes is whatever
//! the peer chose to send: check the value's invariants as for any input.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use shmlane_posix::serde::{SerdeReceiver, SerdeSender};
//! use shmlane_posix::{Error, Framed, MessageSender, Options, Receiver, Sender};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! enum Command {
//!     Quote { symbol: String, levels: Vec<(u64, u32)> },
//!     Stop,
//! }
//!
//! // Over shared memory…
//! let mut tx = Sender::create("/doc-serde", &Options::new())?;
//! let mut rx = Receiver::open("/doc-serde", &Options::new())?;
//! let quote = Command::Quote { symbol: "EURUSD".into(), levels: vec![(10_842, 5)] };
//! tx.send_serde(&quote)?;
//! assert_eq!(rx.recv_serde::<Command>()?, quote);
//!
//! // …or any other transport.
//! let (mut tx, mut rx) = Framed::pipe(256)?;
//! tx.send_serde(&Command::Stop)?;
//! assert_eq!(rx.recv_serde::<Command>()?, Command::Stop);
//! tx.send(b"\xff\xff")?; // not a Command
//! assert!(matches!(rx.try_recv_serde::<Command>(), Err(Error::Decode { .. })));
//! # Ok::<(), Error>(())
//! ```

use std::time::Duration;

use ::serde::Serialize;
use ::serde::de::DeserializeOwned;

use crate::{Error, MessageReceiver, MessageSender, Result};

/// Encodes `value` into at most `max` bytes.
fn encode<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>> {
    let len = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(encode_error)?;
    if len > max {
        return Err(Error::TooLarge { len, max });
    }
    let mut buf = vec![0; len];
    let used = postcard::to_slice(value, &mut buf)
        .map_err(encode_error)?
        .len();
    // A `Serialize` that writes less the second time (it may: it is the
    // caller's code) sends what it wrote.
    buf.truncate(used);
    Ok(buf)
}

fn encode_error(e: postcard::Error) -> Error {
    Error::Encode {
        reason: e.to_string(),
    }
}

/// Decodes all of `message` as a `T`.
fn decode<T: DeserializeOwned>(message: &[u8]) -> Result<T> {
    let failed = |reason: String| Error::Decode {
        reason,
        message: message.to_vec(),
    };
    match postcard::take_from_bytes::<T>(message) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(failed(format!(
            "{} bytes left over after the value",
            rest.len()
        ))),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Bytes a receive starts with: a longer message (up to the receiver's
/// `max_message`) gets a buffer of its size on a second try.
const FIRST_BUFFER: usize = 4096;

/// Receives one message with `first` (a `recv` of `rx`) into a buffer that
/// grows, up to `rx.max_message()` bytes, to the message's size.
fn receive<R: MessageReceiver + ?Sized>(
    rx: &mut R,
    first: impl FnOnce(&mut R, &mut [u8]) -> Result<usize>,
) -> Result<Vec<u8>> {
    let max = rx.max_message();
    let mut buf = vec![0; max.min(FIRST_BUFFER)];
    let n = match first(rx, &mut buf) {
        Ok(n) => n,
        // The message stays queued (the trait's contract): take it now, in
        // a buffer of its size, without waiting.
        Err(Error::BufferTooSmall { needed, .. }) if needed <= max => {
            buf.resize(needed, 0);
            rx.try_recv(&mut buf)?
        }
        Err(e) => return Err(e),
    };
    buf.truncate(n);
    Ok(buf)
}

/// Sends `serde` values, postcard-encoded, over any [`MessageSender`]; see
/// the [module](self) for the bounds.
pub trait SerdeSender: MessageSender {
    /// Encodes `value` and sends it, waiting for room as long as it takes.
    /// [`Error::TooLarge`] when the encoding is longer than
    /// [`max_message`](MessageSender::max_message), [`Error::Encode`] when
    /// the value cannot be encoded; then nothing was sent.
    fn send_serde<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let msg = encode(value, self.max_message())?;
        self.send(&msg)
    }

    /// Like [`SerdeSender::send_serde`], without waiting: [`Error::Full`].
    fn try_send_serde<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let msg = encode(value, self.max_message())?;
        self.try_send(&msg)
    }

    /// Like [`SerdeSender::send_serde`], waiting at most `timeout`.
    fn send_serde_timeout<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<()> {
        let msg = encode(value, self.max_message())?;
        self.send_timeout(&msg, timeout)
    }
}

impl<S: MessageSender + ?Sized> SerdeSender for S {}

/// Receives `serde` values, postcard-encoded, from any [`MessageReceiver`];
/// see the [module](self) for the bounds.
pub trait SerdeReceiver: MessageReceiver {
    /// Receives the next message, waiting as long as it takes, and decodes
    /// it as a `T`: [`Error::Decode`] (with the message's bytes) if it is
    /// not one.
    fn recv_serde<T: DeserializeOwned>(&mut self) -> Result<T> {
        decode(&receive(self, |rx, buf| rx.recv(buf))?)
    }

    /// Like [`SerdeReceiver::recv_serde`], without waiting: [`Error::Empty`].
    fn try_recv_serde<T: DeserializeOwned>(&mut self) -> Result<T> {
        decode(&receive(self, |rx, buf| rx.try_recv(buf))?)
    }

    /// Like [`SerdeReceiver::recv_serde`], waiting at most `timeout`.
    fn recv_serde_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T> {
        decode(&receive(self, |rx, buf| rx.recv_timeout(buf, timeout))?)
    }
}

impl<R: MessageReceiver + ?Sized> SerdeReceiver for R {}
