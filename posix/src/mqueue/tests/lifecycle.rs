//! Creating, opening and removing queues: limits, names, modes, owners,
//! and reclaiming what a killed creator left.

use super::*;

const RECLAIM_CHILD: &str = "SHMLANE_MQ_RECLAIM_CHILD";

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
            "mqueue::tests::lifecycle::reclaim_child",
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
            "mqueue::tests::lifecycle::rlimit_msgqueue_child",
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
