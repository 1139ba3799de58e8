//! The peer process: `bench` runs itself again with `--peer` and a job
//! description, pinned to another CPU in the pinned pass.
//!
//! The job travels as `key=value` words on the command line; descriptors
//! the peer needs (pipe ends, a memfd) are inherited at the numbers the job
//! names. The peer reports on its stdout, one line per report.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, ChildStdout, Command, Stdio};

use rustix::io::{FdFlags, fcntl_getfd, fcntl_setfd};

/// What the peer does, and with what.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Job {
    /// `echo`, `zero-copy-echo`, `sink`, `atomic`, `futex`, `cross-copy`
    /// or `line-stream`.
    pub what: String,
    /// The transport's name in the results (`shm`, `pipe`, `pipe-raw`, ...).
    pub transport: String,
    /// Message size in bytes.
    pub size: usize,
    /// Busy-poll instead of waiting in the kernel.
    pub spin: bool,
    /// The CPU to pin to, if any.
    pub cpu: Option<usize>,
    /// The address (endpoint address, path or queue name) to connect to.
    pub addr: String,
    /// Ring capacity for `shm`.
    pub capacity: usize,
    /// Zero-copy echo: read every byte of each message, not two.
    pub read_all: bool,
    /// Inherited descriptors, in the order the job's code expects.
    pub fds: Vec<i32>,
}

impl Job {
    /// The job as command-line words (after `--peer`).
    fn to_args(&self) -> Vec<String> {
        let fds: Vec<String> = self.fds.iter().map(i32::to_string).collect();
        let mut words = vec![
            format!("what={}", self.what),
            format!("transport={}", self.transport),
            format!("size={}", self.size),
            format!("spin={}", u8::from(self.spin)),
            format!("capacity={}", self.capacity),
            format!("read_all={}", u8::from(self.read_all)),
            format!("fds={}", fds.join(",")),
            format!("addr={}", self.addr),
        ];
        if let Some(cpu) = self.cpu {
            words.push(format!("cpu={cpu}"));
        }
        words
    }

    /// Parses the words `to_args` made.
    pub fn parse(words: impl Iterator<Item = String>) -> Result<Job, String> {
        let mut job = Job::default();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or(format!("peer job word {word:?} is not key=value"))?;
            let number = |v: &str| -> Result<usize, String> {
                v.parse().map_err(|e| format!("peer job {key}={v:?}: {e}"))
            };
            match key {
                "what" => job.what = value.to_owned(),
                "transport" => job.transport = value.to_owned(),
                "size" => job.size = number(value)?,
                "spin" => job.spin = value == "1",
                "cpu" => job.cpu = Some(number(value)?),
                "addr" => job.addr = value.to_owned(),
                "capacity" => job.capacity = number(value)?,
                "read_all" => job.read_all = value == "1",
                "fds" => {
                    job.fds = value
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse()
                                .map_err(|e| format!("peer job fds={value:?}: {e}"))
                        })
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(format!("unknown peer job key {key:?}")),
            }
        }
        Ok(job)
    }

    /// Takes the `i`-th inherited descriptor.
    pub fn take_fd(&self, i: usize) -> Result<OwnedFd, String> {
        let fd = *self
            .fds
            .get(i)
            .ok_or(format!("peer job has no descriptor #{i}"))?;
        // Check it is open before owning it.
        // SAFETY: borrowed only for this call, and `fcntl` on a closed or
        // foreign number fails cleanly.
        fcntl_getfd(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
            .map_err(|e| format!("inherited descriptor {fd}: {e}"))?;
        // SAFETY: the parent opened `fd` for this process alone (it cleared
        // close-on-exec on it just for this spawn and closed its own copy),
        // and the job names each descriptor once, so nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// How long [`Peer::report`] waits: far longer than any measurement.
pub const REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A running peer process and its report lines.
pub struct Peer {
    child: Child,
    reports: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts `bench --peer JOB`, handing it `inherit` (whose numbers must
    /// be in `job.fds`); the parent's copies are closed once it runs.
    pub fn spawn(job: &Job, inherit: Vec<OwnedFd>) -> Result<Peer, String> {
        for fd in &inherit {
            if !job.fds.contains(&fd.as_raw_fd()) {
                return Err(format!(
                    "descriptor {} not named in the job",
                    fd.as_raw_fd()
                ));
            }
            fcntl_setfd(fd, FdFlags::empty()).map_err(|e| format!("fcntl: {e}"))?;
        }
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let spawned = Command::new(exe)
            .arg("--peer")
            .args(job.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn();
        drop(inherit);
        let mut child = spawned.map_err(|e| format!("spawning the peer: {e}"))?;
        let stdout = child.stdout.take().ok_or("the peer's stdout")?;
        Ok(Peer {
            child,
            reports: BufReader::new(stdout),
        })
    }

    /// The peer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the peer has exited (it never should while a floor waits
    /// for it: then the floor gives up instead of spinning forever).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the peer's next report line (at most [`REPORT_TIMEOUT`]:
    /// a peer that hangs fails the bench instead of hanging it).
    pub fn report(&mut self) -> Result<String, String> {
        if self.reports.buffer().is_empty() {
            let mut fds = [rustix::event::PollFd::new(
                self.reports.get_ref(),
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: REPORT_TIMEOUT.as_secs() as i64,
                tv_nsec: 0,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(0) => {
                    return Err(format!(
                        "the peer did not report within {} s",
                        REPORT_TIMEOUT.as_secs()
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("poll: {e}")),
            }
        }
        let mut line = String::new();
        match self.reports.read_line(&mut line) {
            Ok(0) => Err("the peer exited without reporting".to_owned()),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(e) => Err(format!("reading the peer's report: {e}")),
        }
    }

    /// Kills the peer with SIGKILL and reaps it: when the kill was sent.
    pub fn kill9(mut self) -> std::time::Instant {
        let _ = self.child.kill();
        let at = std::time::Instant::now();
        let _ = self.child.wait();
        at
    }

    /// Waits for the peer to exit; an error if it failed.
    pub fn finish(mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| format!("peer: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the peer failed ({status})"))
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Reached on error paths: don't leave the peer behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends one report line to the parent.
pub fn report(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("report: {e}"))
}

/// The CPUs this process may run on when it starts (before any pinning).
pub fn cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => vec![0],
    }
}

/// Restricts this process to `cpus` (best effort: a failure leaves the
/// scheduler's choice, which the results' `pinned` flag would misstate,
/// so it is reported).
pub fn pin(cpus: &[usize]) -> Result<(), String> {
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| format!("sched_setaffinity: {e}"))
}
