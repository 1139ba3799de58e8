//! `shmlane ls`, `stat` and `rm-stale` as processes, against live channels
//! held by other processes, a killed sender, a stale segment, files that are
//! not shmlane's (a FIFO, a symbolic link, a plain file), a corrupt header
//! and another user's segment.
//!
//! (`rm-stale` removes every stale channel of this user in /dev/shm, as it
//! is meant to: not only the tests'. Stale means no process holds it.)

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shmlane_posix::{Error, Options, Receiver, Segment, Sender};

/// Env var that makes `holder_process` a sender holding a channel.
const HOLDER_ENV: &str = "SHMLANE_CLI_HOLDER";
const NOBODY: u32 = 65534;
/// Held by the tests that run `rm-stale` as this user: it removes every
/// stale segment of ours, the fixtures of a test running beside it too.
static RM_STALE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A uid that owns nothing else here.
const OTHER_USER: u32 = 4242;

fn shmlane() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmlane"))
}

fn unique(test: &str) -> String {
    format!("/shmlane-cli-{test}-{}", std::process::id())
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm{name}")
}

/// Runs `shmlane ARGS…` to its end, within 60 s (a listing that blocked on
/// a FIFO would hang here: it fails instead).
fn run(args: &[&str]) -> Output {
    let child = shmlane()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, args)
}

fn finish(child: Child, what: &[&str]) -> Output {
    let pid = child.id();
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match ended.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("shmlane {what:?} did not finish");
        }
    }
}

/// `shmlane ARGS… --json`, parsed; it must succeed.
fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(&all);
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The entry called `name` in `shmlane ls --json`.
fn listed(name: &str) -> Option<Value> {
    let list = json(&["ls"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

/// A process (this test binary, run as `holder_process`) that creates the
/// channel `name` as its sender and sends `count` 16-byte messages; it
/// holds it until its stdin closes or it is killed.
struct HolderProcess {
    child: Child,
    _out: BufReader<ChildStdout>,
}

impl HolderProcess {
    fn start(name: &str, count: u32) -> HolderProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["holder_process", "--exact", "--ignored", "--nocapture"])
            .env(HOLDER_ENV, format!("{name} {count}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim() != "holder: ready" {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the holder ended");
        }
        HolderProcess { child, _out: out }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, and wait for it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for HolderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "a peer process, run by the tests themselves"]
fn holder_process() {
    let Ok(spec) = std::env::var(HOLDER_ENV) else {
        return;
    };
    let (name, count) = spec.split_once(' ').unwrap();
    let mut tx = Sender::create(name, &Options::new().capacity(4096)).unwrap();
    for i in 0..count.parse::<u32>().unwrap() {
        tx.send(&[i as u8; 16]).unwrap();
    }
    println!("\nholder: ready");
    std::io::stdout().flush().unwrap();
    // Hold the channel until the parent closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn ls_tells_live_dead_and_foreign_apart_and_verifies_the_pids() {
    let (live, dead) = (unique("live"), unique("dead"));
    let (fifo, link, plain) = (unique("fifo"), unique("link"), unique("plain"));
    let live_sender = HolderProcess::start(&live, 3);
    let mut live_rx = Receiver::open(&live, &Options::new()).unwrap();
    assert_eq!(live_rx.recv(&mut [0; 16]).unwrap(), 16);
    let dead_sender = HolderProcess::start(&dead, 2);
    let dead_pid = dead_sender.pid();
    let _dead_rx = Receiver::open(&dead, &Options::new()).unwrap();
    dead_sender.kill();
    let made = Command::new("mkfifo")
        .arg(shm_path(&fifo))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(shm_path(&live), shm_path(&link)).unwrap();
    std::fs::write(shm_path(&plain), b"not a ring").unwrap();

    let e = listed(&live).unwrap();
    assert_eq!(e["kind"], "channel");
    assert_eq!(
        (e["in_use"].clone(), e["stale"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(e["capacity"], 4096);
    assert_eq!(e["used"], 2 * 24); // two 16-byte messages left, 8 + 16 each
    let (tx, rx) = (&e["sender"], &e["receiver"]);
    assert_eq!(tx["status"], "active");
    assert_eq!(tx["pid"], live_sender.pid());
    assert_eq!(tx["pid_verified"], true);
    assert_eq!(
        (tx["messages"].clone(), tx["bytes"].clone()),
        (3.into(), 72.into())
    );
    assert_eq!(rx["status"], "active");
    assert_eq!(rx["pid"], std::process::id());
    assert_eq!(rx["pid_verified"], true);
    assert_eq!(rx["messages"], 1);

    // Killed: the ring says active, nobody holds the lock, and the pid it
    // recorded holds nothing any more.
    let e = listed(&dead).unwrap();
    assert_eq!(e["sender"]["status"], "dead");
    assert_eq!(e["sender"]["pid"], dead_pid);
    assert_eq!(e["sender"]["pid_verified"], false);
    assert_eq!(e["sender"]["messages"], 2);
    assert_eq!(e["receiver"]["status"], "active");
    assert_eq!(e["stale"], false); // we still hold it

    // Never opened for I/O, never followed: the FIFO did not block the
    // listing, the link is a link (not the channel it points to).
    for (name, what) in [
        (&fifo, "FIFO"),
        (&link, "symbolic link"),
        (&plain, "file without shmlane's magic bytes"),
    ] {
        let e = listed(name).unwrap();
        assert_eq!(
            (e["kind"].clone(), e["what"].clone()),
            ("foreign".into(), what.into())
        );
        assert_eq!(e["stale"], false);
    }

    // The table says the same for a person.
    let out = run(&["ls"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_owned()
    };
    assert!(row(&live).contains(&format!("active {}", live_sender.pid())));
    assert!(row(&dead).contains("dead"));
    assert!(row(&fifo).contains("not shmlane's: FIFO"));
    for name in [&fifo, &link, &plain] {
        std::fs::remove_file(shm_path(name)).unwrap();
    }
}

#[test]
fn stat_shows_the_counters_and_watch_the_rates() {
    let name = unique("stat");
    let mut tx = Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    let mut rx = Receiver::open(&name, &Options::new()).unwrap();
    assert!(matches!(rx.try_recv(&mut [0; 100]), Err(Error::Empty)));
    for _ in 0..10 {
        tx.send(&[7; 100]).unwrap();
    }
    for _ in 0..4 {
        assert_eq!(rx.recv(&mut [0; 100]).unwrap(), 100);
    }
    while tx.try_send(&[1; 100]).is_ok() {}
    let (sent, ring_bytes) = (tx.counters().messages, tx.counters().bytes);
    assert!(sent > 10);
    let e = json(&["stat", &name]);
    assert_eq!(e["sender"]["messages"], sent);
    // Records of 8 + 100 padded to 104, and the padding at the lap's end.
    assert_eq!(e["sender"]["bytes"], ring_bytes);
    assert!(ring_bytes >= sent * 112 && ring_bytes < sent * 112 + 112);
    assert_eq!(e["sender"]["full"], 1);
    assert_eq!(e["receiver"]["messages"], 4);
    assert_eq!(e["receiver"]["bytes"], 4 * 112);
    assert_eq!(e["receiver"]["empty"], 1);
    assert_eq!(e["used"], ring_bytes - 4 * 112);
    // Every way of naming it.
    let bare = name.trim_start_matches('/');
    for form in [bare.to_owned(), format!("shm:{name}")] {
        assert_eq!(json(&["stat", &form])["name"], name.as_str());
    }
    let out = run(&["stat", &name]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("sender:   active, pid {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("full 1"), "{text}");
    while rx.try_recv(&mut [0; 100]).is_ok() {}

    // Watching: samples every 50 ms; 25 messages go through after the
    // first; read samples until one has seen them all. The rates times
    // the intervals add up to the 25 messages, whenever the samples fell.
    let mut watch = shmlane()
        .args(["stat", &name, "--watch", "--interval", "0.05", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let first = next();
    let before = first["sent"].as_u64().unwrap();
    for _ in 0..25 {
        tx.send(&[3; 100]).unwrap();
        rx.recv(&mut [0; 100]).unwrap();
    }
    let (mut sent_sum, mut received_sum) = (0.0, 0.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no sample saw the 25 messages");
        let sample = next();
        let dt = sample["interval"].as_f64().unwrap();
        sent_sum += sample["sent_per_second"].as_f64().unwrap() * dt;
        received_sum += sample["received_per_second"].as_f64().unwrap() * dt;
        assert_eq!(sample["sender"], "active");
        if sample["received"].as_u64().unwrap() == before + 25 {
            assert_eq!(sample["sent"].as_u64().unwrap(), before + 25);
            assert_eq!(sample["lag_messages"], 0);
            assert_eq!(sample["lag_bytes"], 0);
            break;
        }
    }
    assert!((sent_sum - 25.0).abs() < 1e-6, "{sent_sum}");
    assert!((received_sum - 25.0).abs() < 1e-6, "{received_sum}");
    watch.kill().unwrap();
    watch.wait().unwrap();

    // --count ends a watch by itself.
    let out = run(&[
        "stat",
        &name,
        "--watch",
        "--interval",
        "0.01",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 4); // a heading, 3 samples
}

#[test]
fn stat_errors_are_typed_for_scripts() {
    let missing = unique("missing");
    let out = run(&["stat", &missing]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("shmlane: ") && err.contains("no shared-memory segment"),
        "{err}"
    );

    let plain = unique("stat-plain");
    std::fs::write(shm_path(&plain), b"hello").unwrap();
    let out = run(&["stat", &plain]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("not a shmlane channel")
    );
    std::fs::remove_file(shm_path(&plain)).unwrap();

    // Usage mistakes: exit 2, before anything is looked at.
    for args in [
        &["stat", "/x", "--interval", "1"][..],
        &["stat", "/x", "--watch", "--interval", "soon"],
        &["stat"],
        &["ls", "--bogus"],
    ] {
        assert_eq!(run(args).status.code(), Some(2), "{args:?}");
    }
    let out = run(&["stat", "/x", "--watch", "--interval", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn a_scribbled_header_is_reported_not_trusted() {
    let name = unique("scribbled");
    let _tx = Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    // A third process writes a capacity that is no power of two.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    let at = shmlane_core::layout::offsets::CAPACITY as u64;
    std::os::unix::fs::FileExt::write_at(&file, &12345u64.to_ne_bytes(), at).unwrap();
    let e = listed(&name).unwrap();
    assert_eq!(e["kind"], "channel");
    assert!(e["error"].as_str().unwrap().contains("corrupt"), "{e}");
    let out = run(&["stat", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("corrupt"));

    // A pid written into a live channel's header is checked, not
    // believed: this process holds a lock on the segment (the receiver's)
    // but not the sender's, so it is not the sender.
    let held = unique("scribbled-pid");
    let sender = HolderProcess::start(&held, 1);
    let _rx = Receiver::open(&held, &Options::new()).unwrap();
    assert_eq!(listed(&held).unwrap()["sender"]["pid_verified"], true);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&held))
        .unwrap();
    let at = shmlane_core::layout::offsets::PRODUCER_PID as u64;
    let me = std::process::id().to_ne_bytes();
    std::os::unix::fs::FileExt::write_at(&file, &me, at).unwrap();
    let e = listed(&held).unwrap();
    assert_eq!(e["sender"]["status"], "active"); // its lock is held
    assert_eq!(e["sender"]["pid"], std::process::id());
    assert_eq!(e["sender"]["pid_verified"], false);
    assert_eq!(e["receiver"]["pid_verified"], true);
    drop(sender);
}

#[test]
fn out_of_descriptors_is_an_error_not_a_panic() {
    let name = unique("nofile");
    let _tx = Sender::create(&name, &Options::new()).unwrap();
    // Every limit from too few for the dynamic loader (exit 127, before
    // any of our code runs) up to enough: each run fails with a typed
    // error (exit 1, EMFILE said), never a panic, until one succeeds.
    // (How many descriptors the child inherits depends on who runs the
    // tests, so the limits are swept, not chosen.)
    let (mut ours, mut succeeded) = (0, false);
    for limit in 3..64 {
        let child = Command::new("prlimit")
            .arg(format!("--nofile={limit}"))
            .arg(env!("CARGO_BIN_EXE_shmlane"))
            .args(["ls", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = finish(child, &["ls", "--json", "out of descriptors"]);
        if out.status.success() {
            succeeded = true;
            break;
        }
        let err = String::from_utf8(out.stderr).unwrap();
        match out.status.code() {
            Some(127) => assert_eq!(ours, 0, "{limit}: the loader failed after we ran: {err}"),
            Some(1) => {
                assert!(
                    err.starts_with("shmlane: ") && err.contains("os error 24"),
                    "{limit}: {err}"
                );
                ours += 1;
            }
            _ => panic!("{limit}: {:?} {err}", out.status),
        }
    }
    assert!(
        succeeded && ours > 0,
        "{ours} typed failures, success: {succeeded}"
    );
}

#[test]
fn rm_stale_removes_only_what_nobody_holds_and_only_ours() {
    let _one_at_a_time = RM_STALE.lock().unwrap_or_else(|e| e.into_inner());
    let (stale, live, plain, theirs) = (
        unique("rm-stale"),
        unique("rm-live"),
        unique("rm-plain"),
        unique("rm-theirs"),
    );
    let socket = format!("{}.sock", unique("rm-socket"));
    HolderProcess::start(&stale, 1).kill();
    HolderProcess::start(&theirs, 1).kill();
    // Another user's: not `nobody`, whom another test runs rm-stale as.
    std::os::unix::fs::chown(shm_path(&theirs), Some(OTHER_USER), Some(OTHER_USER)).unwrap();
    let _live = Sender::create(&live, &Options::new()).unwrap();
    std::fs::write(shm_path(&plain), b"mine, not a ring").unwrap();
    drop(std::os::unix::net::UnixListener::bind(shm_path(&socket)).unwrap());

    // A copy of the stale ring under a name that is not UTF-8: shown,
    // never taken for a channel (nor removed under a lossy name).
    let odd_name = format!("/shmlane-cli-odd-{}-", std::process::id());
    let mut odd = format!("/dev/shm{odd_name}").into_bytes();
    odd.push(0xff);
    let odd = std::path::PathBuf::from(std::ffi::OsString::from_vec(odd));
    std::fs::copy(shm_path(&stale), &odd).unwrap();
    let e = listed(&format!("{odd_name}\u{fffd}")).unwrap();
    assert_eq!(
        (e["kind"].clone(), e["what"].clone()),
        ("foreign".into(), "name that is not UTF-8".into())
    );

    assert_eq!(listed(&stale).unwrap()["stale"], true);
    assert_eq!(listed(&socket).unwrap()["stale"], true);
    assert_eq!(listed(&theirs).unwrap()["stale"], false); // not ours
    let mine = [&stale, &live, &plain, &theirs, &socket];
    // What rm-stale did (or would do) to this test's names.
    let ours = |list: &Value| -> Vec<(String, String)> {
        let mut names: Vec<_> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| mine.iter().any(|n| e["name"] == n.as_str()))
            .map(|e| {
                let field = |f: &str| e[f].as_str().unwrap().to_owned();
                (field("name"), field("action"))
            })
            .collect();
        names.sort();
        names
    };
    let would = ours(&json(&["rm-stale", "--dry-run"]));
    let mut expected = vec![
        (stale.clone(), "would remove".to_owned()),
        (socket.clone(), "would remove".to_owned()),
    ];
    expected.sort();
    assert_eq!(would, expected);
    for name in mine {
        assert!(
            std::fs::symlink_metadata(shm_path(name)).is_ok(),
            "{name}: a dry run removed it"
        );
    }
    let done = ours(&json(&["rm-stale"]));
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(name, _)| (name, "removed".to_owned()))
        .collect();
    assert_eq!(done, expected);
    for name in [&stale, &socket] {
        assert!(
            std::fs::symlink_metadata(shm_path(name)).is_err(),
            "{name} is still there"
        );
    }
    for name in [&live, &plain, &theirs] {
        assert!(
            std::fs::symlink_metadata(shm_path(name)).is_ok(),
            "{name} was removed"
        );
    }
    assert!(odd.exists(), "the oddly named copy was removed");
    std::fs::remove_file(&odd).unwrap();
    std::fs::remove_file(shm_path(&plain)).unwrap();
    Segment::unlink(&theirs).unwrap();
}

#[test]
fn another_users_listing_shows_what_it_cannot_read_and_touches_nothing() {
    let name = unique("private");
    let _tx = Sender::create(&name, &Options::new()).unwrap(); // mode 0600, root's
    // The binary may live in a directory only root can enter: run a copy.
    let dir = std::env::temp_dir().join(format!("shmlane-cli-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("shmlane");
    // Copied by another process: a file this one wrote could still be open
    // in a child another test is forking, and exec would say ETXTBSY.
    let copied = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_shmlane"))
        .arg(&exe)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let child = Command::new(&exe)
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .current_dir("/")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish(child, args)
    };
    let out = as_nobody(&["ls", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name.as_str())
        .unwrap();
    assert_eq!(e["kind"], "unreadable");
    assert_eq!(
        (e["owner"].clone(), e["stale"].clone()),
        (0.into(), false.into())
    );
    assert!(e["error"].as_str().unwrap().contains("permission"), "{e}");
    let out = as_nobody(&["rm-stale", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::metadata(shm_path(&name)).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rm_stale_racing_live_channels_never_removes_one() {
    let _one_at_a_time = RM_STALE.lock().unwrap_or_else(|e| e.into_inner());
    // One thread makes, uses and drops channel after channel (each is
    // held from before its name appears until after it is gone); rm-stale
    // runs over and over meanwhile. It must never remove one of them (one
    // that closed between the listing and the removal is "gone already"),
    // and each open by name must find its channel.
    let prefix = unique("race");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = std::thread::spawn({
        let (prefix, stop) = (prefix.clone(), stop.clone());
        move || {
            let mut made = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || made < 20 {
                let name = format!("{prefix}-{made}");
                let mut tx = Sender::create(&name, &Options::new()).unwrap();
                let mut rx = Receiver::open(&name, &Options::new()).unwrap();
                tx.send(b"still here").unwrap();
                assert_eq!(rx.recv(&mut [0; 16]).unwrap(), 10);
                made += 1;
            }
            made
        }
    });
    for _ in 0..10 {
        let done = json(&["rm-stale"]);
        let removed: Vec<_> = done
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"].as_str().unwrap().starts_with(&prefix))
            .filter(|e| e["action"] != "gone already")
            .collect();
        assert!(removed.is_empty(), "live channels removed: {removed:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(churn.join().unwrap() >= 20);
}
