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
pub fn peer_spec() -> Option<Vec<String>> {
    let spec = std::env::var(PEER_ENV).ok()?;
    Some(spec.split(' ').map(str::to_owned).collect())
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
        let dir = Path::new("/tmp").join(format!(
            "shmlane-{test}-{}-{}",
            std::process::id(),
            unique()
        ));
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
