//! What the course tests share: a program run as a real process and heard
//! from through its stdout, the kernel's view of that process (its state and
//! the system call it sleeps in), and paths and names of one test.
//!
//! Nothing here sleeps to order events: a test waits for a line a program
//! prints (read from its stdout pipe), for a process to exit, or for the
//! kernel to report a process's state. Every read and wait has a 30-second
//! deadline as a safety net only: a program that hangs is killed and the
//! test fails, instead of hanging the suite.
//!
//! Used by `classics.rs` and `course.rs` (each uses part of it).
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

/// How long any one program may run before it is killed and its test fails.
pub const SAFETY_NET: Duration = Duration::from_secs(30);

/// The path of the program `name`, built by Cargo for these tests.
fn exe(name: &str) -> &'static str {
    match name {
        "pipe_hello" => env!("CARGO_BIN_EXE_pipe_hello"),
        "filter" => env!("CARGO_BIN_EXE_filter"),
        "fifo_reader" => env!("CARGO_BIN_EXE_fifo_reader"),
        "fifo_writer" => env!("CARGO_BIN_EXE_fifo_writer"),
        "shm_writer" => env!("CARGO_BIN_EXE_shm_writer"),
        "shm_reader" => env!("CARGO_BIN_EXE_shm_reader"),
        "mq_server" => env!("CARGO_BIN_EXE_mq_server"),
        "mq_client" => env!("CARGO_BIN_EXE_mq_client"),
        "socket_server" => env!("CARGO_BIN_EXE_socket_server"),
        "socket_client" => env!("CARGO_BIN_EXE_socket_client"),
        "mmap_file" => env!("CARGO_BIN_EXE_mmap_file"),
        "signals" => env!("CARGO_BIN_EXE_signals"),
        "file_lock" => env!("CARGO_BIN_EXE_file_lock"),
        "condvar" => env!("CARGO_BIN_EXE_condvar"),
        "async_echo" => env!("CARGO_BIN_EXE_async_echo"),
        _ => panic!("no program {name}"),
    }
}

/// Waits until `fd` is readable (or at end of file): false if `deadline`
/// passes first.
fn readable_before(fd: BorrowedFd<'_>, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(Errno::INTR) => {}
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// A program running as a child process, with its stdin, stdout and stderr
/// piped to the test. Dropping it kills the process if it still runs.
pub struct Program {
    name: String,
    child: Child,
    /// A pidfd: pollable for the exit, and a signal that can never hit
    /// another process that reused the pid.
    pidfd: OwnedFd,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Stdout bytes read but not yet returned as lines.
    pending: Vec<u8>,
    deadline: Instant,
    reaped: bool,
}

/// What a program left when it exited.
pub struct Finished {
    pub name: String,
    pub status: ExitStatus,
    /// Stdout after the lines already read with [`Program::line`].
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed ({})\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that it failed with exit status 1 and an error containing
    /// `message` on stderr.
    pub fn assert_failure(&self, message: &str) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(1),
            "{} should have failed\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout,
            self.stderr
        );
        let prefix = format!("{}: ", self.name);
        assert!(
            self.stderr.starts_with(&prefix) && self.stderr.contains(message),
            "{}: expected an error containing {message:?}, got stderr:\n{}",
            self.name,
            self.stderr
        );
        self
    }

    /// Stdout's lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl Program {
    pub fn start(name: &str, args: &[&str]) -> Program {
        Program::start_in_env(name, args, &[])
    }

    /// Starts `name` with `env` added to its environment.
    pub fn start_in_env(name: &str, args: &[&str], env: &[(&str, &Path)]) -> Program {
        let mut child = Command::new(exe(name))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty())
            .unwrap_or_else(|e| panic!("pidfd_open({name}): {e}"));
        Program {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            stdout: child.stdout.take().expect("stdout is piped"),
            child,
            pidfd,
            pending: Vec::new(),
            deadline: Instant::now() + SAFETY_NET,
            reaped: false,
        }
    }

    /// Runs `name` to the end with stdin closed.
    pub fn run(name: &str, args: &[&str]) -> Finished {
        Program::start(name, args).finish()
    }

    /// Writes `text` to the program's stdin (and flushes it).
    pub fn write_stdin(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}'s stdin: {e}", self.name));
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads more of stdout into `pending`; false at end of file.
    fn fill(&mut self) -> bool {
        if !readable_before(self.stdout.as_fd(), self.deadline) {
            self.kill_and_fail("stdout");
        }
        let mut chunk = [0u8; 4096];
        let n = self
            .stdout
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("reading {}'s stdout: {e}", self.name));
        self.pending.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next line of stdout, without its newline.
    pub fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return String::from_utf8_lossy(&line[..end]).into_owned();
            }
            if !self.fill() {
                let finished = self.finish_now();
                panic!(
                    "{} ended its output before a whole line ({})\nstdout:\n{}\nstderr:\n{}",
                    finished.name, finished.status, finished.stdout, finished.stderr
                );
            }
        }
    }

    /// Closes stdin, reads stdout and stderr to the end, waits for the exit.
    pub fn finish(mut self) -> Finished {
        self.finish_now()
    }

    fn finish_now(&mut self) -> Finished {
        self.stdin = None;
        while self.fill() {}
        let stdout = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
        let mut stderr_pipe = self.child.stderr.take().expect("stderr is piped");
        let mut stderr = Vec::new();
        loop {
            if !readable_before(stderr_pipe.as_fd(), self.deadline) {
                self.kill_and_fail("stderr");
            }
            let mut chunk = [0u8; 4096];
            let n = stderr_pipe
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("reading {}'s stderr: {e}", self.name));
            if n == 0 {
                break;
            }
            stderr.extend_from_slice(&chunk[..n]);
        }
        // A pidfd is readable once its process has exited.
        if !readable_before(self.pidfd.as_fd(), self.deadline) {
            self.kill_and_fail("exit");
        }
        let status = self.child.wait().expect("wait");
        self.reaped = true;
        Finished {
            name: self.name.clone(),
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Sends `signal` to the process (through its pidfd).
    pub fn signal(&self, signal: Signal) {
        pidfd_send_signal(&self.pidfd, signal)
            .unwrap_or_else(|e| panic!("pidfd_send_signal({}, {signal:?}): {e}", self.name));
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(mut self) -> ExitStatus {
        self.signal(Signal::KILL);
        self.reaped = true;
        self.child.wait().expect("wait")
    }

    fn kill_and_fail(&mut self, what: &str) -> ! {
        let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
        let _ = self.child.wait();
        self.reaped = true;
        // The end of what it printed, which says where it got stuck.
        let tail = &self.pending[self.pending.len().saturating_sub(400)..];
        panic!(
            "{} timed out after {SAFETY_NET:?} (waiting for its {what}); killed it. \
             Unread stdout ends with: {:?}",
            self.name,
            String::from_utf8_lossy(tail)
        );
    }

    /// The process's state letter as the kernel reports it in
    /// `/proc/<pid>/stat`: `R` running, `S` asleep (interruptibly, as in a
    /// blocking system call), `T` stopped by a signal, ...
    pub fn state(&self) -> char {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .unwrap_or_else(|e| panic!("reading {}'s /proc stat: {e}", self.name));
        // "pid (comm) S ...": the name may hold spaces and parentheses, so
        // the state is the first field after the *last* ')'.
        let after = &stat[stat.rfind(')').expect("a (comm) field") + 1..];
        after.trim_start().chars().next().expect("a state field")
    }

    /// The number of the system call the process is in, from
    /// `/proc/<pid>/syscall`: `Some(nr)` while it is blocked in one, `None`
    /// while it runs, and `Some(nr)` of any call if the file cannot be read
    /// (it needs ptrace rights over the process, which a parent usually has
    /// over its child; without them the state alone has to do).
    fn syscall(&self, nr: i64) -> Option<i64> {
        match fs::read_to_string(format!("/proc/{}/syscall", self.pid())) {
            Ok(line) => line.split_whitespace().next()?.parse().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(nr),
            Err(e) => panic!("reading {}'s /proc syscall: {e}", self.name),
        }
    }

    /// Waits until the process sleeps in system call `nr` (a libc `SYS_*`
    /// number): proof that it blocks there, not that it is slow to get
    /// there. Re-checks until [`SAFETY_NET`] passes.
    pub fn wait_until_blocked_in(&self, nr: i64) {
        while !(self.state() == 'S' && self.syscall(nr) == Some(nr)) {
            assert!(
                Instant::now() < self.deadline,
                "{} did not block in system call {nr} (state {}, syscall {:?})",
                self.name,
                self.state(),
                self.syscall(nr)
            );
            std::thread::yield_now();
        }
    }

    /// Waits until the process is stopped (state `T`, after SIGSTOP).
    pub fn wait_until_stopped(&self) {
        while self.state() != 'T' {
            assert!(Instant::now() < self.deadline, "{} did not stop", self.name);
            std::thread::yield_now();
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// A directory of its own for one test, removed with everything in it.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("shmlane-course-{test}-{}", run_id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create the test directory");
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .expect("read the test directory")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn path_str(&self, name: &str) -> String {
        self.join(name).to_str().expect("UTF-8 temp dir").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A shared-memory segment name of one test, removed at the end whatever
/// happens (the test checks first that the program removed it).
pub struct ShmName(pub String);

impl ShmName {
    pub fn new(test: &str) -> ShmName {
        ShmName(format!("/shmlane-course-{test}-{}", run_id()))
    }

    /// Whether the name exists: named segments are files in `/dev/shm`.
    pub fn exists(&self) -> bool {
        Path::new("/dev/shm")
            .join(self.0.trim_start_matches('/'))
            .exists()
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = shmlane_posix::Segment::unlink(&self.0);
    }
}

/// A message-queue name of one test, removed at the end whatever happens.
pub struct QueueName(pub String);

impl QueueName {
    pub fn new(test: &str) -> QueueName {
        QueueName(format!("/shmlane-classics-{test}-{}", run_id()))
    }

    pub fn exists(&self) -> bool {
        match shmlane_posix::mqueue::MessageQueue::open(&self.0) {
            Ok(_) => true,
            Err(shmlane_posix::Error::NotFound { .. }) => false,
            Err(e) => panic!("MessageQueue::open({}): {e}", self.0),
        }
    }
}

impl Drop for QueueName {
    fn drop(&mut self) {
        let _ = shmlane_posix::mqueue::MessageQueue::unlink(&self.0);
    }
}

/// This process's umask (which the programs inherit).
pub fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("a Umask line in /proc/self/status");
    u32::from_str_radix(line.trim(), 8).expect("an octal umask")
}

#[path = "../../../posix/tests/support/run_id.rs"]
mod run_id;
pub use run_id::run_id;
