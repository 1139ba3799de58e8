//! The shared-memory channel tried as an attacker and as a crash would try
//! it, with real processes: kill -9 at random instants inside create and
//! open, creators racing for a stale name, a third process scribbling on a
//! live segment, another user squatting the name (a segment of theirs, a
//! symbolic link, a FIFO), descriptor exhaustion during create, descriptors
//! kept by a peer, and a process that forks.
//!
//! The peers are this test binary run again (`peer_process`); they report
//! over their stdout. No sleep synchronises anything: the only waits on the
//! clock choose the random instant of a kill, or bound how long a call that
//! must return may take before the test calls it hung.

mod support;

use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use shmlane_posix::fdpass::{recv_fd, send_fd};
use shmlane_posix::{Error, Options, Receiver, Segment, Sender};
use support::{HUNG, NOBODY, Peer, block_on_stdin, must_return, report, serial, shm_path};

/// A segment name unique to this test and this process.
fn name(test: &str) -> String {
    format!("/shmlane-hostile-{test}-{}", support::run_id())
}

/// Small rings: the tests are about names and processes, not bandwidth.
fn small() -> Options {
    Options::new().capacity(4096)
}

/// Busy-waits `micros` µs: picks the instant of a kill, synchronises nothing.
fn spin_for(micros: u64) {
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn inode(path: &std::path::Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

// ---------------------------------------------------------------------------
// The peer side.

#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = support::peer_spec() else {
        return;
    };
    match args[..] {
        ["create-loop", name] => {
            // Creates and drops the channel as fast as it can, alternating
            // the role of the creator, until it is killed.
            let mut first = true;
            loop {
                let sender = Sender::create(name, &small()).map(drop);
                let receiver = Receiver::create(name, &small()).map(drop);
                if first {
                    report(&format!("looping {sender:?} {receiver:?}"));
                    first = false;
                }
            }
        }
        ["open-loop", name] => {
            let mut first = true;
            loop {
                let result = Sender::open(name, &small()).map(drop);
                if first {
                    report(&format!("looping {result:?}"));
                    first = false;
                }
            }
        }
        ["create-and-hold", name, mode] => {
            let mode = u32::from_str_radix(mode, 8).unwrap();
            let tx = Sender::create(name, &small().mode(mode).unlink_on_drop(false));
            report(&format!("created {:?}", tx.as_ref().map(drop)));
            block_on_stdin();
        }
        ["race-create", name] => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap(); // "go"
            match Sender::create(name, &small()) {
                Ok(tx) => {
                    let ino = rustix::fs::fstat(tx.segment().fd()).unwrap().st_ino;
                    report(&format!("won {ino}"));
                    block_on_stdin();
                }
                Err(Error::AlreadyExists { .. }) => report("taken"),
                Err(e) => report(&format!("error {e}")),
            }
        }
        ["scribble", name, seed, rounds, place] => {
            let segment = Segment::open(name).unwrap();
            let mut rng: u64 = seed.parse().unwrap();
            let len = segment.len() as u64;
            report("scribbling");
            for _ in 0..rounds.parse::<u64>().unwrap() {
                let r = support::next(&mut rng);
                // "header": mostly the header (positions, states, wait
                // words), some record headers and payload; "data": only
                // the data area (record headers and payload).
                let header = shmlane_core::HEADER_SIZE as u64;
                let at = match place {
                    "data" => header + r % (len - header),
                    _ if r % 4 == 0 => r % len,
                    _ => r % 512,
                };
                let value = (support::next(&mut rng) & 0xff) as u8;
                // SAFETY: a byte inside the mapping; racing with the two
                // honest sides is the point (they read it atomically or as
                // payload bytes, which any value may be).
                unsafe {
                    segment
                        .as_ptr()
                        .as_ptr()
                        .add(at as usize)
                        .write_volatile(value)
                };
                spin_for(support::next(&mut rng) % 20);
            }
            report("done");
        }
        ["recv-hostile", name] => {
            let mut rx = Receiver::open(name, &small()).unwrap();
            report("attached");
            let (mut messages, mut timeouts) = (0u64, 0u64);
            let mut buf = vec![0u8; rx.max_message()];
            let end = loop {
                match rx.recv_timeout(&mut buf, Duration::from_millis(20)) {
                    Ok(_) => messages += 1,
                    Err(Error::TimedOut) => {
                        timeouts += 1;
                        if timeouts > 200 {
                            break "gave up".to_owned();
                        }
                    }
                    Err(Error::Corrupt(what)) => {
                        // Sticky: the receiver never trusts the ring again.
                        for _ in 0..3 {
                            match rx.try_recv(&mut buf) {
                                Err(Error::Corrupt(again)) if again == what => {}
                                other => {
                                    report(&format!("not sticky: {other:?}"));
                                    return;
                                }
                            }
                        }
                        break format!("corrupt {what:?}");
                    }
                    Err(e) => break format!("{e:?}"),
                }
            };
            report(&format!("end {end} after {messages} messages"));
        }
        ["plant-segment", name] => {
            let mut tx = Sender::create(name, &small().mode(0o666)).unwrap();
            tx.send(b"the squatter's own data").unwrap();
            std::mem::forget(tx); // keep the name: exit without removing it
            report("planted");
        }
        ["plant-symlink", link, target] => {
            std::os::unix::fs::symlink(target, link).unwrap();
            report("planted");
        }
        ["plant-fifo", path] => {
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                path,
                rustix::fs::Mode::from_raw_mode(0o666),
            )
            .unwrap();
            report("planted");
        }
        ["fd-exhaust", name] => report(&exhaust_descriptors(name)),
        ["anon-sender", socket] => {
            let socket = UnixStream::connect(socket).unwrap();
            let (mut tx, fd) = Sender::anonymous(&small()).unwrap();
            send_fd(&socket, fd.as_fd()).unwrap();
            drop(fd);
            tx.send(b"from the anonymous sender").unwrap();
            report("sent");
            block_on_stdin();
        }
        ["fork-hold", name, how] => {
            let _tx = Sender::open(name, &small()).unwrap();
            let child = match how {
                // A child that execs: the channel's descriptors are
                // close-on-exec, so it holds nothing of the channel.
                "exec" => std::process::Command::new("sleep")
                    .arg("1000")
                    .spawn()
                    .unwrap()
                    .id() as i32,
                // A child that only forks keeps every descriptor, and with
                // them the sender's locks.
                _ => fork_and_pause(),
            };
            report(&format!("forked {child}"));
            block_on_stdin();
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

/// Forks a child that only waits for a signal (async-signal-safe calls
/// only after the fork); returns its pid.
fn fork_and_pause() -> i32 {
    // SAFETY: the child calls nothing but `pause` (async-signal-safe) until
    // it is killed; it never returns into Rust code.
    unsafe {
        match libc::fork() {
            0 => loop {
                libc::pause();
            },
            pid => {
                assert!(pid > 0, "fork failed");
                pid
            }
        }
    }
}

/// In a peer: with every number of free descriptors from 0 to 11, creates
/// a channel (both roles) and opens one, and checks that a failure is a
/// typed error that leaves no name behind, and that nothing panics.
fn exhaust_descriptors(name: &str) -> String {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let open_name = format!("{name}-open");
    let _rx = Receiver::create(&open_name, &small()).unwrap();
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(128),
            maximum: old.maximum,
        },
    )
    .unwrap();
    let (mut ok, mut failed) = (0, 0);
    for free in 0..12 {
        // Fill the table, then free `free` descriptors.
        let mut fillers = Vec::new();
        while let Ok(fd) = rustix::io::dup(std::io::stdin().as_fd()) {
            fillers.push(fd);
        }
        fillers.truncate(fillers.len().saturating_sub(free));
        for result in [
            Sender::create(name, &small()).map(|tx| (tx.segment().len(), true)),
            Receiver::create(name, &small()).map(|rx| (rx.segment().len(), true)),
            Sender::open(&open_name, &small()).map(|tx| (tx.segment().len(), false)),
        ] {
            match result {
                Ok(_) => ok += 1,
                // The one sender of the open channel came and went.
                Err(Error::RoleTaken(_)) => {}
                Err(Error::Io { .. } | Error::NoSpace { .. }) => failed += 1,
                Err(e) => return format!("untyped failure with {free} free: {e:?}"),
            }
            if shm_path(name).exists() {
                return format!("the name was left behind with {free} descriptors free");
            }
        }
        drop(fillers);
    }
    // With descriptors again, the names work.
    setrlimit(Resource::Nofile, old).unwrap();
    match (
        Sender::create(name, &small()),
        Sender::open(&open_name, &small()),
    ) {
        (Ok(_), Err(Error::RoleTaken(_)) | Ok(_)) => format!("ok {ok} {failed}"),
        other => format!("broken afterwards: {:?}", (other.0.err(), other.1.err())),
    }
}

// ---------------------------------------------------------------------------
// Crashes.

#[test]
fn kill_9_at_random_instants_of_create_never_wedges_the_name() {
    let _serial = serial();
    let name = name("kill-create");
    let mut rng = 0x6b69_6c6c_0000_0001u64;
    let mut stale = 0;
    for round in 0..150 {
        let mut peer = Peer::spawn(&format!("create-loop {name}"));
        let looping = peer.report();
        assert!(looping.starts_with("looping Ok(()) Ok(())"), "{looping}");
        spin_for(support::next(&mut rng) % 3000);
        peer.kill9();
        if shm_path(&name).exists() {
            stale += 1;
        }
        // Whatever instant the kill hit, the name can be taken again.
        let rx = Receiver::create(&name, &small())
            .unwrap_or_else(|e| panic!("round {round}: create after the kill: {e}"));
        let mut tx = Sender::open(&name, &small()).unwrap();
        tx.send(b"fresh").unwrap();
        drop(tx);
        let mut rx = rx;
        assert_eq!(rx.recv_vec().unwrap(), b"fresh");
        drop(rx);
        assert!(!shm_path(&name).exists(), "round {round}: name left behind");
    }
    eprintln!("150 kills inside create/drop; {stale} left a (complete, stale) segment");
}

#[test]
fn kill_9_at_random_instants_of_open_never_hurts_the_creator_or_the_name() {
    let _serial = serial();
    let name = name("kill-open");
    let mut rng = 0x6b69_6c6c_0000_0002u64;
    for round in 0..60 {
        let mut rx = Receiver::create(&name, &small()).unwrap();
        let mut peer = Peer::spawn(&format!("open-loop {name}"));
        let looping = peer.report();
        assert!(looping.starts_with("looping"), "{looping}");
        spin_for(support::next(&mut rng) % 3000);
        peer.kill9();
        // The receiver is not hurt: it sees the sender gone (or never
        // there), it does not hang.
        match rx.recv_timeout(&mut [0; 64], Duration::from_millis(50)) {
            Err(Error::Disconnected | Error::TimedOut) => {}
            other => panic!("round {round}: {other:?}"),
        }
        drop(rx);
        assert!(!shm_path(&name).exists(), "round {round}: name left behind");
    }
    // And a fresh create of the name works.
    Sender::create(&name, &small()).unwrap();
}

#[test]
fn creators_racing_for_a_stale_name_never_remove_a_live_segment() {
    let _serial = serial();
    let name = name("race");
    for round in 0..20 {
        // A stale segment: its creator killed while it held it.
        let mut creator = Peer::spawn(&format!("create-and-hold {name} 600"));
        assert_eq!(creator.report(), "created Ok(())");
        creator.kill9();
        let mut racers: Vec<Peer> = (0..4)
            .map(|_| Peer::spawn(&format!("race-create {name}")))
            .collect();
        for racer in &mut racers {
            use std::io::Write;
            racer
                .child
                .stdin
                .as_mut()
                .unwrap()
                .write_all(b"go\n")
                .unwrap();
        }
        let outcomes: Vec<String> = racers.iter_mut().map(Peer::report).collect();
        let winners: Vec<&String> = outcomes.iter().filter(|o| o.starts_with("won")).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| o.starts_with("won") || o == "taken"),
            "round {round}: {outcomes:?}"
        );
        // The winner's segment is the one under the name, and it works.
        let ino: u64 = winners[0]["won ".len()..].parse().unwrap();
        assert_eq!(inode(&shm_path(&name)), Some(ino), "round {round}");
        let mut rx = Receiver::open(&name, &small()).unwrap();
        assert!(matches!(rx.try_recv(&mut [0; 8]), Err(Error::Empty)));
        drop(rx);
        for racer in racers {
            racer.finish();
        }
    }
}

#[test]
fn a_third_process_scribbling_on_a_live_segment_hurts_neither_side() {
    let _serial = serial();
    for seed in 1..=6u64 {
        let name = name(&format!("scribble-{seed}"));
        let mut tx = Sender::create(&name, &small()).unwrap();
        let mut receiver = Peer::spawn(&format!("recv-hostile {name}"));
        assert_eq!(receiver.report(), "attached");
        let place = if seed % 2 == 0 { "data" } else { "header" };
        let mut scribbler = Peer::spawn(&format!("scribble {name} {seed} 20000 {place}"));
        assert_eq!(scribbler.report(), "scribbling");
        let started = Instant::now();
        let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
        // Send until the scribbler is done, and a little after: every result
        // is a value or a typed error, never a panic or a hang.
        let mut i = 0u64;
        let mut after = 0;
        while after < 100 {
            let result = tx.send_timeout(&i.to_le_bytes(), Duration::from_millis(20));
            let key = match &result {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("{e:?}"),
            };
            *outcomes.entry(key).or_default() += 1;
            if let Err(Error::Corrupt(_) | Error::Disconnected) = result {
                break;
            }
            i += 1;
            if after > 0 || (i % 64 == 0 && scribbler.child.try_wait().unwrap().is_some()) {
                after += 1;
            }
            assert!(started.elapsed() < HUNG * 3, "seed {seed}: sender stuck");
        }
        drop(tx);
        let end = receiver.report();
        assert!(
            end.starts_with("end "),
            "seed {seed}: receiver said {end:?}"
        );
        assert!(!end.contains("not sticky"), "seed {seed}: {end}");
        receiver.finish();
        scribbler.finish();
        eprintln!("seed {seed} ({place}): sender {outcomes:?}; receiver {end}");
    }
}

#[test]
fn descriptor_exhaustion_during_create_leaves_nothing_behind() {
    let _serial = serial();
    let name = name("emfile");
    let mut peer = Peer::spawn(&format!("fd-exhaust {name}"));
    let result = peer.report();
    assert!(result.starts_with("ok "), "{result}");
    peer.finish();
    eprintln!("creates and opens with 0..12 descriptors free: {result} (succeeded, failed)");
    assert!(!shm_path(&name).exists());
    Sender::create(&name, &small()).unwrap();
}

#[test]
fn a_descriptor_kept_from_sender_anonymous_does_not_keep_the_sender_alive() {
    let _serial = serial();
    let dir = support::TestDir::new("hostile-anon", 0o777);
    let path = dir.join("socket");
    let listener = UnixListener::bind(&path).unwrap();
    let mut peer = Peer::spawn(&format!("anon-sender {}", path.display()));
    let (socket, _) = listener.accept().unwrap();
    let kept = recv_fd(&socket).unwrap();
    let copy = kept.try_clone().unwrap();
    let mut rx = Receiver::from_fd(copy, &small()).unwrap();
    assert_eq!(peer.report(), "sent");
    assert_eq!(rx.recv_vec().unwrap(), b"from the anonymous sender");
    peer.kill9();
    // `kept` is still open here: it must not be the sender's locked
    // description, or the death would go unseen.
    let result = rx.recv_timeout(&mut [0; 64], HUNG);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    drop(kept);
}

#[test]
fn a_forked_child_keeps_the_role_alive_until_it_exits_or_execs() {
    let _serial = serial();
    // A child that execs holds nothing: the sender's death is seen at once.
    let name_exec = name("fork-exec");
    let mut rx = Receiver::create(&name_exec, &small()).unwrap();
    let mut peer = Peer::spawn(&format!("fork-hold {name_exec} exec"));
    let child: i32 = peer.report()["forked ".len()..].parse().unwrap();
    peer.kill9();
    let result = rx.recv_timeout(&mut [0; 8], HUNG);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    kill_and_reap(child);

    // A child forked without exec shares the sender's open file
    // descriptions, and with them its lock: the documented rule is that the
    // role lives until the child exits too.
    let name_fork = name("fork-only");
    let mut rx = Receiver::create(&name_fork, &small()).unwrap();
    let mut peer = Peer::spawn(&format!("fork-hold {name_fork} fork"));
    let child: i32 = peer.report()["forked ".len()..].parse().unwrap();
    peer.kill9();
    let result = rx.recv_timeout(&mut [0; 8], Duration::from_millis(300));
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
    kill_and_reap(child);
    let result = rx.recv_timeout(&mut [0; 8], HUNG);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");

    // The same with the receiver already asleep, watching the sender's
    // process, when the sender is killed: the watch fires, but the lock is
    // still held (by the child), so the receiver goes on waiting (probing
    // the lock from then on) and sees the death only when the child exits.
    let name_watched = name("fork-watched");
    let mut rx = Receiver::create(&name_watched, &small()).unwrap();
    let mut peer = Peer::spawn(&format!("fork-hold {name_watched} fork"));
    let child: i32 = peer.report()["forked ".len()..].parse().unwrap();
    let blocked = support::blocked_in(move || {
        let result = rx.recv_timeout(&mut [0; 8], Duration::from_millis(500));
        (result, rx)
    });
    peer.kill9();
    let (result, mut rx) = blocked.result();
    assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
    kill_and_reap(child);
    let result = rx.recv_timeout(&mut [0; 8], HUNG);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

/// SIGKILLs `pid`, a grandchild of this process (the peer's child, now
/// reparented to init or a subreaper), and waits until it is gone.
fn kill_and_reap(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    // Not our child: wait until its /proc entry is gone or a zombie.
    let deadline = Instant::now() + HUNG;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) {
            Err(_) => return,
            Ok(stat) if stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) => return,
            Ok(_) => std::thread::yield_now(),
        }
    }
    panic!("process {pid:?} did not die");
}

// ---------------------------------------------------------------------------
// Another user at the name.

#[test]
fn another_users_segment_at_the_name_is_refused_and_untouched() {
    let _serial = serial();
    if !support::can_switch_users("another_users_segment_at_the_name_is_refused_and_untouched") {
        return;
    }
    let name = name("squat-segment");
    let mut squatter = Peer::spawn_as(&format!("plant-segment {name}"), NOBODY);
    assert_eq!(squatter.report(), "planted");
    squatter.finish();
    let path = shm_path(&name);
    let before = std::fs::read(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), NOBODY);
    let foreign = |r: Result<(), Error>| matches!(r, Err(Error::ForeignOwner { owner, .. }) if owner == NOBODY);
    // It has a valid header and mode 0666, and root could open it: none of
    // these may attach to it, write into it, or remove it.
    assert!(foreign(Sender::open(&name, &small()).map(drop)));
    assert!(foreign(Receiver::open(&name, &small()).map(drop)));
    assert!(foreign(Segment::open(&name).map(drop)));
    assert!(foreign(Receiver::create(&name, &small()).map(drop)));
    assert!(foreign(Sender::create(&name, &small()).map(drop)));
    assert_eq!(std::fs::read(&path).unwrap(), before, "not a byte changed");
    // Naming the owner makes it acceptable (its mode still has to be).
    let options = small().owner(NOBODY).mode(0o666);
    let mut rx = Receiver::open(&name, &options).unwrap();
    assert_eq!(rx.recv_vec().unwrap(), b"the squatter's own data");
    drop(rx);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_symlink_planted_at_the_name_is_never_followed() {
    let _serial = serial();
    if !support::can_switch_users("a_symlink_planted_at_the_name_is_never_followed") {
        return;
    }
    let dir = support::TestDir::new("hostile-symlink", 0o777);
    // A file only root may write, and a valid-looking segment: either way
    // nothing may follow the link to it.
    let target = dir.join("root-only");
    let donor = name("symlink-donor");
    {
        let seg = Sender::create(&donor, &small().unlink_on_drop(false)).unwrap();
        drop(seg);
    }
    std::fs::copy(shm_path(&donor), &target).unwrap();
    std::fs::remove_file(shm_path(&donor)).unwrap();
    let before = std::fs::read(&target).unwrap();
    let name = name("symlink");
    let link = shm_path(&name);
    let mut planter = Peer::spawn_as(
        &format!("plant-symlink {} {}", link.display(), target.display()),
        NOBODY,
    );
    assert_eq!(planter.report(), "planted");
    planter.finish();
    let wrong = |r: Result<(), Error>| {
        matches!(
            r,
            Err(Error::WrongType {
                found: "a symbolic link",
                ..
            })
        )
    };
    assert!(wrong(Sender::open(&name, &small()).map(drop)));
    assert!(wrong(Receiver::open(&name, &small()).map(drop)));
    assert!(wrong(Receiver::create(&name, &small()).map(drop)));
    assert!(wrong(Sender::create(&name, &small()).map(drop)));
    assert_eq!(std::fs::read(&target).unwrap(), before, "target untouched");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    std::fs::remove_file(&link).unwrap();
}

#[test]
fn a_fifo_planted_at_the_name_neither_blocks_nor_is_removed() {
    let _serial = serial();
    if !support::can_switch_users("a_fifo_planted_at_the_name_neither_blocks_nor_is_removed") {
        return;
    }
    let name = name("fifo");
    let path = shm_path(&name);
    let mut planter = Peer::spawn_as(&format!("plant-fifo {}", path.display()), NOBODY);
    assert_eq!(planter.report(), "planted");
    planter.finish();
    for (what, call) in [
        ("Receiver::create", 0),
        ("Sender::create", 1),
        ("Sender::open", 2),
        ("Segment::open", 3),
    ] {
        let name = name.clone();
        let result = must_return(what, move || match call {
            0 => Receiver::create(&name, &small()).map(drop),
            1 => Sender::create(&name, &small()).map(drop),
            2 => Sender::open(&name, &small()).map(drop),
            _ => Segment::open(&name).map(drop),
        });
        assert!(
            matches!(
                result,
                Err(Error::WrongType {
                    found: "a FIFO",
                    ..
                })
            ),
            "{what}: {result:?}"
        );
    }
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    std::fs::remove_file(&path).unwrap();

    // A FIFO put in place of a live segment's name: the creator's drop
    // neither blocks on it nor removes it.
    let tx = Sender::create(&name, &small()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut planter = Peer::spawn_as(&format!("plant-fifo {}", path.display()), NOBODY);
    assert_eq!(planter.report(), "planted");
    planter.finish();
    must_return("dropping the sender", move || drop(tx));
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    std::fs::remove_file(&path).unwrap();
}
