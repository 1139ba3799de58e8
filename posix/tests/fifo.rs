//! FIFOs next to other local users and after crashes: no open follows a
//! symbolic link or waits without a deadline, only FIFOs of the expected
//! owner and mode are used, one writer at a time, a reader does not take
//! "no writer yet" for the end of the stream, a creator removes only its
//! own FIFO, and a FIFO left by a creator that died is taken over (when
//! asked) while a live one, and anything not ours, is left alone.
//!
//! No sleeps synchronise anything: peers report over their stdout, and a
//! test that needs a blocked thread waits until the kernel reports it
//! asleep.

mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{CWD, Mode};
use shmlane_posix::fifo::FifoOptions;
use shmlane_posix::{Error, Role};
use shmlane_posix::{Framed, MessageReceiver, MessageSender};
use support::{HUNG, NOBODY, Peer, TestDir, blocked_in, must_not_wait, umask};

fn mkfifo(path: &Path, mode: u32) {
    rustix::fs::mkfifoat(CWD, path, Mode::from_raw_mode(mode)).unwrap();
    // Whatever the umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A plain reading end of the FIFO at `path` (opened without waiting), to
/// have a reader there without the code under test.
fn raw_reader(path: &Path) -> std::os::fd::OwnedFd {
    use rustix::fs::OFlags;
    rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty()).unwrap()
}

/// Whether a writer came to the FIFO that `reader` reads since it opened
/// (and left: the kernel reports a hang-up only after a writer came).
fn a_writer_came_and_left(reader: &std::os::fd::OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [PollFd::new(reader, PollFlags::IN)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&zero)).unwrap();
    fds[0].revents().contains(PollFlags::HUP)
}

fn ino(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().ino()
}

#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = support::peer_spec() else {
        return;
    };
    match args[..] {
        // A plain FIFO (no shmlane handle holds it), as whoever runs this.
        ["mkfifo", path, mode] => {
            mkfifo(Path::new(path), u32::from_str_radix(mode, 8).unwrap());
            support::report("made");
        }
        // A shmlane creator that holds its FIFO until killed.
        ["create-fifo", path] => {
            let _rx = Framed::create_fifo(path, 0o600, 64).unwrap();
            support::report("created");
            support::block_on_stdin();
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

#[test]
fn opening_a_fifo_never_follows_a_symlink() {
    let dir = TestDir::new("fifo-symlink", 0o777);
    let target = dir.join("target");
    mkfifo(&target, 0o600);
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // Someone reads the target: a writer that followed the link would
    // get in at once.
    let reader = raw_reader(&target);
    let result = must_not_wait({
        let link = link.clone();
        move || Framed::open_fifo_writer(&link, 64)
    });
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    let result = must_not_wait(move || Framed::open_fifo_reader(&link, 64));
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    // No writer came to the target (not even one that left at once).
    assert!(!a_writer_came_and_left(&reader));
}

#[test]
fn a_reader_opens_at_once_and_waits_for_its_writer_to_come() {
    let dir = TestDir::new("fifo-reader", 0o777);
    let path = dir.join("f");
    mkfifo(&path, 0o600);
    let mut rx = must_not_wait({
        let path = path.clone();
        move || Framed::open_fifo_reader(&path, 64)
    })
    .unwrap();
    // No writer yet: not the end of the stream.
    let mut buf = [0; 64];
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::Empty)));
    let started = Instant::now();
    assert!(matches!(
        rx.recv_timeout(&mut buf, Duration::from_millis(20)),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= Duration::from_millis(20));
    // A blocking receive waits for the writer and its message.
    let got = blocked_in(move || {
        let mut buf = [0; 64];
        let n = rx.recv(&mut buf).unwrap();
        (buf[..n].to_vec(), rx)
    });
    let mut tx = Framed::open_fifo_writer(&path, 64).unwrap();
    tx.send(b"hello").unwrap();
    let (msg, mut rx) = got.result();
    assert_eq!(msg, b"hello");
    // After the writer left: Disconnected.
    drop(tx);
    assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
}

#[test]
fn a_writer_that_comes_and_goes_without_a_word_ends_the_stream() {
    let dir = TestDir::new("fifo-silent", 0o777);
    let path = dir.join("f");
    mkfifo(&path, 0o600);
    let mut rx = must_not_wait({
        let path = path.clone();
        move || Framed::open_fifo_reader(&path, 64)
    })
    .unwrap();
    drop(Framed::open_fifo_writer(&path, 64).unwrap());
    assert!(matches!(
        rx.try_recv(&mut [0; 64]),
        Err(Error::Disconnected)
    ));
    // And a blocking receive does not wait for another.
    assert!(matches!(
        must_not_wait(move || rx.recv(&mut [0; 64])),
        Err(Error::Disconnected)
    ));
}

#[test]
fn a_writer_waits_for_a_reader_no_longer_than_it_was_told() {
    let dir = TestDir::new("fifo-writer", 0o777);
    let path = dir.join("f");
    mkfifo(&path, 0o600);
    // Nobody reads: gives up at its deadline.
    let hasty = FifoOptions::new().writer_timeout(Some(Duration::from_millis(50)));
    let started = Instant::now();
    let result = must_not_wait({
        let (path, hasty) = (path.clone(), hasty.clone());
        move || Framed::open_fifo_writer_with(&path, &hasty, 64)
    });
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(50));
    // A writer told to wait as long as it takes gets in once a reader comes.
    let patient = FifoOptions::new().writer_timeout(None);
    let opened = blocked_in({
        let path = path.clone();
        move || Framed::open_fifo_writer_with(&path, &patient, 64)
    });
    let mut rx = Framed::open_fifo_reader(&path, 64).unwrap();
    let mut tx = opened.result().unwrap();
    tx.send(b"in").unwrap();
    assert_eq!(rx.recv(&mut [0; 64]).unwrap(), 2);
}

#[test]
fn a_writer_finds_a_reader_blocked_in_its_own_open() {
    // A reader that opens in blocking mode (`cat fifo`) waits for a writer
    // inside open(2), which announces nothing until it returns: the writer
    // must find it by looking again.
    let dir = TestDir::new("fifo-blocking-reader", 0o777);
    let path = dir.join("f");
    mkfifo(&path, 0o600);
    let reader = blocked_in({
        let path = path.clone();
        move || std::fs::File::open(&path)
    });
    let options = FifoOptions::new().writer_timeout(Some(HUNG));
    let mut tx = must_not_wait({
        let path = path.clone();
        move || Framed::open_fifo_writer_with(&path, &options, 64)
    })
    .unwrap();
    let reader = reader.result().unwrap();
    tx.send(b"found").unwrap();
    let mut rx = Framed::new(reader, 64).unwrap();
    assert_eq!(rx.recv(&mut [0; 64]).unwrap(), 5);
}

#[test]
fn the_default_writer_open_does_not_wait_forever() {
    let dir = TestDir::new("fifo-default-deadline", 0o777);
    let path = dir.join("f");
    mkfifo(&path, 0o600);
    let result = must_not_wait(move || Framed::open_fifo_writer(&path, 64));
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
}

#[test]
fn a_second_writer_is_refused_and_the_first_goes_on() {
    let dir = TestDir::new("fifo-second", 0o777);
    let path = dir.join("f");
    mkfifo(&path, 0o600);
    let reader = raw_reader(&path);
    let mut first = Framed::open_fifo_writer(&path, 64).unwrap();
    let second = must_not_wait({
        let path = path.clone();
        move || Framed::open_fifo_writer(&path, 64)
    });
    assert!(
        matches!(second, Err(Error::RoleTaken(Role::Producer))),
        "{second:?}"
    );
    first.send(b"one").unwrap();
    let mut rx = Framed::new(reader, 64).unwrap();
    let mut buf = [0; 64];
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::Empty)));
    // Once the first is gone, a new writer may come.
    drop(first);
    let again = Framed::open_fifo_writer(&path, 64);
    assert!(again.is_ok(), "{again:?}");
}

#[test]
fn a_fifo_of_another_user_or_with_a_loose_mode_is_refused() {
    if !support::can_switch_users("a_fifo_of_another_user_or_with_a_loose_mode_is_refused") {
        return;
    }
    let _serial = support::serial();
    let dir = TestDir::new("fifo-foreign", 0o777);
    let theirs = dir.join("theirs");
    let mut peer = Peer::spawn_as(&format!("mkfifo {} 600", theirs.display()), NOBODY);
    assert_eq!(peer.report(), "made");
    peer.finish();
    assert_eq!(std::fs::symlink_metadata(&theirs).unwrap().uid(), NOBODY);
    // (With a reader there, a writer that used it would get in at once.)
    let reader = raw_reader(&theirs);
    for result in [
        must_not_wait({
            let theirs = theirs.clone();
            move || Framed::open_fifo_writer(&theirs, 64)
        }),
        must_not_wait({
            let theirs = theirs.clone();
            move || Framed::open_fifo_reader(&theirs, 64)
        }),
    ] {
        assert!(
            matches!(result, Err(Error::ForeignOwner { owner: NOBODY, .. })),
            "{result:?}"
        );
    }
    assert!(!a_writer_came_and_left(&reader));
    // Unless its owner is the one expected.
    let rx = Framed::open_fifo_reader_with(&theirs, &FifoOptions::new().owner(NOBODY), 64);
    assert!(rx.is_ok(), "{rx:?}");

    // Ours, but others may write to it.
    let loose = dir.join("loose");
    mkfifo(&loose, 0o622);
    let result = must_not_wait({
        let loose = loose.clone();
        move || Framed::open_fifo_reader(&loose, 64)
    });
    assert!(
        matches!(result, Err(Error::UnsafeMode { mode: 0o622, .. })),
        "{result:?}"
    );
    let rx = Framed::open_fifo_reader_with(&loose, &FifoOptions::new().mode(0o622), 64);
    assert!(rx.is_ok(), "{rx:?}");
}

#[test]
fn a_creator_removes_its_fifo_and_nothing_put_in_its_place() {
    let dir = TestDir::new("fifo-creator", 0o777);
    let path = dir.join("f");
    let rx = must_not_wait({
        let path = path.clone();
        move || Framed::create_fifo(&path, 0o600, 64)
    })
    .unwrap();
    drop(rx);
    assert!(!path.exists(), "the creator removes its FIFO");
    let rx = must_not_wait({
        let path = path.clone();
        move || Framed::create_fifo(&path, 0o600, 64)
    })
    .unwrap();
    // Someone moves it away and puts a file of theirs there.
    std::fs::rename(&path, dir.join("moved")).unwrap();
    std::fs::write(&path, b"not yours").unwrap();
    drop(rx);
    assert_eq!(std::fs::read(&path).unwrap(), b"not yours");
}

#[test]
fn a_created_fifo_has_its_mode_less_the_umask_and_an_existing_file_stays() {
    let dir = TestDir::new("fifo-mode", 0o777);
    for mode in [0o600, 0o640, 0o660] {
        let path = dir.join(&format!("f-{mode:o}"));
        let _rx = Framed::create_fifo(&path, mode, 64).unwrap();
        let got = std::fs::symlink_metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(got, mode & !umask(), "asked for {mode:o}");
    }
    // A stale FIFO: without reclaim_stale, never removed.
    let path = dir.join("stale");
    mkfifo(&path, 0o600);
    let before = ino(&path);
    assert!(matches!(
        Framed::create_fifo(&path, 0o600, 64),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(ino(&path), before);
}

#[test]
fn a_fifo_left_by_a_creator_that_died_is_taken_over_and_a_live_one_is_not() {
    let _serial = support::serial();
    let dir = TestDir::new("fifo-reclaim", 0o777);
    let path = dir.join("f");
    let reclaim = FifoOptions::new().reclaim_stale(true);
    let mut creator = Peer::spawn(&format!("create-fifo {}", path.display()));
    assert_eq!(creator.report(), "created");
    let before = std::fs::symlink_metadata(&path).unwrap();
    // Live: left alone.
    let result = must_not_wait({
        let (path, reclaim) = (path.clone(), reclaim.clone());
        move || Framed::create_fifo_with(&path, &reclaim, 64)
    });
    assert!(
        matches!(result, Err(Error::AlreadyExists { .. })),
        "{result:?}"
    );
    assert_eq!(ino(&path), before.ino());
    // Killed: its FIFO is stale, and taken over.
    creator.kill9();
    let mut rx = must_not_wait({
        let (path, reclaim) = (path.clone(), reclaim.clone());
        move || Framed::create_fifo_with(&path, &reclaim, 64)
    })
    .unwrap();
    let after = std::fs::symlink_metadata(&path).unwrap();
    assert!(after.file_type().is_fifo());
    assert_ne!(
        (after.ino(), after.ctime_nsec(), after.ctime()),
        (before.ino(), before.ctime_nsec(), before.ctime()),
        "a new FIFO"
    );
    // It works, and is held: taking it over again is refused.
    let mut tx = Framed::open_fifo_writer(&path, 64).unwrap();
    tx.send(b"mine now").unwrap();
    assert_eq!(rx.recv(&mut [0; 64]).unwrap(), 8);
    assert!(matches!(
        Framed::create_fifo_with(&path, &reclaim, 64),
        Err(Error::AlreadyExists { .. })
    ));
}

#[test]
fn reclaiming_never_removes_what_is_not_a_fifo_of_ours() {
    if !support::can_switch_users("reclaiming_never_removes_what_is_not_a_fifo_of_ours") {
        return;
    }
    let _serial = support::serial();
    let dir = TestDir::new("fifo-reclaim-refused", 0o777);
    let reclaim = FifoOptions::new().reclaim_stale(true);
    let try_reclaim = |path: &Path| {
        let (path, reclaim) = (path.to_owned(), reclaim.clone());
        must_not_wait(move || Framed::create_fifo_with(&path, &reclaim, 64))
    };
    // A symbolic link to a stale FIFO of ours.
    let target = dir.join("target");
    mkfifo(&target, 0o600);
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let result = try_reclaim(&link);
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(
        std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // A regular file.
    let file = dir.join("file");
    std::fs::write(&file, b"data").unwrap();
    let result = try_reclaim(&file);
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
    // A stale FIFO of ours that others may write to.
    let loose = dir.join("loose");
    mkfifo(&loose, 0o666);
    let before = ino(&loose);
    let result = try_reclaim(&loose);
    assert!(
        matches!(result, Err(Error::UnsafeMode { .. })),
        "{result:?}"
    );
    assert_eq!(ino(&loose), before);
    // Another user's stale FIFO (root could remove it, and must not).
    let theirs = dir.join("theirs");
    let mut peer = Peer::spawn_as(&format!("mkfifo {} 600", theirs.display()), NOBODY);
    assert_eq!(peer.report(), "made");
    peer.finish();
    let before = ino(&theirs);
    let result = try_reclaim(&theirs);
    assert!(
        matches!(result, Err(Error::ForeignOwner { owner: NOBODY, .. })),
        "{result:?}"
    );
    assert_eq!(ino(&theirs), before);
    assert_eq!(std::fs::symlink_metadata(&theirs).unwrap().uid(), NOBODY);
}
