//! Framed byte streams against crashes, hostile peers and other users: a
//! message reported sent is never lost (not even by a drop), a vanished
//! reader is `Disconnected` and never a process-killing `SIGPIPE`, and a
//! unix socket is closed to other users unless its creator opens it to them,
//! never replaces what is not its own, and names who is connected.
//!
//! No sleeps synchronise anything: peers report over their stdout, and a
//! test that needs a blocked thread waits for the event it waits for.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use shmlane_posix::Error;
use shmlane_posix::{Framed, FramedListener, MessageReceiver, MessageSender, UnixOptions};
use support::{NOBODY, Peer, TestDir, umask};

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn describe<T>(result: shmlane_posix::Result<T>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(Error::Disconnected) => "disconnected".to_owned(),
        Err(Error::PermissionDenied { .. }) => "permission-denied".to_owned(),
        Err(e) => format!("error {e}"),
    }
}

// --- peers -----------------------------------------------------------------

fn sigpipe_blocked_and_pending() -> (bool, bool) {
    // SAFETY: plain signal-set queries into sets we own.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        (
            libc::sigismember(&mask, libc::SIGPIPE) == 1,
            libc::sigismember(&pending, libc::SIGPIPE) == 1,
        )
    }
}

fn block_sigpipe(block: bool) {
    // SAFETY: changes this thread's signal mask through sets we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// A pipe's writing end whose reader is gone.
fn broken_pipe() -> Framed {
    let (tx, rx) = Framed::pipe(64).unwrap();
    drop(rx);
    tx
}

/// With `SIGPIPE` at its default action (death, as in a C program that
/// embeds a library), every kind of write to a pipe or FIFO whose reader
/// is gone reports `Disconnected`, and leaves the thread's signal mask and
/// pending signals as they were.
fn sigpipe_peer(dir: &str) {
    // SAFETY: sets SIGPIPE's disposition to the default before any thread
    // of this peer writes to a pipe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    support::report(&format!("send {}", describe(broken_pipe().send(b"x"))));
    support::report(&format!(
        "try_send {}",
        describe(broken_pipe().try_send(b"x"))
    ));
    support::report(&format!(
        "send_timeout {}",
        describe(broken_pipe().send_timeout(&[1; 50], Duration::from_secs(5)))
    ));
    // A large frame goes out as a writev.
    let (mut tx, rx) = Framed::pipe(100_000).unwrap();
    drop(rx);
    support::report(&format!("writev {}", describe(tx.send(&[2; 90_000]))));
    let (blocked, _) = sigpipe_blocked_and_pending();
    support::report(&format!("unblocked-after {}", !blocked));

    // A FIFO whose reader left.
    let path = Path::new(dir).join("sigpipe.fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let reader = rustix::fs::open(
        &path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut tx = Framed::open_fifo_writer(&path, 64).unwrap();
    drop(reader);
    support::report(&format!("fifo {}", describe(tx.send(b"x"))));

    // Blocked by the caller and not pending: the write's own SIGPIPE is
    // consumed, the mask stays.
    block_sigpipe(true);
    let result = describe(broken_pipe().send(b"x"));
    let (blocked, pending) = sigpipe_blocked_and_pending();
    support::report(&format!(
        "blocked {result} blocked={blocked} pending={pending}"
    ));
    // Blocked and already pending (someone else's): still pending after.
    // SAFETY: sends SIGPIPE to this thread, which blocks it.
    unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
    let result = describe(broken_pipe().send(b"x"));
    let (blocked, pending) = sigpipe_blocked_and_pending();
    support::report(&format!(
        "pending {result} blocked={blocked} pending={pending}"
    ));
    // Consume that one ourselves before leaving.
    // SAFETY: waits for (takes) the pending SIGPIPE with a zero timeout.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
    }
    support::report("done");
}

#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = support::peer_spec() else {
        return;
    };
    match args[..] {
        ["sigpipe", dir] => sigpipe_peer(dir),
        ["bind-unix-umask0", path] => {
            // SAFETY: umask only swaps this process's file-creation mask.
            unsafe { libc::umask(0) };
            let _listener = FramedListener::bind_unix(path, 64).unwrap();
            support::report("bound");
            support::block_on_stdin();
        }
        ["connect-unix", path] => {
            let result = Framed::connect_unix(path, 64);
            let connected = result.is_ok();
            support::report(&describe(result.map(|mut c| {
                // Then wait until the server closes the connection.
                if connected {
                    let _ = c.recv(&mut [0; 64]);
                }
            })));
        }
        ["connect-unix-then-recv", path] => {
            let mut conn = Framed::connect_unix(path, 64).unwrap();
            support::report("connected");
            support::report(&describe(conn.recv(&mut [0; 64])));
        }
        ["stale-unix", path] => {
            drop(std::os::unix::net::UnixListener::bind(path).unwrap());
            support::report("left");
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

// --- nothing reported sent is lost -----------------------------------------

/// A sender that accepted a message while only part of it fit finishes it
/// when it drops: the reader gets the whole message, then `Disconnected`
/// (not `Truncated`).
fn drop_finishes(mut tx: Framed, mut rx: Framed, len: usize, timed: bool) {
    let msg = message(len);
    if timed {
        tx.send_timeout(&msg, Duration::from_millis(1)).unwrap();
    } else {
        tx.try_send(&msg).unwrap();
    }
    // Only part of it went out: the rest waits, so another message cannot.
    assert!(matches!(tx.try_send(b"more"), Err(Error::Full)));
    let dropper = std::thread::spawn(move || drop(tx));
    let mut buf = vec![0; len];
    assert_eq!(rx.recv(&mut buf).unwrap(), len);
    assert!(buf == msg, "the message arrives whole");
    assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
    dropper.join().unwrap();
}

#[test]
fn dropping_a_sender_finishes_a_message_it_accepted_in_part() {
    // A pipe holds at most 1 MiB (it grows to hold a frame, up to that): a
    // 2 MiB message only partly fits.
    for timed in [false, true] {
        let (tx, rx) = Framed::pipe(2 << 20).unwrap();
        drop_finishes(tx, rx, 2 << 20, timed);
    }
    // A socket's buffers hold some hundreds of KiB.
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let len = 8 << 20;
    drop_finishes(
        Framed::new(a, len).unwrap(),
        Framed::new(b, len).unwrap(),
        len,
        false,
    );
}

#[test]
fn a_dropped_sender_whose_reader_is_gone_does_not_wait() {
    let (mut tx, rx) = Framed::pipe(2 << 20).unwrap();
    tx.try_send(&message(2 << 20)).unwrap();
    drop(rx);
    // The rest can never go out: the drop ends (with the reader gone) instead
    // of waiting for room.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(tx);
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the drop returned");
}

// --- SIGPIPE ------------------------------------------------------------------

#[test]
fn a_vanished_reader_is_disconnected_not_a_fatal_sigpipe() {
    let _serial = support::serial();
    let dir = TestDir::new("sigpipe", 0o777);
    let mut peer = Peer::spawn(&format!("sigpipe {}", dir.path().display()));
    for expected in [
        "send disconnected",
        "try_send disconnected",
        "send_timeout disconnected",
        "writev disconnected",
        "unblocked-after true",
        "fifo disconnected",
        "blocked disconnected blocked=true pending=false",
        "pending disconnected blocked=true pending=true",
        "done",
    ] {
        assert_eq!(peer.report(), expected, "(empty: the peer died)");
    }
    // Exited normally, not killed by a signal.
    peer.finish();
}

// --- unix stream sockets --------------------------------------------------------

#[test]
fn a_default_unix_listener_is_closed_to_other_users_whatever_the_umask() {
    if !support::can_switch_users("a_default_unix_listener_is_closed_to_other_users") {
        return;
    }
    let _serial = support::serial();
    let dir = TestDir::new("unix-default", 0o777);
    let path = dir.join("s.sock");
    // A listener made by a process whose umask takes nothing away.
    let mut server = Peer::spawn(&format!("bind-unix-umask0 {}", path.display()));
    assert_eq!(server.report(), "bound");
    let mode = std::fs::symlink_metadata(&path).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "the default mode, whatever the umask");
    let mut other = Peer::spawn_as(&format!("connect-unix {}", path.display()), NOBODY);
    assert_eq!(other.report(), "permission-denied");
    other.finish();
    server.finish();
}

#[test]
fn a_stale_socket_of_another_user_is_never_replaced() {
    if !support::can_switch_users("a_stale_socket_of_another_user_is_never_replaced") {
        return;
    }
    let _serial = support::serial();
    let dir = TestDir::new("unix-foreign", 0o777);
    let path = dir.join("s.sock");
    let mut other = Peer::spawn_as(&format!("stale-unix {}", path.display()), NOBODY);
    assert_eq!(other.report(), "left");
    other.finish();
    let before = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(before.uid(), NOBODY);
    // Root may remove it, but must not: it is not ours.
    let result = FramedListener::bind_unix(&path, 64);
    assert!(
        matches!(result, Err(Error::ForeignOwner { owner: NOBODY, .. })),
        "{result:?}"
    );
    let after = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!((after.ino(), after.uid()), (before.ino(), NOBODY));
}

#[test]
fn a_symlink_or_a_file_at_a_socket_path_is_never_followed_or_replaced() {
    let dir = TestDir::new("unix-link", 0o777);
    // A stale socket of ours, reached through a symbolic link.
    let target = dir.join("target.sock");
    drop(std::os::unix::net::UnixListener::bind(&target).unwrap());
    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let target_ino = std::fs::symlink_metadata(&target).unwrap().ino();
    let result = FramedListener::bind_unix(&link, 64);
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(
        std::fs::symlink_metadata(&target).unwrap().ino(),
        target_ino
    );
    // A regular file.
    let file = dir.join("file");
    std::fs::write(&file, b"data").unwrap();
    let result = FramedListener::bind_unix(&file, 64);
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
    // The stale socket itself is ours and replaced: served again.
    let replaced = FramedListener::bind_unix(&target, 64);
    assert!(replaced.is_ok(), "{replaced:?}");
    assert!(Framed::connect_unix(&target, 64).is_ok());
}

#[test]
fn a_unix_socket_names_its_peer_and_nothing_else_does() {
    let me = shmlane_posix::PeerCredentials {
        pid: std::process::id() as i32,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    };
    let dir = TestDir::new("unix-creds", 0o777);
    let path = dir.join("s.sock");
    let listener = FramedListener::bind_unix(&path, 64).unwrap();
    let client = Framed::connect_unix(&path, 64).unwrap();
    let server = listener.accept().unwrap();
    assert_eq!(server.peer_credentials(), Some(me));
    assert_eq!(client.peer_credentials(), Some(me));
    // Both halves of a split connection.
    let (tx, rx) = server.split().unwrap();
    assert_eq!(tx.peer_credentials(), Some(me));
    assert_eq!(rx.peer_credentials(), Some(me));
    // Not a pipe, not TCP.
    let (tx, rx) = Framed::pipe(64).unwrap();
    assert_eq!((tx.peer_credentials(), rx.peer_credentials()), (None, None));
    let tcp = FramedListener::bind_tcp("127.0.0.1:0", 64).unwrap();
    let port = tcp.local_port().unwrap();
    let tcp_client = Framed::connect_tcp(&format!("127.0.0.1:{port}"), 64).unwrap();
    assert_eq!(tcp_client.peer_credentials(), None);
    assert_eq!(tcp.accept().unwrap().peer_credentials(), None);
}

#[test]
fn a_unix_socket_made_with_a_mode_has_that_mode_less_the_umask() {
    let dir = TestDir::new("unix-mode", 0o777);
    for mode in [0o600, 0o660, 0o666] {
        let path = dir.join(&format!("s-{mode:o}.sock"));
        let options = UnixOptions::new().mode(mode);
        let _listener = FramedListener::bind_unix_with(&path, &options, 64).unwrap();
        let got = std::fs::symlink_metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(got, mode & !umask(), "asked for {mode:o}");
    }
}

#[test]
fn a_listener_expecting_a_uid_refuses_the_others() {
    if !support::can_switch_users("a_listener_expecting_a_uid_refuses_the_others") {
        return;
    }
    let _serial = support::serial();
    let dir = TestDir::new("unix-uid", 0o777);
    let path = dir.join("s.sock");
    let me = rustix::process::geteuid().as_raw();
    // Anyone may connect; only our uid is accepted.
    let options = UnixOptions::new().mode(0o666).peer_uid(Some(me));
    let listener = FramedListener::bind_unix_with(&path, &options, 64).unwrap();
    // (A umask that takes write permission from others: give it back.)
    if umask() & 0o002 != 0 {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let mut other = Peer::spawn_as(
        &format!("connect-unix-then-recv {}", path.display()),
        NOBODY,
    );
    assert_eq!(other.report(), "connected");
    let refused = listener.accept();
    let pid = other.child.id() as i32;
    assert!(
        matches!(
            refused,
            Err(Error::PeerRefused { pid: p, uid: NOBODY, gid: NOBODY }) if p == pid
        ),
        "{refused:?}"
    );
    assert_eq!(listener.refused(), 1);
    // Its connection was closed.
    assert_eq!(other.report(), "disconnected");
    other.finish();
    // Ours is accepted.
    let mut client = Framed::connect_unix(&path, 64).unwrap();
    let mut server = listener.accept().unwrap();
    client.send(b"let in").unwrap();
    assert_eq!(server.recv(&mut [0; 64]).unwrap(), 6);
    assert_eq!(listener.refused(), 1);
}
