//! The course programs (memory mapping, signals, file locks, condition
//! variables), run as real processes.
//!
//! As in `classics.rs`, nothing sleeps to order events: a test waits for a
//! line a program prints, for its exit, or for the kernel to report its
//! state, each with a 30-second safety net (see `support`). Every test uses
//! paths and names of its own (with this process's id), and checks that
//! the programs removed what they created, or kept what they must keep.

mod support;

use std::fs;
use std::os::unix::process::ExitStatusExt;

use rustix::process::Signal;
use shmlane_posix::{Options, Sender};
use support::{Program, ShmName, TempDir};

// ---------------------------------------------------------------- memory mapping

/// The file `mmap_file` leaves: (runs, message, reply).
fn mapped_file(path: &str) -> (u64, String, String) {
    let bytes = fs::read(path).expect("the mapped file outlives the programs");
    assert_eq!(bytes.len(), 4096, "the size set with ftruncate");
    assert_eq!(&bytes[..8], b"MMAPFILE");
    let runs = u64::from_ne_bytes(bytes[8..16].try_into().unwrap());
    let text = |at: usize| {
        let field = &bytes[at..at + 256];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        assert!(
            field[end..].iter().all(|&b| b == 0),
            "NUL-padded to the end of its field"
        );
        String::from_utf8(field[..end].to_vec()).unwrap()
    };
    (runs, text(64), text(512))
}

#[test]
fn mmap_file_is_shared_by_two_processes_and_outlives_them() {
    let dir = TempDir::new("mmap");
    let path = dir.path_str("mapped_file");

    let out = Program::run("mmap_file", &[&path, "through the page cache"]);
    out.assert_success();
    let lines = out.lines();
    assert_eq!(lines.len(), 8, "{}", out.stdout);
    assert_eq!(lines[0], format!("created {path}: 4096 bytes (ftruncate)"));
    assert_eq!(lines[1], "writer: wrote \"through the page cache\" (run 1)");
    // The reader, another process, saw what the writer stored in memory.
    assert_eq!(lines[2], "reader: read \"through the page cache\" (run 1)");
    let reply = lines[3]
        .strip_prefix("writer: the reader replied \"")
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no reply line: {:?}", lines[3]));
    assert!(
        reply.starts_with("the reader (pid ") && reply.ends_with(") saw run 1"),
        "{reply:?}"
    );
    assert_eq!(
        lines[4],
        "writer: read(2) sees the reply too: one page cache"
    );
    assert_eq!(lines[5], "writer: msync: the pages are on the file system");

    // Both processes have exited; the file still holds what they wrote.
    assert_eq!(
        mapped_file(&path),
        (1, "through the page cache".to_owned(), reply.to_owned())
    );

    // A second run finds the file, and the counter in it, as left.
    let out = Program::run("mmap_file", &[&path, "again"]);
    out.assert_success();
    let lines = out.lines();
    assert_eq!(lines[0], format!("opened {path}: kept from an earlier run"));
    assert_eq!(lines[1], "writer: wrote \"again\" (run 2)");
    assert_eq!(lines[2], "reader: read \"again\" (run 2)");
    let (runs, message, reply) = mapped_file(&path);
    assert_eq!((runs, message.as_str()), (2, "again"));
    assert!(reply.ends_with(") saw run 2"), "{reply:?}");
}

#[test]
fn mmap_file_touching_a_page_past_the_end_of_the_file_is_sigbus() {
    let dir = TempDir::new("mmap-sigbus");
    let path = dir.path_str("mapped_file");
    let out = Program::run("mmap_file", &[&path]);
    out.assert_success();
    let lines = out.lines();
    assert!(
        lines[6].starts_with("past-eof: the file has 4096 bytes, "),
        "{}",
        out.stdout
    );
    assert_eq!(lines[7], "writer: the past-eof child was killed by SIGBUS");

    // The child on its own: mmap succeeds, the access kills it.
    let out = Program::run("mmap_file", &["--past-eof", &path]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stderr, "", "killed before it could report anything");
    // It only read: the file is as the first run left it.
    assert_eq!(mapped_file(&path).0, 1);
}

#[test]
fn mmap_file_refuses_files_it_did_not_make_and_leaves_them_alone() {
    let dir = TempDir::new("mmap-refuse");
    let small = dir.path_str("notes.txt");
    fs::write(&small, "keep me").unwrap();
    Program::run("mmap_file", &[&small]).assert_failure("is not a mmap_file file (7 bytes");
    assert_eq!(fs::read_to_string(&small).unwrap(), "keep me");

    // The right size is not enough: the magic says whose file it is.
    let page = dir.path_str("page.bin");
    fs::write(&page, [b'x'; 4096]).unwrap();
    Program::run("mmap_file", &[&page]).assert_failure("does not start with \"MMAPFILE\"");
    assert_eq!(fs::read(&page).unwrap(), [b'x'; 4096]);

    let missing = dir.path_str("missing");
    Program::run("mmap_file", &["--reader", &missing]).assert_failure("does not exist");
    assert!(!dir.join("missing").exists(), "a reader never creates");
    let long = "x".repeat(257);
    Program::run("mmap_file", &[&missing, &long]).assert_failure("at most 256 bytes");
    Program::run("mmap_file", &["--writer"]).assert_failure("unexpected arguments");
}

// ---------------------------------------------------------------- signals

/// Starts `signals` on `name` and opens the sending side of its channel.
fn signals_receiver(name: &ShmName) -> (Program, Sender) {
    let mut receiver = Program::start("signals", &[&name.0]);
    let ready = receiver.line();
    assert!(
        ready.starts_with(&format!(
            "ready: {} (stop it with kill -TERM {} ",
            name.0,
            receiver.pid()
        )),
        "{ready:?}"
    );
    assert!(name.exists());
    let sender = Sender::open(&name.0, &Options::new()).expect("open the receiver's channel");
    (receiver, sender)
}

#[test]
fn signals_receiver_stops_cleanly_on_sigterm() {
    let name = ShmName::new("signals-term");
    let (mut receiver, mut sender) = signals_receiver(&name);
    for i in 0..3 {
        sender.send(format!("hello {i}").as_bytes()).unwrap();
    }
    for i in 0..3 {
        assert_eq!(receiver.line(), format!("received: hello {i}"));
    }
    // Everything sent has been received: the receiver waits for more, and
    // SIGTERM, which would end it at once if it were not blocked, is read
    // from its signalfd instead.
    receiver.signal(Signal::TERM);
    let out = receiver.finish();
    out.assert_success();
    assert_eq!(
        out.lines(),
        [
            format!(
                "got SIGTERM from pid {}: drained 0 queued messages; 3 received in all",
                std::process::id()
            ),
            format!("removed {}", name.0),
        ]
    );
    assert_eq!(out.stderr, "");
    assert!(!name.exists(), "the receiver removed its channel's name");
    assert!(
        sender.is_disconnected(),
        "the sender sees the receiver gone"
    );
}

#[test]
fn signals_receiver_drains_what_is_queued_on_sigint() {
    let name = ShmName::new("signals-int");
    let (receiver, mut sender) = signals_receiver(&name);
    // Stopped (SIGSTOP cannot be blocked), the receiver takes nothing, so
    // the messages wait in the ring, and so does the SIGINT, in the
    // signalfd, until SIGCONT lets it run again.
    receiver.signal(Signal::STOP);
    receiver.wait_until_stopped();
    for i in 0..10 {
        sender.send(format!("queued {i}").as_bytes()).unwrap();
    }
    receiver.signal(Signal::INT);
    receiver.signal(Signal::CONT);
    let out = receiver.finish();
    out.assert_success();

    // Every message exactly once, in order: at most the one it was waiting
    // for when it stopped is received as usual, the rest are drained.
    let lines = out.lines();
    let (last, messages) = lines.split_last().unwrap();
    let (summary, messages) = messages.split_last().unwrap();
    assert_eq!(*last, format!("removed {}", name.0));
    let texts: Vec<&str> = messages
        .iter()
        .map(|l| {
            l.strip_prefix("received: ")
                .or_else(|| l.strip_prefix("drained: "))
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("queued {i}")).collect();
    assert_eq!(texts, expected);
    let drained = messages
        .iter()
        .filter(|l| l.starts_with("drained: "))
        .count();
    assert!(drained >= 9, "{}", out.stdout);
    assert!(
        messages[messages.len() - drained..]
            .iter()
            .all(|l| l.starts_with("drained: ")),
        "nothing is received after the drain starts: {}",
        out.stdout
    );
    assert_eq!(
        *summary,
        format!(
            "got SIGINT from pid {}: drained {drained} queued messages; 10 received in all",
            std::process::id()
        )
    );
    assert!(!name.exists());
}

#[test]
fn signals_receiver_stops_when_its_sender_closes() {
    let name = ShmName::new("signals-send");
    let mut receiver = Program::start("signals", &[&name.0]);
    assert!(receiver.line().starts_with("ready: "));
    let send = Program::run("signals", &["--send", &name.0, "one", "two words"]);
    send.assert_success();
    assert_eq!(send.stdout, "");
    let out = receiver.finish();
    out.assert_success();
    assert_eq!(
        out.lines(),
        [
            "received: one".to_owned(),
            "received: two words".to_owned(),
            "the sender closed: 2 received in all".to_owned(),
            format!("removed {}", name.0),
        ]
    );
    assert!(!name.exists());

    Program::run("signals", &["--send", &name.0, "nobody"]).assert_failure("start signals first");
    Program::run("signals", &["--sned", &name.0]).assert_failure("unexpected arguments");
}

// ---------------------------------------------------------------- file locks

/// The system call a waiter for a lock of `kind` sleeps in.
fn lock_syscall(kind: &str) -> i64 {
    match kind {
        "flock" => libc::SYS_flock,
        "ofd" => libc::SYS_fcntl,
        _ => panic!("no lock kind {kind}"),
    }
}

/// What `file_lock` calls a lock of `kind` on `path`.
fn lock_what(kind: &str, path: &str) -> String {
    match kind {
        "flock" => format!("flock on {path}"),
        _ => format!("OFD lock on {path}"),
    }
}

/// A holder takes the lock, a waiter blocks on it; `end_holder` ends the
/// holder, and the waiter must get the lock then.
fn lock_changes_hands(kind: &str, test: &str, end_holder: impl FnOnce(Program)) {
    let dir = TempDir::new(test);
    let path = dir.path_str("lockfile");
    let what = lock_what(kind, &path);

    let mut holder = Program::start("file_lock", &[kind, &path]);
    assert_eq!(
        holder.line(),
        format!(
            "locked: {what}, held by pid {} until stdin ends",
            holder.pid()
        )
    );
    let mut waiter = Program::start("file_lock", &[kind, &path]);
    assert_eq!(
        waiter.line(),
        format!("waiting: {what} is held by another open file description")
    );
    // Asleep in the lock call itself: the kernel makes it wait.
    waiter.wait_until_blocked_in(lock_syscall(kind));

    end_holder(holder);
    assert_eq!(
        waiter.line(),
        format!(
            "acquired: {what}, held by pid {} until stdin ends",
            waiter.pid()
        )
    );
    let out = waiter.finish();
    out.assert_success();
    assert_eq!(out.stdout, "released\n");
    assert!(
        dir.join("lockfile").exists(),
        "a lock file is never removed"
    );
}

/// SIGKILL: the holder cannot release anything; the kernel does, when it
/// closes the dead process's files.
fn kill_holder(holder: Program) {
    let status = holder.kill();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

/// The holder's stdin ends: it releases the lock itself and exits.
fn release_holder(holder: Program) {
    let out = holder.finish();
    out.assert_success();
    assert_eq!(out.stdout, "released\n");
}

#[test]
fn file_lock_flock_passes_to_the_waiter_when_the_holder_is_killed() {
    lock_changes_hands("flock", "flock-killed", kill_holder);
}

#[test]
fn file_lock_ofd_passes_to_the_waiter_when_the_holder_is_killed() {
    lock_changes_hands("ofd", "ofd-killed", kill_holder);
}

#[test]
fn file_lock_passes_to_the_waiter_when_the_holder_releases_it() {
    lock_changes_hands("flock", "flock-released", release_holder);
    lock_changes_hands("ofd", "ofd-released", release_holder);
}

#[test]
fn file_lock_flock_and_ofd_locks_do_not_conflict() {
    let dir = TempDir::new("lock-kinds");
    let path = dir.path_str("lockfile");
    let mut flock_holder = Program::start("file_lock", &["flock", &path]);
    assert!(flock_holder.line().starts_with("locked: flock on "));
    // Another kind of lock on the same file is granted at once.
    let mut ofd_holder = Program::start("file_lock", &["ofd", &path]);
    assert!(ofd_holder.line().starts_with("locked: OFD lock on "));
    for holder in [flock_holder, ofd_holder] {
        let out = holder.finish();
        out.assert_success();
        assert_eq!(out.stdout, "released\n");
    }
}

#[test]
fn file_lock_refuses_bad_arguments() {
    let dir = TempDir::new("lock-refuse");
    Program::run("file_lock", &["posix", &dir.path_str("lockfile")])
        .assert_failure("unexpected arguments");
    Program::run("file_lock", &["flock"]).assert_failure("usage: file_lock flock|ofd PATH");
    Program::run("file_lock", &["ofd", &dir.path_str("no/such/dir")]).assert_failure("cannot open");
    assert!(!dir.join("lockfile").exists(), "nothing was created");
}

// ---------------------------------------------------------------- condition variables

/// What `condvar` must report for `count` messages: its generator and
/// checksum, written again here (FNV-1a over each message's length, 4 bytes
/// little endian, and bytes).
fn condvar_expected(count: u64) -> String {
    let mut checksum: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..count {
        let message = format!("message {i:06} {}", "*".repeat((i % 77) as usize));
        let len = (message.len() as u32).to_le_bytes();
        for &byte in len.iter().chain(message.as_bytes()) {
            checksum = (checksum ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{count} messages, checksum {checksum:#018x}")
}

/// Runs `condvar` (with `args`) and checks that the queue and the ring both
/// delivered the `count` messages, each once and in order.
fn condvar_delivers(args: &[&str], count: u64) {
    let out = Program::run("condvar", args);
    out.assert_success();
    let lines = out.lines();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    let expected = condvar_expected(count);
    assert_eq!(lines[0], format!("expected: {expected}"));
    let result = |line: &str, prefix: &str| {
        line.strip_prefix(prefix)
            .and_then(|rest| rest.split_once("; "))
            .map(|(tally, _stats)| tally.to_owned())
            .unwrap_or_else(|| panic!("no {prefix:?} line: {line:?}"))
    };
    assert_eq!(result(lines[1], "condvar: "), expected);
    assert!(lines[1].contains("; waits: producer "), "{}", lines[1]);
    assert_eq!(result(lines[2], "ring: "), expected);
    assert_eq!(lines[3], "the results match");
}

#[test]
fn condvar_queue_and_ring_deliver_the_same_messages() {
    // Far more messages than either holds: both sides wait many times.
    condvar_delivers(&["20000"], 20_000);
    condvar_delivers(&["1"], 1);
    condvar_delivers(&["0"], 0);
}

#[test]
fn condvar_sends_a_hundred_thousand_messages_by_default() {
    condvar_delivers(&[], 100_000);
}

#[test]
fn condvar_refuses_bad_arguments() {
    Program::run("condvar", &["many"]).assert_failure("COUNT must be a whole number");
    Program::run("condvar", &["-1"]).assert_failure("COUNT must be a whole number");
    Program::run("condvar", &["1", "2"]).assert_failure("unexpected arguments");
}
