//! Mutex and condition variables: a bounded queue between two threads, and
//! the same producer/consumer job through a shmlane ring.
//!
//! ```text
//! cargo run --release -p shmlane-examples --bin condvar -- [COUNT]
//! expected: 100000 messages, checksum 0x8cd487538aa9d98a
//! condvar: 100000 messages, checksum 0x8cd487538aa9d98a; waits: producer 676, consumer 60, woken to a false predicate 0; notifies 200001; 35 ms
//! ring: 100000 messages, checksum 0x8cd487538aa9d98a; 10 ms
//! the results match
//! ```
//!
//! (The counts of waits and the times vary from run to run.)
//!
//! A producer thread sends COUNT (default 100 000) messages, `message I
//! ***...` (I in six digits or more, and 0 to 76 `*`), to a consumer, the
//! main thread, which counts
//! them and folds them into a checksum (FNV-1a over each message's length
//! and bytes, so a lost, doubled, reordered or damaged message changes it).
//! It does this twice:
//!
//! - `condvar`: through a [`BoundedQueue`] of at most [`QUEUE_MESSAGES`]
//!   messages: a `VecDeque` in a `std::sync::Mutex`, and two `Condvar`s,
//!   `not_full` and `not_empty`;
//! - `ring`: through a shmlane channel of [`RING_BYTES`] bytes (about as many
//!   messages) in an anonymous shared-memory segment: `Sender::send` and
//!   `Receiver::recv`.
//!
//! It prints what the checksum must be and both results, and fails unless
//! all three agree.
//!
//! What it teaches:
//!
//! - A mutex lets one thread at a time touch the queue; a condition
//!   variable lets a thread sleep until another changes it. `wait` unlocks
//!   the mutex and sleeps as one step (so a notify cannot slip in between),
//!   and locks it again before it returns.
//! - The predicate loop, `while queue is full { wait }`: `wait` may return
//!   with the predicate still false. It may return although nobody
//!   notified (a *spurious* wakeup, which POSIX and `std` allow); with
//!   several consumers, another one may take the message between the
//!   notify and this thread getting the lock (a *stolen* wakeup); and a
//!   notify sent after unlocking, as here, may arrive late, after the state
//!   it announced was used up: the consumer pops and unlocks, the producer
//!   pushes, finds the queue full again and waits, and only then does the
//!   consumer's notify come and wake it. (The program counts these waits;
//!   a long run shows a few.) A notify with nobody waiting is not
//!   remembered either. So the state under the mutex is the truth and a
//!   notification only a hint to look again (`Condvar::wait_while` writes
//!   the loop for you).
//! - The ring's eventcount gate is the same idea without a mutex: a side
//!   that must sleep *announces* it (a bit in a shared word), re-checks the
//!   ring (its predicate), and sleeps on the futex word only if the word is
//!   unchanged; the other side publishes first and then wakes it only if
//!   the bit is set. No wakeup is lost, and a spurious return is re-checked
//!   in a loop too (the gate is described in `core/src/wait.rs`).
//! - Locking versus lock-free: producer and consumer of the queue take the
//!   same lock for every message, and `std`'s `Condvar::notify_one` on Linux
//!   is a `futex` wake system call every time, waiter or not (it keeps no
//!   count of waiters). In the ring each side writes only its own position
//!   and reads the other's; neither waits for the other unless the ring is
//!   full or empty, and a publish makes a system call only when the peer
//!   has announced that it sleeps.
//! - Variable-length messages: the queue holds `Vec<u8>`s, one allocation
//!   per message, moved through the queue as pointers; the ring holds the
//!   bytes themselves, each message behind a length header in its fixed
//!   region, with no allocation (and a receiver may even read them in
//!   place, with `Receiver::read`).
//! - Threads versus processes: `std::sync::Mutex` and `Condvar` serve the
//!   threads of one process (their state lives in its memory, their futexes
//!   are private). A pthread mutex can be put in shared memory
//!   (`PTHREAD_PROCESS_SHARED`), but a process that dies holding it leaves
//!   it locked for good unless it is a robust mutex. The ring's state lives
//!   in a shared segment: this same code runs with the receiver in another
//!   process (a child given the fd of `Sender::anonymous` calls
//!   `Receiver::from_fd`), and a dead peer is noticed through a file lock
//!   (see `file_lock`).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shmlane_examples::{BoxError, run};
use shmlane_posix::{Error, Options, Receiver, Sender};

/// The queue's bound, in messages.
const QUEUE_MESSAGES: usize = 64;
/// The ring's capacity, in bytes: room for some 60 of these messages.
const RING_BYTES: usize = 4096;

fn main() -> ExitCode {
    run("condvar", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let count = match args.as_slice() {
            [] => 100_000,
            [count] => count
                .parse()
                .map_err(|_| format!("COUNT must be a whole number, not {count:?}"))?,
            _ => {
                return Err(
                    format!("unexpected arguments {args:?}; usage: condvar [COUNT]").into(),
                );
            }
        };
        compare(count)
    })
}

/// Writes message `i` into `buf` (replacing what it held).
fn write_message(i: u64, buf: &mut String) {
    buf.clear();
    write!(buf, "message {i:06} ").expect("writing to a String");
    buf.extend(std::iter::repeat_n('*', (i % 77) as usize));
}

/// Messages counted and folded into a checksum, in the order received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    messages: u64,
    /// FNV-1a (64 bits) over each message's length (4 bytes, little
    /// endian) and bytes.
    checksum: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            messages: 0,
            checksum: 0xcbf2_9ce4_8422_2325,
        }
    }

    fn add(&mut self, message: &[u8]) {
        self.messages += 1;
        let len = (message.len() as u32).to_le_bytes();
        for &byte in len.iter().chain(message) {
            self.checksum = (self.checksum ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages, checksum {:#018x}",
            self.messages, self.checksum
        )
    }
}

/// How often each side of the queue waited, and for what.
#[derive(Debug, Default)]
struct WaitCounts {
    producer: u64,
    consumer: u64,
    /// Waits that returned with the predicate still false.
    woken_to_false_predicate: u64,
}

/// What the mutex guards.
struct QueueState {
    messages: VecDeque<Vec<u8>>,
    /// Set by the producer when it is done.
    closed: bool,
    waits: WaitCounts,
}

/// A bounded queue of messages between threads: a `Mutex` around the
/// state, a `Condvar` for each thing a side may wait for.
struct BoundedQueue {
    state: Mutex<QueueState>,
    /// Notified after a push and at the close: what a consumer waits for.
    not_empty: Condvar,
    /// Notified after a pop: what a producer waits for.
    not_full: Condvar,
    /// Every `notify_*` call (each one a futex wake system call).
    notifies: AtomicU64,
}

impl BoundedQueue {
    fn new() -> BoundedQueue {
        BoundedQueue {
            state: Mutex::new(QueueState {
                messages: VecDeque::with_capacity(QUEUE_MESSAGES),
                closed: false,
                waits: WaitCounts::default(),
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            notifies: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A poisoned mutex means the other thread panicked holding it; the
        // queue is still consistent (every change is one call), so go on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits on `condvar`, counting the wait in `counter`.
    fn wait<'a>(
        &self,
        condvar: &Condvar,
        mut state: MutexGuard<'a, QueueState>,
        counter: fn(&mut WaitCounts) -> &mut u64,
    ) -> MutexGuard<'a, QueueState> {
        *counter(&mut state.waits) += 1;
        condvar
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `message`, waiting while the queue is full.
    fn push(&self, message: Vec<u8>) {
        let mut state = self.lock();
        let mut woken = false;
        // The predicate loop: whatever made `wait` return, look again.
        while state.messages.len() == QUEUE_MESSAGES {
            if woken {
                state.waits.woken_to_false_predicate += 1;
            }
            state = self.wait(&self.not_full, state, |w| &mut w.producer);
            woken = true;
        }
        state.messages.push_back(message);
        // Notify after unlocking, so that the woken consumer does not run
        // into the lock we still hold. (Before unlocking is correct too.)
        drop(state);
        self.notifies.fetch_add(1, Ordering::Relaxed);
        self.not_empty.notify_one();
    }

    /// Takes the oldest message, waiting while the queue is empty; `None`
    /// once it is closed and empty.
    fn pop(&self) -> Option<Vec<u8>> {
        let mut state = self.lock();
        let mut woken = false;
        loop {
            if let Some(message) = state.messages.pop_front() {
                drop(state);
                self.notifies.fetch_add(1, Ordering::Relaxed);
                self.not_full.notify_one();
                return Some(message);
            }
            if state.closed {
                return None;
            }
            if woken {
                state.waits.woken_to_false_predicate += 1;
            }
            state = self.wait(&self.not_empty, state, |w| &mut w.consumer);
            woken = true;
        }
    }

    /// No more messages will come: wakes a consumer that waits for one.
    fn close(&self) {
        self.lock().closed = true;
        self.notifies.fetch_add(1, Ordering::Relaxed);
        self.not_empty.notify_all();
    }
}

/// The job through the mutex-and-condvar queue.
fn through_queue(count: u64) -> (Tally, String) {
    let queue = BoundedQueue::new();
    let started = Instant::now();
    let mut tally = Tally::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut text = String::new();
            for i in 0..count {
                write_message(i, &mut text);
                // One allocation per message: the queue holds owned buffers.
                queue.push(text.as_bytes().to_vec());
            }
            queue.close();
        });
        while let Some(message) = queue.pop() {
            tally.add(&message);
        }
    });
    let elapsed = started.elapsed();
    let state = queue.lock();
    let stats = format!(
        "waits: producer {}, consumer {}, woken to a false predicate {}; notifies {}; {}",
        state.waits.producer,
        state.waits.consumer,
        state.waits.woken_to_false_predicate,
        queue.notifies.load(Ordering::Relaxed),
        millis(elapsed)
    );
    (tally, stats)
}

/// The job through a shmlane channel between two threads.
fn through_ring(count: u64) -> Result<(Tally, String), BoxError> {
    let options = Options::new().capacity(RING_BYTES);
    // An anonymous segment: its fd could as well go to another process.
    let (mut tx, fd) =
        Sender::anonymous(&options).map_err(|e| format!("cannot create the channel: {e}"))?;
    let rx =
        Receiver::from_fd(fd, &options).map_err(|e| format!("cannot open the channel: {e}"))?;
    let started = Instant::now();
    let tally = std::thread::scope(|s| -> Result<Tally, BoxError> {
        let producer = s.spawn(move || -> Result<(), Error> {
            let mut text = String::new();
            for i in 0..count {
                write_message(i, &mut text);
                // Copied into the ring's bytes: no allocation.
                tx.send(text.as_bytes())?;
            }
            Ok(())
            // Dropping `tx` closes the channel: the receiver gets
            // `Disconnected` once it has taken everything.
        });
        // Owned here, so that an early return drops it, and the producer
        // blocked on a full ring sees `Disconnected` instead of waiting.
        let mut rx = rx;
        let mut buf = vec![0u8; rx.max_message()];
        let mut tally = Tally::new();
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => tally.add(&buf[..n]),
                Err(Error::Disconnected) => break,
                Err(e) => return Err(format!("receiving: {e}").into()),
            }
        }
        producer
            .join()
            .map_err(|_| "the producer panicked")?
            .map_err(|e| format!("sending: {e}"))?;
        Ok(tally)
    })?;
    Ok((tally, millis(started.elapsed())))
}

fn millis(elapsed: Duration) -> String {
    format!("{} ms", elapsed.as_millis())
}

fn compare(count: u64) -> Result<(), BoxError> {
    let mut expected = Tally::new();
    let mut text = String::new();
    for i in 0..count {
        write_message(i, &mut text);
        expected.add(text.as_bytes());
    }
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))
    };
    say(format!("expected: {expected}"))?;
    let (queued, stats) = through_queue(count);
    say(format!("condvar: {queued}; {stats}"))?;
    let (ringed, stats) = through_ring(count)?;
    say(format!("ring: {ringed}; {stats}"))?;
    if queued != expected || ringed != expected {
        return Err("the results differ".into());
    }
    say("the results match".to_owned())?;
    Ok(())
}
