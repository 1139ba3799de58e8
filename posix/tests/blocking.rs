//! The blocking calls wait inside the kernel's own read, write, send or
//! receive, and switching between them and the non-blocking or timed calls
//! keeps every promise of both: a non-blocking call never waits, a
//! blocking one gets whole messages however the bytes arrive, and a peer
//! that goes away ends a blocked call.
//!
//! No sleeps: a test that needs a thread to be blocked in a call waits
//! until the kernel reports that thread asleep.

mod support;

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::fs::OFlags;
use shmlane_posix::Error;
use shmlane_posix::dgram::Datagram;
use shmlane_posix::framing::HEADER_LEN;
use shmlane_posix::{Framed, MessageReceiver, MessageSender};
use support::{blocked_in, must_not_wait};

/// Taken for writing by the test that pins two threads to one CPU and
/// bounds how long a timed receive takes there, for reading by the others:
/// their threads would otherwise share that CPU too (a failure detector's
/// bound, not a speed test, but one that load from the rest of this file
/// once pushed past).
static CPU: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn message(seq: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq * 31 + i * 7) as u8).collect()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn nonblocking(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_getfl(fd)
        .unwrap()
        .contains(OFlags::NONBLOCK)
}

/// A raw pipe whose writer waits, after each write, until the reader has
/// taken every byte: so each write reaches a reader that is (or will be)
/// waiting for it on its own.
struct Feeder {
    write: OwnedFd,
}

impl Feeder {
    fn write_alone(&self, bytes: &[u8]) {
        assert_eq!(rustix::io::write(&self.write, bytes).unwrap(), bytes.len());
        while rustix::io::ioctl_fionread(&self.write).unwrap() > 0 {
            std::thread::yield_now();
        }
    }
}

#[test]
fn a_blocking_recv_gets_messages_written_whole_or_in_fragments() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    const MAX: usize = 100_000;
    let (read, write) = rustix::pipe::pipe().unwrap();
    let mut rx = Framed::new(read, MAX).unwrap();
    let feeder = Feeder { write };
    let big = message(1, MAX);
    let big2 = message(2, 50_000);
    let writer = std::thread::spawn(move || {
        // 0: a small message, whole.
        feeder.write_alone(&frame(b"whole"));
        // 1: a small message, its header split too.
        let small = frame(b"fragments");
        for piece in [&small[..2], &small[2..5], &small[5..]] {
            feeder.write_alone(piece);
        }
        // 2: a large one in pieces: read straight into the caller's buffer.
        let bytes = frame(&message(1, MAX));
        for piece in bytes.chunks(7_777) {
            feeder.write_alone(piece);
        }
        // 3: after a large one, a header and some payload, then the rest.
        let bytes = frame(&message(2, 50_000));
        feeder.write_alone(&bytes[..HEADER_LEN + 1000]);
        feeder.write_alone(&bytes[HEADER_LEN + 1000..]);
        // 4, 5, 6: after a large one, an empty and two small ones at once.
        let mut three = frame(b"");
        three.extend_from_slice(&frame(b"one"));
        three.extend_from_slice(&frame(b"two"));
        feeder.write_alone(&three);
        // 7: a large one whole, with the start of the next.
        let mut bytes = frame(&message(1, MAX));
        bytes.extend_from_slice(&frame(b"tail")[..3]);
        feeder.write_alone(&bytes);
        feeder.write_alone(&frame(b"tail")[3..]);
        // 9: cut short: the stream ends inside a frame.
        let cut = &frame(&message(3, 20_000))[..HEADER_LEN + 9_000];
        assert_eq!(rustix::io::write(&feeder.write, cut).unwrap(), cut.len());
    });
    let mut buf = vec![0; MAX];
    let mut expect = |rx: &mut Framed, want: &[u8]| {
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(n, want.len());
        assert!(buf[..n] == *want, "a message of {n} bytes came out wrong");
    };
    expect(&mut rx, b"whole");
    expect(&mut rx, b"fragments");
    expect(&mut rx, &big);
    expect(&mut rx, &big2);
    expect(&mut rx, b"");
    expect(&mut rx, b"one");
    expect(&mut rx, b"two");
    expect(&mut rx, &big);
    expect(&mut rx, b"tail");
    writer.join().unwrap();
    assert!(matches!(rx.recv(&mut buf), Err(Error::Truncated)));
    assert!(matches!(rx.recv(&mut buf), Err(Error::Truncated)));
}

#[test]
fn a_blocking_recv_into_a_small_buffer_keeps_a_large_message() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    const MAX: usize = 64 * 1024;
    let (read, write) = rustix::pipe::pipe().unwrap();
    let mut rx = Framed::new(read, MAX).unwrap();
    let feeder = Feeder { write };
    let writer = std::thread::spawn(move || {
        for seq in 0..3 {
            let bytes = frame(&message(seq, MAX));
            for piece in bytes.chunks(10_000) {
                feeder.write_alone(piece);
            }
        }
    });
    let mut buf = vec![0; MAX];
    assert_eq!(rx.recv(&mut buf).unwrap(), MAX);
    assert_eq!(buf, message(0, MAX));
    // Too small a buffer: the message is kept whole, then delivered.
    assert!(matches!(
        rx.recv(&mut [0; 100]),
        Err(Error::BufferTooSmall {
            needed: MAX,
            available: 100
        })
    ));
    assert_eq!(rx.recv(&mut buf).unwrap(), MAX);
    assert_eq!(buf, message(1, MAX));
    assert_eq!(rx.recv(&mut buf).unwrap(), MAX);
    assert_eq!(buf, message(2, MAX));
    writer.join().unwrap();
    assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
}

#[test]
fn non_blocking_and_timed_calls_on_a_pipe_never_wait_after_blocking_ones() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    let (mut tx, mut rx) = Framed::pipe(64).unwrap();
    tx.send(b"first").unwrap();
    let mut buf = [0; 64];
    assert_eq!(rx.recv(&mut buf).unwrap(), 5);
    // Blocking calls leave a pipe end in blocking mode...
    assert!(!nonblocking(rx.fd()) && !nonblocking(tx.fd()));
    let (rx, was_empty) = must_not_wait(move || {
        let was_empty = matches!(rx.try_recv(&mut [0; 64]), Err(Error::Empty));
        (rx, was_empty)
    });
    let mut rx = rx;
    assert!(was_empty);
    // ...and the others in non-blocking mode, until a blocking one.
    assert!(nonblocking(rx.fd()));
    assert!(matches!(
        rx.recv_timeout(&mut buf, Duration::from_millis(1)),
        Err(Error::TimedOut)
    ));
    tx.send(b"second").unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 6);
    assert!(!nonblocking(rx.fd()));
    tx.send(b"third").unwrap();
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 5);
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::Empty)));
    drop(tx);
    assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
}

#[test]
fn try_send_on_a_full_pipe_after_blocking_sends_is_full_and_sends_nothing() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    const LEN: usize = 1000;
    let (mut tx, mut rx) = Framed::pipe(LEN).unwrap();
    let mut accepted = 0;
    for _ in 0..3 {
        tx.send(&message(accepted, LEN)).unwrap();
        accepted += 1;
    }
    let (tx, accepted) = must_not_wait(move || {
        let mut tx = tx;
        loop {
            match tx.try_send(&message(accepted, LEN)) {
                Ok(()) => accepted += 1,
                Err(Error::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // Full again: still nothing sent, nothing waited for.
        assert!(matches!(
            tx.try_send(&message(accepted, LEN)),
            Err(Error::Full)
        ));
        assert!(matches!(
            tx.send_timeout(&message(accepted, LEN), Duration::from_millis(1)),
            Err(Error::TimedOut)
        ));
        (tx, accepted)
    });
    let mut tx = tx;
    // A blocking send now waits for room, and goes after everything
    // accepted (the rest of a message accepted half-written first).
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0; LEN];
        let mut got = 0;
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    assert_eq!(&buf[..n], &message(got, LEN)[..], "message {got}");
                    got += 1;
                }
                Err(Error::Disconnected) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    for seq in accepted..accepted + 200 {
        tx.send(&message(seq, LEN)).unwrap();
    }
    drop(tx);
    assert_eq!(reader.join().unwrap(), accepted + 200);
}

#[test]
fn the_halves_of_a_split_pipe_end_still_work() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = Framed::pipe(64).unwrap();
    let (mut tx_a, mut tx_b) = tx.split().unwrap();
    let (_rx_other, mut rx) = rx.split().unwrap();
    tx_a.send(b"a").unwrap();
    tx_b.send(b"bb").unwrap();
    let mut buf = [0; 64];
    assert_eq!(rx.recv(&mut buf).unwrap(), 1);
    assert_eq!(rx.recv(&mut buf).unwrap(), 2);
    let (rx, was_empty) = must_not_wait(move || {
        let was_empty = matches!(rx.try_recv(&mut [0; 64]), Err(Error::Empty));
        (rx, was_empty)
    });
    assert!(was_empty);
    let mut rx = rx;
    let writer = std::thread::spawn(move || tx_a.send(b"ccc").unwrap());
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
    writer.join().unwrap();
}

#[test]
fn a_split_socket_half_blocked_in_recv_does_not_stop_the_other_from_try_send() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    for (a, b) in socket_pairs() {
        let (mut a_tx, mut a_rx) = Framed::new(a, 1024).unwrap().split().unwrap();
        let mut b = Framed::new(b, 1024).unwrap();
        let receiver = blocked_in(move || {
            let mut buf = [0; 1024];
            let n = a_rx.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        // The receiving half sleeps in recv on the shared socket; the
        // sending half's non-blocking sends neither wait nor fail, up to
        // a full socket.
        let (a_tx, sent) = must_not_wait(move || {
            let mut sent = 0;
            loop {
                match a_tx.try_send(&message(sent, 1000)) {
                    Ok(()) => sent += 1,
                    Err(Error::Full) => return (a_tx, sent),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let mut a_tx = a_tx;
        assert!(sent > 0);
        assert!(!nonblocking(a_tx.fd()), "MSG_DONTWAIT, not O_NONBLOCK");
        let mut buf = [0; 1024];
        for seq in 0..sent {
            if seq == sent - 1 {
                // The last one may have gone only in part: the rest now.
                a_tx.flush().unwrap();
            }
            assert_eq!(b.recv(&mut buf).unwrap(), 1000);
            assert_eq!(&buf[..1000], &message(seq, 1000)[..]);
        }
        b.send(b"to the sleeper").unwrap();
        assert_eq!(receiver.result(), b"to the sleeper");
        a_tx.send(b"and back").unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), 8);
    }
}

/// A connected unix stream pair and a connected TCP pair.
fn socket_pairs() -> Vec<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (d, _) = listener.accept().unwrap();
    vec![(a.into(), b.into()), (c.into(), d.into())]
}

#[test]
fn a_blocked_socket_recv_ends_when_the_peer_closes() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    for (a, b) in socket_pairs() {
        let mut a = Framed::new(a, 64).unwrap();
        let b = Framed::new(b, 64).unwrap();
        let receiver = blocked_in(move || a.recv(&mut [0; 64]));
        drop(b);
        assert!(matches!(receiver.result(), Err(Error::Disconnected)));
    }
}

#[test]
fn a_blocked_pipe_send_ends_when_the_reader_closes() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    // More than a pipe holds (a pipe grows to hold a frame, but to 1 MiB at
    // most): waits for a reader that never reads.
    let (mut tx, rx) = Framed::pipe(2 << 20).unwrap();
    let sender = blocked_in(move || tx.send(&message(0, 2 << 20)));
    drop(rx);
    assert!(matches!(sender.result(), Err(Error::Disconnected)));
}

/// Two bound datagram sockets, joined: `a` (the client) sending to `b`.
fn datagram_pair(test: &str, max: usize) -> (Datagram, Datagram, std::path::PathBuf) {
    let dir = std::env::temp_dir();
    let id = support::run_id();
    let mut a = Datagram::bind(dir.join(format!("shmlane-blk-{test}-a-{id}")), max).unwrap();
    let b_path = dir.join(format!("shmlane-blk-{test}-b-{id}"));
    let mut b = Datagram::bind(&b_path, max).unwrap();
    a.connect(&b_path).unwrap();
    a.send_hello().unwrap();
    b.accept_hello().unwrap();
    (a, b, b_path)
}

/// Fills the peer's queue with try_send: how many went.
fn fill(tx: &mut Datagram) -> usize {
    let mut sent = 0;
    loop {
        match tx.try_send(&message(sent, 100)) {
            Ok(()) => sent += 1,
            Err(Error::Full) => return sent,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn datagram_calls_of_every_kind_mix() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    for max in [128, 8192] {
        let (mut a, mut b, _) = datagram_pair(&format!("mix-{max}"), max);
        let mut buf = vec![0; max];
        a.send(b"blocking").unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), 8);
        let (b2, was_empty) = must_not_wait(move || {
            let was_empty = matches!(b.try_recv(&mut [0; 64]), Err(Error::Empty));
            (b, was_empty)
        });
        b = b2;
        assert!(was_empty);
        let sent = must_not_wait(move || (fill(&mut a), a));
        let (sent, mut a) = sent;
        assert!(sent > 0);
        assert!(matches!(
            a.send_timeout(b"late", Duration::from_millis(1)),
            Err(Error::TimedOut)
        ));
        for seq in 0..sent {
            assert_eq!(b.recv(&mut buf).unwrap(), 100);
            assert_eq!(&buf[..100], &message(seq, 100)[..]);
        }
        // A message larger than the caller's buffer is kept, received
        // straight into a buffer that holds any.
        let big = message(7, max);
        a.send(&big).unwrap();
        assert!(matches!(
            b.recv(&mut [0; 10]),
            Err(Error::BufferTooSmall { available: 10, .. })
        ));
        assert_eq!(b.recv(&mut buf).unwrap(), max);
        assert_eq!(buf, big);
        a.send(&big).unwrap();
        assert_eq!(b.recv(&mut buf).unwrap(), max);
        assert_eq!(buf, big);
        drop(a);
        assert!(matches!(b.recv(&mut buf), Err(Error::Disconnected)));
    }
}

#[test]
fn a_blocked_datagram_send_ends_when_the_peer_drops_its_receiving_half() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    let (mut a, b, _) = datagram_pair("rx-drop", 256);
    // The peer keeps a sending half (so its socket stays open) and drops
    // the receiving one, which shuts its socket for receiving.
    let (b_tx, b_rx) = b.split().unwrap();
    fill(&mut a);
    let sender = blocked_in(move || {
        let blocked = a.send(b"waits for room that never comes");
        (blocked, a.try_send(b"after"))
    });
    drop(b_rx);
    let (blocked, after) = sender.result();
    assert!(matches!(blocked, Err(Error::Disconnected)), "{blocked:?}");
    assert!(matches!(after, Err(Error::Disconnected)), "{after:?}");
    drop(b_tx);
}

#[test]
fn a_blocked_datagram_send_ends_when_the_peer_closes() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    let (mut a, b, _) = datagram_pair("close", 256);
    fill(&mut a);
    let sender = blocked_in(move || a.send(b"waits for room that never comes"));
    drop(b);
    assert!(matches!(sender.result(), Err(Error::Disconnected)));
}

#[test]
fn a_datagram_socket_bound_again_at_the_peers_path_is_not_the_peer() {
    let _cpu = CPU.read().unwrap_or_else(|e| e.into_inner());
    let (mut a, b, b_path) = datagram_pair("rebind", 64);
    a.send(b"to the first").unwrap();
    drop(b); // nothing read: gone with its socket and path
    let mut b = Datagram::bind(&b_path, 64).unwrap();
    // The pair was joined socket to socket: a newcomer at the path gets
    // nothing, and the sender learns that its peer is gone.
    assert!(matches!(a.send(b"to the second"), Err(Error::Disconnected)));
    assert!(matches!(a.send(b"to nobody"), Err(Error::Disconnected)));
    assert!(matches!(
        b.try_recv(&mut [0; 64]),
        Err(Error::NotFound { .. })
    ));
}

/// A spin-then-futex (or busy-polling) receiver whose sender shares its
/// CPU and keeps it busy without sending: every pause of the spin phase
/// is a yield to the sender, which may run a whole time slice before the
/// receiver runs again, and the spin phase looks at no deadline. With the
/// 1600 rounds of a side on its own CPU, a 50 ms timed receive returned
/// after 2.2 s (in one run of three of this test binary, and in CI); a
/// side that shares its CPU spins 16 rounds. It must give up near its
/// deadline.
#[test]
fn a_timed_receive_sharing_its_cpu_with_a_busy_sender_returns_near_its_deadline() {
    // Alone: the other tests of this file would share the pinned CPU.
    let _alone = CPU.write().unwrap_or_else(|e| e.into_inner());
    use shmlane_posix::{Options, Receiver, Sender, WaitMode};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    let allowed = rustix::thread::sched_getaffinity(None).unwrap();
    let cpu = (0..rustix::thread::CpuSet::MAX_CPU)
        .find(|&c| allowed.is_set(c))
        .unwrap();
    let pin = || {
        let mut one = rustix::thread::CpuSet::new();
        one.set(cpu);
        rustix::thread::sched_setaffinity(None, &one).unwrap();
    };
    for mode in [WaitMode::SpinThenFutex, WaitMode::BusyPoll, WaitMode::Futex] {
        let name = format!("/shmlane-blk-shared-cpu-{}", support::run_id());
        let options = Options::new().wait_mode(mode);
        let stop = AtomicBool::new(false);
        let (name_ref, options, stop) = (&name, &options, &stop);
        let waited = std::thread::scope(|s| {
            let (claimed_tx, claimed) = std::sync::mpsc::channel();
            let receiver = s.spawn(move || {
                pin();
                let mut rx = Receiver::create(name_ref, options).unwrap();
                claimed_tx.send(()).unwrap();
                // The sender is claimed and spinning once it says so.
                let started = Instant::now();
                let r = rx.recv_timeout(&mut [0; 64], Duration::from_millis(50));
                let waited = started.elapsed();
                stop.store(true, Ordering::Relaxed);
                (r, waited)
            });
            claimed.recv().unwrap();
            s.spawn(move || {
                pin();
                let _tx = Sender::open(name_ref, options).unwrap();
                // Busy, on the receiver's CPU, sending nothing.
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
            receiver.join().unwrap()
        });
        let _ = shmlane_posix::Segment::unlink(&name);
        let (r, waited) = waited;
        assert!(matches!(r, Err(Error::TimedOut)), "{mode:?}: {r:?}");
        // A failure detector, not a speed test.
        assert!(
            waited < Duration::from_millis(1000),
            "{mode:?}: a 50 ms timed receive returned after {waited:?}"
        );
    }
}
