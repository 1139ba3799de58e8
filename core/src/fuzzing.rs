//! The logic of the `cargo fuzz` targets in `fuzz/`, as plain functions, so
//! that `cargo test` replays the committed corpus and every past crash input
//! on stable Rust (see the replay test at the end), and the property test
//! shares the operation model with the `ring_ops` target.
//!
//! Each entry point takes the fuzzer's bytes and panics on a bug: a result
//! the model does not predict, a message outside the region or longer than
//! the maximum, or a call that does not return.

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use arbitrary::{Arbitrary, Unstructured};

use crate::layout::*;
use crate::{Config, Error, Ring, Spin};

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
        self.queue.push_back((pad, payload));
    }
    /// Consumes the front message (freed at the next release).
    fn pop(&mut self) -> Vec<u8> {
        let (pad, payload) = self.queue.pop_front().unwrap();
        self.consumed += pad + record_size(payload.len() as u64);
        payload
    }
    /// The consumer looked at the front message without taking it: a
    /// padding record before it is consumed (freed at the next release).
    fn peek(&mut self) {
        if let Some((pad, _)) = self.queue.front_mut() {
            self.consumed += core::mem::take(pad);
        }
    }
    /// The consumer published its position.
    fn release(&mut self) {
        self.read = self.consumed;
    }
}

/// Runs `ops` on a fresh ring of `capacity` bytes and checks every result,
/// every message and the shared positions against the [`Model`]. Panics on
/// any difference.
pub fn run_ops(capacity: usize, ops: &[Op]) {
    let mut buf = AlignedBuf::for_capacity(capacity);
    let r = Ring::create_in(buf.bytes(), Config::new(capacity)).unwrap();
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
                if want.is_ok() {
                    m.seq += 1;
                    m.push(msg);
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
                    }
                    Err(e) => assert_eq!(Err(e), want, "{op:?}"),
                }
            }
            Op::ReserveAbort(len) => {
                let Some(tx) = tx.as_mut() else { continue };
                let want = expect_send(&m, rx_alive, len);
                assert_eq!(tx.try_reserve(len).map(drop), want, "{op:?}");
            }
            Op::BatchSend(lens) => {
                let Some(tx) = tx.as_mut() else { continue };
                let mut batch = tx.batch();
                let mut pending = Vec::new();
                for len in lens {
                    let msg = payload(m.seq, len);
                    let want = expect_send(&m, rx_alive, len);
                    assert_eq!(batch.try_send(&msg), want, "{op:?}");
                    if want.is_ok() {
                        m.seq += 1;
                        pending.push(m.queue.len());
                        m.push(msg);
                    }
                }
                assert_eq!(batch.publish(), pending.len());
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
                    Err(e) => assert_eq!(rx.try_recv(&mut out), Err(e)),
                }
            }
            Op::Read => {
                let Some(rx) = rx.as_mut() else { continue };
                match expect_recv(&m, tx.is_some()) {
                    Ok(()) => {
                        assert_eq!(&*rx.try_read().unwrap(), &m.pop()[..]);
                        m.release();
                    }
                    Err(e) => assert_eq!(rx.try_read().err(), Some(e)),
                }
            }
            Op::BatchRecv(n) => {
                let Some(rx) = rx.as_mut() else { continue };
                let mut batch = rx.batch();
                for _ in 0..n {
                    match expect_recv(&m, tx.is_some()) {
                        Ok(()) => assert_eq!(&*batch.try_read().unwrap(), &m.pop()[..]),
                        Err(e) => assert_eq!(batch.try_read().err(), Some(e)),
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
        use crate::sync::Ordering::Relaxed;
        assert_eq!(r.header().producer.position.load(Relaxed), m.write);
        if rx.is_some() {
            assert_eq!(r.header().consumer.position.load(Relaxed), m.read);
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
/// region, handed to attach and then to a consumer and a producer. Only
/// typed errors or messages inside the region may come out, and every call
/// returns.
pub fn attach(data: &[u8]) {
    let len = data.len().min(region_size(4096));
    let mut buf = AlignedBuf::new(len);
    let region = &mut buf.bytes()[..len];
    region.copy_from_slice(&data[..len]);
    let base = region.as_ptr() as usize;
    let Ok(ring) = Ring::attach_in(region) else {
        return;
    };
    let area = base + HEADER_SIZE..base + HEADER_SIZE + ring.capacity();
    let max = ring.max_message();
    if let Ok(mut rx) = ring.consumer(Spin::new()) {
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

/// Runs `run` on every committed input of the fuzz target `target`
/// (`fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` of this
/// checkout) and panics, naming the file, if one fails or if the target has
/// no committed corpus. For regression tests on stable Rust.
pub fn replay_committed(target: &str, run: fn(&[u8])) {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
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
    assert!(seeds > 0, "no committed corpus for {target}");
}

#[cfg(test)]
mod replay {
    //! Replays the committed corpus and the crash inputs of every target.
    use std::format;
    use std::path::Path;
    use std::vec::Vec;

    use super::replay_committed as replay;

    /// Writes the seed corpus (real ring images for `attach`, short op
    /// sequences for the others). Run with
    /// `SHMLANE_WRITE_SEEDS=1 cargo test -p shmlane-core --lib write_seed_corpus -- --ignored`.
    #[test]
    #[ignore = "tooling: writes fuzz/corpus"]
    fn write_seed_corpus() {
        use crate::{Config, Ring, Spin};
        if std::env::var_os("SHMLANE_WRITE_SEEDS").is_none() {
            return;
        }
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let write = |target: &str, name: &str, bytes: &[u8]| {
            let dir = corpus.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        // attach: images of live rings in several states.
        let image = |capacity: usize, sends: &[usize], reads: usize, close: bool| {
            let mut buf = super::AlignedBuf::for_capacity(capacity);
            let len = super::region_size(capacity);
            {
                let ring = Ring::create_in(&mut buf.bytes()[..len], Config::new(capacity)).unwrap();
                let mut tx = ring.producer(Spin::new()).unwrap();
                let mut rx = ring.consumer(Spin::new()).unwrap();
                for (i, &n) in sends.iter().enumerate() {
                    tx.try_send(&super::payload(i as u64, n)).unwrap();
                    if i < reads {
                        rx.try_read().unwrap().release();
                    }
                }
                if close {
                    drop(tx);
                } else {
                    std::mem::forget(tx);
                }
                std::mem::forget(rx);
            }
            buf.bytes()[..len].to_vec()
        };
        write("attach", "fresh-256", &image(256, &[], 0, false));
        write(
            "attach",
            "three-messages-256",
            &image(256, &[0, 7, 120], 0, false),
        );
        write(
            "attach",
            "wrapped-padding-64",
            &image(64, &[8, 16, 24, 0], 2, false),
        );
        write(
            "attach",
            "closed-producer-128",
            &image(128, &[1, 56], 0, true),
        );
        write("attach", "full-64", &image(64, &[24, 24], 0, false));
        // ring_ops and hostile_peer: any bytes decode into operations.
        for (i, seed) in [&[0u8; 64][..], &[0x55; 96], &(0..=255).collect::<Vec<u8>>()]
            .iter()
            .enumerate()
        {
            write("ring_ops", &format!("seed-{i}"), seed);
            write("hostile_peer", &format!("seed-{i}"), seed);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads files")]
    fn replay_ring_ops() {
        replay("ring_ops", super::ring_ops);
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads files")]
    fn replay_attach() {
        replay("attach", super::attach);
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads files")]
    fn replay_hostile_peer() {
        replay("hostile_peer", super::hostile_peer);
    }
}
