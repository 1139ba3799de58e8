//! loom models of the ring protocol.
//!
//! Run with
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p shmlane-core --release --test loom`.
//!
//! Under loom the ring's atomics and fences are loom's, and every 8-byte
//! word of the data area is shadowed by a tracked cell, so a missing
//! happens-before edge between writing a record and reading it is reported
//! as a causality violation. Each word also has a modelled atomic for the
//! record header it may hold (the consumer polls headers: they publish the
//! records), and a payload write stores junk there, as real payload bytes
//! would: a consumer that took stale payload for a header would fail. The blocking gate runs on a model of a futex
//! (a mutex and a condition variable: the value check and the sleep are
//! atomic with respect to wakes), so a lost wake-up shows up as a deadlock.
#![cfg(loom)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use shmlane_core::{Armed, AtomicU32, Config, Error, REGION_ALIGN, Ring, Wait, region_size};

/// A heap region that outlives every thread holding an `Arc` of it.
struct Memory {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the memory is only accessed through `Ring`, which synchronises.
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new_ring` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

fn new_ring(capacity: usize) -> (Arc<Memory>, Ring<'static>) {
    let layout = Layout::from_size_align(region_size(capacity), REGION_ALIGN).unwrap();
    // SAFETY: the layout has a non-zero size.
    let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
    let memory = Arc::new(Memory { ptr, layout });
    // SAFETY: the region is valid, zeroed, and kept alive by `memory`,
    // which every thread using the ring holds until it is done.
    let ring = unsafe { Ring::create(ptr, layout.size(), Config::new(capacity)) }.unwrap();
    (memory, ring)
}

/// Spawns `f` on a thread that keeps the region alive until it is done.
fn spawn_keeping<T: 'static>(
    memory: &Arc<Memory>,
    f: impl FnOnce() -> T + 'static,
) -> thread::JoinHandle<T> {
    let keep = memory.clone();
    thread::spawn(move || {
        let _keep = keep;
        f()
    })
}

/// A futex model shared by both sides (like the kernel's hash bucket).
#[derive(Clone)]
struct Futex(Arc<(Mutex<()>, Condvar)>);

impl Futex {
    fn new() -> Self {
        Futex(Arc::new((Mutex::new(()), Condvar::new())))
    }
}

impl Wait for Futex {
    /// loom has no time; a deadline means "already passed".
    type Deadline = ();

    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<()>) -> Result<(), Error> {
        if deadline.is_some() {
            return Err(Error::TimedOut);
        }
        let (lock, condvar) = &*self.0;
        let guard = lock.lock().unwrap();
        if word.load(std::sync::atomic::Ordering::SeqCst) == expected {
            drop(condvar.wait(guard).unwrap());
        }
        Ok(())
    }

    fn wake(&self, _word: &AtomicU32) {
        let (lock, condvar) = &*self.0;
        let _guard = lock.lock().unwrap();
        condvar.notify_all();
    }
}

fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 16 + j) as u8).collect()
}

fn spin_send(tx: &mut shmlane_core::Producer<'_, Futex>, msg: &[u8]) {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return,
            Err(Error::Full) => thread::yield_now(),
            Err(e) => panic!("send: {e}"),
        }
    }
}

fn spin_recv(rx: &mut shmlane_core::Consumer<'_, Futex>, buf: &mut [u8]) -> Result<usize, Error> {
    loop {
        match rx.try_recv(buf) {
            Err(Error::Empty) => thread::yield_now(),
            other => return other,
        }
    }
}

/// Messages arrive intact and in order across the wrap of a tiny ring: the
/// sizes (16-, 24- and 32-byte records in 64 bytes) force a padding record.
#[test]
fn fifo_across_wrap() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let sizes = [8, 16, 24, 0];
        let mut tx = ring.producer(Futex::new()).unwrap();
        let producer = spawn_keeping(&memory, move || {
            for (i, &len) in sizes.iter().enumerate() {
                spin_send(&mut tx, &message(i, len));
            }
        });
        let mut rx = ring.consumer(Futex::new()).unwrap();
        let mut buf = [0; 64];
        for (i, &len) in sizes.iter().enumerate() {
            let n = spin_recv(&mut rx, &mut buf).unwrap();
            assert_eq!(&buf[..n], &message(i, len)[..]);
        }
        producer.join().unwrap();
        assert_eq!(spin_recv(&mut rx, &mut buf), Err(Error::Disconnected));
    });
}

/// Full and empty edges: two maximum-size records fill the ring exactly;
/// the third send must see `Full` until the consumer releases, and zero-copy
/// grants on both sides see the bytes the other wrote. (Filled to the byte,
/// the ring has no room for the zero word after the records: the consumer
/// that drained it finds the previous lap's header at its position, and
/// must take it for "nothing yet".)
#[test]
fn full_and_empty_edges_with_grants() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let max = ring.max_message();
        let mut tx = ring.producer(Futex::new()).unwrap();
        let producer = spawn_keeping(&memory, move || {
            for i in 0..3 {
                let mut grant = loop {
                    match tx.try_reserve(max) {
                        Ok(grant) => break grant,
                        Err(Error::Full) => thread::yield_now(),
                        Err(e) => panic!("reserve: {e}"),
                    }
                };
                grant.copy_from_slice(&message(i, max));
                grant.commit(max);
            }
        });
        let mut rx = ring.consumer(Futex::new()).unwrap();
        for i in 0..3 {
            let grant = loop {
                match rx.try_read() {
                    Ok(grant) => break grant,
                    Err(Error::Empty) => thread::yield_now(),
                    Err(e) => panic!("read: {e}"),
                }
            };
            assert_eq!(&*grant, &message(i, max)[..]);
        }
        producer.join().unwrap();
    });
}

/// The blocking gate never loses a wake-up: both sides block (the consumer
/// on empty, the producer on full, as two 32-byte records fill the ring).
/// A lost wake-up would leave a thread asleep forever: loom reports that as
/// a deadlock.
#[test]
fn blocking_gate_loses_no_wakeup() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let futex = Futex::new();
        let tx = ring.producer(futex.clone()).unwrap();
        three_blocking_messages(&memory, tx, || ring.consumer(futex).unwrap());
    });
}

/// A batch is published with one store: the consumer sees all of it or
/// none of it, never a torn record.
#[test]
fn batch_publish_is_all_or_nothing() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let mut tx = ring.producer(Futex::new()).unwrap();
        let producer = spawn_keeping(&memory, move || {
            let mut batch = tx.batch();
            batch.try_send(&message(0, 8)).unwrap();
            batch.try_send(&message(1, 8)).unwrap();
            assert_eq!(batch.publish(), 2);
        });
        let mut rx = ring.consumer(Futex::new()).unwrap();
        let mut buf = [0; 8];
        match rx.try_recv(&mut buf) {
            Ok(_) => {
                assert_eq!(buf, message(0, 8)[..]);
                // The second message was published by the same store.
                assert_eq!(rx.try_recv(&mut buf), Ok(8));
                assert_eq!(buf, message(1, 8)[..]);
            }
            Err(Error::Empty) => {}
            Err(e) => panic!("{e}"),
        }
        producer.join().unwrap();
    });
}

/// Closing the producer while the consumer sleeps on an empty ring wakes
/// it: it gets the committed message, then `Disconnected`.
#[test]
fn producer_close_wakes_a_blocked_consumer() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let futex = Futex::new();
        let mut tx = ring.producer(futex.clone()).unwrap();
        let producer = spawn_keeping(&memory, move || {
            tx.try_send(b"last").unwrap();
            tx.close();
        });
        let mut rx = ring.consumer(futex).unwrap();
        let mut buf = [0; 8];
        assert_eq!(rx.recv(&mut buf), Ok(4));
        assert_eq!(&buf[..4], b"last");
        assert_eq!(rx.recv(&mut buf), Err(Error::Disconnected));
        producer.join().unwrap();
    });
}

/// Closing the consumer while the producer sleeps on a full ring wakes it
/// with `Disconnected`.
#[test]
fn consumer_close_wakes_a_blocked_producer() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let futex = Futex::new();
        let mut tx = ring.producer(futex.clone()).unwrap();
        tx.try_send(&[1; 24]).unwrap();
        tx.try_send(&[2; 24]).unwrap();
        let rx = ring.consumer(futex).unwrap();
        let consumer = spawn_keeping(&memory, move || {
            rx.close();
        });
        assert_eq!(tx.send(&[3; 24]), Err(Error::Disconnected));
        consumer.join().unwrap();
    });
}

/// A side that never sleeps (it yields and looks again) but wakes its peer
/// through the futex model: a busy-polling side of a futex gate.
#[derive(Clone)]
struct BusyFutex(Futex);

impl Wait for BusyFutex {
    type Deadline = ();

    fn wait(&self, _word: &AtomicU32, _expected: u32, deadline: Option<()>) -> Result<(), Error> {
        if deadline.is_some() {
            return Err(Error::TimedOut);
        }
        thread::yield_now();
        Ok(())
    }

    fn wake(&self, word: &AtomicU32) {
        self.0.wake(word)
    }

    fn sleeps(&self) -> bool {
        false
    }
}

/// Three 24-byte messages through a 64-byte ring with blocking calls on
/// both sides (so the producer blocks on a full ring and the consumer on an
/// empty one), then `Disconnected`. `rx` gives the consumer once the
/// producer's thread runs (so a claim made there races its sends).
fn three_blocking_messages<P: Wait + Send + 'static, C: Wait>(
    memory: &Arc<Memory>,
    mut tx: shmlane_core::Producer<'static, P>,
    rx: impl FnOnce() -> shmlane_core::Consumer<'static, C>,
) {
    let producer = spawn_keeping(memory, move || {
        for i in 0..3 {
            tx.send(&message(i, 24)).unwrap();
        }
    });
    let mut rx = rx();
    let mut buf = [0; 24];
    for i in 0..3 {
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &message(i, 24)[..]);
    }
    assert_eq!(rx.recv(&mut buf), Err(Error::Disconnected));
    producer.join().unwrap();
}

/// A sleeping producer beside a busy-polling consumer: the producer learns
/// that its peer never sleeps (it claimed first, so from the record, on its
/// slow path) and publishes without a fence; the consumer still fences and
/// wakes the producer asleep on a full ring. A lost wake-up is a deadlock.
#[test]
fn a_busy_consumer_still_wakes_a_sleeping_producer() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let futex = Futex::new();
        let tx = ring.producer(futex.clone()).unwrap();
        three_blocking_messages(&memory, tx, || ring.consumer(BusyFutex(futex)).unwrap());
    });
}

/// The mirror case: a busy-polling producer wakes a consumer asleep on an
/// empty ring, while the consumer releases without a fence.
#[test]
fn a_busy_producer_still_wakes_a_sleeping_consumer() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let futex = Futex::new();
        let rx = ring.consumer(futex.clone()).unwrap();
        let tx = ring.producer(BusyFutex(futex)).unwrap();
        three_blocking_messages(&memory, tx, move || rx);
    });
}

/// Receives the way an event loop does: try, and when the ring is empty,
/// arm (announce, re-check) and sleep until the word leaves the ticket, as
/// a readiness fd's waiter would (the posix bridge futex-waits on exactly
/// that). A lost wake-up deadlocks the model.
fn recv_armed(rx: &mut shmlane_core::Consumer<'_, Futex>, buf: &mut [u8]) -> Result<usize, Error> {
    loop {
        match rx.try_recv(buf) {
            Err(Error::Empty) => {}
            other => return other,
        }
        match rx.arm()? {
            Armed::Ready => {}
            Armed::Waiting(ticket) => rx.waiter().wait(rx.wait_word(), ticket, None)?,
        }
    }
}

/// The arm / re-check / signal protocol of readiness: an armed consumer is
/// always woken for a message, and an armed producer for room.
#[test]
fn armed_sides_lose_no_wakeup() {
    loom::model(|| {
        let (memory, ring) = new_ring(64);
        let futex = Futex::new();
        let mut tx = ring.producer(futex.clone()).unwrap();
        let producer = spawn_keeping(&memory, move || {
            for i in 0..3 {
                // Two 32-byte records fit: with the consumer behind, the
                // third waits for room, armed.
                loop {
                    match tx.try_send(&message(i, 24)) {
                        Ok(()) => break,
                        Err(Error::Full) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                    if let Armed::Waiting(ticket) = tx.arm(24).unwrap() {
                        tx.waiter().wait(tx.wait_word(), ticket, None).unwrap();
                    }
                }
            }
        });
        let mut rx = ring.consumer(futex).unwrap();
        let mut buf = [0; 24];
        for i in 0..3 {
            assert_eq!(recv_armed(&mut rx, &mut buf), Ok(24));
            assert_eq!(buf[..], message(i, 24)[..]);
        }
        producer.join().unwrap();
    });
}
