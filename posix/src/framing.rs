//! Length-prefixed framing of messages on byte-stream transports.
//!
//! Pipes, FIFOs, unix stream sockets and TCP carry bytes, not messages. The
//! fallback transports put each message in a *frame*: its length as a
//! little-endian `u32` ([`HEADER_LEN`] bytes), then that many payload bytes.
//!
//! The decoder, [`FrameReader`], does no I/O of its own: the caller reads
//! bytes into [`FrameReader::spare`], reports how many with
//! [`FrameReader::filled`], and takes whole payloads from
//! [`FrameReader::next_frame`]. [`FrameReader::read_frame`] runs that loop
//! over any [`std::io::Read`]. So the same decoder serves blocking,
//! non-blocking and polled descriptors, and a fuzzer can drive it without a
//! socket. [`write_frame`] is the encoder.
//!
//! The invariant: the peer is not trusted, and cannot make the reader
//! allocate more than its limit. A header announcing more than the reader's
//! maximum is refused as soon as its four bytes arrive
//! ([`Error::FrameTooLarge`]), before anything is allocated for the frame,
//! and the stream is dead from then on (its frame boundaries are lost). The
//! buffer starts at a few KiB, grows only while a frame is arriving, to at
//! most twice what has actually been received, and never holds more than
//! `HEADER_LEN + max_frame + READ_CHUNK` bytes.
//!
//! # Examples
//!
//! ```
//! use shmlane_posix::framing::{FrameReader, write_frame};
//!
//! let mut stream = Vec::new(); // stands in for a pipe or a socket
//! write_frame(&mut stream, b"first", 1024)?;
//! write_frame(&mut stream, b"", 1024)?;
//!
//! let mut reader = FrameReader::new(1024);
//! let mut input = &stream[..];
//! assert_eq!(reader.read_frame(&mut input)?, Some(&b"first"[..]));
//! assert_eq!(reader.read_frame(&mut input)?, Some(&b""[..]));
//! assert_eq!(reader.read_frame(&mut input)?, None); // clean end of stream
//! # Ok::<(), shmlane_posix::Error>(())
//! ```

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::ops::Range;

use crate::{Error, Result};

/// Length of a frame header: the payload length as a little-endian `u32`.
pub const HEADER_LEN: usize = 4;

/// Slack, in bytes, that a [`FrameReader`]'s buffer may hold beyond one
/// whole frame, for bytes of the following frames read ahead.
pub const READ_CHUNK: usize = 64 * 1024;

/// Size of a new reader's buffer.
const INITIAL_LEN: usize = 4 * 1024;

/// The longest payload a header can announce.
const MAX_ENCODABLE: usize = u32::MAX as usize;

/// Encodes the header of a frame with a payload of `len` bytes.
///
/// Fails with [`Error::TooLarge`] if `len` is over `max`, or over
/// `u32::MAX` (then `max` in the error is `u32::MAX`).
///
/// # Examples
///
/// ```
/// use shmlane_posix::Error;
/// use shmlane_posix::framing::encode_header;
///
/// assert_eq!(encode_header(258, 1024)?, [2, 1, 0, 0]);
/// assert!(matches!(
///     encode_header(1025, 1024),
///     Err(Error::TooLarge { len: 1025, max: 1024 })
/// ));
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn encode_header(len: usize, max: usize) -> Result<[u8; HEADER_LEN]> {
    let max = max.min(MAX_ENCODABLE);
    match u32::try_from(len) {
        Ok(len32) if len <= max => Ok(len32.to_le_bytes()),
        _ => Err(Error::TooLarge { len, max }),
    }
}

/// Writes one frame, header then `payload`, to `writer`.
///
/// A payload longer than `max` is refused with [`Error::TooLarge`] before
/// anything is written. Short writes are continued and `Interrupted` is
/// retried; any other failure is [`Error::Io`] with `op` `"write"`, and then
/// part of the frame may have been written, so the stream must be abandoned
/// (for a non-blocking writer, that includes `WouldBlock`: use
/// [`encode_header`] and track partial writes yourself instead). The writer
/// is not flushed.
///
/// # Examples
///
/// ```
/// use shmlane_posix::Error;
/// use shmlane_posix::framing::write_frame;
///
/// let mut out = Vec::new();
/// write_frame(&mut out, b"hi", 16)?;
/// assert_eq!(out, [2, 0, 0, 0, b'h', b'i']);
///
/// assert!(matches!(write_frame(&mut out, &[0; 17], 16), Err(Error::TooLarge { len: 17, max: 16 })));
/// assert_eq!(out.len(), 6); // nothing more was written
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn write_frame<W: Write + ?Sized>(writer: &mut W, payload: &[u8], max: usize) -> Result<()> {
    let header = encode_header(payload.len(), max)?;
    let total = HEADER_LEN + payload.len();
    let mut written = 0;
    while written < total {
        let result = match written.checked_sub(HEADER_LEN) {
            // Header and payload in one system call where the writer can.
            None => {
                writer.write_vectored(&[IoSlice::new(&header[written..]), IoSlice::new(payload)])
            }
            Some(offset) => writer.write(&payload[offset..]),
        };
        match result {
            Ok(0) => {
                return Err(Error::io(
                    "write",
                    io::Error::from(io::ErrorKind::WriteZero),
                ));
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("write", e)),
        }
    }
    Ok(())
}

/// The decoder of a framed byte stream, with its receive buffer.
///
/// Feed it with [`spare`](Self::spare) and [`filled`](Self::filled), take
/// payloads with [`next_frame`](Self::next_frame) until it returns
/// `Ok(None)`, and call [`finish`](Self::finish) at end of stream; or let
/// [`read_frame`](Self::read_frame) do all of that over a reader.
///
/// See the [module documentation](self) for the limits on its memory.
///
/// # Examples
///
/// ```
/// use shmlane_posix::framing::FrameReader;
///
/// let mut reader = FrameReader::new(64);
/// // Bytes as they might come from two reads of a socket:
/// for chunk in [&[3, 0, 0, 0, b'a', b'b'][..], &[b'c', 1, 0, 0, 0, b'd']] {
///     let spare = reader.spare();
///     spare[..chunk.len()].copy_from_slice(chunk);
///     reader.filled(chunk.len());
/// }
/// assert_eq!(reader.next_frame()?, Some(&b"abc"[..]));
/// assert_eq!(reader.next_frame()?, Some(&b"d"[..]));
/// assert_eq!(reader.next_frame()?, None);
/// reader.finish()?; // the stream may end here
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub struct FrameReader {
    /// Received bytes in `start..end`; `end..` is free; `..start` is consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Longest payload accepted (at most `u32::MAX`).
    max_frame: usize,
    /// The length announced by a header over `max_frame`, once one came.
    poisoned: Option<usize>,
}

impl fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("max_frame", &self.max_frame)
            .field("buffered", &self.buffered())
            .field("buffer_len", &self.buf.len())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl FrameReader {
    /// A reader accepting payloads of up to `max_frame` bytes (values over
    /// `u32::MAX` mean `u32::MAX`, the most a header can announce).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::framing::FrameReader;
    ///
    /// let reader = FrameReader::new(1 << 20);
    /// assert_eq!(reader.buffered(), 0);
    /// ```
    pub fn new(max_frame: usize) -> Self {
        let max_frame = max_frame.min(MAX_ENCODABLE);
        FrameReader {
            buf: vec![0; INITIAL_LEN],
            start: 0,
            end: 0,
            max_frame,
            poisoned: None,
        }
    }

    /// The most bytes the buffer ever holds.
    fn bound(&self) -> usize {
        HEADER_LEN
            .saturating_add(self.max_frame)
            .saturating_add(READ_CHUNK)
    }

    fn too_large(&self, len: usize) -> Error {
        Error::FrameTooLarge {
            len,
            max: self.max_frame,
        }
    }

    /// Header plus payload length of the frame at `start`, once its header
    /// is buffered; refuses (for good) a header over the maximum.
    fn frame_total(&mut self) -> Result<Option<usize>> {
        if let Some(len) = self.poisoned {
            return Err(self.too_large(len));
        }
        let Some(header) = self.buf[self.start..self.end].first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_le_bytes(*header)).unwrap_or(usize::MAX);
        if len > self.max_frame {
            // The frame boundaries are lost: drop everything.
            self.poisoned = Some(len);
            self.start = 0;
            self.end = 0;
            return Err(self.too_large(len));
        }
        Ok(Some(HEADER_LEN + len))
    }

    /// Consumes the next complete frame, if buffered, and returns where its
    /// payload lies in `buf`.
    fn next_range(&mut self) -> Result<Option<Range<usize>>> {
        let Some(total) = self.frame_total()? else {
            return Ok(None);
        };
        if self.end - self.start < total {
            return Ok(None);
        }
        let payload = self.start + HEADER_LEN..self.start + total;
        self.start += total;
        Ok(Some(payload))
    }

    /// A writable region to read more bytes of the stream into; report how
    /// many were written with [`filled`](Self::filled).
    ///
    /// Moves the unconsumed bytes to the front of the buffer first, and
    /// grows the buffer if the frame being received needs more room. The
    /// region is never empty, unless the caller stopped taking frames: if a
    /// whole frame is buffered and the buffer is at its limit, the region is
    /// empty until [`next_frame`](Self::next_frame) consumes it. After
    /// [`Error::FrameTooLarge`] the region is scratch space whose bytes are
    /// ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use shmlane_posix::framing::FrameReader;
    ///
    /// let mut input: &[u8] = &[2, 0, 0, 0, 7, 9];
    /// let mut reader = FrameReader::new(16);
    /// let n = input.read(reader.spare()).unwrap();
    /// reader.filled(n);
    /// assert_eq!(reader.next_frame()?, Some(&[7, 9][..]));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Ok(total) = self.frame_total() else {
            return &mut self.buf[..]; // poisoned: `filled` discards it
        };
        let len = self.buf.len();
        if self.end == len {
            let new_len = match total {
                // A frame is arriving: grow towards its size, at most
                // doubling, so memory follows the bytes actually received.
                Some(total) if total > self.end => total.min(len.saturating_mul(2)),
                // Whole frames are waiting (or, impossibly, no header fits):
                // room to read ahead, within the bound.
                _ => len.saturating_add(len.min(READ_CHUNK)).min(self.bound()),
            };
            if new_len > len {
                self.buf.reserve_exact(new_len - len);
                self.buf.resize(new_len, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that the first `n` bytes of the region last returned by
    /// [`spare`](Self::spare) hold new bytes of the stream.
    ///
    /// # Panics
    ///
    /// If `n` is longer than that region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::framing::FrameReader;
    ///
    /// let mut reader = FrameReader::new(16);
    /// reader.spare()[..3].copy_from_slice(&[5, 0, 0]);
    /// reader.filled(3);
    /// assert_eq!(reader.buffered(), 3);
    /// ```
    pub fn filled(&mut self, n: usize) {
        if self.poisoned.is_some() {
            assert!(
                n <= self.buf.len(),
                "FrameReader::filled({n}) is beyond spare()"
            );
            return;
        }
        assert!(
            n <= self.buf.len() - self.end,
            "FrameReader::filled({n}) is beyond spare() ({} bytes)",
            self.buf.len() - self.end
        );
        self.end += n;
    }

    /// The payload of the next frame, if it is all buffered; `Ok(None)` if
    /// more bytes are needed. A returned frame is consumed.
    ///
    /// Fails with [`Error::FrameTooLarge`] as soon as the next header
    /// announces more than the maximum, and from then on always.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Error;
    /// use shmlane_posix::framing::FrameReader;
    ///
    /// let mut reader = FrameReader::new(16);
    /// reader.spare()[..4].copy_from_slice(&100u32.to_le_bytes());
    /// reader.filled(4);
    /// assert!(matches!(reader.next_frame(), Err(Error::FrameTooLarge { len: 100, max: 16 })));
    /// assert!(matches!(reader.next_frame(), Err(Error::FrameTooLarge { .. })));
    /// ```
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>> {
        Ok(self.next_range()?.map(|payload| &self.buf[payload]))
    }

    /// Checks that the stream may end here: `Ok(())` if the buffered bytes
    /// are whole frames (usually none), [`Error::Truncated`] if the last one
    /// is cut short, [`Error::FrameTooLarge`] if a header over the maximum
    /// came. Call it at end of stream; it consumes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Error;
    /// use shmlane_posix::framing::FrameReader;
    ///
    /// let mut reader = FrameReader::new(16);
    /// assert!(reader.finish().is_ok());
    /// reader.spare()[..5].copy_from_slice(&[2, 0, 0, 0, b'x']);
    /// reader.filled(5);
    /// assert!(matches!(reader.finish(), Err(Error::Truncated)));
    /// ```
    pub fn finish(&self) -> Result<()> {
        if let Some(len) = self.poisoned {
            return Err(self.too_large(len));
        }
        let mut rest = &self.buf[self.start..self.end];
        while !rest.is_empty() {
            let Some((header, after)) = rest.split_first_chunk::<HEADER_LEN>() else {
                return Err(Error::Truncated);
            };
            let len = usize::try_from(u32::from_le_bytes(*header)).unwrap_or(usize::MAX);
            if len > self.max_frame {
                return Err(self.too_large(len));
            }
            let Some(next) = after.get(len..) else {
                return Err(Error::Truncated);
            };
            rest = next;
        }
        Ok(())
    }

    /// Whether a whole frame is buffered, or a bad header (which the next
    /// [`next_frame`](Self::next_frame) reports): something to take out
    /// without reading more.
    pub(crate) fn has_frame(&mut self) -> bool {
        match self.frame_total() {
            Ok(Some(total)) => self.end - self.start >= total,
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The payload length of the frame at the front and how many of its
    /// payload bytes are buffered, if its header is buffered but not all of
    /// its payload. Fails as [`next_frame`](Self::next_frame) does.
    pub(crate) fn partial(&mut self) -> Result<Option<(usize, usize)>> {
        let Some(total) = self.frame_total()? else {
            return Ok(None);
        };
        let buffered = self.end - self.start;
        Ok((buffered < total).then(|| (total - HEADER_LEN, buffered - HEADER_LEN)))
    }

    /// Takes out the frame that [`partial`](Self::partial) reported (for
    /// the caller to read the rest of its payload elsewhere): copies its
    /// buffered payload bytes into `dst`, which holds exactly that many, and
    /// consumes the frame. The reader is then empty.
    ///
    /// # Panics
    ///
    /// If `dst` is not as long as the payload bytes buffered.
    pub(crate) fn take_partial(&mut self, dst: &mut [u8]) {
        let payload = self.start + HEADER_LEN..self.end;
        dst.copy_from_slice(&self.buf[payload]);
        self.start = 0;
        self.end = 0;
    }

    /// Puts a frame taken by [`take_partial`](Self::take_partial) back, as
    /// its header (a payload of `len` bytes) and the first bytes of its
    /// payload, `payload` (as many as were received), into the empty
    /// reader: for when the rest could not be read elsewhere after all.
    pub(crate) fn put_back(&mut self, len: usize, payload: &[u8]) {
        debug_assert!(len <= self.max_frame && payload.len() < len);
        let header = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes();
        self.refill(&[&header, payload]);
    }

    /// Gives the empty reader `parts`, in order, as the next bytes of the
    /// stream: bytes that were read elsewhere (at most a frame and a read
    /// chunk, the bound of the buffer).
    pub(crate) fn refill(&mut self, parts: &[&[u8]]) {
        debug_assert_eq!(self.start, self.end, "refill of a reader holding bytes");
        let need: usize = parts.iter().map(|part| part.len()).sum();
        debug_assert!(need <= self.bound());
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        let mut end = 0;
        for part in parts {
            self.buf[end..end + part.len()].copy_from_slice(part);
            end += part.len();
        }
        self.start = 0;
        self.end = end;
    }

    /// Bytes received and not yet returned as frames (headers included).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::framing::FrameReader;
    ///
    /// let mut reader = FrameReader::new(16);
    /// reader.spare()[..6].copy_from_slice(&[1, 0, 0, 0, b'a', 9]);
    /// reader.filled(6);
    /// assert_eq!(reader.buffered(), 6);
    /// reader.next_frame()?;
    /// assert_eq!(reader.buffered(), 1); // the first byte of the next header
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Bytes the reader holds allocated for its buffer: never more than
    /// [`HEADER_LEN`] + its maximum frame + [`READ_CHUNK`], whatever the peer
    /// sends (the bound the fuzz target `frame_decoder` checks).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::framing::{FrameReader, HEADER_LEN, READ_CHUNK};
    ///
    /// let mut reader = FrameReader::new(100);
    /// reader.spare()[..4].copy_from_slice(&100u32.to_le_bytes()); // a frame of 100 bytes
    /// reader.filled(4);
    /// assert!(reader.allocated() <= HEADER_LEN + 100 + READ_CHUNK);
    /// ```
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads from `reader` until a whole frame is buffered, and returns its
    /// payload; frames already buffered are returned without reading.
    ///
    /// Returns `Ok(None)` at end of stream on a frame boundary,
    /// [`Error::Truncated`] at end of stream inside a frame, and
    /// [`Error::FrameTooLarge`] as [`next_frame`](Self::next_frame) does.
    /// `Interrupted` is retried; other read errors are [`Error::Io`] with
    /// `op` `"read"`, after which the reader is intact (a `WouldBlock` from
    /// a non-blocking reader can be followed by another call once readable).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::Error;
    /// use shmlane_posix::framing::FrameReader;
    ///
    /// let mut input: &[u8] = &[1, 0, 0, 0, b'x', 3, 0, 0, 0, b'y'];
    /// let mut reader = FrameReader::new(16);
    /// assert_eq!(reader.read_frame(&mut input)?, Some(&b"x"[..]));
    /// assert!(matches!(reader.read_frame(&mut input), Err(Error::Truncated)));
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn read_frame<R: Read + ?Sized>(&mut self, reader: &mut R) -> Result<Option<&[u8]>> {
        loop {
            if let Some(payload) = self.next_range()? {
                return Ok(Some(&self.buf[payload]));
            }
            let spare = self.spare();
            let room = spare.len();
            match reader.read(spare) {
                Ok(0) => {
                    self.finish()?;
                    return Ok(None);
                }
                Ok(n) if n > room => {
                    return Err(Error::io(
                        "read",
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            "reader reported more bytes than the buffer holds",
                        ),
                    ));
                }
                Ok(n) => self.filled(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            write_frame(&mut out, p, max).unwrap();
        }
        out
    }

    /// Feeds `bytes` through `spare`/`filled` at most `chunk` at a time,
    /// taking frames as they complete.
    fn feed(reader: &mut FrameReader, bytes: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>> {
        let mut frames = Vec::new();
        for piece in bytes.chunks(chunk) {
            let mut piece = piece;
            while !piece.is_empty() {
                let spare = reader.spare();
                let n = spare.len().min(piece.len());
                spare[..n].copy_from_slice(&piece[..n]);
                reader.filled(n);
                piece = &piece[n..];
                while let Some(frame) = reader.next_frame()? {
                    frames.push(frame.to_vec());
                }
            }
        }
        Ok(frames)
    }

    /// A reader that returns at most `chunk` bytes a call, and `Interrupted`
    /// every other call.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.chunk).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A writer that takes at most one byte a call, and is `Interrupted`
    /// every third call.
    struct ByteWriter {
        out: Vec<u8>,
        calls: usize,
    }

    impl Write for ByteWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 3 == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(1);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn header_is_little_endian_length() {
        assert_eq!(encode_header(0, 0).unwrap(), [0, 0, 0, 0]);
        assert_eq!(
            encode_header(0x0102_0304, usize::MAX).unwrap(),
            [4, 3, 2, 1]
        );
        assert!(matches!(
            encode_header(11, 10),
            Err(Error::TooLarge { len: 11, max: 10 })
        ));
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn header_refuses_more_than_u32() {
        let len = u32::MAX as usize + 1;
        assert!(matches!(
            encode_header(len, usize::MAX),
            Err(Error::TooLarge { len: l, max }) if l == len && max == u32::MAX as usize
        ));
        assert_eq!(
            encode_header(u32::MAX as usize, usize::MAX).unwrap(),
            [0xFF; 4]
        );
    }

    #[test]
    fn round_trip_zero_one_and_max() {
        let max = 10_000;
        let big: Vec<u8> = (0..max).map(|i| (i * 7) as u8).collect();
        let payloads: [&[u8]; 4] = [b"", b"x", &big, b""];
        let stream = framed(&payloads, max);
        assert_eq!(stream.len(), 4 * HEADER_LEN + 1 + max);

        let mut reader = FrameReader::new(max);
        let mut input = &stream[..];
        for p in payloads {
            assert_eq!(reader.read_frame(&mut input).unwrap(), Some(p));
        }
        assert_eq!(reader.read_frame(&mut input).unwrap(), None);
        assert!(reader.buf.len() <= reader.bound());
    }

    #[test]
    fn many_frames_in_one_read() {
        let owned: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; usize::from(i)]).collect();
        let payloads: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let stream = framed(&payloads, 64);
        let mut reader = FrameReader::new(64);
        let spare = reader.spare();
        assert!(spare.len() >= stream.len());
        spare[..stream.len()].copy_from_slice(&stream);
        reader.filled(stream.len());
        for p in &payloads {
            assert_eq!(reader.next_frame().unwrap(), Some(*p));
        }
        assert_eq!(reader.next_frame().unwrap(), None);
        assert_eq!(reader.buffered(), 0);
        reader.finish().unwrap();
    }

    #[test]
    fn frames_split_byte_by_byte() {
        let big = vec![0xA5; 3 * INITIAL_LEN + 17]; // forces the buffer to grow
        let payloads: [&[u8]; 4] = [b"abc", b"", &big, b"z"];
        let stream = framed(&payloads, big.len());
        let mut reader = FrameReader::new(big.len());
        let frames = feed(&mut reader, &stream, 1).unwrap();
        assert_eq!(frames, payloads.map(<[u8]>::to_vec));
        // Grown only to the big frame's size, not to the bound.
        assert_eq!(reader.buf.len(), HEADER_LEN + big.len());
        reader.finish().unwrap();
    }

    #[test]
    fn read_frame_survives_short_reads_and_interrupts() {
        let payloads: [&[u8]; 3] = [b"hello", &[1; 300], b""];
        let stream = framed(&payloads, 300);
        let mut input = Trickle {
            data: &stream,
            chunk: 7,
            calls: 0,
        };
        let mut reader = FrameReader::new(300);
        for p in payloads {
            assert_eq!(reader.read_frame(&mut input).unwrap(), Some(p));
        }
        assert_eq!(reader.read_frame(&mut input).unwrap(), None);
        assert!(input.calls > stream.len() / 7);
    }

    #[test]
    fn oversized_header_fails_at_once_without_allocating() {
        let mut reader = FrameReader::new(1024);
        let spare = reader.spare();
        spare[..HEADER_LEN].copy_from_slice(&u32::MAX.to_le_bytes());
        reader.filled(HEADER_LEN);
        let expect = |r: Result<Option<&[u8]>>| {
            assert!(matches!(
                r,
                Err(Error::FrameTooLarge { len, max: 1024 }) if len == u32::MAX as usize
            ));
        };
        expect(reader.next_frame());
        expect(reader.next_frame());
        assert!(matches!(reader.finish(), Err(Error::FrameTooLarge { .. })));
        assert_eq!(reader.buffered(), 0);
        // More bytes from the peer change nothing and allocate nothing.
        for _ in 0..100 {
            let spare = reader.spare();
            assert!(!spare.is_empty());
            let n = spare.len();
            spare.fill(0xFF);
            reader.filled(n);
        }
        expect(reader.next_frame());
        assert_eq!(reader.buf.capacity(), INITIAL_LEN);
    }

    #[test]
    fn oversized_header_from_read_frame() {
        let mut stream = framed(&[b"ok"], 8);
        stream.extend_from_slice(&9u32.to_le_bytes());
        stream.extend_from_slice(&[0; 9]);
        let mut input = &stream[..];
        let mut reader = FrameReader::new(8);
        assert_eq!(reader.read_frame(&mut input).unwrap(), Some(&b"ok"[..]));
        assert!(matches!(
            reader.read_frame(&mut input),
            Err(Error::FrameTooLarge { len: 9, max: 8 })
        ));
        assert!(matches!(
            reader.read_frame(&mut input),
            Err(Error::FrameTooLarge { len: 9, max: 8 })
        ));
    }

    #[test]
    fn growth_follows_received_bytes() {
        // A peer announcing a maximal frame and sending little of it gets
        // at most twice what it sent.
        let max = 64 << 20;
        let mut reader = FrameReader::new(max);
        let mut sent = HEADER_LEN;
        let spare = reader.spare();
        spare[..HEADER_LEN].copy_from_slice(&(max as u32).to_le_bytes());
        reader.filled(HEADER_LEN);
        while sent < 100_000 {
            let spare = reader.spare();
            let n = spare.len().min(1000);
            reader.filled(n);
            sent += n;
            assert_eq!(reader.next_frame().unwrap(), None);
            assert!(reader.buf.capacity() <= (2 * sent).max(INITIAL_LEN));
        }
    }

    #[test]
    fn undrained_frames_stay_within_the_bound() {
        let max = 8;
        let mut reader = FrameReader::new(max);
        let frame = framed(&[&[3; 8]], max);
        let mut total = 0;
        loop {
            let spare = reader.spare();
            if spare.is_empty() {
                break;
            }
            let n = spare.len();
            for (i, b) in spare.iter_mut().enumerate() {
                *b = frame[(total + i) % frame.len()];
            }
            reader.filled(n);
            total += n;
        }
        assert_eq!(reader.buf.len(), reader.bound());
        assert_eq!(reader.buf.capacity(), reader.bound());
        // Draining one frame makes room again.
        assert_eq!(reader.next_frame().unwrap(), Some(&[3; 8][..]));
        assert_eq!(reader.spare().len(), frame.len());
    }

    #[test]
    fn eof_mid_header_is_truncated() {
        let mut input: &[u8] = &[5, 0];
        let mut reader = FrameReader::new(16);
        assert!(matches!(
            reader.read_frame(&mut input),
            Err(Error::Truncated)
        ));
        assert_eq!(reader.buffered(), 2);
    }

    #[test]
    fn eof_mid_payload_is_truncated() {
        let mut stream = framed(&[b"whole"], 16);
        stream.extend_from_slice(&[10, 0, 0, 0, 1, 2, 3, 4, 5]);
        let mut input = &stream[..];
        let mut reader = FrameReader::new(16);
        assert_eq!(reader.read_frame(&mut input).unwrap(), Some(&b"whole"[..]));
        assert!(matches!(
            reader.read_frame(&mut input),
            Err(Error::Truncated)
        ));
    }

    #[test]
    fn eof_at_boundary_is_none() {
        let mut reader = FrameReader::new(16);
        let mut empty: &[u8] = &[];
        assert_eq!(reader.read_frame(&mut empty).unwrap(), None);
        let stream = framed(&[b"a", b"b"], 16);
        let mut input = &stream[..];
        assert_eq!(reader.read_frame(&mut input).unwrap(), Some(&b"a"[..]));
        assert_eq!(reader.read_frame(&mut input).unwrap(), Some(&b"b"[..]));
        assert_eq!(reader.read_frame(&mut input).unwrap(), None);
        assert_eq!(reader.read_frame(&mut input).unwrap(), None);
    }

    #[test]
    fn finish_checks_undrained_bytes() {
        let mut reader = FrameReader::new(16);
        let stream = framed(&[b"one", b"two"], 16);
        feed_only(&mut reader, &stream);
        reader.finish().unwrap(); // whole frames, not yet taken
        feed_only(&mut reader, &[1, 0, 0]);
        assert!(matches!(reader.finish(), Err(Error::Truncated)));
        assert_eq!(reader.next_frame().unwrap(), Some(&b"one"[..]));

        let mut reader = FrameReader::new(16);
        feed_only(&mut reader, &[17, 0, 0, 0]);
        assert!(matches!(
            reader.finish(),
            Err(Error::FrameTooLarge { len: 17, max: 16 })
        ));
    }

    fn feed_only(reader: &mut FrameReader, bytes: &[u8]) {
        let spare = reader.spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        reader.filled(bytes.len());
    }

    #[test]
    #[should_panic(expected = "beyond spare()")]
    fn filled_beyond_spare_panics() {
        let mut reader = FrameReader::new(16);
        let n = reader.spare().len();
        reader.filled(n + 1);
    }

    #[test]
    fn read_errors_are_typed() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        let mut reader = FrameReader::new(16);
        match reader.read_frame(&mut Broken) {
            Err(Error::Io { op: "read", source }) => {
                assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn write_frame_over_max_writes_nothing() {
        let mut out = ByteWriter {
            out: Vec::new(),
            calls: 0,
        };
        assert!(matches!(
            write_frame(&mut out, &[0; 33], 32),
            Err(Error::TooLarge { len: 33, max: 32 })
        ));
        assert_eq!(out.calls, 0);
        assert!(out.out.is_empty());
    }

    #[test]
    fn write_frame_continues_short_writes() {
        let mut out = ByteWriter {
            out: Vec::new(),
            calls: 0,
        };
        write_frame(&mut out, b"payload", 32).unwrap();
        write_frame(&mut out, b"", 32).unwrap();
        assert_eq!(out.out, [&[7, 0, 0, 0][..], b"payload", &[0; 4]].concat());
    }

    #[test]
    fn write_frame_reports_write_zero() {
        let mut full = [0u8; 6];
        let mut out = &mut full[..];
        match write_frame(&mut out, b"too long", 32) {
            Err(Error::Io {
                op: "write",
                source,
            }) => {
                assert_eq!(source.kind(), io::ErrorKind::WriteZero);
            }
            other => panic!("{other:?}"),
        }
    }
}
