//! What the process-level tests share: running this test binary again as a
//! peer process (optionally as another user), and hearing from it.
//!
//! A test file that uses peers has an ignored test `peer_process` that reads
//! [`PEER_ENV`] and does what it says; [`Peer::spawn`] runs the binary with
//! only that test selected. The peer reports with [`report`]; the parent
//! waits for those lines ([`Peer::report`]): no sleeps synchronise anything.
#![allow(dead_code)] // each test binary uses a part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

/// The environment variable that tells the peer what to do.
pub const PEER_ENV: &str = "SHMLANE_PEER";

/// The uid and gid of the other user the tests run peers as.
pub const NOBODY: u32 = 65534;

const REPORT: &str = "peer-report: ";

/// Writes one report line for the parent (see [`Peer::report`]).
pub fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    // A fresh line first: the test harness may have written to it.
    let _ = write!(out, "\n{REPORT}{line}\n");
    let _ = out.flush();
}

/// Waits until the parent closes our stdin (or kills us).
pub fn block_on_stdin() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// The peer's instructions, split at spaces; `None` when this process is
/// not a peer (then `peer_process` returns at once).
pub fn peer_spec() -> Option<Vec<&'static str>> {
    // A peer runs one spec and exits: the string may live as long.
    let spec: &'static str = std::env::var(PEER_ENV).ok()?.leak();
    Some(spec.split(' ').collect())
}

/// Whether this process may run peers as another user; if not, says why the
/// calling test is skipped.
pub fn can_switch_users(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("{test}: skipped: needs root to run a peer as uid {NOBODY}");
    false
}

/// A copy of this test binary that another user can execute, wherever the
/// checkout lives (a clone in a 0700 home directory is not searchable by
/// others): a world-readable directory under /tmp, removed on drop.
struct PublicCopy {
    dir: PathBuf,
    exe: PathBuf,
}

impl PublicCopy {
    fn new() -> PublicCopy {
        let dir =
            Path::new("/tmp").join(format!("shmlane-peer-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&dir).expect("create a directory for the peer's binary");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.join("peer");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).expect("copy the test binary");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        PublicCopy { dir, exe }
    }
}

impl Drop for PublicCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A number unique within this process.
pub fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A peer process: this test binary, running its `peer_process` test.
pub struct Peer {
    pub child: Child,
    stdout: BufReader<ChildStdout>,
    _copy: Option<PublicCopy>,
}

impl Peer {
    /// Runs the peer with instructions `spec`, as this user.
    pub fn spawn(spec: &str) -> Peer {
        Self::start(spec, None, |c| c)
    }

    /// Runs the peer as `uid`/`gid` (root only: see [`can_switch_users`]).
    pub fn spawn_as(spec: &str, uid: u32) -> Peer {
        Self::start(spec, Some(uid), |c| c)
    }

    /// Runs the peer with `adjust` applied to its command.
    pub fn spawn_with(spec: &str, adjust: impl FnOnce(&mut Command) -> &mut Command) -> Peer {
        Self::start(spec, None, adjust)
    }

    fn start(
        spec: &str,
        uid: Option<u32>,
        adjust: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Peer {
        let copy = uid.map(|_| PublicCopy::new());
        let exe = match &copy {
            Some(copy) => copy.exe.clone(),
            None => std::env::current_exe().unwrap(),
        };
        let mut command = Command::new(exe);
        command
            .args([
                "--exact",
                "peer_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PEER_ENV, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(uid) = uid {
            // The checkout may not be searchable by that user: start in /.
            command.uid(uid).gid(uid).current_dir("/");
        }
        let mut child = adjust(&mut command).spawn().expect("spawn the peer");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            child,
            stdout,
            _copy: copy,
        }
    }

    /// The next line the peer reported; empty if it exited first.
    pub fn report(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                return String::new();
            }
            if let Some(report) = line.trim().strip_prefix(REPORT) {
                return report.to_owned();
            }
        }
    }

    /// Closes the peer's stdin (ending [`block_on_stdin`]) and waits for it;
    /// panics unless it exited successfully.
    pub fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "peer failed: {status}");
    }

    /// Kills the peer with SIGKILL and reaps it; returns when it was killed.
    pub fn kill9(&mut self) -> Instant {
        let _ = self.child.kill();
        let at = Instant::now();
        let _ = self.child.wait();
        at
    }
}

/// Tests that start peer processes run one at a time: two busy-polling
/// pairs on a 2-core machine would only measure the scheduler.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static PROCESSES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PROCESSES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// xorshift64: a small deterministic generator, the same on both sides.
pub fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The path in /dev/shm of the segment `name`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(&name[1..])
}

/// A fresh directory under /tmp for one test, with permission bits `mode`
/// (0o777 lets a peer running as [`NOBODY`] reach it and make objects in
/// it), removed with everything in it on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(test: &str, mode: u32) -> TestDir {
        let dir = Path::new("/tmp").join(format!("shmlane-{test}-{}-{}", run_id(), unique()));
        std::fs::create_dir(&dir).expect("create a test directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        TestDir(dir)
    }

    /// The path of `name` in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long a call that must return may take before a test calls it hung
/// (a failure detector, never a synchronisation).
pub const HUNG: std::time::Duration = std::time::Duration::from_secs(20);

/// This thread's id.
pub fn tid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// The state letter of thread `tid` of this process (`S`: asleep).
pub fn thread_state(tid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .expect("the thread ended: the call it was in returned");
    stat.rsplit_once(") ").unwrap().1.chars().next().unwrap()
}

/// Waits until thread `tid` of this process sleeps, which for the threads
/// of these tests means: blocked in the call under test.
pub fn wait_until_asleep(tid: i32) {
    while thread_state(tid) != 'S' {
        std::thread::yield_now();
    }
}

/// The system call thread `tid` of this process is in (it must be asleep
/// in one), by its number (`/proc/<pid>/task/<tid>/syscall`).
pub fn syscall_of(tid: i32) -> i64 {
    loop {
        let line = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .expect("the thread ended: the call it was in returned");
        // "running" while it runs; it goes back to sleep at once.
        if let Some(Ok(number)) = line.split_whitespace().next().map(str::parse) {
            return number;
        }
        std::thread::yield_now();
    }
}

/// Waits until thread `tid` of this process sleeps in system call `nr`.
pub fn wait_until_asleep_in(tid: i32, nr: i64) {
    loop {
        wait_until_asleep(tid);
        if syscall_of(tid) == nr {
            return;
        }
        std::thread::yield_now();
    }
}

/// Runs `call` on another thread: its result, or a panic naming `what` if
/// it has not returned within [`HUNG`] (it must not wait).
pub fn must_return<T: Send + 'static>(what: &str, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(call());
    });
    result
        .recv_timeout(HUNG)
        .unwrap_or_else(|_| panic!("{what} did not return within {HUNG:?}"))
}

/// [`must_return`], for a call that must not wait.
pub fn must_not_wait<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    must_return("a call that must not wait", call)
}

/// A call blocked in another thread.
pub struct Blocked<T> {
    /// The thread it runs in.
    pub tid: i32,
    result: std::sync::mpsc::Receiver<T>,
}

impl<T> Blocked<T> {
    /// What the call returned, or a panic if it does not return within
    /// [`HUNG`] (it waits for something that happened).
    pub fn result(self) -> T {
        self.result
            .recv_timeout(HUNG)
            .expect("a blocked call did not return")
    }

    /// What the call returned, if it has.
    pub fn try_result(&self) -> Option<T> {
        self.result.try_recv().ok()
    }
}

/// Runs `call` on another thread, and returns once that thread sleeps in
/// it: then [`Blocked::result`].
pub fn blocked_in<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Blocked<T> {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(tid()).unwrap();
        let _ = done.send(call());
    });
    let tid = tid_rx.recv().unwrap();
    wait_until_asleep(tid);
    Blocked { tid, result }
}

/// This process's umask.
pub fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

mod run_id;
pub use run_id::run_id;

/// The system call thread `tid` of this process is asleep in, and its six
/// arguments (`/proc/<pid>/task/<tid>/syscall`: the number, then the
/// arguments in hex).
pub fn syscall_args(tid: i32) -> (i64, [u64; 6]) {
    loop {
        wait_until_asleep(tid);
        let line = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .expect("the thread ended: the call it was in returned");
        let mut words = line.split_whitespace();
        // "running" while it runs: it goes back to sleep at once.
        let Some(Ok(nr)) = words.next().map(str::parse::<i64>) else {
            std::thread::yield_now();
            continue;
        };
        let mut args = [0u64; 6];
        for arg in &mut args {
            let word = words.next().unwrap_or("0x0");
            *arg = u64::from_str_radix(word.trim_start_matches("0x"), 16).unwrap();
        }
        return (nr, args);
    }
}

/// Asserts that thread `tid` sleeps in system call `nr` with no timeout:
/// its argument `timeout` (counted from 0) is a null pointer. A sleep with
/// no timeout cannot end by itself, so an idle side sleeping so is woken
/// only by an event (a message, a close, its peer's exit), never by a
/// clock. (A side that probed its peer every 10 ms slept with a 10 ms
/// timeout; this catches it without watching the clock.)
pub fn assert_asleep_without_timeout(tid: i32, nr: i64, timeout: usize) {
    let since = std::time::Instant::now();
    let (now, args) = loop {
        let (now, args) = syscall_args(tid);
        if now == nr || since.elapsed() > HUNG {
            break (now, args);
        }
        std::thread::yield_now();
    };
    assert_eq!(now, nr, "asleep in system call {now}, not {nr}");
    assert_eq!(
        args[timeout], 0,
        "an idle blocked side sleeps in system call {nr} with a timeout (argument {timeout} = {:#x})",
        args[timeout]
    );
}

/// The id of this process's thread named `name` (its `comm`); `None` if
/// there is none within [`HUNG`]. (A thread just spawned has its parent's
/// name until it first runs and names itself.)
pub fn thread_named(name: &str) -> Option<i32> {
    let since = std::time::Instant::now();
    while since.elapsed() < HUNG {
        let found = std::fs::read_dir("/proc/self/task")
            .ok()?
            .filter_map(|task| task.ok())
            .find(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim() == name)
            })
            .and_then(|task| task.file_name().to_str()?.parse().ok());
        if found.is_some() {
            return found;
        }
        std::thread::yield_now();
    }
    None
}

/// Whether this process has a thread named `name` now.
pub fn has_thread_named(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| {
        tasks.filter_map(|task| task.ok()).any(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
    })
}
