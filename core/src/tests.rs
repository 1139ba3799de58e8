//! Unit and stress tests of the ring (run natively and under Miri; the
//! property test against a model is in `tests/model.rs`, the loom models are
//! in `tests/loom.rs`).

use std::vec;
use std::vec::Vec;

use crate::layout::*;
use crate::{Config, Consumer, Corruption, Error, Producer, Ring, Role, Spin};

/// A zeroed heap region aligned for a ring header. (`shmlane-fuzz-support`
/// has the same as `AlignedBuf`; a unit test cannot use that crate: it links
/// another build of this one, whose types differ from `crate::*`.)
struct Buf(Vec<Block>);

#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Block([u8; 128]);

impl Buf {
    /// At least `bytes` zeroed bytes.
    fn new(bytes: usize) -> Self {
        Buf(vec![Block([0; 128]); bytes.div_ceil(128).max(1)])
    }

    /// Room for a ring of `capacity` bytes.
    fn for_capacity(capacity: usize) -> Self {
        Self::new(region_size(capacity))
    }

    /// All the bytes.
    fn bytes(&mut self) -> &mut [u8] {
        let len = self.0.len() * 128;
        // SAFETY: `Block` is plain bytes with no padding; the vector holds
        // `len` contiguous, initialised bytes, borrowed mutably here.
        unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), len) }
    }
}

/// Deterministic payload for message `seq` of `len` bytes.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31) as usize ^ i.wrapping_mul(7)) as u8)
        .collect()
}

fn ring(buf: &mut Buf, capacity: usize) -> Ring<'_> {
    Ring::create_in(buf.bytes(), Config::new(capacity)).unwrap()
}

fn pair(ring: &Ring<'_>) -> (Producer<'static, Spin>, Consumer<'static, Spin>) {
    // SAFETY: test only; the rings below never outlive their buffers, the
    // lifetime is widened so that helpers can return both sides.
    let ring: Ring<'static> = unsafe { core::mem::transmute(*ring) };
    (
        ring.producer(Spin::new()).unwrap(),
        ring.consumer(Spin::new()).unwrap(),
    )
}

#[test]
fn sizes_zero_one_and_max_round_trip() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let (mut tx, mut rx) = pair(&r);
    let max = tx.max_message();
    assert_eq!(max, 120);
    for (seq, len) in [0, 1, max, 7, 8, 9, 0, max].into_iter().enumerate() {
        tx.try_send(&payload(seq as u64, len)).unwrap();
        let got = rx.try_read().unwrap();
        assert_eq!(&*got, &payload(seq as u64, len)[..], "len {len}");
    }
    assert_eq!(rx.try_read().err(), Some(Error::Empty));
}

#[test]
fn full_and_empty_edges_are_exact() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    // 8 records of 8 bytes (empty messages) fill 64 bytes exactly.
    for _ in 0..8 {
        tx.try_send(&[]).unwrap();
    }
    assert_eq!(tx.try_send(&[]), Err(Error::Full));
    // Freeing one record makes room for exactly one more.
    assert_eq!(rx.try_recv(&mut []), Ok(0));
    tx.try_send(&[]).unwrap();
    assert_eq!(tx.try_send(&[]), Err(Error::Full));
    for _ in 0..8 {
        assert_eq!(rx.try_recv(&mut []), Ok(0));
    }
    assert_eq!(rx.try_recv(&mut []), Err(Error::Empty));
}

#[test]
fn wrap_inserts_padding_and_keeps_messages_contiguous() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    // 40 bytes used (16 + 24), then a 24-byte record does not fit the
    // 24-byte tail... it does: use a 32-byte record (24-byte payload).
    tx.try_send(&payload(1, 8)).unwrap(); // 16 bytes, ends at 16
    tx.try_send(&payload(2, 16)).unwrap(); // 24 bytes, ends at 40
    assert_eq!(&*rx.try_read().unwrap(), &payload(1, 8)[..]);
    assert_eq!(&*rx.try_read().unwrap(), &payload(2, 16)[..]);
    // Tail is 24 bytes; a 32-byte record needs padding 24 + 32 = 56 ≤ 64.
    tx.try_send(&payload(3, 24)).unwrap();
    assert_eq!(tx.write, 40 + 24 + 32);
    let h = r.header();
    assert_eq!(r.load_record(40), ((KIND_PADDING as u64) << 32) | 24);
    assert_eq!(h.producer.position.load(crate::sync::Ordering::Relaxed), 96);
    let got = rx.try_read().unwrap();
    assert_eq!(&*got, &payload(3, 24)[..]);
    // The payload starts right after the record header at offset 0.
    assert_eq!(got.as_ptr(), r.data_at(8).cast_const());
}

#[test]
fn message_larger_than_max_is_refused_and_nothing_is_sent() {
    let mut buf = Buf::for_capacity(128);
    let r = ring(&mut buf, 128);
    let (mut tx, mut rx) = pair(&r);
    let max = tx.max_message();
    assert_eq!(
        tx.try_send(&vec![0; max + 1]),
        Err(Error::TooLarge { len: max + 1, max })
    );
    assert!(matches!(
        tx.try_reserve(usize::MAX),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        tx.send(&vec![0; max + 1]),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(rx.try_recv(&mut [0; 256]), Err(Error::Empty));
}

#[test]
fn small_buffer_leaves_the_message_in_the_ring() {
    let mut buf = Buf::for_capacity(128);
    let r = ring(&mut buf, 128);
    let (mut tx, mut rx) = pair(&r);
    tx.try_send(b"abcdef").unwrap();
    let mut small = [0; 5];
    assert_eq!(
        rx.try_recv(&mut small),
        Err(Error::BufferTooSmall {
            needed: 6,
            available: 5
        })
    );
    let mut big = [0; 6];
    assert_eq!(rx.try_recv(&mut big), Ok(6));
    assert_eq!(&big, b"abcdef");
}

#[test]
fn grant_commit_clamps_and_drop_aborts() {
    let mut buf = Buf::for_capacity(128);
    let r = ring(&mut buf, 128);
    let (mut tx, mut rx) = pair(&r);
    {
        let mut g = tx.try_reserve(10).unwrap();
        g.fill(9);
        // dropped: aborted
    }
    assert_eq!(rx.try_read().err(), Some(Error::Empty));
    let mut g = tx.try_reserve(4).unwrap();
    assert_eq!(g.len(), 4);
    g.copy_from_slice(b"wxyz");
    g.commit(100); // clamped to 4
    assert_eq!(&*rx.try_read().unwrap(), b"wxyz");
    let g = tx.try_reserve(4).unwrap();
    g.commit(0);
    assert_eq!(rx.try_read().unwrap().len(), 0);
}

#[test]
fn read_grant_holds_room_until_dropped() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    tx.try_send(&[1; 24]).unwrap();
    tx.try_send(&[2; 24]).unwrap();
    let g = rx.try_read().unwrap();
    assert_eq!(g[0], 1);
    // The grant is still out: its room is not free.
    assert_eq!(tx.try_send(&[3; 24]), Err(Error::Full));
    drop(g);
    tx.try_send(&[3; 24]).unwrap();
}

#[test]
fn send_batch_publishes_once_at_the_end() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let (mut tx, mut rx) = pair(&r);
    let mut batch = tx.batch();
    assert!(batch.is_empty());
    batch.try_send(b"a").unwrap();
    let mut g = batch.try_reserve(2).unwrap();
    g.copy_from_slice(b"bc");
    g.commit(2);
    assert_eq!(batch.len(), 2);
    assert_eq!(rx.try_read().err(), Some(Error::Empty));
    assert_eq!(
        r.header()
            .producer
            .position
            .load(crate::sync::Ordering::Relaxed),
        0
    );
    assert_eq!(batch.publish(), 2);
    assert_eq!(&*rx.try_read().unwrap(), b"a");
    assert_eq!(&*rx.try_read().unwrap(), b"bc");
    // Dropping a batch publishes too.
    {
        let mut batch = tx.batch();
        batch.try_send(b"d").unwrap();
    }
    assert_eq!(&*rx.try_read().unwrap(), b"d");
}

#[test]
fn recv_batch_frees_room_once_at_the_end() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    for i in 0..4u8 {
        tx.try_send(&[i; 8]).unwrap();
    }
    assert_eq!(tx.try_send(&[9; 8]), Err(Error::Full));
    let mut batch = rx.batch();
    assert_eq!(batch.try_read().unwrap()[0], 0);
    let mut one = [0; 8];
    assert_eq!(batch.try_recv(&mut one), Ok(8));
    assert_eq!(one, [1; 8]);
    // Still full: nothing released yet.
    assert_eq!(tx.try_send(&[9; 8]), Err(Error::Full));
    batch.release();
    tx.try_send(&[9; 8]).unwrap();
    tx.try_send(&[9; 8]).unwrap();
    assert_eq!(tx.try_send(&[9; 8]), Err(Error::Full));
}

#[test]
fn a_batch_write_grant_waits_for_the_batch_and_a_plain_one_does_not() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let (mut tx, mut rx) = pair(&r);
    let mut batch = tx.batch();
    batch.try_reserve(3).unwrap().commit(3);
    assert_eq!(rx.try_read().err(), Some(Error::Empty));
    drop(batch);
    assert_eq!(rx.try_read().unwrap().len(), 3);
    tx.try_reserve(2).unwrap().commit(2);
    assert_eq!(rx.try_read().unwrap().len(), 2);
}

#[test]
fn releasing_a_read_grant_frees_its_room_at_once() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    tx.try_send(&[1; 24]).unwrap();
    tx.try_send(&[2; 24]).unwrap();
    rx.try_read().unwrap().release();
    tx.try_send(&[3; 24]).unwrap();
    // A batch's read grant only consumes: the room waits for the batch.
    let mut batch = rx.batch();
    assert_eq!(batch.try_read().unwrap()[0], 2);
    assert_eq!(tx.try_send(&[4; 24]), Err(Error::Full));
    batch.release();
    tx.try_send(&[4; 24]).unwrap();
    assert_eq!(rx.try_read().unwrap()[0], 3);
}

#[test]
fn peek_looks_without_consuming_or_freeing() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    assert_eq!(rx.peek(), Err(Error::Empty));
    tx.try_send(&[1; 24]).unwrap();
    tx.try_send(&[2; 24]).unwrap();
    assert_eq!(rx.peek().unwrap(), &[1; 24]);
    assert_eq!(rx.peek().unwrap(), &[1; 24]);
    assert_eq!(tx.try_send(&[3; 24]), Err(Error::Full));
    assert_eq!(rx.try_recv(&mut [0; 24]), Ok(24));
    assert_eq!(rx.peek().unwrap(), &[2; 24]);
    // Across the wrap: peek skips the padding like a read does.
    tx.try_send(&[3; 24]).unwrap();
    assert_eq!(rx.try_read().unwrap()[0], 2);
    assert_eq!(rx.peek().unwrap(), &[3; 24]);
    tx.close();
    assert_eq!(rx.try_read().unwrap()[0], 3);
    assert_eq!(rx.peek(), Err(Error::Disconnected));
}

#[test]
fn len_is_empty_and_free_bytes_follow_both_sides() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let (mut tx, mut rx) = pair(&r);
    assert_eq!((tx.len(), rx.len()), (0, 0));
    assert!(tx.is_empty() && rx.is_empty());
    assert_eq!((tx.free_bytes(), rx.free_bytes()), (256, 256));
    tx.try_send(b"hello").unwrap(); // 8 header + 8 payload
    tx.try_send(&[0; 16]).unwrap(); // 8 + 16
    assert_eq!((tx.len(), rx.len()), (40, 40));
    assert_eq!((tx.free_bytes(), rx.free_bytes()), (216, 216));
    assert!(!tx.is_empty() && !rx.is_empty());
    let _ = rx.peek().unwrap();
    assert_eq!(rx.len(), 40);
    drop(rx.try_read().unwrap());
    assert_eq!((tx.len(), rx.len()), (24, 24));
    // A batch holds the room until it ends.
    let mut batch = rx.batch();
    drop(batch.try_read().unwrap());
    batch.release();
    assert!(tx.is_empty() && rx.is_empty());
}

#[test]
fn a_corrupt_position_counts_as_full_and_the_next_call_says_why() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let (mut tx, mut rx) = pair(&r);
    tx.try_send(b"x").unwrap();
    let h = r.header();
    h.consumer
        .position
        .store(12345, crate::sync::Ordering::Relaxed);
    h.producer.position.store(3, crate::sync::Ordering::Relaxed);
    assert_eq!((tx.len(), tx.free_bytes()), (256, 0));
    assert_eq!((rx.len(), rx.free_bytes()), (256, 0));
    assert!(!rx.is_empty());
    // The producer trusts its cached room until it runs out; then it looks
    // at the position and reports it (never `Full`).
    let err = (0..32).find_map(|_| tx.try_send(b"y").err());
    assert_eq!(err, Some(Error::Corrupt(Corruption::ReadPosition)));
    assert_eq!(tx.len(), 256);
    // (The producer's sends stored good positions again.)
    h.producer.position.store(3, crate::sync::Ordering::Relaxed);
    assert_eq!(rx.len(), 256);
    // The consumer follows the record headers, which are intact: it reads
    // what was sent, and finds the position bad at the end of the ring.
    let sent = 1 + (0..32).take_while(|_| rx.try_read().is_ok()).count();
    assert!(sent >= 2, "{sent}");
    drop(tx);
    assert_eq!(
        rx.try_read().err(),
        Some(Error::Corrupt(Corruption::WritePosition))
    );
}

/// A wait that counts how often it is dropped.
struct DropCounted<'c>(Spin, &'c core::cell::Cell<u32>);

impl Drop for DropCounted<'_> {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
    }
}

impl crate::Wait for DropCounted<'_> {
    type Deadline = u64;
    fn wait(&self, word: &crate::AtomicU32, seen: u32, d: Option<u64>) -> Result<(), Error> {
        self.0.wait(word, seen, d)
    }
    fn wake(&self, word: &crate::AtomicU32) {
        self.0.wake(word)
    }
    fn sleeps(&self) -> bool {
        false
    }
    fn wakes(&self) -> bool {
        false
    }
}

#[test]
fn close_closes_in_its_body_and_drops_the_wait_once() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let drops = core::cell::Cell::new(0);
    let mut tx = r.producer(DropCounted(Spin::new(), &drops)).unwrap();
    let mut rx = r.consumer(DropCounted(Spin::new(), &drops)).unwrap();
    tx.try_send(b"last").unwrap();
    tx.close();
    assert_eq!(drops.get(), 1);
    assert_eq!(r.role_state(Role::Producer), Ok(crate::RoleState::Closed));
    assert_eq!(&*rx.try_read().unwrap(), b"last");
    assert_eq!(rx.try_read().err(), Some(Error::Disconnected));
    rx.close();
    assert_eq!(drops.get(), 2);
    assert_eq!(r.role_state(Role::Consumer), Ok(crate::RoleState::Closed));
}

#[test]
fn create_writes_every_header_byte_padding_included() {
    let mut buf = Buf::for_capacity(256);
    buf.bytes().fill(0xAA);
    let _ = ring(&mut buf, 256);
    let bytes = buf.bytes();
    // What follows each line's fields, to the end of its 128 bytes.
    for (line, used) in [(0, 56), (1, 16), (2, 16)] {
        let pad = &bytes[line * LINE_SIZE + used..(line + 1) * LINE_SIZE];
        assert!(pad.iter().all(|&b| b == 0), "line {line}: {pad:?}");
    }
    // The data area is the caller's: create does not touch it.
    assert!(
        bytes[HEADER_SIZE..HEADER_SIZE + 256]
            .iter()
            .all(|&b| b == 0xAA)
    );
}

#[test]
fn each_role_is_claimed_once() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let tx = r.producer(Spin::new()).unwrap();
    assert_eq!(
        r.producer(Spin::new()).err(),
        Some(Error::RoleTaken(Role::Producer))
    );
    let rx = r.consumer(Spin::new()).unwrap();
    assert_eq!(
        r.consumer(Spin::new()).err(),
        Some(Error::RoleTaken(Role::Consumer))
    );
    drop((tx, rx));
    // Closed roles stay taken.
    assert_eq!(
        r.producer(Spin::new()).err(),
        Some(Error::RoleTaken(Role::Producer))
    );
    assert_eq!(
        r.consumer(Spin::new()).err(),
        Some(Error::RoleTaken(Role::Consumer))
    );
}

#[test]
fn consumer_drains_then_sees_disconnected() {
    let mut buf = Buf::for_capacity(128);
    let r = ring(&mut buf, 128);
    let (mut tx, mut rx) = pair(&r);
    tx.try_send(b"1").unwrap();
    let mut batch = tx.batch();
    batch.try_send(b"2").unwrap();
    drop(batch);
    let mut batch = tx.batch();
    batch.try_send(b"3").unwrap();
    core::mem::forget(batch); // staged, published by close
    tx.close();
    for want in [b"1", b"2", b"3"] {
        assert_eq!(&*rx.read().unwrap(), want);
    }
    assert_eq!(rx.try_read().err(), Some(Error::Disconnected));
    assert_eq!(rx.read().err(), Some(Error::Disconnected));
}

#[test]
fn producer_sees_disconnected_after_consumer_closes() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, rx) = pair(&r);
    tx.try_send(b"x").unwrap();
    assert!(!tx.is_disconnected());
    rx.close();
    assert!(tx.is_disconnected());
    assert_eq!(tx.try_send(b"y"), Err(Error::Disconnected));
    assert_eq!(tx.try_reserve(1).err(), Some(Error::Disconnected));
    assert_eq!(tx.send(b"y"), Err(Error::Disconnected));
}

#[test]
fn blocking_calls_time_out() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    let deadline = rx.waiter().deadline_after(3);
    assert_eq!(rx.read_timeout(deadline).err(), Some(Error::TimedOut));
    tx.try_send(&[0; 24]).unwrap();
    tx.try_send(&[0; 24]).unwrap();
    let deadline = tx.waiter().deadline_after(3);
    assert_eq!(tx.send_timeout(&[0; 24], deadline), Err(Error::TimedOut));
    // Nothing was lost or half-sent.
    assert_eq!(rx.try_recv(&mut [0; 24]), Ok(24));
    assert_eq!(rx.try_recv(&mut [0; 24]), Ok(24));
    assert_eq!(rx.try_recv(&mut [0; 24]), Err(Error::Empty));
}

#[test]
fn blocking_wakes_a_sleeping_peer() {
    // Two threads ping-pong through two rings with blocking calls only.
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    let (mut b1, mut b2) = (Buf::for_capacity(64), Buf::for_capacity(64));
    let (r1, r2) = (ring(&mut b1, 64), ring(&mut b2, 64));
    let (mut tx1, mut rx1) = pair(&r1);
    let (mut tx2, mut rx2) = pair(&r2);
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Ok(msg) = rx1.read() {
                let v = u64::from_le_bytes(msg[..].try_into().unwrap());
                drop(msg);
                tx2.send(&(v + 1).to_le_bytes()).unwrap();
            }
        });
        let mut v = 0u64;
        for _ in 0..rounds {
            tx1.send(&v.to_le_bytes()).unwrap();
            let msg = rx2.read().unwrap();
            assert_eq!(u64::from_le_bytes(msg[..].try_into().unwrap()), v + 1);
            v += 2;
        }
        drop(tx1);
    });
}

// ---------------------------------------------------------------------------
// Create / attach validation

#[test]
fn create_refuses_bad_configs_and_regions() {
    let mut buf = Buf::new(region_size(4096) + 256);
    for capacity in [0, 1, 32, 100, 3000, MAX_CAPACITY * 2] {
        assert_eq!(
            Ring::create_in(buf.bytes(), Config::new(capacity)).err(),
            Some(Error::InvalidCapacity { capacity })
        );
    }
    assert_eq!(
        Ring::create_in(buf.bytes(), Config::new(256).max_message(121)).err(),
        Some(Error::InvalidMaxMessage {
            max_message: 121,
            limit: 120
        })
    );
    assert!(Ring::create_in(buf.bytes(), Config::new(256).max_message(120)).is_ok());
    assert_eq!(
        Ring::create_in(&mut buf.bytes()[..region_size(4096) - 1], Config::new(4096)).err(),
        Some(Error::RegionTooSmall {
            needed: region_size(4096),
            available: region_size(4096) - 1
        })
    );
    assert_eq!(
        Ring::create_in(&mut buf.bytes()[8..], Config::new(64)).err(),
        Some(Error::Misaligned {
            required: REGION_ALIGN
        })
    );
    assert_eq!(
        Ring::create_in(&mut buf.bytes()[..10], Config::new(64)).err(),
        Some(Error::RegionTooSmall {
            needed: region_size(64),
            available: 10
        })
    );
}

#[test]
fn attach_accepts_a_fresh_ring_and_keeps_its_state() {
    let mut buf = Buf::for_capacity(256);
    {
        let r = Ring::create_in(buf.bytes(), Config::new(256).max_message(40)).unwrap();
        let mut tx = r.producer(Spin::new()).unwrap();
        tx.try_send(b"kept").unwrap();
        core::mem::forget(tx); // still active, as if in another process
    }
    let r = Ring::attach_in(buf.bytes()).unwrap();
    assert_eq!((r.capacity(), r.max_message()), (256, 40));
    assert_eq!(
        r.producer(Spin::new()).err(),
        Some(Error::RoleTaken(Role::Producer))
    );
    let mut rx = r.consumer(Spin::new()).unwrap();
    assert_eq!(&*rx.try_read().unwrap(), b"kept");
}

/// Creates a ring, applies `scribble` to its header, and attaches.
fn attach_after(scribble: impl FnOnce(&Header)) -> Result<(), Error> {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    scribble(r.header());
    Ring::attach_in(buf.bytes()).map(drop)
}

#[test]
fn attach_refuses_every_bad_header_field() {
    use crate::sync::Ordering::Relaxed;
    assert_eq!(attach_after(|_| ()), Ok(()));
    assert_eq!(
        attach_after(|h| h.identity.init.store(0, Relaxed)),
        Err(Error::Uninitialised)
    );
    assert_eq!(
        attach_after(|h| {
            h.identity.init.store(0, Relaxed);
            h.identity.magic.store(0x1234, Relaxed)
        }),
        Err(Error::BadMagic)
    );
    assert_eq!(
        attach_after(|h| h.identity.magic.store(!MAGIC, Relaxed)),
        Err(Error::BadMagic)
    );
    assert_eq!(
        attach_after(|h| h.identity.version.store(7, Relaxed)),
        Err(Error::VersionMismatch {
            found: 7,
            expected: LAYOUT_VERSION
        })
    );
    assert_eq!(
        attach_after(|h| h.identity.header_size.store(256, Relaxed)),
        Err(Error::VersionMismatch {
            found: LAYOUT_VERSION,
            expected: LAYOUT_VERSION
        })
    );
    for capacity in [0, 3, 32, 255, 1 << 41, u64::MAX] {
        assert_eq!(
            attach_after(|h| h.identity.capacity.store(capacity, Relaxed)),
            Err(Error::Corrupt(Corruption::Capacity)),
            "capacity {capacity}"
        );
    }
    // A larger capacity than the region holds.
    assert!(matches!(
        attach_after(|h| h.identity.capacity.store(1 << 20, Relaxed)),
        Err(Error::RegionTooSmall { .. })
    ));
    assert_eq!(
        attach_after(|h| h.identity.max_message.store(121, Relaxed)),
        Err(Error::Corrupt(Corruption::MaxMessage))
    );
    for state in [3, u32::MAX] {
        assert_eq!(
            attach_after(|h| h.identity.producer_state.store(state, Relaxed)),
            Err(Error::Corrupt(Corruption::State))
        );
        assert_eq!(
            attach_after(|h| h.identity.consumer_state.store(state, Relaxed)),
            Err(Error::Corrupt(Corruption::State))
        );
    }
    assert_eq!(
        attach_after(|h| h.consumer.position.store(4, Relaxed)),
        Err(Error::Corrupt(Corruption::ReadPosition))
    );
    for write in [4, 264, u64::MAX - 7] {
        assert_eq!(
            attach_after(|h| h.producer.position.store(write, Relaxed)),
            Err(Error::Corrupt(Corruption::WritePosition)),
            "write {write}"
        );
    }
    // Read ahead of write is as bad as write too far ahead.
    assert_eq!(
        attach_after(|h| h.consumer.position.store(8, Relaxed)),
        Err(Error::Corrupt(Corruption::WritePosition))
    );
}

#[test]
fn attach_refuses_small_and_misaligned_regions() {
    let mut buf = Buf::for_capacity(256);
    ring(&mut buf, 256);
    assert!(matches!(
        Ring::attach_in(&mut buf.bytes()[..region_size(256) - 8]),
        Err(Error::RegionTooSmall { .. })
    ));
    assert!(matches!(
        Ring::attach_in(&mut buf.bytes()[..100]),
        Err(Error::RegionTooSmall { .. })
    ));
    assert_eq!(
        Ring::attach_in(&mut buf.bytes()[64..]).err(),
        Some(Error::Misaligned {
            required: REGION_ALIGN
        })
    );
}

// ---------------------------------------------------------------------------
// Hostile peer: values scribbled into a live ring

/// A live ring with two messages ("first" at 0, "second" at 16) published.
fn live(buf: &mut Buf) -> (Ring<'_>, Producer<'static, Spin>, Consumer<'static, Spin>) {
    let r = ring(buf, 128);
    let (mut tx, rx) = pair(&r);
    tx.try_send(b"first").unwrap();
    tx.try_send(b"second").unwrap();
    (r, tx, rx)
}

#[test]
fn a_bad_write_position_is_found_at_the_end_of_a_closed_ring() {
    use crate::sync::Ordering::Relaxed;
    for write in [33, 128 + 8, u64::MAX, 0u64.wrapping_sub(8), 0] {
        let mut buf = Buf::for_capacity(128);
        let (r, tx, mut rx) = live(&mut buf);
        r.header().producer.position.store(write, Relaxed);
        // The consumer follows the headers: the messages still arrive, and
        // an open producer's position is never needed.
        assert_eq!(&*rx.try_read().unwrap(), b"first");
        assert_eq!(&*rx.try_read().unwrap(), b"second");
        assert_eq!(rx.try_read().err(), Some(Error::Empty));
        // Once it closed, its last position must be where the records end.
        drop(tx);
        let want = Some(Error::Corrupt(Corruption::WritePosition));
        assert_eq!(rx.try_read().err(), want, "{write}");
        assert_eq!(rx.read().err(), want);
    }
}

#[test]
fn consumer_refuses_bad_record_headers() {
    let word = |kind: u32, len: u64| ((kind as u64) << 32) | len;
    let corrupt = |what| Error::Corrupt(what);
    let cases = [
        // (offset, record word, expected)
        (0, u64::MAX, corrupt(Corruption::RecordKind)),
        (0, word(KIND_MESSAGE, 57), corrupt(Corruption::RecordLength)), // > max 56
        (
            0,
            word(KIND_MESSAGE, 0xffff_ffff),
            corrupt(Corruption::RecordLength),
        ),
        // A record of lap 1 at position 0, lap 0: neither now nor a lap ago.
        (
            0,
            word(KIND_MESSAGE | 0x100, 5),
            corrupt(Corruption::RecordKind),
        ),
        (0, word(KIND_PADDING, 128), corrupt(Corruption::Padding)), // padding at offset 0
        (16, word(KIND_PADDING, 104), corrupt(Corruption::Padding)), // not to the end
        // What the consumer takes for "nothing yet": 0, or a header of the
        // lap before (position 0 - 128 is lap 0xff).
        (0, 0, Error::Empty),
        (0, word(KIND_MESSAGE | 0xff00, 5), Error::Empty),
        (16, word(KIND_PADDING | 0xff00, 112), Error::Empty),
    ];
    for (offset, word, want) in cases {
        let mut buf = Buf::for_capacity(128);
        let (r, _tx, mut rx) = live(&mut buf);
        if offset == 16 {
            assert_eq!(&*rx.try_read().unwrap(), b"first");
        }
        r.store_record(offset, (word >> 32) as u32, word & 0xffff_ffff);
        assert_eq!(rx.try_read().err(), Some(want), "{word:#x}");
        assert_eq!(rx.try_recv(&mut [0; 64]), Err(want));
    }
}

#[test]
fn padding_of_the_wrong_length_is_corrupt() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    tx.try_send(&[1; 16]).unwrap(); // 24 bytes
    assert_eq!(rx.try_recv(&mut [0; 16]), Ok(16));
    tx.try_send(&[2; 24]).unwrap(); // 32 bytes: padding 40 at 24? no, fits: 24..56
    assert_eq!(rx.try_recv(&mut [0; 24]), Ok(24));
    tx.try_send(&[3; 24]).unwrap(); // tail 8 < 32: padding 8 at 56, record at 0
    r.store_record(56, KIND_PADDING, 16);
    assert_eq!(
        rx.try_read().err(),
        Some(Error::Corrupt(Corruption::Padding))
    );
    // Repairing the record does not make the consumer trust the ring again.
    r.store_record(56, KIND_PADDING, 8);
    assert_eq!(
        rx.try_read().err(),
        Some(Error::Corrupt(Corruption::Padding))
    );
}

#[test]
fn corruption_is_sticky_on_both_sides() {
    use crate::sync::Ordering::Relaxed;
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, _rx) = pair(&r);
    tx.try_send(&[1; 24]).unwrap();
    tx.try_send(&[2; 24]).unwrap();
    // A bad read position: the producer sees it when the ring looks full.
    r.header().consumer.position.store(4, Relaxed);
    let bad = Err(Error::Corrupt(Corruption::ReadPosition));
    assert_eq!(tx.try_send(&[0; 8]), bad);
    // Put right again: the producer still refuses, on every path.
    r.header().consumer.position.store(0, Relaxed);
    assert_eq!(tx.try_send(&[0; 8]), bad);
    assert_eq!(tx.try_reserve(0).map(drop), bad);
    assert_eq!(tx.send(&[0; 8]), bad);
    assert_eq!(tx.batch().try_send(&[0; 8]), bad);
    // A bad record kind: the consumer refuses it and everything after.
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    tx.try_send(b"first").unwrap();
    tx.try_send(b"second").unwrap();
    r.store_record(0, 0x1234_5678, 5);
    let bad = Err(Error::Corrupt(Corruption::RecordKind));
    assert_eq!(rx.try_read().map(|m| m.len()), bad);
    r.store_record(0, KIND_MESSAGE, 5);
    assert_eq!(rx.try_read().map(|m| m.len()), bad);
    assert_eq!(rx.try_recv(&mut [0; 16]), bad);
    assert_eq!(rx.read().map(|m| m.len()), bad);
    assert_eq!(rx.batch().try_read().map(|m| m.len()), bad);
}

#[test]
fn producer_refuses_a_bad_read_position() {
    use crate::sync::Ordering::Relaxed;
    for read in [4, 72, 200, u64::MAX - 7] {
        let mut buf = Buf::for_capacity(64);
        let r = ring(&mut buf, 64);
        let (mut tx, _rx) = pair(&r);
        tx.try_send(&[0; 24]).unwrap();
        tx.try_send(&[0; 24]).unwrap();
        r.header().consumer.position.store(read, Relaxed);
        // The producer reloads the read position only when it looks full.
        assert_eq!(
            tx.try_send(&[0; 8]),
            Err(Error::Corrupt(Corruption::ReadPosition)),
            "{read}"
        );
        assert_eq!(
            tx.send(&[0; 8]),
            Err(Error::Corrupt(Corruption::ReadPosition))
        );
    }
}

#[test]
fn garbage_state_words_are_corrupt_not_closed() {
    use crate::sync::Ordering::Relaxed;
    let mut buf = Buf::for_capacity(128);
    let (r, mut tx, mut rx) = live(&mut buf);
    r.header().identity.consumer_state.store(77, Relaxed);
    assert_eq!(tx.try_send(b"x"), Err(Error::Corrupt(Corruption::State)));
    assert!(!tx.is_disconnected());
    rx.try_recv(&mut [0; 8]).unwrap();
    rx.try_recv(&mut [0; 8]).unwrap();
    r.header().identity.producer_state.store(77, Relaxed);
    assert_eq!(rx.try_read().err(), Some(Error::Corrupt(Corruption::State)));
    assert!(matches!(
        r.producer(Spin::new()),
        Err(Error::Corrupt(Corruption::State))
    ));
}

#[test]
fn scribbling_the_wait_words_does_not_hang_or_break_the_ring() {
    use crate::sync::Ordering::Relaxed;
    let mut buf = Buf::for_capacity(128);
    let (r, mut tx, mut rx) = live(&mut buf);
    r.header().producer.peer_wait.store(u32::MAX, Relaxed);
    r.header().consumer.peer_wait.store(u32::MAX, Relaxed);
    tx.try_send(b"third").unwrap();
    for want in [&b"first"[..], b"second", b"third"] {
        assert_eq!(&*rx.read().unwrap(), want);
    }
    let d = rx.waiter().deadline_after(2);
    assert_eq!(rx.read_timeout(d).err(), Some(Error::TimedOut));
}

// ---------------------------------------------------------------------------
// The property test against a VecDeque model is an integration test,
// `tests/model.rs`: the model lives in shmlane-fuzz-support (shared with the
// `ring_ops` fuzz target), which depends on this crate.

// ---------------------------------------------------------------------------
// Two-thread stress

/// FNV-1a, enough to catch torn or misplaced bytes.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// xorshift for message sizes, identical on both sides.
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn two_threads_stream_millions_of_checked_messages() {
    let count: u64 = if cfg!(miri) { 300 } else { 2_000_000 };
    let capacity = 1024;
    let mut buf = Buf::for_capacity(capacity);
    let r = ring(&mut buf, capacity);
    let (mut tx, mut rx) = pair(&r);
    let max = tx.max_message();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut seq = 0u64;
            while seq < count {
                // Mix every send path: grant, copy, batch.
                let len = 12 + (next_rand(&mut rng) as usize % (max - 11));
                let len = if seq % 97 == 0 { max } else { len };
                match seq % 3 {
                    0 => {
                        let mut g = tx.reserve(len).unwrap();
                        fill(&mut g, seq);
                        g.commit(len);
                        seq += 1;
                    }
                    1 => {
                        let mut msg = vec![0; len];
                        fill(&mut msg, seq);
                        tx.send(&msg).unwrap();
                        seq += 1;
                    }
                    _ => {
                        let mut batch = tx.batch();
                        for _ in 0..4 {
                            if seq == count {
                                break;
                            }
                            match batch.try_reserve(len) {
                                Ok(mut g) => {
                                    fill(&mut g, seq);
                                    g.commit(len);
                                    seq += 1;
                                }
                                Err(Error::Full) => break,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        if batch.publish() == 0 {
                            // The ring was full at once: wait for room.
                            let mut g = tx.reserve(len).unwrap();
                            fill(&mut g, seq);
                            g.commit(len);
                            seq += 1;
                        }
                    }
                }
            }
        });
        let mut expected = 0u64;
        let mut scratch = vec![0; max];
        loop {
            let result = if expected % 5 == 0 {
                rx.recv(&mut scratch)
                    .map(|n| check(&scratch[..n], expected))
            } else {
                rx.read().map(|g| check(&g, expected))
            };
            match result {
                Ok(()) => expected += 1,
                Err(Error::Disconnected) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(expected, count);
    });

    /// Sequence number, then a checksum of the rest, then pattern bytes.
    fn fill(msg: &mut [u8], seq: u64) {
        for (i, b) in msg[12..].iter_mut().enumerate() {
            *b = (seq as usize).wrapping_add(i) as u8;
        }
        let sum = checksum(&msg[12..]);
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        msg[8..12].copy_from_slice(&sum.to_le_bytes());
    }
    fn check(msg: &[u8], expected: u64) {
        assert!(
            msg.len() >= 12,
            "message {expected} too short: {}",
            msg.len()
        );
        assert_eq!(
            u64::from_le_bytes(msg[..8].try_into().unwrap()),
            expected,
            "reordered or lost"
        );
        assert_eq!(
            u32::from_le_bytes(msg[8..12].try_into().unwrap()),
            checksum(&msg[12..])
        );
    }
}

/// Counts `wake` calls; otherwise spins like [`Spin`].
#[derive(Default)]
struct CountingWait {
    inner: Spin,
    wakes: core::cell::Cell<usize>,
}

impl crate::Wait for CountingWait {
    type Deadline = u64;
    fn wait(&self, word: &crate::AtomicU32, expected: u32, d: Option<u64>) -> Result<(), Error> {
        self.inner.wait(word, expected, d)
    }
    fn wake(&self, word: &crate::AtomicU32) {
        self.wakes.set(self.wakes.get() + 1);
        self.inner.wake(word);
    }
}

#[test]
fn no_wake_call_while_nobody_sleeps_and_one_when_someone_does() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let mut tx = r.producer(CountingWait::default()).unwrap();
    let mut rx = r.consumer(CountingWait::default()).unwrap();
    // Each claim woke whoever might wait on the claimer's word, once.
    assert_eq!((tx.waiter().wakes.get(), rx.waiter().wakes.get()), (1, 1));
    for i in 0..100u8 {
        tx.try_send(&[i; 40]).unwrap();
        assert_eq!(rx.try_recv(&mut [0; 40]), Ok(40));
    }
    // The fast path never called into the wait implementation.
    assert_eq!((tx.waiter().wakes.get(), rx.waiter().wakes.get()), (1, 1));
    // A consumer that timed out waiting left its announcement: the next
    // send wakes it (once), and clears the announcement.
    let d = rx.waiter().inner.deadline_after(1);
    assert_eq!(rx.read_timeout(d).err(), Some(Error::TimedOut));
    tx.try_send(b"wake").unwrap();
    tx.try_send(b"no wake").unwrap();
    assert_eq!(tx.waiter().wakes.get(), 2);
}

/// Gives a holder id, and counts wakes.
#[derive(Default)]
struct Identified {
    inner: CountingWait,
}

impl crate::Wait for Identified {
    type Deadline = u64;
    fn wait(&self, word: &crate::AtomicU32, expected: u32, d: Option<u64>) -> Result<(), Error> {
        self.inner.wait(word, expected, d)
    }
    fn wake(&self, word: &crate::AtomicU32) {
        self.inner.wake(word);
    }
    fn holder_id(&self) -> u32 {
        4242
    }
}

#[test]
fn a_claim_records_the_holder_id_and_moves_the_word_a_waiting_peer_sleeps_on() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let h = r.header();
    // A consumer that announced sleep before any producer existed.
    mark_sleeping(&h.producer.peer_wait);
    let before = h.producer.peer_wait.load(crate::sync::Ordering::Relaxed);
    let tx = r.producer(Identified::default()).unwrap();
    assert_eq!(r.holder_id(Role::Producer), Some(4242));
    assert_eq!(r.holder_id(Role::Consumer), None);
    // Moved on (so a futex wait on the old value returns), sleeper bit kept,
    // and woken once.
    assert_eq!(
        h.producer.peer_wait.load(crate::sync::Ordering::Relaxed),
        before + 2
    );
    assert_eq!(tx.waiter().inner.wakes.get(), 1);
    let _rx = r.consumer(Identified::default()).unwrap();
    assert_eq!(r.holder_id(Role::Consumer), Some(4242));
    assert_eq!(h.consumer.peer_wait.load(crate::sync::Ordering::Relaxed), 2);
}

/// Spins and never sleeps, but wakes (like a busy-polling side of a futex
/// gate); counts `wake` calls.
#[derive(Default)]
struct BusyWaker {
    inner: Spin,
    wakes: core::cell::Cell<usize>,
}

impl crate::Wait for BusyWaker {
    type Deadline = u64;
    fn wait(&self, word: &crate::AtomicU32, expected: u32, d: Option<u64>) -> Result<(), Error> {
        self.inner.wait(word, expected, d)
    }
    fn wake(&self, _word: &crate::AtomicU32) {
        self.wakes.set(self.wakes.get() + 1);
    }
    fn sleeps(&self) -> bool {
        false
    }
}

/// Sets the sleeper bit of `word`, as only a sleeping peer would.
fn mark_sleeping(word: &crate::AtomicU32) {
    word.fetch_or(SLEEPING, crate::sync::Ordering::Relaxed);
}

#[test]
fn a_peer_that_never_sleeps_is_never_looked_at_after_a_publication() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    // The consumer spins; the producer claims second and knows it at once.
    let mut rx = r.consumer(Spin::new()).unwrap();
    let mut tx = r.producer(BusyWaker::default()).unwrap();
    let claimed = tx.waiter().wakes.get(); // the claim's wake-up
    mark_sleeping(&r.header().producer.peer_wait); // a bit it never sets
    tx.try_send(b"a").unwrap();
    assert_eq!(
        tx.waiter().wakes.get() - claimed,
        0,
        "no check of a non-sleeper's bit"
    );
    assert_eq!(rx.try_recv(&mut [0; 8]), Ok(1));
    // A sleeping peer is looked at, bit and all.
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let _rx = r.consumer(CountingWait::default()).unwrap();
    let mut tx = r.producer(BusyWaker::default()).unwrap();
    let claimed = tx.waiter().wakes.get();
    mark_sleeping(&r.header().producer.peer_wait);
    tx.try_send(b"a").unwrap();
    assert_eq!(tx.waiter().wakes.get() - claimed, 1);
}

#[test]
fn a_side_that_claimed_first_learns_how_its_peer_waits() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let mut rx = r.consumer(BusyWaker::default()).unwrap();
    let claimed = rx.waiter().wakes.get();
    let mut tx = r.producer(Spin::new()).unwrap();
    // Not known yet (the producer came later): a release looks.
    tx.try_send(b"a").unwrap();
    mark_sleeping(&r.header().consumer.peer_wait);
    assert_eq!(rx.try_recv(&mut [0; 8]), Ok(1));
    assert_eq!(rx.waiter().wakes.get() - claimed, 1);
    // An empty ring makes the consumer look at the record: from then on a
    // release skips the spinning producer.
    assert_eq!(rx.try_recv(&mut [0; 8]), Err(Error::Empty));
    tx.try_send(b"b").unwrap();
    mark_sleeping(&r.header().consumer.peer_wait);
    assert_eq!(rx.try_recv(&mut [0; 8]), Ok(1));
    assert_eq!(rx.waiter().wakes.get() - claimed, 1);
}

#[test]
fn a_claim_refused_for_bad_positions_records_nothing() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let h = r.header();
    h.producer.position.store(3, crate::sync::Ordering::Relaxed);
    assert!(matches!(
        r.consumer(Spin::new()).err(),
        Some(Error::Corrupt(_))
    ));
    assert_eq!(h.identity.waits.load(crate::sync::Ordering::Relaxed), 0);
    assert_eq!(r.role_state(Role::Consumer), Ok(crate::RoleState::Idle));
}

/// A sleeping wait that holds the producer and sends one message once its
/// consumer has started waiting and found the ring empty (at its first
/// `sleeps` query after the claim and the start of the wait): the re-check
/// after the announcement then finds the message.
struct SendsWhileAnnouncing {
    tx: core::cell::RefCell<Option<Producer<'static, BusyWaker>>>,
    asked: core::cell::Cell<u32>,
}

impl crate::Wait for SendsWhileAnnouncing {
    type Deadline = u64;
    fn wait(&self, _: &crate::AtomicU32, _: u32, _: Option<u64>) -> Result<(), Error> {
        panic!("the re-check should have found the message");
    }
    fn wake(&self, _word: &crate::AtomicU32) {}
    fn sleeps(&self) -> bool {
        self.asked.set(self.asked.get() + 1);
        if self.asked.get() >= 3 {
            if let Some(tx) = self.tx.borrow_mut().as_mut() {
                if tx.is_empty() {
                    tx.try_send(b"just in time").unwrap();
                }
            }
        }
        true
    }
}

#[test]
fn an_announcement_whose_recheck_succeeds_is_withdrawn() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    // SAFETY: test only, as in `pair`: the ring outlives both sides here.
    let r: Ring<'static> = unsafe { core::mem::transmute(r) };
    let wait = SendsWhileAnnouncing {
        tx: core::cell::RefCell::new(None),
        asked: core::cell::Cell::new(0),
    };
    let mut rx = r.consumer(wait).unwrap();
    *rx.waiter().tx.borrow_mut() = Some(r.producer(BusyWaker::default()).unwrap());
    let mut got = [0; 16];
    assert_eq!(rx.recv(&mut got), Ok(12));
    // The producer's claim moved the word (0 -> 2); the consumer announced
    // (2 -> 3, the sleeper bit) and took it back the way a waker would
    // (3 -> 4): the producer's next publication wakes nobody.
    let word = r
        .header()
        .producer
        .peer_wait
        .load(crate::sync::Ordering::Relaxed);
    assert_eq!(word, 4);
    let tx = rx.waiter().tx.borrow_mut().take().unwrap();
    let mut tx = tx;
    let claimed = tx.waiter().wakes.get();
    tx.try_send(b"next").unwrap();
    assert_eq!(tx.waiter().wakes.get() - claimed, 0);
}

/// Sleeps (for the ring's purposes) by returning at once, `slices` times,
/// then times out; counts the spin phases the ring asks for.
struct SlicedWait {
    slices: core::cell::Cell<u32>,
    spin_phases: core::cell::Cell<u32>,
}

impl SlicedWait {
    fn new(slices: u32) -> Self {
        SlicedWait {
            slices: core::cell::Cell::new(slices),
            spin_phases: core::cell::Cell::new(0),
        }
    }
}

impl crate::Wait for SlicedWait {
    type Deadline = ();
    fn wait(&self, _: &crate::AtomicU32, _: u32, _: Option<()>) -> Result<(), Error> {
        match self.slices.get() {
            0 => Err(Error::TimedOut),
            n => {
                self.slices.set(n - 1);
                Ok(())
            }
        }
    }
    fn wake(&self, _: &crate::AtomicU32) {}
    fn sleeps(&self) -> bool {
        true
    }
    fn spin_rounds(&self) -> u32 {
        self.spin_phases.set(self.spin_phases.get() + 1);
        3
    }
}

#[test]
fn a_blocked_side_spins_once_then_only_sleeps() {
    // An idle side whose sleep ends in slices (to probe its peer) must go
    // back to sleep without spinning again, or idling costs CPU.
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let mut tx = r.producer(SlicedWait::new(5)).unwrap();
    let mut rx = r.consumer(SlicedWait::new(5)).unwrap();
    assert_eq!(rx.read_timeout(()).err(), Some(Error::TimedOut));
    assert_eq!(rx.waiter().slices.get(), 0, "all five slices were slept");
    assert_eq!(rx.waiter().spin_phases.get(), 1);
    tx.try_send(&[1; 24]).unwrap();
    tx.try_send(&[2; 24]).unwrap();
    assert_eq!(tx.send_timeout(&[3; 24], ()).err(), Some(Error::TimedOut));
    assert_eq!(tx.waiter().slices.get(), 0);
    assert_eq!(tx.waiter().spin_phases.get(), 1);
}

/// A wait that says it sleeps until woken (it only spins: the tests below
/// never wait on it) and whether its `wake` wakes.
struct Sleeper {
    wakes: bool,
}

impl crate::Wait for Sleeper {
    type Deadline = u64;
    fn wait(&self, _: &crate::AtomicU32, _: u32, _: Option<u64>) -> Result<(), Error> {
        Ok(())
    }
    fn wake(&self, _: &crate::AtomicU32) {}
    fn sleeps(&self) -> bool {
        true
    }
    fn wakes(&self) -> bool {
        self.wakes
    }
}

#[test]
fn a_side_that_sleeps_never_pairs_with_one_that_cannot_wake_it() {
    let waker = || Sleeper { wakes: true };
    let mute = || Sleeper { wakes: false };
    // Whichever claims second is refused, and the role stays free.
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let tx = r.producer(Spin::new()).unwrap();
    assert_eq!(r.consumer(waker()).err(), Some(Error::IncompatibleWait));
    assert_eq!(r.role_state(Role::Consumer), Ok(crate::RoleState::Idle));
    let rx = r.consumer(Spin::new()).unwrap(); // spinners pair
    drop((tx, rx));

    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let rx = r.consumer(waker()).unwrap();
    assert_eq!(r.producer(Spin::new()).err(), Some(Error::IncompatibleWait));
    let tx = r.producer(waker()).unwrap(); // two sleepers that wake pair
    drop((tx, rx));

    // A side that sleeps must be woken, and must wake a sleeping peer too.
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let rx = r.consumer(mute()).unwrap();
    assert_eq!(r.producer(waker()).err(), Some(Error::IncompatibleWait));
    assert_eq!(r.producer(Spin::new()).err(), Some(Error::IncompatibleWait));
    drop(rx);

    // A side that neither sleeps nor wakes pairs with one that only wakes.
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let rx = r.consumer(Spin::new()).unwrap();
    let tx = r.producer(NoSleep).unwrap();
    drop((tx, rx));
}

/// Busy-waits, but its wake would wake a sleeper (like a posix gate that
/// busy-polls).
struct NoSleep;

impl crate::Wait for NoSleep {
    type Deadline = u64;
    fn wait(&self, _: &crate::AtomicU32, _: u32, _: Option<u64>) -> Result<(), Error> {
        Ok(())
    }
    fn wake(&self, _: &crate::AtomicU32) {}
    fn sleeps(&self) -> bool {
        false
    }
}

#[test]
fn message_lengths_fit_the_record_header() {
    // The largest capacity would allow half a TiB; a record header holds 32 bits.
    assert_eq!(crate::max_message_limit(crate::MAX_CAPACITY), MAX_MESSAGE);
    assert!(MAX_MESSAGE < u32::MAX as usize);
    assert_eq!(
        Config::new(crate::MAX_CAPACITY)
            .max_message(MAX_MESSAGE + 1)
            .check(),
        Err(Error::InvalidMaxMessage {
            max_message: MAX_MESSAGE + 1,
            limit: MAX_MESSAGE
        })
    );
    // Sizes that used to underflow or overflow: no panic, a saturated value.
    for capacity in [0, 1, 3, 8, 15, 16] {
        assert!(crate::max_message_limit(capacity) <= capacity / 2);
    }
    assert_eq!(crate::region_size(usize::MAX), usize::MAX);
    for capacity in [0, 3, 8, usize::MAX] {
        assert_eq!(
            Config::new(capacity).check(),
            Err(Error::InvalidCapacity { capacity })
        );
    }
}

#[test]
fn a_drained_exactly_full_ring_is_empty_not_a_lap_old_message() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let (mut tx, mut rx) = pair(&r);
    for lap in 0..4u8 {
        // Two 32-byte records fill the ring to the byte: no room for the
        // zero word after them, so the word there is the header of the
        // message read at that offset one lap ago.
        tx.try_send(&[lap; 24]).unwrap();
        tx.try_send(&[lap + 100; 24]).unwrap();
        assert_eq!(tx.try_send(&[]), Err(Error::Full));
        assert_eq!(&*rx.try_read().unwrap(), &[lap; 24]);
        assert_eq!(&*rx.try_read().unwrap(), &[lap + 100; 24]);
        assert_eq!(rx.try_read().err(), Some(Error::Empty), "lap {lap}");
    }
}

#[test]
fn payload_that_looks_like_the_next_laps_headers_is_never_read_as_one() {
    // Every payload word is a valid header of a message in the lap after
    // its own, which is what the consumer looks for when it reaches that
    // offset again: only the zero word the producer stores after each
    // publication tells it that nothing is there yet.
    const CAPACITY: u64 = 256;
    let mut buf = Buf::for_capacity(CAPACITY as usize);
    let r = ring(&mut buf, CAPACITY as usize);
    let (mut tx, mut rx) = pair(&r);
    let mut position = 0u64;
    for (i, len) in (0..200).map(|i| (i, [8usize, 40, 16, 96, 0, 24, 56][i % 7])) {
        let mut g = tx.try_reserve(len).unwrap();
        let lap = ((position + CAPACITY) >> 8) as u32;
        let fake =
            ((record_kind(KIND_MESSAGE, 0, 0) | (lap << 8 & KIND_LAP_MASK)) as u64) << 32 | 8;
        for chunk in g.chunks_mut(8) {
            chunk.copy_from_slice(&fake.to_ne_bytes()[..chunk.len()]);
        }
        g[..len.min(1)].fill(i as u8);
        g.commit(len);
        let m = rx.try_read().unwrap();
        assert_eq!(m.len(), len);
        assert!(m.first().is_none_or(|b| *b == i as u8));
        drop(m);
        assert_eq!(rx.try_read().err(), Some(Error::Empty), "after message {i}");
        let tail = CAPACITY - position % CAPACITY;
        let record = 8 + (len as u64).div_ceil(8) * 8;
        position += if record <= tail {
            record
        } else {
            tail + record
        };
    }
}

#[test]
fn a_leaked_batch_is_published_before_the_next_message() {
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let (mut tx, mut rx) = pair(&r);
    let mut batch = tx.batch();
    batch.try_send(b"one").unwrap();
    batch.try_send(b"two").unwrap();
    core::mem::forget(batch);
    assert_eq!(rx.try_read().err(), Some(Error::Empty));
    tx.try_send(b"three").unwrap();
    let mut g = tx.try_reserve(4).unwrap();
    g.copy_from_slice(b"four");
    g.commit(4);
    for want in [&b"one"[..], b"two", b"three", b"four"] {
        assert_eq!(&*rx.try_read().unwrap(), want);
    }
    assert_eq!(rx.try_read().err(), Some(Error::Empty));
}

#[test]
fn an_armed_consumer_is_woken_by_the_next_publication_and_a_ready_ring_is_not_armed() {
    use crate::Armed;
    let mut buf = Buf::for_capacity(256);
    let r = ring(&mut buf, 256);
    let mut tx = r.producer(CountingWait::default()).unwrap();
    let mut rx = r.consumer(CountingWait::default()).unwrap();
    let wakes = tx.waiter().wakes.get();
    let Ok(Armed::Waiting(ticket)) = rx.arm() else {
        panic!("an empty ring arms");
    };
    assert_eq!(rx.wait_word().load(crate::sync::Ordering::Relaxed), ticket);
    assert_eq!(ticket & SLEEPING, SLEEPING, "announced");
    tx.try_send(b"one").unwrap();
    // The word moved off the ticket and the waker was called: a side
    // sleeping until "word != ticket" wakes.
    assert_ne!(rx.wait_word().load(crate::sync::Ordering::Relaxed), ticket);
    assert_eq!(tx.waiter().wakes.get() - wakes, 1);
    // Something to read: not armed, nothing announced.
    let before = rx.wait_word().load(crate::sync::Ordering::Relaxed);
    assert_eq!(rx.arm(), Ok(Armed::Ready));
    assert_eq!(rx.wait_word().load(crate::sync::Ordering::Relaxed), before);
    assert_eq!(rx.try_recv(&mut [0; 8]), Ok(3));
    tx.try_send(b"two").unwrap();
    assert_eq!(tx.waiter().wakes.get() - wakes, 1, "nobody armed: no wake");
    assert_eq!(rx.try_recv(&mut [0; 8]), Ok(3));
    // A close is "ready": the next receive reports it.
    drop(tx);
    assert_eq!(rx.arm(), Ok(Armed::Ready));
    assert_eq!(rx.try_recv(&mut [0; 8]), Err(Error::Disconnected));
}

#[test]
fn an_armed_producer_is_woken_by_the_next_release() {
    use crate::Armed;
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let mut tx = r.producer(CountingWait::default()).unwrap();
    let mut rx = r.consumer(CountingWait::default()).unwrap();
    assert_eq!(tx.arm(8), Ok(Armed::Ready));
    while tx.try_send(&[1; 8]).is_ok() {}
    let wakes = rx.waiter().wakes.get();
    let Ok(Armed::Waiting(ticket)) = tx.arm(8) else {
        panic!("a full ring arms");
    };
    assert_eq!(rx.try_recv(&mut [0; 8]), Ok(8));
    assert_ne!(tx.wait_word().load(crate::sync::Ordering::Relaxed), ticket);
    assert_eq!(rx.waiter().wakes.get() - wakes, 1);
    assert_eq!(tx.arm(8), Ok(Armed::Ready));
    // A message that never fits is refused, not armed for.
    assert_eq!(tx.arm(1000), Err(Error::TooLarge { len: 1000, max: 24 }));
}

// ---------------------------------------------------------------------------
// Counters

/// A wait that "sleeps" (so its side announces itself) but returns at once,
/// as a futex wait whose time slice ran out would: `slices` times without a
/// word, then [`Error::TimedOut`]. Counts its `wake` calls.
#[derive(Default)]
struct Slices {
    slices: core::cell::Cell<u32>,
    wakes: core::cell::Cell<u64>,
}

impl crate::Wait for Slices {
    type Deadline = u32;
    fn wait(&self, _: &crate::AtomicU32, _: u32, slices: Option<u32>) -> Result<(), Error> {
        if self.slices.get() >= slices.unwrap_or(u32::MAX) {
            self.slices.set(0);
            return Err(Error::TimedOut);
        }
        self.slices.set(self.slices.get() + 1);
        Ok(())
    }
    fn wake(&self, _: &crate::AtomicU32) {
        self.wakes.set(self.wakes.get() + 1);
    }
    fn spin_rounds(&self) -> u32 {
        3
    }
}

/// (messages, bytes, stalls, sleeps, wakes) of `role`.
fn counted(ring: &Ring<'_>, role: Role) -> (u64, u64, u64, u64, u64) {
    let c = ring.counters(role);
    (c.messages, c.bytes, c.stalls, c.sleeps, c.wakes)
}

#[test]
fn each_side_counts_its_messages_stalls_sleeps_and_wakes_once_per_call() {
    let mut buf = Buf::for_capacity(64);
    let r = ring(&mut buf, 64);
    let mut tx = r.producer(Slices::default()).unwrap();
    let mut rx = r.consumer(Slices::default()).unwrap();
    assert_eq!(counted(&r, Role::Producer), (0, 0, 0, 0, 0));
    // A timed receive on an empty ring that sleeps five slices, then
    // times out: one empty ring, one sleep.
    assert_eq!(rx.read_timeout(5).err(), Some(Error::TimedOut));
    assert_eq!(counted(&r, Role::Consumer), (0, 0, 1, 1, 0));
    // Its announcement is still up: the next send wakes it, once, and the
    // claim's wake-up was not counted.
    tx.try_send(&[1; 20]).unwrap();
    tx.try_send(&[2; 4]).unwrap();
    // Bytes: the records, 8 + 24 and 8 + 8.
    assert_eq!(counted(&r, Role::Producer), (2, 48, 0, 0, 1));
    assert_eq!(tx.waiter().wakes.get(), 2); // the claim's and that one
    // Full: a try_send counts each failure, a timed send one per call
    // however many slices it sleeps.
    assert_eq!(tx.try_send(&[3; 24]), Err(Error::Full));
    assert_eq!(tx.send_timeout(&[3; 24], 4), Err(Error::TimedOut));
    assert_eq!(counted(&r, Role::Producer), (2, 48, 2, 1, 1));
    // Refusals that are not a full ring count nothing.
    assert!(matches!(tx.try_send(&[0; 25]), Err(Error::TooLarge { .. })));
    assert_eq!(counted(&r, Role::Producer).2, 2);
    // The consumer counts what it consumed once it is released; its
    // release wakes the announced producer.
    let mut out = [0; 24];
    assert_eq!(rx.try_recv(&mut out), Ok(20));
    assert_eq!(counted(&r, Role::Consumer), (1, 32, 1, 1, 1));
    let mut batch = rx.batch();
    assert_eq!(batch.try_recv(&mut out), Ok(4));
    assert_eq!(counted(&r, Role::Consumer).0, 1); // not released yet
    assert_eq!(batch.try_recv(&mut out), Err(Error::Empty));
    batch.release();
    assert_eq!(counted(&r, Role::Consumer), (2, 48, 2, 1, 1));
    // Arming is a sleep, not an empty ring; a ready arm is neither.
    assert!(matches!(rx.arm(), Ok(crate::Armed::Waiting(_))));
    assert_eq!(counted(&r, Role::Consumer), (2, 48, 2, 2, 1));
    // A grant committed shorter moves the ring by what was committed; a
    // batch counts at its publication.
    tx.try_reserve(16).unwrap().commit(3);
    assert_eq!(rx.arm(), Ok(crate::Armed::Ready));
    let mut batch = tx.batch();
    batch.try_send(&[5; 7]).unwrap();
    assert_eq!(counted(&r, Role::Producer).0, 3);
    assert_eq!(batch.publish(), 1);
    // 48, 16 of padding (the 16-byte reservation did not fit before the
    // end), 16 (3 bytes), 16 (7 bytes); the ready arm woke nobody.
    assert_eq!(counted(&r, Role::Producer), (4, 96, 2, 1, 2));
    assert_eq!(counted(&r, Role::Consumer), (2, 48, 2, 2, 1));
}

#[test]
fn a_snapshot_of_the_header_bytes_says_what_the_ring_says() {
    use crate::{RoleState, Snapshot};
    let mut buf = Buf::for_capacity(256);
    let len = region_size(256);
    let base = buf.bytes().as_mut_ptr();
    // SAFETY: `buf` outlives the ring and both sides (dropped at the end,
    // after `rx`); the region is accessed only through pointers derived
    // from `base`, on this thread.
    let r = unsafe {
        Ring::create(
            core::ptr::NonNull::new(base).unwrap(),
            len,
            Config::new(256),
        )
    };
    let r = r.unwrap();
    r.set_cpu_hint(Role::Consumer, Some(2));
    let (mut tx, mut rx) = pair(&r);
    for i in 0..3u8 {
        tx.try_send(&[i; 10]).unwrap();
    }
    rx.try_recv(&mut [0; 16]).unwrap();
    drop(tx);
    // What a third process copies out of the region, the consumer live.
    // SAFETY: as above; a read of initialised bytes no one writes now.
    let bytes = unsafe { core::slice::from_raw_parts(base, HEADER_SIZE) }.to_vec();
    let s = Snapshot::parse(&bytes, len).unwrap();
    assert_eq!(
        (s.capacity, s.max_message, s.message_type),
        (256, 120, None)
    );
    assert_eq!(s.used, 2 * 24);
    assert_eq!(s.producer.state, RoleState::Closed);
    assert_eq!(s.consumer.state, RoleState::Active);
    assert_eq!((s.producer.position, s.consumer.position), (72, 24));
    assert_eq!(
        (s.producer.counters.messages, s.producer.counters.bytes),
        (3, 72)
    );
    assert_eq!(
        (s.consumer.counters.messages, s.consumer.counters.bytes),
        (1, 24)
    );
    assert_eq!((s.consumer.cpu_hint, s.producer.cpu_hint), (Some(2), None));
    assert!(!s.producer.asleep && !s.consumer.asleep);
    // Too few bytes, a region too small for the capacity, a bad field:
    // the errors attach gives.
    let short = Snapshot::parse(&bytes[..HEADER_SIZE - 1], len);
    assert!(matches!(short, Err(Error::RegionTooSmall { .. })));
    let small = Snapshot::parse(&bytes, len - 1);
    assert!(matches!(small, Err(Error::RegionTooSmall { .. })));
    let mut bad = bytes.clone();
    bad[offsets::CAPACITY] = 3;
    assert_eq!(
        Snapshot::parse(&bad, len),
        Err(Error::Corrupt(Corruption::Capacity))
    );
    let mut bad = bytes.clone();
    bad[offsets::CONSUMER_STATE] = 7;
    assert_eq!(
        Snapshot::parse(&bad, len),
        Err(Error::Corrupt(Corruption::State))
    );
    // Any single byte changed anywhere in the header: a snapshot or the
    // error attach gives for the same bytes, never a panic.
    let values: &[u8] = if cfg!(miri) {
        &[0, 0xff]
    } else {
        &[0, 1, 0x80, 0xff]
    };
    for at in 0..HEADER_SIZE {
        for &value in values {
            let mut region = Buf::for_capacity(256);
            region.bytes()[..HEADER_SIZE].copy_from_slice(&bytes);
            region.bytes()[at] = value;
            let copy = region.bytes()[..HEADER_SIZE].to_vec();
            let parsed = Snapshot::parse(&copy, len).map(|s| (s.capacity, s.max_message));
            let attached = Ring::attach_in(&mut region.bytes()[..len])
                .map(|r| (r.capacity(), r.max_message()));
            assert_eq!(parsed, attached, "byte {at} = {value:#x}");
        }
    }
    drop(rx);
}
