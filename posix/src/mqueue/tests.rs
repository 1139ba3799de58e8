//! Unit tests of the message queues (real queues of this process).

use super::*;
use crate::Object;
use std::time::Instant;

/// A queue name unique to this test and this process.
fn qname(tag: &str) -> String {
    format!("/shmlane-mq-test-{}-{tag}", std::process::id())
}

/// Removes a name when dropped, for tests that keep a queue past its
/// handles (also on panic).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = MessageQueue::unlink(&self.0);
    }
}

fn small() -> MqOptions {
    MqOptions::new().capacity(4).max_message(256)
}

/// Creates a queue, or `None` (with a note) if this kernel has no
/// POSIX message queues.
fn create(name: &str, options: &MqOptions) -> Option<MessageQueue> {
    match MessageQueue::create(name, options) {
        Ok(q) => Some(q),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOSYS) => {
            eprintln!("skipped: POSIX message queues are not available (ENOSYS)");
            None
        }
        Err(e) => panic!("create {name}: {e}"),
    }
}

fn limit(file: &str) -> u64 {
    read_limit(file).expect("read /proc/sys/fs/mqueue limit")
}

#[test]
fn round_trip_sizes_zero_one_and_max() {
    let max = limit(MSGSIZE_MAX).min(8192) as usize;
    let name = qname("round-trip");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(3).max_message(max)) else {
        return;
    };
    assert_eq!(q.max_message(), max);
    let big: Vec<u8> = (0..max).map(|i| (i * 7 + 3) as u8).collect();
    let msgs: [&[u8]; 3] = [b"", b"x", &big];
    for m in msgs {
        q.send(m, 0).unwrap();
    }
    assert_eq!(q.len().unwrap(), 3);
    // Exactly `max` bytes (received directly) and a larger buffer.
    for (m, mut buf) in msgs
        .into_iter()
        .zip([vec![0xAA; max], vec![0xAA; max + 10], vec![0; max]])
    {
        let (len, priority) = q.recv(&mut buf).unwrap();
        assert_eq!((&buf[..len], priority), (m, 0));
    }
    assert!(q.is_empty().unwrap());
    // The same through the scratch buffer (a caller buffer shorter than
    // the queue's message size).
    q.send(b"", 1).unwrap();
    q.send(b"y", 2).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(q.recv(&mut buf).unwrap(), (1, 2));
    assert_eq!(buf, *b"y");
    assert_eq!(q.recv(&mut [][..]).unwrap(), (0, 1));
}

#[test]
fn highest_priority_first_then_fifo() {
    let name = qname("priorities");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(6).max_message(64)) else {
        return;
    };
    let sent: [(&[u8], u32); 6] = [
        (b"low-1", 1),
        (b"high", MAX_PRIORITY),
        (b"medium-1", 100),
        (b"low-2", 1),
        (b"medium-2", 100),
        (b"zero", 0),
    ];
    for (m, p) in sent {
        q.send(m, p).unwrap();
    }
    let expected: [(&[u8], u32); 6] = [
        (b"high", MAX_PRIORITY),
        (b"medium-1", 100),
        (b"medium-2", 100),
        (b"low-1", 1),
        (b"low-2", 1),
        (b"zero", 0),
    ];
    let mut buf = [0u8; 64];
    for (m, p) in expected {
        let (len, priority) = q.try_recv(&mut buf).unwrap();
        assert_eq!((&buf[..len], priority), (m, p));
    }
}

#[test]
fn priority_above_max_is_refused() {
    let name = qname("bad-priority");
    let Some(q) = create(&name, &small()) else {
        return;
    };
    for r in [
        q.send(b"x", MAX_PRIORITY + 1),
        q.try_send(b"x", u32::MAX),
        q.send_timeout(b"x", 32768, Duration::from_millis(1)),
    ] {
        assert!(
            matches!(
                r,
                Err(Error::LimitExceeded {
                    limit: "MQ_PRIO_MAX - 1",
                    max: 32767,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    assert!(q.is_empty().unwrap());
}

#[test]
fn try_send_on_full_queue_is_full_and_sends_nothing() {
    let name = qname("full");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(2).max_message(32)) else {
        return;
    };
    q.try_send(b"one", 1).unwrap();
    q.try_send(b"two", 1).unwrap();
    let started = Instant::now();
    assert!(matches!(q.try_send(b"three", 9), Err(Error::Full)));
    assert!(matches!(q.try_send(b"", 0), Err(Error::Full)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "try_send waited"
    );
    assert_eq!(q.len().unwrap(), 2);
    // The descriptor was never made non-blocking.
    let attr = getattr(q.as_fd()).unwrap();
    assert_eq!(attr.mq_flags & libc::O_NONBLOCK as libc::c_long, 0);

    let mut buf = [0u8; 32];
    for m in [&b"one"[..], b"two"] {
        let (len, priority) = q.try_recv(&mut buf).unwrap();
        assert_eq!((&buf[..len], priority), (m, 1));
    }
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    // Room again.
    q.try_send(b"three", 9).unwrap();
}

#[test]
fn try_receive_on_empty_queue_is_empty() {
    let name = qname("empty");
    let Some(mut q) = create(&name, &small()) else {
        return;
    };
    let mut big = [0u8; 256];
    let mut short = [0u8; 8];
    assert!(matches!(q.try_recv(&mut big), Err(Error::Empty)));
    assert!(matches!(q.try_recv(&mut short), Err(Error::Empty)));
    let attr = getattr(q.as_fd()).unwrap();
    assert_eq!(attr.mq_flags & libc::O_NONBLOCK as libc::c_long, 0);
}

#[test]
fn timeouts_time_out_after_waiting() {
    let name = qname("timeouts");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(1).max_message(16)) else {
        return;
    };
    let timeout = Duration::from_millis(50);
    let mut buf = [0u8; 16];

    let started = Instant::now();
    assert!(matches!(
        q.recv_timeout(&mut buf, timeout),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= timeout / 2, "returned at once");

    q.send_timeout(b"fills it", 0, timeout).unwrap();
    let started = Instant::now();
    assert!(matches!(
        q.send_timeout(b"no room", 0, timeout),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= timeout / 2, "returned at once");
    assert_eq!(q.len().unwrap(), 1);

    // A zero timeout behaves like the try_ calls; a huge one saturates
    // instead of overflowing into an invalid deadline.
    assert!(matches!(
        q.send_timeout(b"x", 0, Duration::ZERO),
        Err(Error::TimedOut)
    ));
    assert_eq!(q.recv_timeout(&mut buf, Duration::MAX).unwrap(), (8, 0));
    q.send_timeout(b"again", 3, Duration::MAX).unwrap();
    assert_eq!(q.recv_timeout(&mut buf, Duration::ZERO).unwrap(), (5, 3));
}

#[test]
fn oversized_send_is_too_large() {
    let name = qname("too-large");
    let Some(q) = create(&name, &MqOptions::new().capacity(2).max_message(100)) else {
        return;
    };
    let msg = [7u8; 101];
    for r in [
        q.send(&msg, 0),
        q.try_send(&msg, 0),
        q.send_timeout(&msg, 0, Duration::from_millis(1)),
    ] {
        assert!(
            matches!(r, Err(Error::TooLarge { len: 101, max: 100 })),
            "{r:?}"
        );
    }
    assert!(q.is_empty().unwrap());
    q.send(&msg[..100], 0).unwrap();
}

#[test]
fn small_buffer_keeps_the_message_until_a_large_one() {
    let name = qname("small-buffer");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(4).max_message(128)) else {
        return;
    };
    let msg: Vec<u8> = (0..100u8).collect();
    q.send(&msg, 7).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(
        q.recv(&mut small),
        Err(Error::BufferTooSmall {
            needed: 100,
            available: 10
        })
    ));
    // Kept by the handle, whatever kind of receive comes next.
    assert!(matches!(
        q.try_recv(&mut small),
        Err(Error::BufferTooSmall {
            needed: 100,
            available: 10
        })
    ));
    assert!(matches!(
        q.recv_timeout(&mut small, Duration::from_millis(1)),
        Err(Error::BufferTooSmall {
            needed: 100,
            available: 10
        })
    ));
    assert_eq!(q.len().unwrap(), 0);
    // A later message of higher priority does not overtake it.
    q.send(b"later", MAX_PRIORITY).unwrap();

    let mut buf = [0u8; 100];
    assert_eq!(q.recv(&mut buf).unwrap(), (100, 7));
    assert_eq!(&buf[..], &msg[..]);
    assert_eq!(q.try_recv(&mut buf).unwrap(), (5, MAX_PRIORITY));
    assert_eq!(&buf[..5], b"later");
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
}

/// Creating a queue with `options` is refused with `LimitExceeded`
/// naming `file`, and leaves no queue behind.
fn assert_limit_refused(tag: &str, options: MqOptions, file: &'static str, max: u64) {
    let name = qname(tag);
    let _cleanup = Cleanup(name.clone());
    match MessageQueue::create(&name, &options) {
        Err(Error::LimitExceeded {
            limit,
            requested,
            max: m,
        }) => {
            assert_eq!(limit, file);
            assert_eq!((requested, m), (max + 1, max));
        }
        r => panic!("expected LimitExceeded, got {r:?}"),
    }
    assert!(matches!(
        MessageQueue::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn capacity_above_msg_max_is_limit_exceeded() {
    let max = limit(MSG_MAX);
    let options = MqOptions::new().capacity(max as usize + 1).max_message(64);
    assert_limit_refused("msg-max", options, "/proc/sys/fs/mqueue/msg_max", max);
}

#[test]
fn message_size_above_msgsize_max_is_limit_exceeded() {
    let max = limit(MSGSIZE_MAX);
    let options = MqOptions::new().capacity(1).max_message(max as usize + 1);
    assert_limit_refused(
        "msgsize-max",
        options,
        "/proc/sys/fs/mqueue/msgsize_max",
        max,
    );
}

#[test]
fn zero_capacity_or_size_is_invalid_input() {
    let name = qname("zero");
    let _cleanup = Cleanup(name.clone());
    for options in [
        MqOptions::new().capacity(0),
        MqOptions::new().max_message(0),
    ] {
        match MessageQueue::create(&name, &options) {
            Err(Error::Io { op, source }) => {
                assert_eq!(op, "mq_open");
                assert_eq!(source.kind(), io::ErrorKind::InvalidInput);
            }
            r => panic!("expected InvalidInput, got {r:?}"),
        }
    }
    assert!(matches!(
        MessageQueue::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn invalid_names_are_refused() {
    let long = format!("/{}", "n".repeat(255));
    for bad in [
        "",
        "no-slash",
        "/",
        "/a/b",
        "/nul\0inside",
        "/.",
        "/..",
        long.as_str(),
    ] {
        for r in [
            MessageQueue::create(bad, &small()).map(drop),
            MessageQueue::open(bad).map(drop),
            MessageQueue::unlink(bad),
        ] {
            assert!(
                matches!(r, Err(Error::InvalidName { .. })),
                "{bad:?}: {r:?}"
            );
        }
    }
}

#[test]
fn create_twice_is_already_exists() {
    let name = qname("twice");
    let Some(q) = create(&name, &small()) else {
        return;
    };
    assert!(matches!(
        MessageQueue::create(&name, &small()),
        Err(Error::AlreadyExists { object: Object::Queue, name: n }) if n == name
    ));
    // The first queue is untouched.
    q.try_send(b"ok", 0).unwrap();
    assert_eq!(MessageQueue::open(&name).unwrap().len().unwrap(), 1);
}

#[test]
fn missing_queue_is_not_found() {
    let name = qname("missing");
    assert!(
        matches!(MessageQueue::open(&name), Err(Error::NotFound { object: Object::Queue, name: n }) if n == name)
    );
    assert!(matches!(
        MessageQueue::unlink(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn two_handles_exchange_messages() {
    let name = qname("two-handles");
    let Some(mut a) = create(&name, &MqOptions::new().capacity(3).max_message(48)) else {
        return;
    };
    let mut b = MessageQueue::open(&name).unwrap();
    assert_eq!(
        (b.capacity(), b.max_message(), b.name()),
        (3, 48, name.as_str())
    );
    let mut buf = [0u8; 48];

    a.send(b"ping", 1).unwrap();
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(b.recv(&mut buf).unwrap(), (4, 1));
    assert_eq!(&buf[..4], b"ping");
    b.send(b"pong", 2).unwrap();
    assert_eq!(a.recv(&mut buf).unwrap(), (4, 2));
    assert_eq!(&buf[..4], b"pong");

    // Dropping the opener leaves the queue; dropping the creator removes it.
    drop(b);
    let c = MessageQueue::open(&name).unwrap();
    drop(a);
    assert!(matches!(
        MessageQueue::open(&name),
        Err(Error::NotFound { .. })
    ));
    // The remaining handle still works on the nameless queue.
    c.try_send(b"still", 0).unwrap();
    assert_eq!(c.len().unwrap(), 1);
}

#[test]
fn blocking_calls_wake_up() {
    let name = qname("blocking");
    let Some(q) = create(&name, &MqOptions::new().capacity(1).max_message(16)) else {
        return;
    };
    let mut peer = MessageQueue::open(&name).unwrap();
    q.send(b"first", 0).unwrap();
    std::thread::scope(|s| {
        // Blocks until the main thread makes room.
        let sender = s.spawn(|| q.send(b"second", 0));
        let mut buf = [0u8; 16];
        let (len, _) = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"first");
        let (len, _) = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"second");
        sender.join().unwrap().unwrap();

        // And a blocked receiver wakes for a message.
        let receiver = s.spawn(move || {
            let mut buf = [0u8; 4];
            peer.recv(&mut buf).map(|(len, p)| (buf[..len].to_vec(), p))
        });
        q.send(b"wake", 5).unwrap();
        assert_eq!(receiver.join().unwrap().unwrap(), (b"wake".to_vec(), 5));
    });
}

#[test]
fn mode_is_applied_exactly() {
    for (tag, options, want) in [
        ("mode-default", small(), 0o600),
        // 0666 is what the usual umask (022) would cut down.
        ("mode-666", small().mode(0o666), 0o666),
        ("mode-640", small().mode(0o100_640), 0o640),
    ] {
        let name = qname(tag);
        let Some(q) = create(&name, &options) else {
            return;
        };
        let stat = rustix::fs::fstat(q.as_fd()).unwrap();
        assert_eq!(stat.st_mode & 0o777, want, "{tag}");
    }
}

#[test]
fn drop_unlinks_only_its_own_queue() {
    let name = qname("drop");
    let _cleanup = Cleanup(name.clone());
    let Some(mut kept) = create(&name, &small()) else {
        return;
    };
    kept.set_unlink_on_drop(false);
    drop(kept);
    let reopened = MessageQueue::open(&name).unwrap();
    drop(reopened);

    // The name now belongs to another queue: dropping the old creator
    // must not remove it.
    let mut old = MessageQueue::open(&name).unwrap();
    old.set_unlink_on_drop(true);
    MessageQueue::unlink(&name).unwrap();
    let new = MessageQueue::create(&name, &small()).unwrap();
    drop(old);
    assert!(MessageQueue::open(&name).is_ok());
    drop(new);
    assert!(matches!(
        MessageQueue::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn descriptor_can_be_polled() {
    let name = qname("poll");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(1).max_message(8)) else {
        return;
    };
    let poll = |q: &MessageQueue| {
        let mut pfd = libc::pollfd {
            fd: q.as_fd().as_raw_fd(),
            events: libc::POLLIN | libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid `pollfd` for the call, timeout 0.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        assert!(n >= 0, "poll: {}", io::Error::last_os_error());
        pfd.revents
    };
    assert_eq!(poll(&q), libc::POLLOUT);
    q.send(b"x", 0).unwrap();
    assert_eq!(poll(&q), libc::POLLIN);
    q.recv(&mut [0u8; 8]).unwrap();
    assert_eq!(poll(&q), libc::POLLOUT);
}

const RECLAIM_CHILD: &str = "SHMLANE_MQ_RECLAIM_CHILD";

/// Run by `a_killed_creators_queue_is_reclaimed` in a child process:
/// creates the queue, says so, and waits to be killed.
#[test]
#[ignore = "run in a child process by a_killed_creators_queue_is_reclaimed"]
fn reclaim_child() {
    use std::io::{Read, Write};
    let Some(name) = std::env::var_os(RECLAIM_CHILD) else {
        return;
    };
    let q = MessageQueue::create(name.to_str().unwrap(), &small()).unwrap();
    q.send(b"old", 0).unwrap();
    let mut out = std::io::stdout().lock();
    write!(out, "\nreclaim-child: created\n").unwrap();
    out.flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn a_killed_creators_queue_is_reclaimed() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let name = qname("reclaim-killed");
    let _cleanup = Cleanup(name.clone());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "mqueue::tests::reclaim_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RECLAIM_CHILD, &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap() == "reclaim-child: created"),
        "the child did not create the queue"
    );
    // Live: nobody takes it.
    for r in [
        MessageQueue::create(&name, &small()),
        MessageQueue::create_reclaiming(&name, &small()),
    ] {
        assert!(matches!(r, Err(Error::AlreadyExists { .. })), "{r:?}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Dead, but a plain create never removes anything.
    assert!(matches!(
        MessageQueue::create(&name, &small()),
        Err(Error::AlreadyExists { .. })
    ));
    let mut q = MessageQueue::create_reclaiming(&name, &small()).unwrap();
    // A new queue: the dead creator's message went with the old one.
    assert!(matches!(q.try_recv(&mut [0; 256]), Err(Error::Empty)));
    // And the new one is live.
    assert!(matches!(
        MessageQueue::create_reclaiming(&name, &small()),
        Err(Error::AlreadyExists { .. })
    ));
    drop(q);
    assert!(matches!(
        MessageQueue::open(&name),
        Err(Error::NotFound { .. })
    ));
}

/// Leaves a queue at `name` that nobody holds, with one message in it.
fn leave_stale(name: &str, options: &MqOptions, owner: Option<u32>) {
    let mut q = create(name, options).unwrap();
    if let Some(uid) = owner {
        // SAFETY: a valid queue descriptor, borrowed for the call.
        let r = unsafe { libc::fchown(q.as_fd().as_raw_fd(), uid, uid) };
        assert_eq!(r, 0, "fchown: {}", io::Error::last_os_error());
    }
    q.send(b"kept", 0).unwrap();
    q.set_unlink_on_drop(false);
}

#[test]
fn a_stale_queue_not_ours_is_never_reclaimed() {
    // Ours, but others may write to it.
    let name = qname("reclaim-mode");
    let _cleanup = Cleanup(name.clone());
    leave_stale(&name, &small().mode(0o666), None);
    let r = MessageQueue::create_reclaiming(&name, &small());
    assert!(
        matches!(
            r,
            Err(Error::UnsafeMode {
                mode: 0o666,
                allowed: 0o600,
                ..
            })
        ),
        "{r:?}"
    );
    let kept = MessageQueue::open_with(&name, &small().mode(0o666)).unwrap();
    assert_eq!(kept.len().unwrap(), 1);

    // Another user's.
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped the foreign owner part: needs root to chown a queue");
        return;
    }
    let name = qname("reclaim-foreign");
    let _cleanup = Cleanup(name.clone());
    leave_stale(&name, &small(), Some(65534));
    let r = MessageQueue::create_reclaiming(&name, &small());
    assert!(
        matches!(r, Err(Error::ForeignOwner { owner: 65534, .. })),
        "{r:?}"
    );
    let theirs = MqOptions::new().owner(65534);
    assert_eq!(
        MessageQueue::open_with(&name, &theirs)
            .unwrap()
            .len()
            .unwrap(),
        1
    );
}

const RLIMIT_CHILD: &str = "SHMLANE_MQ_RLIMIT_CHILD";

/// Runs `rlimit_msgqueue_child` in a child process: it lowers
/// `RLIMIT_MSGQUEUE`, which would disturb the other tests here.
#[test]
fn rlimit_msgqueue_is_limit_exceeded() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "mqueue::tests::rlimit_msgqueue_child",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(RLIMIT_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "child did not run:\n{stdout}\n{stderr}"
    );
}

#[test]
#[ignore = "run in a child process by rlimit_msgqueue_is_limit_exceeded"]
fn rlimit_msgqueue_child() {
    if std::env::var_os(RLIMIT_CHILD).is_none() {
        return;
    }
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let hard = getrlimit(Resource::Msgqueue).maximum;
    setrlimit(
        Resource::Msgqueue,
        Rlimit {
            current: Some(0),
            maximum: hard,
        },
    )
    .unwrap();
    let name = qname("rlimit");
    let _cleanup = Cleanup(name.clone());
    match MessageQueue::create(&name, &MqOptions::new().capacity(2).max_message(64)) {
        Err(Error::LimitExceeded {
            limit,
            requested,
            max,
        }) => {
            assert_eq!((limit, requested, max), ("RLIMIT_MSGQUEUE", 128, 0));
        }
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOSYS) => {
            eprintln!("skipped: POSIX message queues are not available (ENOSYS)");
        }
        r => panic!("expected LimitExceeded, got {r:?}"),
    }
}
