//! POSIX message queues and unix datagrams against hostile peers, other
//! local users and crashes: a queue or socket of someone else is never
//! used, forged traffic is never delivered, waits are measured on the
//! monotonic clock, and a peer that closes or dies ends a blocked call
//! after everything it sent was received.
//!
//! No sleeps synchronise anything: a peer process reports over its stdout
//! ([`support::Peer::report`]), and a test that needs a thread blocked in a
//! call waits until the kernel reports that thread asleep. Time bounds are
//! failure detectors only ([`HUNG`]).

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmlane_posix::Error;
use shmlane_posix::dgram::MqChannel;
use shmlane_posix::mqueue::{MessageQueue, MqOptions};
use shmlane_posix::transport::{MessageReceiver, MessageSender};
use support::{NOBODY, Peer, block_on_stdin, can_switch_users, peer_spec, report, serial};

/// How long a call that must return may take before the test calls it
/// hung (a failure detector, not a synchronisation).
const HUNG: Duration = Duration::from_secs(20);

/// The peer side: runs in the child process.
#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(spec) = peer_spec() else {
        return;
    };
    let args: Vec<&str> = spec.iter().map(String::as_str).collect();
    match args[..] {
        // A queue that anybody may write to, holding one forged message,
        // left behind when this process exits.
        ["mq-plant", name] => {
            let options = MqOptions::new().capacity(4).max_message(64).mode(0o666);
            let mut q = MessageQueue::create(name, &options).unwrap();
            q.send(b"\x00forged", 1).unwrap();
            q.set_unlink_on_drop(false);
            report("created");
            block_on_stdin();
        }
        // The sending end of a channel: `count` messages, then wait.
        ["mq-send", name, count] => {
            let mut tx = MqChannel::open(name).unwrap();
            for i in 0..count.parse::<u32>().unwrap() {
                tx.send(&i.to_le_bytes()).unwrap();
            }
            report("sent");
            block_on_stdin();
        }
        _ => panic!("unknown peer spec {spec:?}"),
    }
}

/// A queue name unique to this test and process.
fn qname(test: &str) -> String {
    format!("/shmlane-mqdg-{test}-{}", std::process::id())
}

/// Removes a queue name when dropped (also on panic).
struct QueueName(String);

impl Drop for QueueName {
    fn drop(&mut self) {
        let _ = MessageQueue::unlink(&self.0);
    }
}

/// This thread's id, for [`wait_until_asleep`].
fn tid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// The state letter of thread `tid` of this process (`S`: asleep).
fn thread_state(tid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    stat.rsplit_once(") ").unwrap().1.chars().next().unwrap()
}

/// Waits until thread `tid` of this process sleeps, which for the threads
/// of these tests means: blocked in the call under test.
fn wait_until_asleep(tid: i32) {
    while thread_state(tid) != 'S' {
        std::thread::yield_now();
    }
}

/// The system call thread `tid` of this process is in (it must be asleep
/// in one), by its number (`/proc/<pid>/task/<tid>/syscall`).
fn syscall_of(tid: i32) -> i64 {
    loop {
        let line = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap();
        // "running" while it runs; it goes back to sleep at once.
        if let Some(Ok(number)) = line.split_whitespace().next().map(str::parse) {
            return number;
        }
        std::thread::yield_now();
    }
}

/// A call blocked in another thread.
struct Blocked<T> {
    tid: i32,
    result: mpsc::Receiver<T>,
}

impl<T> Blocked<T> {
    /// What the call returned, or a panic if it does not return within
    /// [`HUNG`] (it waits for something that happened).
    fn result(self) -> T {
        self.result
            .recv_timeout(HUNG)
            .expect("a blocked call did not return")
    }
}

/// Runs `call` on another thread, and returns once that thread sleeps in
/// it.
fn blocked_in<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Blocked<T> {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(tid()).unwrap();
        let _ = done.send(call());
    });
    let tid = tid_rx.recv().unwrap();
    wait_until_asleep(tid);
    Blocked { tid, result }
}

/// Runs `call` on another thread: its result, or a panic if it does not
/// return within [`HUNG`].
fn returns<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(call());
    });
    result
        .recv_timeout(HUNG)
        .expect("a call that must return did not")
}

// ---- POSIX message queues ----

#[test]
fn a_queue_planted_by_another_user_is_never_used() {
    if !can_switch_users("a_queue_planted_by_another_user_is_never_used") {
        return;
    }
    let _serial = serial();
    let name = qname("planted");
    let _cleanup = QueueName(name.clone());
    let mut peer = Peer::spawn_as(&format!("mq-plant {name}"), NOBODY);
    assert_eq!(peer.report(), "created");
    let me = rustix::process::geteuid().as_raw();

    // Mode 0666 lets root (and anyone) open it, but it is not ours.
    for r in [
        MessageQueue::open(&name).map(drop),
        MqChannel::open(&name).map(drop),
        MqChannel::open_with(&name, &MqOptions::new().mode(0o666)).map(drop),
    ] {
        assert!(
            matches!(&r, Err(Error::ForeignOwner { name: n, owner, expected })
                if *n == name && *owner == NOBODY && *expected == me),
            "{r:?}"
        );
    }
    // Named as the expected owner, it is still refused for letting others
    // write to it, unless the mode allows that too.
    let theirs = MqOptions::new().owner(Some(NOBODY));
    assert!(matches!(
        MessageQueue::open_with(&name, &theirs),
        Err(Error::UnsafeMode {
            mode: 0o666,
            allowed: 0o600,
            ..
        })
    ));
    // Nothing was sent or received: the forged message is still the only one.
    let mut q = MessageQueue::open_with(&name, &theirs.mode(0o666)).unwrap();
    assert_eq!(q.len().unwrap(), 1);
    let mut buf = [0u8; 64];
    assert_eq!(q.try_receive(&mut buf).unwrap(), (7, 1));
    peer.finish();
}

#[test]
fn a_queue_others_may_write_to_is_refused() {
    let name = qname("unsafe-mode");
    let mut planted =
        MessageQueue::create(&name, &MqOptions::new().max_message(64).mode(0o622)).unwrap();
    planted.send(b"\x00planted", 1).unwrap();
    for r in [
        MessageQueue::open(&name).map(drop),
        MqChannel::open(&name).map(drop),
    ] {
        assert!(
            matches!(
                r,
                Err(Error::UnsafeMode {
                    mode: 0o622,
                    allowed: 0o600,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    // Group write allowed, other write still not.
    assert!(matches!(
        MessageQueue::open_with(&name, &MqOptions::new().mode(0o620)),
        Err(Error::UnsafeMode { .. })
    ));
    assert!(MessageQueue::open_with(&name, &MqOptions::new().mode(0o622)).is_ok());
    assert_eq!(planted.len().unwrap(), 1);
    assert_eq!(planted.try_receive(&mut [0; 64]).unwrap(), (8, 1));
}

/// The system calls a thread may sleep in for a wait measured on the
/// monotonic clock.
fn is_poll(syscall: i64) -> bool {
    syscall == libc::SYS_ppoll || syscall == libc::SYS_poll
}

#[test]
fn queue_timeouts_wait_in_poll_and_wake_for_the_event() {
    let name = qname("monotonic");
    let mut rx =
        MessageQueue::create(&name, &MqOptions::new().capacity(1).max_message(16)).unwrap();
    let tx = MessageQueue::open(&name).unwrap();

    // A timed receive sleeps in poll (monotonic), never in
    // mq_timedreceive (whose deadline is on the wall clock), and wakes for
    // a message long before its timeout.
    let receiver = blocked_in(move || {
        let mut buf = [0u8; 16];
        let r = rx.receive_timeout(&mut buf, Duration::from_secs(3600));
        (r.map(|(n, p)| (buf[..n].to_vec(), p)), rx)
    });
    let syscall = syscall_of(receiver.tid);
    assert!(
        is_poll(syscall),
        "a timed receive sleeps in system call {syscall}, not poll"
    );
    tx.send(b"wake up", 4).unwrap();
    let (got, mut rx) = receiver.result();
    assert_eq!(got.unwrap(), (b"wake up".to_vec(), 4));

    // The same for a timed send waiting for room.
    tx.send(b"fills it", 0).unwrap();
    let sender = blocked_in(move || (tx.send_timeout(b"waits", 2, Duration::from_secs(3600)), tx));
    let syscall = syscall_of(sender.tid);
    assert!(
        is_poll(syscall),
        "a timed send sleeps in system call {syscall}, not poll"
    );
    let mut buf = [0u8; 16];
    assert_eq!(rx.receive(&mut buf).unwrap(), (8, 0));
    let (sent, tx) = sender.result();
    sent.unwrap();
    assert_eq!(rx.receive(&mut buf).unwrap(), (5, 2));

    // And they still time out: after waiting, with nothing sent or taken.
    let timeout = Duration::from_millis(50);
    let started = Instant::now();
    assert!(matches!(
        rx.receive_timeout(&mut buf, timeout),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= timeout, "returned before its timeout");
    tx.send(b"full again", 0).unwrap();
    let started = Instant::now();
    assert!(matches!(
        tx.send_timeout(b"no room", 0, timeout),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= timeout, "returned before its timeout");
    assert_eq!(rx.len().unwrap(), 1);
}

#[test]
fn a_blocking_queue_receive_wakes_for_a_message() {
    let name = qname("blocking-wake");
    let mut rx = MessageQueue::create(&name, &MqOptions::new().max_message(16)).unwrap();
    let tx = MessageQueue::open(&name).unwrap();
    let receiver = blocked_in(move || {
        let mut buf = [0u8; 16];
        rx.receive(&mut buf).map(|(n, p)| (buf[..n].to_vec(), p))
    });
    tx.send(b"here", 3).unwrap();
    assert_eq!(receiver.result().unwrap(), (b"here".to_vec(), 3));
}

/// A channel's two ends on a new queue of `capacity` messages.
fn mq_pair(test: &str, capacity: usize) -> (MqChannel, MqChannel) {
    let name = qname(test);
    let rx =
        MqChannel::create(&name, &MqOptions::new().capacity(capacity).max_message(65)).unwrap();
    let tx = MqChannel::open(&name).unwrap();
    (tx, rx)
}

#[test]
fn an_mq_channel_receiver_wakes_for_a_message_and_at_the_close() {
    let (mut tx, mut rx) = mq_pair("wake", 4);
    let receiver = blocked_in(move || {
        let mut buf = [0u8; 64];
        let first = rx.recv(&mut buf).map(|n| buf[..n].to_vec());
        (first, rx)
    });
    tx.send(b"one").unwrap();
    let (first, mut rx) = receiver.result();
    assert_eq!(first.unwrap(), b"one");
    let receiver = blocked_in(move || rx.recv(&mut [0u8; 64]));
    drop(tx);
    assert!(matches!(receiver.result(), Err(Error::Disconnected)));
}

#[test]
fn an_mq_sender_that_sent_nothing_ends_a_blocked_receiver() {
    let (tx, mut rx) = mq_pair("sent-nothing", 4);
    let receiver = blocked_in(move || {
        let r = rx.recv(&mut [0u8; 64]);
        (r, rx.try_recv(&mut [0u8; 64]))
    });
    drop(tx);
    let (blocked, after) = receiver.result();
    assert!(matches!(blocked, Err(Error::Disconnected)), "{blocked:?}");
    assert!(matches!(after, Err(Error::Disconnected)), "{after:?}");
}

#[test]
fn a_full_queue_ends_with_every_message_then_disconnected() {
    let (mut tx, mut rx) = mq_pair("full-close", 3);
    let mut sent = 0u32;
    loop {
        match tx.try_send(&sent.to_le_bytes()) {
            Ok(()) => sent += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sent, 3);
    // No room for the close mark: the sender gives up on it and closes.
    drop(tx);
    let got = returns(move || {
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => got.push(u32::from_le_bytes(buf[..n].try_into().unwrap())),
                Err(e) => return (got, e),
            }
        }
    });
    assert_eq!(got.0, (0..sent).collect::<Vec<_>>());
    assert!(matches!(got.1, Error::Disconnected), "{:?}", got.1);
}

#[test]
fn a_blocked_mq_sender_ends_when_the_receiver_closes() {
    let (mut tx, rx) = mq_pair("rx-close", 1);
    tx.send(b"fills it").unwrap();
    // The sender sees the receiver first (a probe), then waits for room.
    let sender = blocked_in(move || tx.send(b"waits"));
    drop(rx);
    assert!(matches!(sender.result(), Err(Error::Disconnected)));
}

#[test]
fn a_killed_mq_sender_ends_a_blocked_receiver_after_all_it_sent() {
    let _serial = serial();
    let name = qname("killed");
    let mut rx = MqChannel::create(&name, &MqOptions::new().capacity(10).max_message(65)).unwrap();
    const COUNT: u32 = 25; // more than the queue holds: the peer waits for room
    let mut peer = Peer::spawn(&format!("mq-send {name} {COUNT}"));
    let (progress_tx, progress) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        progress_tx.send(tid()).unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    got.push(u32::from_le_bytes(buf[..n].try_into().unwrap()));
                    if got.len() == COUNT as usize {
                        progress_tx.send(0).unwrap();
                    }
                }
                Err(e) => return (got, e),
            }
        }
    });
    let receiver_tid = progress.recv().unwrap();
    assert_eq!(peer.report(), "sent");
    progress.recv_timeout(HUNG).expect("all messages received");
    // Everything is in; the receiver waits for more.
    wait_until_asleep(receiver_tid);
    let killed = peer.kill9();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(receiver.join().unwrap()).unwrap());
    let (got, end) = done
        .recv_timeout(HUNG)
        .expect("a receiver blocked on a killed sender did not return");
    eprintln!("Disconnected {:?} after the kill", killed.elapsed());
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());
    assert!(matches!(end, Error::Disconnected), "{end:?}");
}
