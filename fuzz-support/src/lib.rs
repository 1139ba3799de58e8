//! # shmlane-fuzz-support
//!
//! The logic of shmlane's `cargo fuzz` targets (`fuzz/`) as plain functions,
//! so that `cargo test` on stable Rust replays the committed corpus and every
//! past crash input (`tests/replay.rs`),
//! and so that shmlane-core's property test (`core/tests/model.rs`) shares
//! the operation model ([`Op`], [`run_ops`]) with the `ring_ops` target.
//!
//! Test tooling only: this crate is `publish = false`, and the published
//! crates neither depend on it nor carry a feature for it. It uses
//! shmlane-core's public API and its documented layout
//! ([`shmlane_core::layout`]) only. Because it depends on shmlane-core,
//! shmlane-core's *unit* tests cannot use it (they are another build of the
//! crate, with other types); its integration tests can.
//!
//! Each entry point takes the fuzzer's bytes and panics on a bug: a result
//! the model does not predict, a message outside the region or longer than
//! the maximum, or a call that does not return.
//!
//! The targets `frame_decoder` and `address` exercise shmlane-posix's
//! frame decoder and address parser through their public API
//! ([`frame_decoder`], [`address`]); [`replay_committed`] replays their
//! corpus too.
//!
//! # Where the corpus is
//!
//! [`FUZZ_DIR`] is the `fuzz/` directory of the checkout, computed at
//! compile time from this crate's own `CARGO_MANIFEST_DIR` (`fuzz-support/`
//! sits next to `fuzz/`). That is sound only because this crate is never
//! published: it is always built from the checkout. [`replay_dir`] takes
//! the directory explicitly.

#[cfg(feature = "posix")]
mod posix;
#[cfg(feature = "posix")]
pub use posix::{address, frame_decoder};

use std::collections::VecDeque;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arbitrary::{Arbitrary, Unstructured};

use shmlane_core::layout::{HEADER_SIZE, RECORD_HEADER, max_message_limit, region_size};
use shmlane_core::{Config, Error, Ring, Role, Spin};

/// A zeroed heap region aligned for a ring header.
#[derive(Debug)]
pub struct AlignedBuf(Vec<Block>);

#[derive(Debug, Clone, Copy)]
#[repr(C, align(128))]
struct Block([u8; 128]);

impl AlignedBuf {
    /// At least `bytes` zeroed bytes.
    pub fn new(bytes: usize) -> Self {
        AlignedBuf(vec![Block([0; 128]); bytes.div_ceil(128).max(1)])
    }

    /// Room for a ring of `capacity` bytes.
    pub fn for_capacity(capacity: usize) -> Self {
        Self::new(region_size(capacity))
    }

    /// All the bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        let len = self.0.len() * 128;
        // SAFETY: `Block` is plain bytes with no padding; the vector holds
        // `len` contiguous, initialised bytes, borrowed mutably here.
        unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), len) }
    }
}

/// Bytes a record with a `len`-byte payload occupies: an 8-byte header,
/// then the payload padded to a multiple of 8 (see [`shmlane_core::layout`]).
fn record_size(len: u64) -> u64 {
    RECORD_HEADER + ((len + 7) & !7)
}

/// The header is three lines of equal size (identity, producer, consumer);
/// a position is the first `u64` of its side's line (see
/// [`shmlane_core::layout`], where the layout is pinned).
const LINE: usize = HEADER_SIZE / 3;
// Not under loom (`--cfg loom`, whose header carries extra cells): the
// loom test build compiles this crate as a dev-dependency but never runs it.
#[cfg(not(loom))]
const _: () = assert!(HEADER_SIZE == 3 * LINE && LINE % 8 == 0);

/// The shared write and read positions of the ring whose region starts at
/// `base`, as the peer process would read them.
///
/// # Safety
///
/// `base` is the start of a live ring's region.
unsafe fn positions(base: *mut u8) -> (u64, u64) {
    // SAFETY: both words lie in the header (the caller's promise), are
    // 8-byte aligned (the region is aligned to `REGION_ALIGN`, `LINE` is a
    // multiple of 8) and, like every header word, are only ever accessed
    // through atomics.
    unsafe {
        (
            AtomicU64::from_ptr(base.add(LINE).cast()).load(Relaxed),
            AtomicU64::from_ptr(base.add(2 * LINE).cast()).load(Relaxed),
        )
    }
}

/// Deterministic payload for message `seq` of `len` bytes.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31) as usize ^ i.wrapping_mul(7)) as u8)
        .collect()
}

/// One step of a producer/consumer operation sequence.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// `try_send` of a message of this length.
    TrySend(usize),
    /// `reserve(len)`, then `commit(n)` (n may exceed len: clamped).
    ReserveCommit(usize, usize),
    /// `reserve(len)`, then drop the grant.
    ReserveAbort(usize),
    /// A send batch of messages of these lengths (stops at the first failure).
    BatchSend(Vec<usize>),
    /// `try_recv` into a buffer of this length.
    TryRecv(usize),
    /// `read` and drop the grant.
    Read,
    /// A receive batch of this many reads.
    BatchRecv(usize),
    /// Drop the producer.
    CloseProducer,
    /// Drop the consumer.
    CloseConsumer,
}

impl Op {
    /// Keeps lengths near the interesting range for a ring whose maximum
    /// message is `max`: 0..=max, and a few bytes over it.
    fn clamped(self, max: usize) -> Op {
        let len = |l: usize| l % (max + 9);
        match self {
            Op::TrySend(l) => Op::TrySend(len(l)),
            Op::ReserveCommit(l, c) => Op::ReserveCommit(len(l), len(c)),
            Op::ReserveAbort(l) => Op::ReserveAbort(len(l)),
            Op::BatchSend(ls) => Op::BatchSend(ls.into_iter().take(8).map(len).collect()),
            Op::TryRecv(l) => Op::TryRecv(l % (max + 2)),
            Op::BatchRecv(n) => Op::BatchRecv(n % 8),
            other => other,
        }
    }
}

/// The specification of the byte accounting: what the ring must accept.
struct Model {
    capacity: u64,
    max: usize,
    write: u64,
    /// Consumer position the producer sees (released).
    read: u64,
    /// Consumer position the consumer has reached (released or not).
    consumed: u64,
    /// (padding skipped before the record, payload)
    queue: VecDeque<(u64, Vec<u8>)>,
    seq: u64,
    /// What the producer's counters must say: (messages, full).
    sent: (u64, u64),
    /// Messages staged by the running batch, not counted yet.
    staged: u64,
    /// What the consumer's counters must say: (messages, empty).
    received: (u64, u64),
    /// Messages consumed but not released, not counted yet.
    unreleased: u64,
}

impl Model {
    fn place(&self, len: usize) -> (u64, u64) {
        let record = record_size(len as u64);
        let tail = self.capacity - (self.write & (self.capacity - 1));
        if record <= tail {
            (0, record)
        } else {
            (tail, tail + record)
        }
    }
    fn fits(&self, len: usize) -> bool {
        self.capacity - (self.write - self.read) >= self.place(len).1
    }
    fn push(&mut self, payload: Vec<u8>) {
        self.push_reserved(payload.len(), payload);
    }
    /// A grant of `reserved` bytes committed with fewer: the padding is
    /// chosen for the reservation (the payload was written there).
    fn push_reserved(&mut self, reserved: usize, payload: Vec<u8>) {
        let (pad, _) = self.place(reserved);
        self.write += pad + record_size(payload.len() as u64);
        self.staged += 1;
        self.queue.push_back((pad, payload));
    }
    /// The producer published what it staged (counted now).
    fn publish(&mut self) {
        self.sent.0 += core::mem::take(&mut self.staged);
    }
    /// Consumes the front message (freed at the next release).
    fn pop(&mut self) -> Vec<u8> {
        let (pad, payload) = self.queue.pop_front().unwrap();
        self.consumed += pad + record_size(payload.len() as u64);
        self.unreleased += 1;
        payload
    }
    /// A call's result: a `Full` or `Empty` is counted by the side that got it.
    fn count<T>(&mut self, result: &Result<T, Error>) {
        match result {
            Err(Error::Full) => self.sent.1 += 1,
            Err(Error::Empty) => self.received.1 += 1,
            _ => {}
        }
    }
    /// The consumer looked at the front message without taking it: a
    /// padding record before it is consumed (freed at the next release).
    fn peek(&mut self) {
        if let Some((pad, _)) = self.queue.front_mut() {
            self.consumed += core::mem::take(pad);
        }
    }
    /// The consumer published its position (and its counts).
    fn release(&mut self) {
        self.read = self.consumed;
        self.received.0 += core::mem::take(&mut self.unreleased);
    }
}

/// Runs `ops` on a fresh ring of `capacity` bytes and checks every result,
/// every message and the shared positions against a model of the byte
/// accounting (a `VecDeque` of the messages in flight). Panics on any
/// difference.
pub fn run_ops(capacity: usize, ops: &[Op]) {
    let mut buf = AlignedBuf::for_capacity(capacity);
    let base = buf.bytes().as_mut_ptr();
    // SAFETY: `buf` outlives the ring (dropped last, after every handle);
    // the region is accessed through the ring and through the atomic loads
    // of `positions` only, both derived from `base`, on this one thread.
    let r = unsafe {
        Ring::create(
            NonNull::new(base).unwrap(),
            region_size(capacity),
            Config::new(capacity),
        )
    }
    .unwrap();
    let (mut tx, mut rx) = (
        Some(r.producer(Spin::new()).unwrap()),
        Some(r.consumer(Spin::new()).unwrap()),
    );
    let mut m = Model {
        capacity: capacity as u64,
        max: r.max_message(),
        write: 0,
        read: 0,
        consumed: 0,
        queue: VecDeque::new(),
        seq: 0,
        sent: (0, 0),
        staged: 0,
        received: (0, 0),
        unreleased: 0,
    };
    let expect_send = |m: &Model, rx_alive: bool, len: usize| -> Result<(), Error> {
        if len > m.max {
            Err(Error::TooLarge { len, max: m.max })
        } else if !rx_alive {
            Err(Error::Disconnected)
        } else if m.fits(len) {
            Ok(())
        } else {
            Err(Error::Full)
        }
    };
    let expect_recv = |m: &Model, tx_alive: bool| -> Result<(), Error> {
        if !m.queue.is_empty() {
            Ok(())
        } else if tx_alive {
            Err(Error::Empty)
        } else {
            Err(Error::Disconnected)
        }
    };
    for op in ops {
        let rx_alive = rx.is_some();
        match op.clone() {
            Op::TrySend(len) => {
                let Some(tx) = tx.as_mut() else { continue };
                let msg = payload(m.seq, len);
                let want = expect_send(&m, rx_alive, len);
                assert_eq!(tx.try_send(&msg), want, "{op:?}");
                m.count(&want);
                if want.is_ok() {
                    m.seq += 1;
                    m.push(msg);
                    m.publish();
                }
            }
            Op::ReserveCommit(len, commit) => {
                let Some(tx) = tx.as_mut() else { continue };
                let want = expect_send(&m, rx_alive, len);
                match tx.try_reserve(len) {
                    Ok(mut g) => {
                        assert_eq!(want, Ok(()), "{op:?}");
                        let sent = commit.min(len);
                        let msg = payload(m.seq, sent);
                        g[..sent].copy_from_slice(&msg);
                        g.commit(commit);
                        m.seq += 1;
                        m.push_reserved(len, msg);
                        m.publish();
                    }
                    Err(e) => assert_eq!(Err(e), want, "{op:?}"),
                }
                m.count(&want);
            }
            Op::ReserveAbort(len) => {
                let Some(tx) = tx.as_mut() else { continue };
                let want = expect_send(&m, rx_alive, len);
                assert_eq!(tx.try_reserve(len).map(drop), want, "{op:?}");
                m.count(&want);
            }
            Op::BatchSend(lens) => {
                let Some(tx) = tx.as_mut() else { continue };
                let mut batch = tx.batch();
                let mut pending = Vec::new();
                for len in lens {
                    let msg = payload(m.seq, len);
                    let want = expect_send(&m, rx_alive, len);
                    assert_eq!(batch.try_send(&msg), want, "{op:?}");
                    m.count(&want);
                    if want.is_ok() {
                        m.seq += 1;
                        pending.push(m.queue.len());
                        m.push(msg);
                    }
                }
                assert_eq!(batch.publish(), pending.len());
                m.publish();
            }
            Op::TryRecv(buf_len) => {
                let Some(rx) = rx.as_mut() else { continue };
                let mut out = vec![0; buf_len];
                match expect_recv(&m, tx.is_some()) {
                    Ok(()) => {
                        let front_len = m.queue[0].1.len();
                        if front_len > buf_len {
                            m.peek();
                            assert_eq!(
                                rx.try_recv(&mut out),
                                Err(Error::BufferTooSmall {
                                    needed: front_len,
                                    available: buf_len
                                })
                            );
                        } else {
                            let want = m.pop();
                            assert_eq!(rx.try_recv(&mut out), Ok(want.len()));
                            assert_eq!(&out[..want.len()], &want[..]);
                            m.release();
                        }
                    }
                    Err(e) => {
                        assert_eq!(rx.try_recv(&mut out), Err(e));
                        m.count::<()>(&Err(e));
                    }
                }
            }
            Op::Read => {
                let Some(rx) = rx.as_mut() else { continue };
                match expect_recv(&m, tx.is_some()) {
                    Ok(()) => {
                        assert_eq!(&*rx.try_read().unwrap(), &m.pop()[..]);
                        m.release();
                    }
                    Err(e) => {
                        assert_eq!(rx.try_read().err(), Some(e));
                        m.count::<()>(&Err(e));
                    }
                }
            }
            Op::BatchRecv(n) => {
                let Some(rx) = rx.as_mut() else { continue };
                let mut batch = rx.batch();
                for _ in 0..n {
                    match expect_recv(&m, tx.is_some()) {
                        Ok(()) => assert_eq!(&*batch.try_read().unwrap(), &m.pop()[..]),
                        Err(e) => {
                            assert_eq!(batch.try_read().err(), Some(e));
                            m.count::<()>(&Err(e));
                        }
                    }
                }
                // The producer sees the room only after this release.
                batch.release();
                m.release();
            }
            Op::CloseProducer => tx = None,
            Op::CloseConsumer => {
                rx = None;
                m.queue.clear();
            }
        }
        // After every step the shared positions match the model.
        // SAFETY: `base` is the region of the live ring `r`.
        let (write, read) = unsafe { positions(base) };
        assert_eq!(write, m.write);
        if rx.is_some() {
            assert_eq!(read, m.read);
        }
        // And so do the counters each side keeps (its bytes are its
        // position; a Spin side never sleeps or wakes).
        for (role, (messages, stalls), position) in [
            (Role::Producer, m.sent, m.write),
            (Role::Consumer, m.received, read),
        ] {
            let c = r.counters(role);
            let found = (c.messages, c.bytes, c.stalls, c.sleeps, c.wakes);
            assert_eq!(
                found,
                (messages, position, stalls, 0, 0),
                "{role:?} after {op:?}"
            );
        }
    }
}

/// Fuzz target `ring_ops`: an arbitrary sequence of producer and consumer
/// operations on a 64-, 128- or 256-byte ring, checked against the model
/// after every step.
pub fn ring_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(shift) = u.int_in_range(0u8..=2) else {
        return;
    };
    let capacity = 64usize << shift;
    let max = max_message_limit(capacity);
    let ops: Vec<Op> = u
        .arbitrary_iter::<Op>()
        .map(|it| it.into_iter())
        .into_iter()
        .flatten()
        .map_while(Result::ok)
        .take(256)
        .map(|op| op.clamped(max))
        .collect();
    run_ops(capacity, &ops);
}

/// Checks that a message handed out by a ring lies inside its data area.
fn check_message(msg: &[u8], data: core::ops::Range<usize>, max: usize) {
    assert!(
        msg.len() <= max,
        "message of {} bytes > max {max}",
        msg.len()
    );
    if !msg.is_empty() {
        let start = msg.as_ptr() as usize;
        assert!(
            start >= data.start && start + msg.len() <= data.end,
            "message outside the data area"
        );
    }
}

/// Fuzz target `attach`: arbitrary bytes (at most a header and 4 KiB) as a
/// region, read as a [`Snapshot`](shmlane_core::Snapshot) (which must agree with attach) and
/// handed to attach and then to a consumer (typed and untyped
/// reads) and a producer (typed and untyped writes). Only
/// typed errors or messages inside the region may come out, and every call
/// returns.
pub fn attach(data: &[u8]) {
    let len = data.len().min(region_size(4096));
    let mut buf = AlignedBuf::new(len);
    let region = &mut buf.bytes()[..len];
    region.copy_from_slice(&data[..len]);
    let base = region.as_ptr() as usize;
    // A third process's copy of the header reads as attach sees it: the
    // same refusal, or the same capacity, limit and type. (Not under loom,
    // whose atomics change the layout the byte offsets describe.)
    #[cfg(not(loom))]
    let snapshot = shmlane_core::Snapshot::parse(region, len)
        .map(|s| (s.capacity, s.max_message, s.message_type, s.used));
    let attached = Ring::attach_in(region);
    #[cfg(not(loom))]
    assert_eq!(
        snapshot,
        attached
            .as_ref()
            .map(|ring| {
                let (write, read) = (ring.counters(Role::Producer), ring.counters(Role::Consumer));
                let used = write.bytes.wrapping_sub(read.bytes);
                (
                    ring.capacity(),
                    ring.max_message(),
                    ring.message_type(),
                    used,
                )
            })
            .map_err(|e| *e)
    );
    let Ok(ring) = attached else {
        return;
    };
    let area = base + HEADER_SIZE..base + HEADER_SIZE + ring.capacity();
    let max = ring.max_message();
    // Whatever fingerprint the bytes hold, it is only compared.
    let fingerprint = ring.message_type();
    assert_eq!(ring.expect_message_type(fingerprint), Ok(()));
    assert_eq!(ring.expect_message_type(None), Ok(()));
    if let Ok(mut rx) = ring.consumer(Spin::new()) {
        // Typed views: a value inside the data area, 8-aligned, or a typed
        // error that leaves the message for the reads below.
        if let Ok(value) = rx.try_read_value::<[u64; 2]>() {
            let at = &*value as *const [u64; 2] as usize;
            assert!(area.contains(&at) && at + 16 <= area.end && at % 8 == 0);
        }
        let _ = rx.try_recv_value::<[u8; 3]>();
        // Every record is at least 8 bytes: this many reads drain any ring.
        for _ in 0..ring.capacity() / 8 + 2 {
            match rx.try_read() {
                Ok(msg) => check_message(&msg, area.clone(), max),
                Err(_) => break,
            }
        }
        let mut scratch = vec![0; max];
        let _ = rx.try_recv(&mut scratch);
        let deadline = rx.waiter().deadline_after(3);
        let _ = rx.read_timeout(deadline);
    }
    if let Ok(mut tx) = ring.producer(Spin::new()) {
        for i in 0..8u8 {
            let _ = tx.try_send(&[i; 24]);
        }
        if let Ok(mut grant) = tx.try_reserve(max) {
            grant.fill(0xee);
            grant.commit(max);
        }
        let _ = tx.try_send_value(&[7u64; 2]);
        if let Ok(mut value) = tx.try_reserve_value::<[u64; 2]>() {
            *value = [8; 2];
            value.commit();
        }
        let deadline = tx.waiter().deadline_after(3);
        let _ = tx.send_timeout(&[1; 8], deadline);
    }
}

/// One step of the `hostile_peer` target.
#[derive(Debug, Arbitrary)]
enum HostileOp {
    /// An honest operation (its result is not predicted: the peer may have
    /// broken the ring).
    Honest(Op),
    /// The peer writes 8 bytes anywhere in the region.
    Scribble { offset: u16, bytes: [u8; 8] },
    /// The peer writes a word at an 8-aligned offset of the header's hot
    /// fields or of the data area.
    ScribbleWord { slot: u16, value: u64 },
    /// A blocking receive with a short deadline.
    RecvBlocking,
    /// A blocking send with a short deadline.
    SendBlocking(u8),
}

/// Fuzz target `hostile_peer`: a valid ring whose shared bytes are
/// overwritten between honest operations, as a buggy or hostile process
/// would. The honest sides only ever see typed errors or well-formed
/// messages inside the data area, and every call returns.
pub fn hostile_peer(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let capacity = 256;
    let mut buf = AlignedBuf::for_capacity(capacity);
    let len = region_size(capacity);
    let base = buf.bytes().as_mut_ptr();
    // SAFETY: `buf` outlives the ring (dropped at the end of this function,
    // after every handle); the region is accessed through the ring and the
    // raw writes below only, both derived from `base`, on this one thread.
    let ring = unsafe {
        Ring::create(
            core::ptr::NonNull::new(base).unwrap(),
            len,
            Config::new(capacity),
        )
    }
    .unwrap();
    let area = base as usize + HEADER_SIZE..base as usize + len;
    let max = ring.max_message();
    let mut tx = Some(ring.producer(Spin::new()).unwrap());
    let mut rx = Some(ring.consumer(Spin::new()).unwrap());
    let mut scratch = vec![0u8; max + 1];
    for _ in 0..256 {
        let Ok(op) = u.arbitrary::<HostileOp>() else {
            break;
        };
        match op {
            HostileOp::Scribble { offset, bytes } => {
                let at = offset as usize % (len - 8);
                // SAFETY: `at + 8 ≤ len`, inside the region; see above.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(at), 8) };
            }
            HostileOp::ScribbleWord { slot, value } => {
                // The hot header fields first, then the data area.
                const HOT: [usize; 8] = [32, 36, 40, 128, 136, 256, 264, 16];
                let at = match slot as usize % 40 {
                    i if i < HOT.len() => HOT[i],
                    i => HEADER_SIZE + (i - HOT.len()) * 8,
                };
                // SAFETY: `at + 8 ≤ len`; see above.
                unsafe { core::ptr::write_unaligned(base.add(at).cast::<u64>(), value) };
            }
            HostileOp::RecvBlocking => {
                if let Some(rx) = rx.as_mut() {
                    let deadline = rx.waiter().deadline_after(2);
                    if let Ok(msg) = rx.read_timeout(deadline) {
                        check_message(&msg, area.clone(), max);
                    }
                }
            }
            HostileOp::SendBlocking(n) => {
                if let Some(tx) = tx.as_mut() {
                    let deadline = tx.waiter().deadline_after(2);
                    let _ = tx.send_timeout(&scratch[..n as usize % (max + 1)], deadline);
                }
            }
            HostileOp::Honest(op) => match op.clamped(max) {
                Op::TrySend(l) => {
                    if let Some(tx) = tx.as_mut() {
                        let _ = tx.try_send(&scratch[..l.min(max + 1)]);
                    }
                }
                Op::ReserveCommit(l, c) => {
                    if let Some(Ok(mut grant)) = tx.as_mut().map(|tx| tx.try_reserve(l)) {
                        grant.fill(0x5a);
                        grant.commit(c);
                    }
                }
                Op::ReserveAbort(l) => {
                    if let Some(tx) = tx.as_mut() {
                        let _ = tx.try_reserve(l);
                    }
                }
                Op::BatchSend(lens) => {
                    if let Some(tx) = tx.as_mut() {
                        let mut batch = tx.batch();
                        for l in lens {
                            let _ = batch.try_send(&scratch[..l.min(max + 1)]);
                        }
                    }
                }
                Op::TryRecv(l) => {
                    if let Some(rx) = rx.as_mut() {
                        let _ = rx.try_recv(&mut scratch[..l.min(max + 1)]);
                    }
                }
                Op::Read => {
                    if let Some(Ok(msg)) = rx.as_mut().map(|rx| rx.try_read()) {
                        check_message(&msg, area.clone(), max);
                    }
                }
                Op::BatchRecv(n) => {
                    if let Some(rx) = rx.as_mut() {
                        let mut batch = rx.batch();
                        for _ in 0..n {
                            match batch.try_read() {
                                Ok(msg) => check_message(&msg, area.clone(), max),
                                Err(_) => break,
                            }
                        }
                    }
                }
                Op::CloseProducer => tx = None,
                Op::CloseConsumer => rx = None,
            },
        }
    }
    drop((tx, rx));
    drop(buf);
}

/// The `fuzz/` directory of the checkout this crate is built from (see
/// [the crate docs](crate#where-the-corpus-is)).
pub const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz");

/// Runs `run` on every committed input of the fuzz target `target`
/// (`corpus/<target>/` and `regressions/<target>/` of [`FUZZ_DIR`]) and
/// panics, naming the file, if one fails or if the target has no committed
/// corpus. For regression tests on stable Rust.
pub fn replay_committed(target: &str, run: fn(&[u8])) {
    replay_dir(Path::new(FUZZ_DIR), target, run);
}

/// [`replay_committed`] with the fuzz directory (the one that holds
/// `corpus/` and `regressions/`) given explicitly.
pub fn replay_dir(fuzz: &Path, target: &str, run: fn(&[u8])) {
    let mut seeds = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| run(&input));
            assert!(result.is_ok(), "{} fails", path.display());
            seeds += usize::from(dir == "corpus");
        }
    }
    assert!(
        seeds > 0,
        "no committed corpus for {target} in {}",
        fuzz.display()
    );
}
