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

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use shmlane_posix::Error;
use shmlane_posix::dgram::Datagram;
use shmlane_posix::mqueue::MqChannel;
use shmlane_posix::mqueue::{MessageQueue, MqOptions};
use shmlane_posix::{MessageReceiver, MessageSender};
use support::{
    HUNG, NOBODY, Peer, TestDir, block_on_stdin, blocked_in, can_switch_users, must_not_wait,
    peer_spec, report, serial, syscall_of, thread_state, tid, umask, wait_until_asleep,
};

/// The peer side: runs in the child process.
#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = peer_spec() else {
        return;
    };
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
        // A datagram client: joins the server, sends `count` messages.
        ["dg-client", server, own, count] => {
            let mut client = Datagram::bind(own, 64).unwrap();
            client.connect(server).unwrap();
            client.send_hello().unwrap();
            for i in 0..count.parse::<u32>().unwrap() {
                client.send(&i.to_le_bytes()).unwrap();
            }
            report("sent");
            block_on_stdin();
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

/// A queue name unique to this test and process.
fn qname(test: &str) -> String {
    format!("/shmlane-mqdg-{test}-{}", support::run_id())
}

/// Removes a queue name when dropped (also on panic).
struct QueueName(String);

impl Drop for QueueName {
    fn drop(&mut self) {
        let _ = MessageQueue::unlink(&self.0);
    }
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
    let theirs = MqOptions::new().owner(NOBODY);
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
    assert_eq!(q.try_recv(&mut buf).unwrap(), (7, 1));
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
    assert_eq!(planted.try_recv(&mut [0; 64]).unwrap(), (8, 1));
}

/// The system calls a thread may sleep in for a wait measured on the
/// monotonic clock.
fn is_poll(syscall: i64) -> bool {
    syscall == libc::SYS_ppoll || syscall == libc::SYS_poll
}

#[test]
fn queue_timeouts_wait_in_poll_and_wake_for_the_event() {
    let name = qname("monotonic");
    let _cleanup = QueueName(name.clone());
    let mut rx =
        MessageQueue::create(&name, &MqOptions::new().capacity(1).max_message(16)).unwrap();
    let tx = MessageQueue::open(&name).unwrap();

    // A timed receive sleeps in poll (monotonic), never in
    // mq_timedreceive (whose deadline is on the wall clock), and wakes for
    // a message long before its timeout.
    let receiver = blocked_in(move || {
        let mut buf = [0u8; 16];
        let r = rx.recv_timeout(&mut buf, Duration::from_secs(3600));
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
    assert_eq!(rx.recv(&mut buf).unwrap(), (8, 0));
    let (sent, tx) = sender.result();
    sent.unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), (5, 2));

    // And they still time out: after waiting, with nothing sent or taken.
    let timeout = Duration::from_millis(50);
    let started = Instant::now();
    assert!(matches!(
        rx.recv_timeout(&mut buf, timeout),
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
    let _cleanup = QueueName(name.clone());
    let mut rx = MessageQueue::create(&name, &MqOptions::new().max_message(16)).unwrap();
    let tx = MessageQueue::open(&name).unwrap();
    let receiver = blocked_in(move || {
        let mut buf = [0u8; 16];
        rx.recv(&mut buf).map(|(n, p)| (buf[..n].to_vec(), p))
    });
    tx.send(b"here", 3).unwrap();
    assert_eq!(receiver.result().unwrap(), (b"here".to_vec(), 3));
}

/// A channel's two ends on a new queue of `capacity` messages, and the
/// guard that removes its name however the test ends.
fn mq_pair(test: &str, capacity: usize) -> (MqChannel, MqChannel, QueueName) {
    let name = qname(test);
    let rx =
        MqChannel::create(&name, &MqOptions::new().capacity(capacity).max_message(65)).unwrap();
    let tx = MqChannel::open(&name).unwrap();
    (tx, rx, QueueName(name))
}

#[test]
fn an_mq_channel_receiver_wakes_for_a_message_and_at_the_close() {
    let (mut tx, mut rx, _cleanup) = mq_pair("wake", 4);
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
    let (tx, mut rx, _cleanup) = mq_pair("sent-nothing", 4);
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
    let (mut tx, mut rx, _cleanup) = mq_pair("full-close", 3);
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
    let got = must_not_wait(move || {
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
    let (mut tx, rx, _cleanup) = mq_pair("rx-close", 1);
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
    let _cleanup = QueueName(name.clone());
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

// ---- Unix datagrams ----

/// A joined pair: `(client, server)`, messages of at most `client_max`
/// and `server_max` bytes.
fn dgram_pair(dir: &TestDir, client_max: usize, server_max: usize) -> (Datagram, Datagram) {
    let mut server = Datagram::bind(dir.join("server"), server_max).unwrap();
    let mut client = Datagram::bind(dir.join("client"), client_max).unwrap();
    client.connect(server.path()).unwrap();
    client.send_hello().unwrap();
    server.accept_hello().unwrap();
    (client, server)
}

/// Whether `r` is the kernel's refusal of a sender the socket is not
/// joined to.
fn refused(r: std::io::Result<usize>) -> bool {
    r.is_err_and(|e| e.raw_os_error() == Some(libc::EPERM))
}

#[test]
fn forged_datagrams_and_close_marks_are_never_delivered() {
    let dir = TestDir::new("dg-forged", 0o700);
    let (s_path, c_path) = (dir.join("server"), dir.join("client"));
    let mut server = Datagram::bind(&s_path, 64).unwrap();
    let mut client = Datagram::bind(&c_path, 64).unwrap();
    // Two forgers: one without a name, one bound to a path of its own.
    let anonymous = UnixDatagram::unbound().unwrap();
    let named = UnixDatagram::bind(dir.join("forger")).unwrap();
    let forged_message = b"\x00forged";
    let forged_close = b"\x01";

    // Before the pair is joined, anyone may queue datagrams at either path.
    for forger in [&anonymous, &named] {
        for to in [&s_path, &c_path] {
            forger.send_to(forged_message, to).unwrap();
            forger.send_to(forged_close, to).unwrap();
        }
    }
    client.connect(&s_path).unwrap();
    client.send_hello().unwrap();
    client.send(b"real 1").unwrap();
    // After the hello, before the server takes it: still queued.
    named.send_to(forged_close, &s_path).unwrap();
    assert!(server.accept_hello().is_ok());
    // Joined: the kernel refuses anyone else's datagrams to the server.
    assert!(refused(anonymous.send_to(forged_close, &s_path)));
    assert!(refused(named.send_to(forged_message, &s_path)));

    let mut buf = [0u8; 64];
    assert_eq!(server.recv(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"real 1");
    server.send(b"reply 1").unwrap();
    // The client joins on the server's welcome, at its first receive.
    assert_eq!(client.recv(&mut buf).unwrap(), 7);
    assert_eq!(&buf[..7], b"reply 1");
    assert!(refused(anonymous.send_to(forged_close, &c_path)));
    assert!(refused(named.send_to(forged_message, &c_path)));

    client.send(b"real 2").unwrap();
    assert_eq!(server.recv(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"real 2");
    // No forged close mark ended either side; each forgery was dropped.
    assert!(matches!(server.try_recv(&mut buf), Err(Error::Empty)));
    assert!(matches!(client.try_recv(&mut buf), Err(Error::Empty)));
    assert_eq!(server.dropped_datagrams(), 5);
    assert_eq!(client.dropped_datagrams(), 4);
    // Each side knows the other: this process, both.
    let me = std::process::id() as i32;
    assert_eq!(server.peer_credentials().map(|c| c.pid), Some(me));
    assert_eq!(client.peer_credentials().map(|c| c.pid), Some(me));
    // The real close still ends the server.
    drop(client);
    assert!(matches!(server.recv(&mut buf), Err(Error::Disconnected)));
}

#[test]
fn a_hello_from_another_uid_is_refused_and_credentials_are_recorded() {
    if !can_switch_users("a_hello_from_another_uid_is_refused_and_credentials_are_recorded") {
        return;
    }
    let _serial = serial();
    // Others may bind here and send to the server's socket.
    let dir = TestDir::new("dg-creds", 0o777);
    let s_path = dir.join("server");
    let mut server = Datagram::bind_with(&s_path, 64, 0o666).unwrap();
    // The umask (022, usually) cut the mode down: open it up for the test.
    std::fs::set_permissions(&s_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let me = rustix::process::geteuid().as_raw();

    let spec = |client: &str| {
        format!(
            "dg-client {} {} 3",
            s_path.display(),
            dir.join(client).display()
        )
    };
    let mut refused_peer = Peer::spawn_as(&spec("refused"), NOBODY);
    assert_eq!(refused_peer.report(), "sent");
    match server.accept_hello_from(Some(me)) {
        Err(Error::PeerRefused { pid, uid, gid }) => {
            assert_eq!(
                (pid, uid, gid),
                (refused_peer.child.id() as i32, NOBODY, NOBODY)
            );
        }
        r => panic!("expected PeerRefused, got {r:?}"),
    }
    assert_eq!(server.dropped_datagrams(), 1);
    assert_eq!(server.peer_credentials(), None);

    let mut accepted_peer = Peer::spawn_as(&spec("accepted"), NOBODY);
    assert_eq!(accepted_peer.report(), "sent");
    let credentials = server.accept_hello_from(Some(NOBODY)).unwrap();
    assert_eq!(credentials.pid, accepted_peer.child.id() as i32);
    assert_eq!((credentials.uid, credentials.gid), (NOBODY, NOBODY));
    assert_eq!(server.peer_credentials(), Some(credentials));
    // The refused client's three messages were dropped on the way.
    assert_eq!(server.dropped_datagrams(), 4);
    let mut buf = [0u8; 64];
    for i in 0..3u32 {
        assert_eq!(server.recv(&mut buf).unwrap(), 4);
        assert_eq!(buf[..4], i.to_le_bytes());
    }
    assert!(matches!(server.try_recv(&mut buf), Err(Error::Empty)));
    refused_peer.finish();
    accepted_peer.finish();
}

#[test]
fn a_datagram_too_long_for_the_receiver_is_frame_too_large_and_consumed() {
    // Through the scratch buffer, and straight into a large caller buffer.
    for (client_max, server_max, long) in [(1000, 100, 1000), (8192, 4096, 5000)] {
        let dir = TestDir::new(&format!("dg-long-{server_max}"), 0o700);
        let (mut client, mut server) = dgram_pair(&dir, client_max, server_max);
        client.send(&vec![7; long]).unwrap();
        client.send(b"next").unwrap();
        client.send(&vec![8; server_max]).unwrap();
        let mut buf = vec![0u8; server_max];
        let r = server.recv(&mut buf);
        assert!(
            matches!(r, Err(Error::FrameTooLarge { len, max }) if len == long && max == server_max),
            "{r:?}"
        );
        assert_eq!(server.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"next");
        assert_eq!(server.recv(&mut buf).unwrap(), server_max);
        assert!(buf.iter().all(|&b| b == 8));
    }
}

#[test]
fn a_datagram_sender_half_that_sent_nothing_ends_a_blocked_receiver() {
    let dir = TestDir::new("dg-sent-nothing", 0o700);
    let (client, mut server) = dgram_pair(&dir, 64, 64);
    let (tx, _rx) = client.split().unwrap();
    let receiver = blocked_in(move || server.recv(&mut [0u8; 64]));
    drop(tx);
    assert!(matches!(receiver.result(), Err(Error::Disconnected)));
}

/// Fills the peer's queue with try_send: how many went.
fn fill(tx: &mut impl MessageSender) -> u32 {
    let mut sent = 0u32;
    loop {
        match tx.try_send(&sent.to_le_bytes()) {
            Ok(()) => sent += 1,
            Err(Error::Full) => return sent,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Receives until an error: the messages (as numbers) and the error.
fn drain(rx: &mut impl MessageReceiver) -> (Vec<u32>, Error) {
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => got.push(u32::from_le_bytes(buf[..n].try_into().unwrap())),
            Err(e) => return (got, e),
        }
    }
}

#[test]
fn a_close_mark_without_room_is_sent_later_by_the_receiving_half() {
    let dir = TestDir::new("dg-mark-later", 0o700);
    let (client, mut server) = dgram_pair(&dir, 64, 64);
    let (mut tx, mut rx) = client.split().unwrap();
    let sent = fill(&mut tx);
    assert!(sent > 0);
    // No room for the mark: the sending half gives up on it and drops.
    drop(tx);
    // The receiving half lives on, waiting for the server's messages.
    let receiving = blocked_in(move || rx.recv(&mut [0u8; 64]));
    // (The server is kept until the end: its drop would end that wait.)
    let ((got, end), _server) = must_not_wait(move || (drain(&mut server), server));
    assert_eq!(got, (0..sent).collect::<Vec<_>>());
    assert!(matches!(end, Error::Disconnected), "{end:?}");
    // (The client's receiving half is still waiting: nothing came for it.)
    assert_eq!(thread_state(receiving.tid), 'S');
}

#[test]
fn a_full_datagram_peer_that_closes_ends_with_every_message_then_disconnected() {
    let dir = TestDir::new("dg-full-close", 0o700);
    let (mut client, mut server) = dgram_pair(&dir, 64, 64);
    let sent = fill(&mut client);
    assert!(sent > 0);
    drop(client); // no room for its mark; its socket closes
    let (got, end) = must_not_wait(move || drain(&mut server));
    assert_eq!(got, (0..sent).collect::<Vec<_>>());
    assert!(matches!(end, Error::Disconnected), "{end:?}");
}

#[test]
fn a_killed_datagram_peer_ends_a_blocked_receiver_after_all_it_sent() {
    let _serial = serial();
    let dir = TestDir::new("dg-killed", 0o700);
    let s_path = dir.join("server");
    let mut server = Datagram::bind(&s_path, 64).unwrap();
    const COUNT: u32 = 25;
    let spec = format!(
        "dg-client {} {} {COUNT}",
        s_path.display(),
        dir.join("client").display()
    );
    let mut peer = Peer::spawn(&spec);
    server.accept_hello().unwrap();
    let (progress_tx, progress) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        progress_tx.send(tid()).unwrap();
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            match server.recv(&mut buf) {
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
    wait_until_asleep(receiver_tid);
    let killed = peer.kill9();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(receiver.join().unwrap()).unwrap());
    let (got, end) = done
        .recv_timeout(HUNG)
        .expect("a receiver blocked on a killed peer did not return");
    eprintln!("Disconnected {:?} after the kill", killed.elapsed());
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());
    assert!(matches!(end, Error::Disconnected), "{end:?}");
}

/// A server knows its client's pid (the hello's credentials): blocked on
/// an idle client it waits on the client's pidfd and its socket, with no
/// probe slices, and still sees the client's kill.
#[test]
fn a_datagram_server_blocked_on_an_idle_client_sleeps_without_timeout_and_sees_its_kill() {
    let _serial = serial();
    let dir = TestDir::new("dg-idle", 0o700);
    let s_path = dir.join("server");
    let mut server = Datagram::bind(&s_path, 64).unwrap();
    let spec = format!(
        "dg-client {} {} 1",
        s_path.display(),
        dir.join("client").display()
    );
    let mut peer = Peer::spawn(&spec);
    server.accept_hello().unwrap();
    assert_eq!(peer.report(), "sent");
    let mut buf = [0u8; 64];
    assert_eq!(server.recv(&mut buf).unwrap(), 4);
    let blocked = support::blocked_in(move || server.recv(&mut [0u8; 64]));
    // `ppoll(fds, nfds, timeout, ...)` on the socket and the pidfd: no
    // timeout (the probe slices were receives with a socket timeout).
    support::assert_asleep_without_timeout(blocked.tid, libc::SYS_ppoll, 2);
    peer.kill9();
    let end = blocked.result();
    assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn socket_files_get_their_mode_and_only_our_stale_sockets_are_replaced() {
    let dir = TestDir::new("dg-files", 0o700);
    let umask = umask();
    let default = Datagram::bind(dir.join("default"), 64).unwrap();
    assert_eq!(mode_of(default.path()), 0o600 & !umask);
    let shared = Datagram::bind_with(dir.join("shared"), 64, 0o666).unwrap();
    assert_eq!(mode_of(shared.path()), 0o666 & !umask);
    // A live socket is never taken.
    assert!(matches!(
        Datagram::bind(dir.join("default"), 64),
        Err(Error::AlreadyExists { .. })
    ));

    // A stale socket of ours (std leaves its file behind) is replaced.
    let stale = dir.join("stale");
    drop(UnixDatagram::bind(&stale).unwrap());
    let replaced = Datagram::bind(&stale, 64);
    assert!(replaced.is_ok(), "{replaced:?}");
    drop(replaced);

    // A symbolic link is never followed, even to a stale socket of ours.
    let target = dir.join("target");
    drop(UnixDatagram::bind(&target).unwrap());
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(matches!(
        Datagram::bind(&link, 64),
        Err(Error::WrongType {
            found: "a symbolic link",
            ..
        })
    ));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(target.exists());

    // A stale socket of another user is left alone.
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped the foreign socket part: needs root to chown a socket file");
        return;
    }
    let foreign = dir.join("foreign");
    drop(UnixDatagram::bind(&foreign).unwrap());
    std::os::unix::fs::lchown(&foreign, Some(NOBODY), Some(NOBODY)).unwrap();
    let r = Datagram::bind(&foreign, 64);
    assert!(
        matches!(&r, Err(Error::ForeignOwner { owner, .. }) if *owner == NOBODY),
        "{r:?}"
    );
    assert_eq!(std::fs::symlink_metadata(&foreign).unwrap().uid(), NOBODY);
}

#[test]
fn split_datagram_halves_work_one_way_each_and_may_join_first() {
    let dir = TestDir::new("dg-halves", 0o700);
    let server = Datagram::bind(dir.join("server"), 64).unwrap();
    let mut client = Datagram::bind(dir.join("client"), 64).unwrap();
    // Split before the handshake: the receiving half takes the hello.
    let (mut stx, mut srx) = server.split().unwrap();
    client.connect(dir.join("server")).unwrap();
    client.send_hello().unwrap();
    assert!(matches!(stx.accept_hello(), Err(Error::RoleTaken(_))));
    srx.accept_hello().unwrap();
    stx.send(b"from the sending half").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(client.recv(&mut buf).unwrap(), 21);
    client.send(b"to the receiving half").unwrap();
    assert_eq!(srx.recv(&mut buf).unwrap(), 21);
    assert!(matches!(stx.try_recv(&mut buf), Err(Error::RoleTaken(_))));
    assert!(matches!(srx.try_send(b"x"), Err(Error::RoleTaken(_))));
    // The socket file stays until both halves are gone.
    drop(stx);
    assert!(dir.join("server").exists());
    assert!(matches!(client.recv(&mut buf), Err(Error::Disconnected)));
    drop(srx);
    assert!(!dir.join("server").exists());
}

#[test]
fn malformed_hellos_are_dropped_and_counted() {
    let dir = TestDir::new("dg-bad-hellos", 0o700);
    let s_path = dir.join("server");
    let mut server = Datagram::bind(&s_path, 64).unwrap();
    let raw = UnixDatagram::bind(dir.join("raw")).unwrap();
    let file = dir.join("file");
    std::fs::write(&file, b"not a socket").unwrap();
    let hello = |path: &[u8]| {
        let mut h = vec![2u8];
        h.extend_from_slice(&[0x55; 16]);
        h.extend_from_slice(path);
        h
    };
    let mut bad = vec![
        vec![2u8],                                  // no token
        hello(b""),                                 // no path
        hello(b"/nonexistent/shmlane-socket"),      // nothing there
        hello(file.as_os_str().as_encoded_bytes()), // not a socket
        hello(&[b'x'; 200]),                        // longer than any hello
        vec![9u8, 1, 2, 3],                         // no such tag
        vec![],                                     // empty
    ];
    if rustix::process::geteuid().is_root() {
        // A socket of another user: a client may only name its own.
        let theirs = dir.join("theirs");
        drop(UnixDatagram::bind(&theirs).unwrap());
        std::os::unix::fs::lchown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
        bad.push(hello(theirs.as_os_str().as_encoded_bytes()));
    }
    for datagram in &bad {
        raw.send_to(datagram, &s_path).unwrap();
    }
    let mut client = Datagram::bind(dir.join("client"), 64).unwrap();
    client.connect(&s_path).unwrap();
    client.send_hello().unwrap();
    let credentials = must_not_wait(move || {
        let r = server.accept_hello();
        (r, server)
    });
    let (accepted, mut server) = credentials;
    accepted.unwrap();
    assert_eq!(server.dropped_datagrams(), bad.len() as u64);
    client.send(b"in").unwrap();
    assert_eq!(server.recv(&mut [0; 64]).unwrap(), 2);
}
