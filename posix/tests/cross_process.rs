//! Channels between real processes: this test binary re-executes itself as
//! the peer (the ignored test `peer_process`, see `support`). No sleeps
//! synchronise anything: the peer reports over its stdout pipe.

mod support;

use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use shmlane_posix::fdpass::{recv_fd, send_fd};
use shmlane_posix::{Error, Options, Receiver, Role, Sender, WaitMode};
use support::{NOBODY, Peer, block_on_stdin, next, report, serial};

/// A unique segment name for this test run.
fn name(test: &str) -> String {
    format!("/shmlane-test-{test}-{}", support::run_id())
}

fn mode_of(word: &str) -> WaitMode {
    match word {
        "busy" => WaitMode::BusyPoll,
        "sleep" => WaitMode::Futex,
        _ => WaitMode::SpinThenFutex,
    }
}

/// The peer side: runs in the child process.
#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = support::peer_spec() else {
        return;
    };
    match args[..] {
        ["recv-stream", name, mode, count, seed] => {
            let options = Options::new().wait_mode(mode_of(mode));
            let mut rx = Receiver::open(name, &options).unwrap();
            let count: u64 = count.parse().unwrap();
            let result = check_stream(&mut rx, count, seed.parse().unwrap());
            report(&result);
        }
        ["send-then-block", name, count] => {
            let mut tx = Sender::open(name, &Options::new()).unwrap();
            for i in 0..count.parse::<u64>().unwrap() {
                tx.send(&i.to_le_bytes()).unwrap();
            }
            report("sent");
            block_on_stdin();
        }
        ["attach-then-block", name] => {
            let _rx = Receiver::open(name, &Options::new()).unwrap();
            report("attached");
            block_on_stdin();
        }
        ["create-then-block", name] => {
            let _tx = Sender::create(name, &Options::new()).unwrap();
            report("created");
            block_on_stdin();
        }
        ["try-open", name] => {
            let result = match Receiver::open(name, &Options::new()) {
                Ok(_) => "opened".to_owned(),
                Err(Error::PermissionDenied { .. }) => "permission-denied".to_owned(),
                Err(e) => format!("error {e}"),
            };
            report(&result);
        }
        ["anon-recv", path, count, seed] => {
            let socket = std::os::unix::net::UnixStream::connect(path).unwrap();
            let fd = recv_fd(&socket).unwrap();
            let mut rx = Receiver::from_fd(fd, &Options::new()).unwrap();
            let result = check_stream(&mut rx, count.parse().unwrap(), seed.parse().unwrap());
            report(&result);
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

/// Message `seq` of the stream: its length (0..=max) and its bytes.
fn message(seq: u64, len: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend((0..len).map(|i| (seq as usize).wrapping_mul(131).wrapping_add(i) as u8));
}

fn stream_len(rng: &mut u64, max: usize) -> usize {
    (next(rng) % (max as u64 + 1)) as usize
}

fn send_stream(tx: &mut Sender, count: u64, seed: u64) {
    let max = tx.max_message();
    let mut rng = seed;
    let mut buf = Vec::new();
    for seq in 0..count {
        let len = stream_len(&mut rng, max);
        message(seq, len, &mut buf);
        if seq % 2 == 0 {
            tx.send(&buf).unwrap();
        } else {
            let mut grant = tx.reserve(len).unwrap();
            grant.copy_from_slice(&buf);
            grant.commit(len);
        }
    }
}

/// Receives `count` messages and checks each one's length and bytes, then
/// expects `Disconnected`. Returns "ok <count>" or what went wrong.
fn check_stream(rx: &mut Receiver, count: u64, seed: u64) -> String {
    let max = rx.max_message();
    let mut rng = seed;
    let mut want = Vec::new();
    for seq in 0..count {
        let len = stream_len(&mut rng, max);
        message(seq, len, &mut want);
        let got = match rx.read() {
            Ok(got) => got,
            Err(e) => return format!("error at {seq}: {e}"),
        };
        if *got != want[..] {
            return format!("mismatch at {seq}: got {} bytes, want {len}", got.len());
        }
    }
    match rx.read() {
        Err(Error::Disconnected) => format!("ok {count}"),
        Ok(extra) => format!("extra message of {} bytes", extra.len()),
        Err(e) => format!("error after the end: {e}"),
    }
}

fn stream_across_processes(mode: &str, count: u64) {
    let _serial = serial();
    let name = name(&format!("stream-{mode}"));
    let seed = 0x5eed_0000_0000_0001 ^ count;
    // A small ring: 4 KiB, messages up to 2040 bytes, so it wraps constantly.
    let options = Options::new().capacity(4096).wait_mode(mode_of(mode));
    let mut tx = Sender::create(&name, &options).unwrap();
    let mut peer = Peer::spawn(&format!("recv-stream {name} {mode} {count} {seed}"));
    let started = Instant::now();
    send_stream(&mut tx, count, seed);
    drop(tx);
    let report = peer.report();
    let elapsed = started.elapsed();
    peer.finish();
    assert_eq!(report, format!("ok {count}"));
    eprintln!("{mode}: {count} messages of 0..=2040 bytes in {elapsed:?}");
}

#[test]
fn a_million_random_messages_cross_process_busy_poll() {
    stream_across_processes("busy", 1_000_000);
}

#[test]
fn a_million_random_messages_cross_process_futex() {
    stream_across_processes("futex", 1_000_000);
}

/// Every wait a sleep (no spin phase): the wake-ups alone carry the
/// stream, in both directions (full and empty ring).
#[test]
fn random_messages_cross_process_sleeping_at_once() {
    stream_across_processes("sleep", 100_000);
}

/// Generous bound for "returns instead of hanging"; the detection latency
/// itself is printed (and measured properly by the bench).
const DETECTION_BOUND: Duration = Duration::from_secs(5);

#[test]
fn producer_killed_while_consumer_blocked() {
    let _serial = serial();
    let name = name("kill-producer-blocked");
    let mut rx = Receiver::create(&name, &Options::new()).unwrap();
    let mut peer = Peer::spawn(&format!("send-then-block {name} 100"));
    assert_eq!(peer.report(), "sent");
    for i in 0..100u64 {
        assert_eq!(rx.recv_vec().unwrap(), i.to_le_bytes());
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let killer = std::thread::spawn(move || {
        ready_rx.recv().unwrap();
        peer.kill9()
    });
    ready_tx.send(()).unwrap();
    // Blocks (the ring is empty) until the death is noticed.
    let result = rx.recv_vec();
    let returned = Instant::now();
    let killed_at = killer.join().unwrap();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    let latency = returned.saturating_duration_since(killed_at);
    assert!(latency < DETECTION_BOUND, "took {latency:?}");
    eprintln!("dead producer noticed {latency:?} after the kill");
}

#[test]
fn messages_committed_before_a_kill_are_all_delivered() {
    let _serial = serial();
    let name = name("kill-producer-drain");
    let mut rx = Receiver::create(&name, &Options::new()).unwrap();
    let mut peer = Peer::spawn(&format!("send-then-block {name} 1000"));
    assert_eq!(peer.report(), "sent");
    peer.kill9();
    for i in 0..1000u64 {
        assert_eq!(rx.recv_vec().unwrap(), i.to_le_bytes(), "message {i}");
    }
    assert!(matches!(rx.recv_vec(), Err(Error::Disconnected)));
    assert!(matches!(rx.try_recv(&mut [0; 8]), Err(Error::Disconnected)));
    assert!(rx.sender_died());
}

#[test]
fn consumer_killed_while_producer_blocked_on_full() {
    let _serial = serial();
    let name = name("kill-consumer-blocked");
    let mut tx = Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    let mut peer = Peer::spawn(&format!("attach-then-block {name}"));
    assert_eq!(peer.report(), "attached");
    let mut sent = 0;
    while tx.try_send(&[7; 100]).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let killer = std::thread::spawn(move || {
        ready_rx.recv().unwrap();
        peer.kill9()
    });
    ready_tx.send(()).unwrap();
    // Blocks (the ring is full) until the death is noticed.
    let result = tx.send(&[8; 100]);
    let returned = Instant::now();
    let killed_at = killer.join().unwrap();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    let latency = returned.saturating_duration_since(killed_at);
    assert!(latency < DETECTION_BOUND, "took {latency:?}");
    assert!(tx.is_disconnected());
    eprintln!("dead consumer noticed {latency:?} after the kill");
}

/// Asserts that thread `tid` sleeps in a futex wait with no timeout
/// (`futex(addr, op, val, timeout, ...)`: argument 3).
fn assert_never_woken(tid: i32) {
    support::assert_asleep_without_timeout(tid, libc::SYS_futex, 3);
}

#[test]
fn an_idle_blocked_receiver_is_never_woken_and_still_sees_its_sender_die() {
    let _serial = serial();
    let name = name("idle-receiver");
    let mut rx = Receiver::create(&name, &Options::new()).unwrap();
    let mut peer = Peer::spawn(&format!("send-then-block {name} 1"));
    assert_eq!(peer.report(), "sent");
    assert_eq!(rx.recv_vec().unwrap(), 0u64.to_le_bytes());
    let blocked = support::blocked_in(move || rx.recv_vec());
    assert_never_woken(blocked.tid);
    peer.kill9();
    let result = blocked.result();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[test]
fn an_idle_blocked_sender_is_never_woken_and_still_sees_its_receiver_die() {
    let _serial = serial();
    let name = name("idle-sender");
    let mut tx = Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    let mut peer = Peer::spawn(&format!("attach-then-block {name}"));
    assert_eq!(peer.report(), "attached");
    while tx.try_send(&[7; 100]).is_ok() {}
    let blocked = support::blocked_in(move || tx.send(&[8; 100]));
    assert_never_woken(blocked.tid);
    peer.kill9();
    let result = blocked.result();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

/// A side that went to sleep before its peer existed has nobody to watch
/// and probes nothing; the peer's claim wakes it, so that it watches the
/// peer from then on.
#[test]
fn a_receiver_asleep_before_its_sender_attached_sees_the_sender_die() {
    let _serial = serial();
    let name = name("asleep-before-attach");
    let mut rx = Receiver::create(&name, &Options::new()).unwrap();
    let blocked = support::blocked_in(move || rx.recv_vec());
    assert_never_woken(blocked.tid);
    let mut peer = Peer::spawn(&format!("send-then-block {name} 0"));
    assert_eq!(peer.report(), "sent");
    peer.kill9();
    let result = blocked.result();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[test]
fn stale_segment_is_reclaimed_and_live_one_is_not() {
    let _serial = serial();
    let name = name("stale");
    let mut peer = Peer::spawn(&format!("create-then-block {name}"));
    assert_eq!(peer.report(), "created");
    // Live: never stolen.
    assert!(matches!(
        Sender::create(&name, &Options::new()),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        Receiver::create(&name, &Options::new()),
        Err(Error::AlreadyExists { .. })
    ));
    // The creator dies without removing its name: the segment is stale.
    peer.kill9();
    let mut tx = Sender::create(&name, &Options::new()).expect("stale segment reclaimed");
    let mut rx = Receiver::open(&name, &Options::new()).unwrap();
    tx.send(b"fresh").unwrap();
    assert_eq!(rx.recv_vec().unwrap(), b"fresh");
}

#[test]
fn another_uid_is_refused() {
    let _serial = serial();
    if !support::can_switch_users("another_uid_is_refused") {
        return;
    }
    let name = name("perm");
    let _tx = Sender::create(&name, &Options::new()).unwrap();
    // Run from a copy of this binary that the other user can execute, so
    // the test works wherever the checkout lives (a 0700 home included).
    let mut peer = Peer::spawn_as(&format!("try-open {name}"), NOBODY);
    let report = peer.report();
    peer.finish();
    assert_eq!(report, "permission-denied");
    // The same open as the owner works, so it was the uid that was refused.
    let mut peer = Peer::spawn(&format!("try-open {name}"));
    assert_eq!(peer.report(), "opened");
    peer.finish();
}

#[test]
fn anonymous_segment_passed_over_a_unix_socket() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("shmlane-test-{}", support::run_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("anon.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let (mut tx, fd) = Sender::anonymous(&Options::new().capacity(8192)).unwrap();
    let count = 20_000u64;
    let seed = 77;
    let mut peer = Peer::spawn(&format!("anon-recv {} {count} {seed}", path.display()));
    let (socket, _) = listener.accept().unwrap();
    send_fd(&socket, std::os::fd::AsFd::as_fd(&fd)).unwrap();
    drop(fd);
    send_stream(&mut tx, count, seed);
    drop(tx);
    assert_eq!(peer.report(), format!("ok {count}"));
    peer.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn second_receiver_is_refused_across_processes() {
    let _serial = serial();
    let name = name("second-receiver");
    let _tx = Sender::create(&name, &Options::new()).unwrap();
    let mut peer = Peer::spawn(&format!("attach-then-block {name}"));
    assert_eq!(peer.report(), "attached");
    assert!(matches!(
        Receiver::open(&name, &Options::new()),
        Err(Error::RoleTaken(Role::Consumer))
    ));
    peer.finish(); // let it exit
}

/// Whether `fd` is readable within `timeout` (`None`: [`support::HUNG`],
/// a failure detector).
fn readable(fd: std::os::fd::BorrowedFd<'_>, timeout: Option<Duration>) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let timeout = timeout.unwrap_or(support::HUNG);
    let spec = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as i64,
    };
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    poll(&mut fds, Some(&spec)).unwrap() == 1
}

#[test]
fn a_readiness_fd_turns_readable_for_messages_from_another_process_and_for_its_death() {
    let _serial = serial();
    let name = name("ready-fd");
    let mut rx = Receiver::create(&name, &Options::new()).unwrap();
    assert!(rx.arm().unwrap(), "nothing to receive: armed");
    assert!(!readable(rx.ready_fd().unwrap(), Some(Duration::ZERO)));
    let mut peer = Peer::spawn(&format!("send-then-block {name} 3"));
    assert_eq!(peer.report(), "sent");
    assert!(readable(rx.ready_fd().unwrap(), None));
    for i in 0..3u64 {
        assert_eq!(rx.try_recv_vec().unwrap(), i.to_le_bytes());
    }
    assert!(matches!(rx.try_recv_vec(), Err(Error::Empty)));
    // Armed again: arming reset the fd, and the idle sender rings nothing.
    assert!(rx.arm().unwrap());
    assert!(!readable(rx.ready_fd().unwrap(), Some(Duration::ZERO)));
    peer.kill9();
    assert!(readable(rx.ready_fd().unwrap(), None), "death rings the fd");
    assert!(matches!(rx.try_recv_vec(), Err(Error::Disconnected)));
    assert!(
        !rx.arm().unwrap(),
        "a dead sender is 'ready': nothing to wait for"
    );
}

#[test]
fn a_readiness_fd_turns_readable_when_the_sender_closes() {
    let _serial = serial();
    let name = name("ready-close");
    let mut rx = Receiver::create(&name, &Options::new()).unwrap();
    let peer = Peer::spawn(&format!("send-then-block {name} 1"));
    // Whatever the timing: receive what comes, arm when empty.
    let mut got = 0;
    while got < 1 {
        match rx.try_recv_vec() {
            Ok(msg) => {
                assert_eq!(msg, 0u64.to_le_bytes());
                got += 1;
            }
            Err(Error::Empty) => {
                if rx.arm().unwrap() {
                    assert!(readable(rx.ready_fd().unwrap(), None));
                }
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(rx.arm().unwrap());
    peer.finish(); // closes cleanly
    assert!(readable(rx.ready_fd().unwrap(), None));
    assert!(matches!(rx.try_recv_vec(), Err(Error::Disconnected)));
}

#[test]
fn a_selector_names_the_receiver_another_process_sent_to_and_no_other() {
    let _serial = serial();
    let names: Vec<String> = (0..4).map(|i| name(&format!("select-{i}"))).collect();
    let mut rxs: Vec<Receiver> = names
        .iter()
        .map(|n| Receiver::create(n, &Options::new()).unwrap())
        .collect();
    let mut selector = shmlane_posix::Selector::new();
    {
        let mut sides: Vec<&mut dyn shmlane_posix::select::Ready> =
            rxs.iter_mut().map(|rx| rx as _).collect();
        assert!(
            selector
                .select(&mut sides, Some(Duration::from_millis(1)))
                .unwrap()
                .is_empty()
        );
    }
    let mut peer = Peer::spawn(&format!("send-then-block {} 2", names[2]));
    assert_eq!(peer.report(), "sent");
    let mut sides: Vec<&mut dyn shmlane_posix::select::Ready> =
        rxs.iter_mut().map(|rx| rx as _).collect();
    assert_eq!(selector.select(&mut sides, None).unwrap(), [2]);
    drop(sides);
    assert_eq!(rxs[2].try_recv_vec().unwrap(), 0u64.to_le_bytes());
    assert_eq!(rxs[2].try_recv_vec().unwrap(), 1u64.to_le_bytes());
    peer.kill9();
    let mut sides: Vec<&mut dyn shmlane_posix::select::Ready> =
        rxs.iter_mut().map(|rx| rx as _).collect();
    assert_eq!(selector.select(&mut sides, None).unwrap(), [2], "the death");
    drop(sides);
    assert!(matches!(rxs[2].try_recv_vec(), Err(Error::Disconnected)));
}

// ---------------------------------------------------------------------------
// tokio (feature `tokio`)

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;
    use shmlane_posix::async_channel::{AsyncReceiver, AsyncSender};

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_async_receiver_gets_what_another_process_sent_then_its_death() {
        let _serial = serial();
        let name = name("async-kill");
        current_thread().block_on(async {
            let rx = Receiver::create(&name, &Options::new()).unwrap();
            let mut rx = AsyncReceiver::new(rx).unwrap();
            let mut peer = Peer::spawn(&format!("send-then-block {name} 100"));
            for i in 0..100u64 {
                assert_eq!(rx.recv_vec().await.unwrap(), i.to_le_bytes());
            }
            assert_eq!(peer.report(), "sent");
            peer.kill9();
            let result = rx.recv_vec().await;
            assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
        });
    }

    #[test]
    fn a_cancelled_receive_takes_nothing_and_the_next_one_gets_the_message() {
        let _serial = serial();
        let name = name("async-cancel");
        current_thread().block_on(async {
            let rx = Receiver::create(&name, &Options::new()).unwrap();
            let mut rx = AsyncReceiver::with_spin(rx, Duration::ZERO).unwrap();
            let mut tx = Sender::open(&name, &Options::new()).unwrap();
            // A receive dropped while it waits (armed, awaiting the fd).
            let timed_out = tokio::time::timeout(Duration::from_millis(5), rx.recv_vec()).await;
            assert!(timed_out.is_err());
            tx.send(b"kept").unwrap();
            // And one dropped after the message came but before it was
            // polled again: nothing is taken until the future completes.
            tx.send(b"also kept").unwrap();
            drop(rx.recv_vec());
            assert_eq!(rx.recv_vec().await.unwrap(), b"kept");
            assert_eq!(&*rx.read().await.unwrap(), b"also kept");
        });
    }

    #[test]
    fn async_sides_on_a_multi_thread_runtime_move_many_messages_both_ways_with_room_waits() {
        let _serial = serial();
        let name = name("async-mt");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let small = Options::new().capacity(4096);
            let rx = Receiver::create(&name, &small).unwrap();
            let tx = Sender::open(&name, &small).unwrap();
            let (mut rx, mut tx) = (
                AsyncReceiver::new(rx).unwrap(),
                AsyncSender::new(tx).unwrap(),
            );
            // 20 000 messages through a 4 KiB ring: the sender waits for
            // room again and again, the receiver for messages.
            let sender = tokio::spawn(async move {
                for i in 0..20_000u64 {
                    if i % 2 == 0 {
                        tx.send(&i.to_le_bytes()).await.unwrap();
                    } else {
                        let mut grant = tx.reserve(8).await.unwrap();
                        grant.copy_from_slice(&i.to_le_bytes());
                        grant.commit(8);
                    }
                }
            });
            let receiver = tokio::spawn(async move {
                for i in 0..20_000u64 {
                    assert_eq!(rx.recv_vec().await.unwrap(), i.to_le_bytes());
                }
                let end = rx.recv_vec().await;
                assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
            });
            sender.await.unwrap();
            receiver.await.unwrap();
        });
    }

    #[test]
    fn an_async_side_outside_a_runtime_is_a_typed_error_not_a_panic() {
        let _serial = serial();
        let name = name("async-no-rt");
        let rx = Receiver::create(&name, &Options::new()).unwrap();
        assert!(matches!(AsyncReceiver::new(rx), Err(Error::Io { .. })));
    }
}

/// The readiness contract under an edge-triggered epoll registration (what
/// mio and tokio use): arm, wait, drain until `Empty`, arm again; every
/// message after an arm brings an event, and an unarmed side none.
#[test]
fn a_readiness_fd_keeps_its_contract_under_edge_triggered_epoll() {
    use rustix::event::epoll;
    let _serial = serial();
    let name = name("ready-epoll-et");
    let mut rx = Receiver::create(&name, &Options::new()).unwrap();
    let mut tx = Sender::open(&name, &Options::new()).unwrap();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    epoll::add(
        &ep,
        rx.ready_fd().unwrap(),
        epoll::EventData::new_u64(7),
        epoll::EventFlags::IN | epoll::EventFlags::ET,
    )
    .unwrap();
    let events = |timeout: Duration| -> usize {
        let mut buf = Vec::with_capacity(4);
        let spec = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: timeout.subsec_nanos() as i64,
        };
        epoll::wait(&ep, rustix::buffer::spare_capacity(&mut buf), Some(&spec)).unwrap();
        buf.len()
    };
    for round in 0..50u64 {
        assert!(rx.arm().unwrap(), "round {round}: empty, armed");
        assert_eq!(
            events(Duration::ZERO),
            0,
            "round {round}: no event before a message"
        );
        tx.send(&round.to_le_bytes()).unwrap();
        tx.send(&(round + 1000).to_le_bytes()).unwrap();
        assert_eq!(events(support::HUNG), 1, "round {round}: one event");
        // Drain until Empty: both messages, whatever the event said.
        assert_eq!(rx.try_recv_vec().unwrap(), round.to_le_bytes());
        assert_eq!(rx.try_recv_vec().unwrap(), (round + 1000).to_le_bytes());
        assert!(matches!(rx.try_recv_vec(), Err(Error::Empty)));
    }
    // Not armed: a message brings no event (the sender pays no wake-up).
    tx.send(b"unannounced").unwrap();
    assert_eq!(events(Duration::from_millis(5)), 0);
    assert!(!rx.arm().unwrap(), "a message waits: not armed");
    assert_eq!(rx.try_recv_vec().unwrap(), b"unannounced");
}
