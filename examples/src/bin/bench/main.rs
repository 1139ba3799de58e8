//! Every transport side by side against the machine's own floors, in one
//! run, each ratio from interleaved rounds.
//!
//! ```text
//! cargo run --release -p shmlane-examples --bin bench [-- --quick] [--json] [--plot FILE.svg]
//! ```
//!
//! The program runs itself again as the peer process, in three passes:
//! pinned (this process on one CPU, the peer on another), unpinned (the
//! scheduler decides) and one CPU (both processes on the same CPU). Each
//! figure is a comparison of a subject with its floor, measured in short
//! interleaved rounds between the same CPUs (floor, subject, floor,
//! subject, ...; see [`rounds`]): one ratio per round, reported as the
//! median and its min–max spread.
//!
//! - the floors: an atomic ping-pong on one shared cache line (`atomic`),
//!   a futex ping-pong with a wake per turn (`futex`), the line stream
//!   (`line-stream`: 64-byte lines with a sequence word, followed line by
//!   line), the cross-core copy (`cross-copy`: N bytes written by one
//!   process and read in full by the other, and back), and each kernel
//!   transport used directly (`pipe-raw`, `fifo-raw`, `mqueue-raw`,
//!   `unix-stream-raw`, `unix-dgram-raw`, `tcp-raw`);
//! - round trips over the ring: zero-copy through grants (the headline:
//!   the receiver checks the first and last byte), zero-copy with the
//!   receiver reading every byte in place (`zero-copy-read`, like for like
//!   with `cross-copy`) and through `send`/`try_recv` (`copy`),
//!   busy-polling (`spin`) against `atomic` (up to 1 KiB) and `cross-copy`
//!   (64 KiB, 1 MiB); blocking
//!   (`block`: spin, then futex) under steady traffic against `spin`, and
//!   after an idle gap (`wake`) against `futex`;
//! - round trips over every fallback transport against its raw transport;
//! - one-way streaming of 64 B, 4 KiB and 1 MiB messages: the ring against
//!   `line-stream`, each fallback against its raw transport;
//! - on one CPU: the ring's blocking round trip against `pipe-raw`'s, and
//!   busy-poll against blocking;
//! - how much CPU a blocked spin-then-futex receiver uses while idle.
//!
//! It prints tables, or with `--json` one JSON document with every round's
//! figures; both end with the targets, judged. `--quick` measures one size
//! of each kind in tiny rounds (a smoke test); `--plot` also draws the
//! charts into an SVG file; `--only shm,pipe` measures only the transports
//! named (and their floors).

mod fanin;
mod peer;
mod plot;
mod raw;
mod readiness;
mod report;
mod rounds;
mod shm;

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmlane_examples::rtt::{self, Plan};
use shmlane_posix::endpoint::{EndpointOptions, connect, listen};
use shmlane_posix::{Error, Options, WaitMode};
use shmlane_posix::{Framed, MessageReceiver, MessageSender};

use peer::{Job, Peer};
use report::{Idle, Machine, Record, Report, Target};
use rounds::{Outcome, Summary};

/// The fallback transports, in table order.
const FALLBACKS: [&str; 6] = ["pipe", "fifo", "mqueue", "unix-stream", "unix-dgram", "tcp"];
/// Round trips over the fallbacks and their raw transports.
const RTT_SIZES: [usize; 4] = [8, 64, 1024, 65536];
/// The ring's round trips against the atomic floor...
const SHM_SMALL_SIZES: [usize; 3] = [8, 64, 1024];
/// ...and against the cross-core copy.
const SHM_LARGE_SIZES: [usize; 2] = [65536, 1 << 20];
const STREAM_SIZES: [usize; 3] = [64, 4096, 1 << 20];

/// shmlane's bench: every transport against its floor, in interleaved
/// rounds (a ratio per round; median and spread), in a pinned, an unpinned
/// and a one-CPU pass, then the targets table.
#[derive(clap::Parser, Debug)]
#[command(name = "bench", version)]
struct Args {
    /// Short rounds (a smoke run: every figure, little time).
    #[arg(long)]
    quick: bool,
    /// The report as JSON on stdout (the fields the README documents).
    #[arg(long)]
    json: bool,
    /// Also draw the charts into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Measure only these transports (comma-separated; all when absent):
    /// shm, pipe, fifo, mqueue, unix-stream, unix-dgram, tcp.
    #[arg(long, value_name = "TRANSPORT,...", value_delimiter = ',', value_parser = transport)]
    only: Vec<String>,
}

/// A transport name `--only` knows.
fn transport(name: &str) -> Result<String, String> {
    if name == "shm" || FALLBACKS.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!("unknown transport (shm, {})", FALLBACKS.join(", ")))
    }
}

impl Args {
    fn wants(&self, transport: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|t| t == transport)
    }
}

/// How long each measurement of a round runs, and how many rounds.
#[derive(Clone, Copy)]
struct Budget {
    /// Rounds per comparison (floor and subject once each per round).
    rounds: usize,
    /// Round trips of one round (small messages; large ones warm up less).
    rtt: Plan,
    /// Round trips of one round after an idle gap each (`wake`, `futex`).
    wake: Plan,
    /// The idle gap: longer than a spin-then-futex side spins (~50 µs).
    gap: Duration,
    /// Streaming time of one round.
    stream: Duration,
    /// How long the idle receiver is watched.
    idle: Duration,
}

impl Budget {
    fn new(quick: bool) -> Budget {
        if quick {
            Budget {
                rounds: 5,
                rtt: Plan {
                    warmup: 20,
                    min: 30,
                    time: Duration::from_millis(3),
                    max: 50_000,
                },
                wake: Plan {
                    warmup: 2,
                    min: 10,
                    time: Duration::from_millis(3),
                    max: 1000,
                },
                gap: Duration::from_micros(200),
                stream: Duration::from_millis(5),
                idle: Duration::from_millis(200),
            }
        } else {
            Budget {
                rounds: 7,
                rtt: Plan {
                    warmup: 200,
                    min: 50,
                    time: Duration::from_millis(30),
                    max: 500_000,
                },
                wake: Plan {
                    warmup: 5,
                    min: 20,
                    time: Duration::from_millis(30),
                    max: 10_000,
                },
                gap: Duration::from_micros(200),
                stream: Duration::from_millis(40),
                idle: Duration::from_secs(1),
            }
        }
    }

    /// The round-trip plan for `size`-byte messages: large ones warm up
    /// with fewer (each takes tens of microseconds or more).
    fn plan(&self, size: usize) -> Plan {
        let mut plan = self.rtt;
        if size > 4096 {
            plan.warmup = plan.warmup.min(20);
            plan.min = plan.min.min(20);
        }
        plan
    }
}

/// One pass: where the two processes run.
struct Pass {
    /// `pinned`, `unpinned` or `one-cpu`.
    name: &'static str,
    /// The CPUs this process runs on.
    cpus: Vec<usize>,
    /// The peer's CPU (pinned and one-CPU passes).
    peer_cpu: Option<usize>,
    budget: Budget,
    /// Where paths (FIFOs, sockets) go.
    dir: PathBuf,
    /// For unique names.
    serial: std::cell::Cell<u32>,
}

impl Pass {
    fn unique(&self, what: &str) -> String {
        let n = self.serial.get();
        self.serial.set(n + 1);
        format!("{what}-{}-{}-{n}", std::process::id(), self.name)
    }

    fn path(&self, what: &str) -> String {
        self.dir.join(self.unique(what)).display().to_string()
    }

    fn job(&self, what: &str, transport: &str, size: usize, spin: bool) -> Job {
        Job {
            what: what.to_owned(),
            transport: transport.to_owned(),
            size,
            spin,
            cpu: self.peer_cpu,
            ..Job::default()
        }
    }

    /// Whether the two processes have a CPU each (spinning floors only
    /// mean something then).
    fn two_cpus(&self) -> bool {
        self.name != "one-cpu"
    }
}

/// One measurement: what is measured, over what, how.
#[derive(Clone, Debug, PartialEq)]
struct Spec {
    /// `shm`, a fallback, or a floor (`atomic`, `pipe-raw`, ...).
    transport: String,
    /// `spin`, `block` or `raw` (a floor).
    mode: &'static str,
    /// `rtt` or `stream`.
    kind: &'static str,
    /// The ring's round trips: `zero-copy`, `zero-copy-read`, `copy` or
    /// `wake`.
    variant: &'static str,
    size: usize,
}

impl Spec {
    fn rtt(transport: &str, mode: &'static str, variant: &'static str, size: usize) -> Spec {
        Spec {
            transport: transport.to_owned(),
            mode,
            kind: "rtt",
            variant,
            size,
        }
    }

    fn stream(transport: &str, mode: &'static str, size: usize) -> Spec {
        Spec {
            kind: "stream",
            ..Spec::rtt(transport, mode, "", size)
        }
    }

    fn is_floor(&self) -> bool {
        self.mode == "raw"
    }

    /// How records name it as a floor: `atomic/8`, `shm spin zero-copy/64`.
    fn name(&self) -> String {
        if self.is_floor() {
            format!("{}/{}", self.transport, self.size)
        } else {
            let words = [self.transport.as_str(), self.mode, self.variant];
            let words: Vec<&str> = words.into_iter().filter(|w| !w.is_empty()).collect();
            format!("{}/{}", words.join(" "), self.size)
        }
    }

    fn record(&self, pass: &Pass) -> Record {
        Record {
            pass: pass.name,
            transport: self.transport.clone(),
            mode: self.mode,
            kind: if self.is_floor() { "floor" } else { self.kind },
            variant: self.variant,
            size: self.size,
            ..Record::default()
        }
    }
}

/// What a measurement gave: a figure, or a note on why the figure does
/// not exist (a transport's size limit).
enum Measured {
    Figure(Outcome),
    Limit(String),
}

/// A two-way message connection of any kind.
trait Duplex: MessageSender + MessageReceiver {}
impl<T: MessageSender + MessageReceiver> Duplex for T {}

/// A boxed [`Duplex`], usable where the traits are wanted.
struct Conn(Box<dyn Duplex>);

impl MessageSender for Conn {
    fn max_message(&self) -> usize {
        MessageSender::max_message(&*self.0)
    }
    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.0.send(msg)
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.0.try_send(msg)
    }
    fn send_timeout(&mut self, msg: &[u8], t: Duration) -> Result<(), Error> {
        self.0.send_timeout(msg, t)
    }
}

impl MessageReceiver for Conn {
    fn max_message(&self) -> usize {
        MessageReceiver::max_message(&*self.0)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.0.recv(buf)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.0.try_recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], t: Duration) -> Result<usize, Error> {
        self.0.recv_timeout(buf, t)
    }
}

fn conn(c: impl Duplex + 'static) -> Conn {
    Conn(Box::new(c))
}

/// Why a measurement could not be made: the transport's own limit (a
/// figure that does not exist, reported as a note) or a failure.
enum Skip {
    Limit(String),
    Failed(String),
}

impl From<String> for Skip {
    fn from(e: String) -> Skip {
        Skip::Failed(e)
    }
}

fn limit_or_fail(context: &str, e: Error) -> Skip {
    match e {
        Error::LimitExceeded { .. }
        | Error::InvalidMaxMessage { .. }
        | Error::InvalidCapacity { .. } => Skip::Limit(format!("over the limit: {e}")),
        Error::Io { ref source, .. }
            if matches!(source.raw_os_error(), Some(libc::EMSGSIZE | libc::EINVAL)) =>
        {
            Skip::Limit(format!("over the limit: {e}"))
        }
        e => Skip::Failed(format!("{context}: {e}")),
    }
}

/// Ring capacity for round trips of `size` bytes: room for a few.
fn rtt_capacity(size: usize) -> usize {
    (4 * (size + 16)).next_power_of_two().max(1 << 16)
}

/// Ring capacity for streaming `size`-byte messages: 256 KiB for small
/// ones, four messages' worth for large ones (a record must fit in half).
fn stream_capacity(size: usize) -> usize {
    (4 * (size + 16)).next_power_of_two().max(1 << 18)
}

fn endpoint_options(size: usize, capacity: usize, spin: bool) -> EndpointOptions {
    let mode = if spin {
        WaitMode::BusyPoll
    } else {
        WaitMode::SpinThenFutex
    };
    EndpointOptions {
        max_message: size.max(64),
        shm: Options::new().capacity(capacity).wait_mode(mode),
        mq_capacity: mq_depth(),
        ..EndpointOptions::default()
    }
}

/// The queue depth the kernel allows an unprivileged process.
fn mq_depth() -> usize {
    std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10)
        .min(64)
}

/// The endpoint address of a fallback (or `shm`) transport.
fn address(pass: &Pass, transport: &str) -> String {
    match transport {
        "shm" => format!("shm:/{}", pass.unique("shmlane-bench")),
        "fifo" => format!("fifo:{}", pass.path("fifo")),
        "mqueue" => format!("mq:/{}", pass.unique("shmlane-bench")),
        "unix-stream" => format!("unix:{}.sock", pass.path("unix")),
        "unix-dgram" => format!("unix-dgram:{}.sock", pass.path("dgram")),
        _ => "tcp:127.0.0.1:0".to_owned(),
    }
}

/// Sets up a connection to a new peer doing `job` over the job's
/// transport: shmlane's (`shm`, `pipe`, `fifo`, ...) or a raw one
/// (`pipe-raw`, ...).
fn open(pass: &Pass, mut job: Job) -> Result<(Conn, Peer), Skip> {
    let size = job.size;
    let transport = job.transport.clone();
    if let Some(raw) = transport.strip_suffix("-raw") {
        return open_raw(pass, job, raw);
    }
    if transport == "pipe" {
        let max = size.max(64);
        let (child_rx, to_child) = pipe()?;
        let (from_child, child_tx) = pipe()?;
        job.fds = vec![raw_fd(&child_rx), raw_fd(&child_tx)];
        let peer = Peer::spawn(&job, vec![child_rx, child_tx])?;
        let framed = |fd| Framed::new(fd, max).map_err(|e| Skip::Failed(format!("pipe: {e}")));
        let pair = rtt::Pair {
            tx: framed(to_child)?,
            rx: framed(from_child)?,
        };
        return Ok((conn(pair), peer));
    }
    let options = endpoint_options(size, job.capacity, job.spin);
    let addr = address(pass, &transport);
    let mut listener = listen(&addr, &options).map_err(|e| limit_or_fail(&addr, e))?;
    job.addr = listener
        .local_address()
        .map_err(|e| Skip::Failed(e.to_string()))?;
    let peer = Peer::spawn(&job, Vec::new())?;
    let connection = listener
        .accept()
        .map_err(|e| Skip::Failed(format!("accept {addr}: {e}")))?;
    Ok((conn(connection), peer))
}

/// The peer's side of [`open`].
fn peer_open(job: &Job) -> Result<Conn, String> {
    if let Some(raw) = job.transport.strip_suffix("-raw") {
        return peer_open_raw(job, raw);
    }
    if job.transport == "pipe" {
        let max = job.size.max(64);
        let framed = |fd| Framed::new(fd, max).map_err(|e| format!("pipe: {e}"));
        return Ok(conn(rtt::Pair {
            tx: framed(job.take_fd(1)?)?,
            rx: framed(job.take_fd(0)?)?,
        }));
    }
    let options = endpoint_options(job.size, job.capacity, job.spin);
    let connection = connect(&job.addr, &options).map_err(|e| format!("{}: {e}", job.addr))?;
    Ok(conn(connection))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn raw_fd(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// The raw kernel transports, set up the plain way.
fn open_raw(pass: &Pass, mut job: Job, raw: &str) -> Result<(Conn, Peer), Skip> {
    let size = job.size;
    match raw {
        "pipe" => {
            let (child_rx, to_child) = pipe()?;
            let (from_child, child_tx) = pipe()?;
            job.fds = vec![raw_fd(&child_rx), raw_fd(&child_tx)];
            let peer = Peer::spawn(&job, vec![child_rx, child_tx])?;
            let pair = rtt::Pair {
                tx: raw::RawStream::new(to_child, size)?,
                rx: raw::RawStream::new(from_child, size)?,
            };
            Ok((conn(pair), peer))
        }
        "fifo" => {
            let base = pass.path("fifo-raw");
            let (to, from) = (format!("{base}.c2s"), format!("{base}.s2c"));
            for path in [&to, &from] {
                rustix::fs::mkfifoat(
                    rustix::fs::CWD,
                    path.as_str(),
                    rustix::fs::Mode::from_raw_mode(0o600),
                )
                .map_err(|e| format!("mkfifo {path}: {e}"))?;
            }
            let _cleanup = Unlink(vec![to.clone(), from.clone()]);
            // Our read end first, without waiting for a writer; then the
            // peer opens its ends; our write end waits for its reader.
            let rx = rustix::fs::open(
                from.as_str(),
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::NONBLOCK
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| format!("open {from}: {e}"))?;
            job.addr = base;
            let peer = Peer::spawn(&job, Vec::new())?;
            let tx = rustix::fs::open(
                to.as_str(),
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| format!("open {to}: {e}"))?;
            let pair = rtt::Pair {
                tx: raw::RawStream::new(tx, size)?,
                rx: raw::RawStream::new(rx, size)?,
            };
            Ok((conn(pair), peer))
        }
        "unix-stream" => {
            let path = format!("{}.sock", pass.path("unix-raw"));
            let listener = UnixListener::bind(&path).map_err(|e| format!("bind {path}: {e}"))?;
            let _cleanup = Unlink(vec![path.clone()]);
            job.addr = path;
            let peer = Peer::spawn(&job, Vec::new())?;
            let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            Ok((conn(stream_pair(stream.into(), size)?), peer))
        }
        "tcp" => {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            job.addr = listener
                .local_addr()
                .map_err(|e| e.to_string())?
                .to_string();
            let peer = Peer::spawn(&job, Vec::new())?;
            let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            stream
                .set_nodelay(true)
                .map_err(|e| format!("TCP_NODELAY: {e}"))?;
            Ok((conn(stream_pair(stream.into(), size)?), peer))
        }
        "unix-dgram" => {
            let path = format!("{}.sock", pass.path("dgram-raw"));
            let socket = UnixDatagram::bind(&path).map_err(|e| format!("bind {path}: {e}"))?;
            let _cleanup = Unlink(vec![path.clone()]);
            job.addr = path;
            let peer = Peer::spawn(&job, Vec::new())?;
            // The peer says hello from its own bound address.
            let mut hello = [0u8; 8];
            let (_, from) = socket
                .recv_from(&mut hello)
                .map_err(|e| format!("recv hello: {e}"))?;
            let from = from.as_pathname().ok_or_else(|| {
                Skip::Failed("the peer's hello came from an unbound socket".into())
            })?;
            socket.connect(from).map_err(|e| format!("connect: {e}"))?;
            let _ = std::fs::remove_file(from);
            check_dgram_size(&socket, size)?;
            Ok((conn(raw::RawDgram::new(socket, size)), peer))
        }
        "mqueue" => {
            let base = format!("/{}", pass.unique("shmlane-bench-raw"));
            let (to, from) = (format!("{base}.c2s"), format!("{base}.s2c"));
            let queues = raw::RawMq::open(&to, &from, size, mq_depth(), true).map_err(|e| {
                if e.contains("Invalid argument") {
                    Skip::Limit(format!("over the limit: {e}"))
                } else {
                    Skip::Failed(e)
                }
            })?;
            job.addr = base;
            let peer = Peer::spawn(&job, Vec::new())?;
            Ok((conn(queues), peer))
        }
        other => Err(Skip::Failed(format!("unknown raw transport {other:?}"))),
    }
}

/// A datagram larger than the socket's send buffer can never be sent.
fn check_dgram_size(socket: &UnixDatagram, size: usize) -> Result<(), Skip> {
    let sndbuf = rustix::net::sockopt::socket_send_buffer_size(socket)
        .map_err(|e| format!("SO_SNDBUF: {e}"))?;
    if size > sndbuf {
        return Err(Skip::Limit(format!(
            "over the limit: {size} B > SO_SNDBUF {sndbuf} B"
        )));
    }
    Ok(())
}

fn stream_pair(
    fd: OwnedFd,
    size: usize,
) -> Result<rtt::Pair<raw::RawStream, raw::RawStream>, String> {
    let other = fd.try_clone().map_err(|e| format!("dup: {e}"))?;
    Ok(rtt::Pair {
        tx: raw::RawStream::new(fd, size)?,
        rx: raw::RawStream::new(other, size)?,
    })
}

/// Removes paths when dropped.
struct Unlink(Vec<String>);

impl Drop for Unlink {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The peer's side of [`open_raw`].
fn peer_open_raw(job: &Job, raw: &str) -> Result<Conn, String> {
    let size = job.size;
    match raw {
        "pipe" => Ok(conn(rtt::Pair {
            tx: raw::RawStream::new(job.take_fd(1)?, size)?,
            rx: raw::RawStream::new(job.take_fd(0)?, size)?,
        })),
        "fifo" => {
            let (from, to) = (format!("{}.c2s", job.addr), format!("{}.s2c", job.addr));
            let tx = rustix::fs::open(
                to.as_str(),
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| format!("open {to}: {e}"))?;
            let rx = rustix::fs::open(
                from.as_str(),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| format!("open {from}: {e}"))?;
            Ok(conn(rtt::Pair {
                tx: raw::RawStream::new(tx, size)?,
                rx: raw::RawStream::new(rx, size)?,
            }))
        }
        "unix-stream" => {
            let stream =
                UnixStream::connect(&job.addr).map_err(|e| format!("connect {}: {e}", job.addr))?;
            Ok(conn(stream_pair(stream.into(), size)?))
        }
        "tcp" => {
            let stream = std::net::TcpStream::connect(&job.addr)
                .map_err(|e| format!("connect {}: {e}", job.addr))?;
            stream
                .set_nodelay(true)
                .map_err(|e| format!("TCP_NODELAY: {e}"))?;
            Ok(conn(stream_pair(stream.into(), size)?))
        }
        "unix-dgram" => {
            let path = format!("{}.{}", job.addr, std::process::id());
            // The parent removes this path once it has connected to it.
            let socket = UnixDatagram::bind(&path).map_err(|e| format!("bind {path}: {e}"))?;
            socket
                .connect(&job.addr)
                .map_err(|e| format!("connect {}: {e}", job.addr))?;
            socket
                .send(b"hello")
                .map_err(|e| format!("send hello: {e}"))?;
            Ok(conn(raw::RawDgram::new(socket, size)))
        }
        "mqueue" => {
            let (from, to) = (format!("{}.c2s", job.addr), format!("{}.s2c", job.addr));
            Ok(conn(raw::RawMq::open(&to, &from, size, mq_depth(), false)?))
        }
        other => Err(format!("unknown raw transport {other:?}")),
    }
}

/// Measures `spec` once: one round's figure.
fn measure(pass: &Pass, spec: &Spec) -> Result<Measured, String> {
    let context = |e: String| format!("{} {} B ({} pass): {e}", spec.name(), spec.size, pass.name);
    let budget = &pass.budget;
    let outcome = match (spec.transport.as_str(), spec.kind) {
        ("atomic" | "futex" | "cross-copy", _) => ping_pong_floor(pass, spec).map_err(context)?,
        ("line-stream", _) => line_stream_floor(pass).map_err(context)?,
        ("shm", "rtt") if spec.variant != "copy" => {
            let read_all = spec.variant == "zero-copy-read";
            let spin = spec.mode == "spin";
            let mut zc = shm::open(pass, spec.size, spin, read_all).map_err(context)?;
            let (plan, gap) = if spec.variant == "wake" {
                (budget.wake, budget.gap)
            } else {
                (budget.plan(spec.size), Duration::ZERO)
            };
            let rtts =
                shm::round_trips(&mut zc, spec.size, plan, gap, read_all).map_err(context)?;
            drop(zc.tx);
            drop(zc.rx);
            zc.peer.finish().map_err(context)?;
            Outcome::Latency(rtts)
        }
        ("shm", "stream") => {
            let (count, elapsed) = shm::stream(pass, spec.size, budget.stream).map_err(context)?;
            rate(count, spec.size, elapsed)
        }
        (_, "rtt") => return round_trip(pass, spec).map_err(context),
        _ => return stream(pass, spec).map_err(context),
    };
    Ok(Measured::Figure(outcome))
}

fn rate(count: u64, size: usize, elapsed: Duration) -> Outcome {
    Outcome::Rate {
        count,
        bytes: count * size as u64,
        elapsed,
    }
}

/// Round trips of `spec.size` bytes over a transport through the message
/// traits (shmlane's, the ring's copy path, or raw).
fn round_trip(pass: &Pass, spec: &Spec) -> Result<Measured, String> {
    let spin = spec.mode == "spin";
    let mut job = pass.job("echo", &spec.transport, spec.size, spin);
    job.capacity = rtt_capacity(spec.size);
    let (mut conn, peer) = match open(pass, job) {
        Ok(opened) => opened,
        Err(Skip::Limit(note)) => return Ok(Measured::Limit(note)),
        Err(Skip::Failed(e)) => return Err(e),
    };
    let rtts = rtt::round_trips(&mut conn, spec.size, spin, pass.budget.plan(spec.size));
    drop(conn);
    let rtts = match rtts {
        Ok(rtts) => rtts,
        // (Dropping the peer ends it.)
        Err(e) => match limit_or_fail("round trips", e) {
            Skip::Limit(note) => return Ok(Measured::Limit(note)),
            Skip::Failed(e) => return Err(e),
        },
    };
    peer.finish()?;
    Ok(Measured::Figure(Outcome::Latency(rtts)))
}

/// What every streamed message is filled with, after its sequence number.
const FILL: u8 = 0x5a;

/// The sequence number a streamed message carries in its first 8 bytes.
fn stamp(msg: &mut [u8], seq: u64) {
    if let Some(head) = msg.first_chunk_mut::<8>() {
        *head = seq.to_le_bytes();
    }
}

/// Checks a streamed message: its length, its sequence number, and one
/// byte of every further 64-byte line and its last byte (the sender's
/// [`FILL`]), so that the receiver reads every line of the message, as a
/// consumer of the data would.
fn check(msg: &[u8], size: usize, seq: u64) -> Result<(), String> {
    if msg.len() != size {
        return Err(format!(
            "message {seq}: {} bytes, expected {size}",
            msg.len()
        ));
    }
    if let Some(head) = msg.first_chunk::<8>()
        && u64::from_le_bytes(*head) != seq
    {
        return Err(format!(
            "message {seq} arrived as {}: lost or reordered",
            u64::from_le_bytes(*head)
        ));
    }
    let lines = msg.iter().skip(64).step_by(64);
    let tail = msg.last().filter(|_| msg.len() > 8);
    if lines.chain(tail).fold(0, |odd, &b| odd | (b ^ FILL)) != 0 {
        return Err(format!("message {seq} arrived changed"));
    }
    Ok(())
}

/// One-way streaming of `spec.size`-byte messages through the message
/// traits: this process sends for the round's stream time, the peer
/// receives, checks and reports how many arrived.
fn stream(pass: &Pass, spec: &Spec) -> Result<Measured, String> {
    let size = spec.size;
    let mut job = pass.job("sink", &spec.transport, size, false);
    job.capacity = stream_capacity(size);
    let (mut conn, mut peer) = match open(pass, job) {
        Ok(opened) => opened,
        Err(Skip::Limit(note)) => return Ok(Measured::Limit(note)),
        Err(Skip::Failed(e)) => return Err(e),
    };
    expect(&mut peer, "ready")?;
    let mut msg = vec![FILL; size];
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        for _ in 0..16 {
            stamp(&mut msg, sent);
            if let Err(e) = conn.send(&msg) {
                return match limit_or_fail("send", e) {
                    Skip::Limit(note) if sent == 0 => Ok(Measured::Limit(note)),
                    Skip::Limit(e) | Skip::Failed(e) => Err(e),
                };
            }
            sent += 1;
        }
        if start.elapsed() >= pass.budget.stream {
            break;
        }
    }
    drop(conn);
    let got = peer.report()?;
    let elapsed = start.elapsed();
    peer.finish()?;
    if got != format!("received {sent}") {
        return Err(format!("sent {sent}, the peer reported {got:?}"));
    }
    Ok(Measured::Figure(rate(sent, size, elapsed)))
}

fn expect(peer: &mut Peer, line: &str) -> Result<(), String> {
    let got = peer.report()?;
    if got == line {
        Ok(())
    } else {
        Err(format!("the peer said {got:?}, expected {line:?}"))
    }
}

/// The peer's stream receiver.
fn sink(job: &Job) -> Result<(), String> {
    let count = if job.transport == "shm" {
        shm::sink(job)?
    } else {
        let mut conn = peer_open(job)?;
        peer::report("ready")?;
        let mut buf = vec![0u8; MessageReceiver::max_message(&conn).max(job.size)];
        let mut count = 0u64;
        loop {
            match conn.recv(&mut buf) {
                Ok(n) => check(&buf[..n], job.size, count)?,
                Err(Error::Disconnected) => break,
                Err(e) => return Err(e.to_string()),
            }
            count += 1;
        }
        count
    };
    peer::report(&format!("received {count}"))
}

/// The atomic, futex or cross-core copy floor: a ping-pong in shared
/// memory with a peer.
fn ping_pong_floor(pass: &Pass, spec: &Spec) -> Result<Outcome, String> {
    let which = spec.transport.as_str();
    let len = if which == "cross-copy" {
        raw::cross_copy_len(spec.size)
    } else {
        4096
    };
    let (shared, fd) = raw::Shared::create(len)?;
    let mut job = pass.job(which, which, spec.size, which != "futex");
    job.fds = vec![raw_fd(&fd)];
    let mut peer = Peer::spawn(&job, vec![fd])?;
    let mut gone = || peer.exited();
    let budget = &pass.budget;
    let rtts = match which {
        "atomic" => raw::atomic_parent(&shared, budget.plan(spec.size), &mut gone)?,
        "futex" => raw::futex_parent(&shared, budget.wake, budget.gap, &mut gone)?,
        _ => raw::cross_copy_parent(&shared, spec.size, budget.plan(spec.size), &mut gone)?,
    };
    peer.finish()?;
    Ok(Outcome::Latency(rtts))
}

/// The line-stream floor: 64-byte lines for the round's stream time.
fn line_stream_floor(pass: &Pass) -> Result<Outcome, String> {
    let (shared, fd) = raw::Shared::create(raw::line_stream_len())?;
    let mut job = pass.job("line-stream", "line-stream", 64, true);
    job.fds = vec![raw_fd(&fd)];
    let mut peer = Peer::spawn(&job, vec![fd])?;
    // The stream is timed from its first line: the peer must be there.
    expect(&mut peer, "ready")?;
    let mut gone = || peer.exited();
    let (lines, elapsed) = raw::line_stream_parent(&shared, pass.budget.stream, &mut gone)?;
    peer.finish()?;
    Ok(rate(lines, 64, elapsed))
}

/// CPU time (ns) a process has used, from /proc/PID/schedstat.
fn cpu_ns(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .map_err(|e| format!("/proc/{pid}/schedstat: {e}"))?;
    stat.split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(format!("/proc/{pid}/schedstat: {stat:?}"))
}

/// How much CPU a spin-then-futex receiver uses while nothing arrives.
fn idle_receiver(pass: &Pass) -> Result<Idle, String> {
    let mut job = pass.job("echo", "shm", 64, false);
    job.capacity = rtt_capacity(64);
    let (mut conn, peer) = open(pass, job).map_err(|e| match e {
        Skip::Limit(e) | Skip::Failed(e) => e,
    })?;
    // A few round trips: the peer is attached and in its receive loop.
    rtt::round_trips(&mut conn, 64, false, Plan::count(100)).map_err(|e| e.to_string())?;
    readiness::wait_until_all_asleep(peer.pid())?;
    let before = cpu_ns(peer.pid())?;
    let switched = readiness::switches(peer.pid())?;
    let start = Instant::now();
    std::thread::sleep(pass.budget.idle);
    let after = cpu_ns(peer.pid())?;
    let woken = readiness::switches(peer.pid())? - switched;
    let seconds = start.elapsed().as_secs_f64();
    drop(conn);
    peer.finish()?;
    Ok(Idle {
        seconds,
        cpu_percent: (after - before) as f64 / 1e9 / seconds * 100.0,
        wakeups_per_s: woken as f64 / seconds,
    })
}

/// This thread's id.
fn tid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// Whether thread `tid` of this process sleeps in a futex wait.
fn asleep_in_futex(tid: i32) -> bool {
    let state = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('S')));
    let syscall = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok());
    state == Some(true) && syscall == Some(libc::SYS_futex)
}

/// The time from a peer's SIGKILL to this side's `Disconnected`, in ms,
/// one kill per round: the peer echoes, this side blocks in a receive
/// (asleep in its futex), and another thread kills the peer.
fn death_notice(pass: &Pass) -> Result<Summary, String> {
    let mut times = Vec::with_capacity(pass.budget.rounds);
    for _ in 0..pass.budget.rounds {
        let mut job = pass.job("echo", "shm", 64, false);
        job.capacity = rtt_capacity(64);
        let (mut conn, peer) = open(pass, job).map_err(|e| match e {
            Skip::Limit(e) | Skip::Failed(e) => e,
        })?;
        rtt::round_trips(&mut conn, 64, false, Plan::count(10)).map_err(|e| e.to_string())?;
        let me = tid();
        let killer = std::thread::spawn(move || {
            while !asleep_in_futex(me) {
                std::thread::yield_now();
            }
            peer.kill9()
        });
        let result = conn.recv(&mut [0; 64]);
        let returned = Instant::now();
        let killed = killer.join().map_err(|_| "the killer thread panicked")?;
        match result {
            Err(Error::Disconnected) => {
                times.push(returned.saturating_duration_since(killed).as_secs_f64() * 1e3)
            }
            other => return Err(format!("a receive from a killed peer returned {other:?}")),
        }
    }
    Ok(Summary::of(times))
}

/// The comparisons of a pass, each (floor, subject), in run order.
fn comparisons(pass: &Pass, args: &Args) -> Vec<(Spec, Spec)> {
    let quick = args.quick;
    let pick = |all: &'static [usize], one: &'static [usize]| if quick { one } else { all };
    let mut out = Vec::new();
    let spin64 = Spec::rtt("shm", "spin", "zero-copy", 64);
    let block64 = Spec::rtt("shm", "block", "zero-copy", 64);
    if args.wants("shm") {
        if pass.two_cpus() {
            for variant in ["zero-copy", "copy", "zero-copy-read"] {
                for &size in pick(&SHM_SMALL_SIZES, &[64]) {
                    if variant == "zero-copy-read" {
                        // (A small message is one or two lines: the
                        // first and last byte are all of it.)
                        continue;
                    }
                    out.push((
                        Spec::rtt("atomic", "raw", "", 8),
                        Spec::rtt("shm", "spin", variant, size),
                    ));
                }
                for &size in pick(&SHM_LARGE_SIZES, &[65536]) {
                    out.push((
                        Spec::rtt("cross-copy", "raw", "", size),
                        Spec::rtt("shm", "spin", variant, size),
                    ));
                }
            }
            for &size in pick(&STREAM_SIZES, &[64, 4096]) {
                out.push((
                    Spec::stream("line-stream", "raw", 64),
                    Spec::stream("shm", "spin", size),
                ));
            }
        } else {
            out.push((Spec::rtt("pipe-raw", "raw", "", 64), block64.clone()));
        }
        // Steady traffic (on one CPU: also busy-poll against blocking).
        out.push((spin64, block64));
        out.push((
            Spec::rtt("futex", "raw", "", 4),
            Spec::rtt("shm", "block", "wake", 64),
        ));
    }
    for t in FALLBACKS.into_iter().filter(|t| args.wants(t)) {
        let raw = format!("{t}-raw");
        for &size in pick(&RTT_SIZES, &[64]) {
            out.push((
                Spec::rtt(&raw, "raw", "", size),
                Spec::rtt(t, "block", "", size),
            ));
        }
        for &size in pick(&STREAM_SIZES, &[4096]) {
            out.push((
                Spec::stream(&raw, "raw", size),
                Spec::stream(t, "block", size),
            ));
        }
    }
    out
}

/// A floor's rounds, pooled over every comparison of a pass.
struct Pooled {
    transport: String,
    size: usize,
    outcomes: Vec<Outcome>,
    note: Option<String>,
}

/// Runs one comparison: `rounds` times the floor, then the subject.
fn compare(
    pass: &Pass,
    floor: &Spec,
    subject: &Spec,
    pool: &mut Vec<Pooled>,
) -> Result<Record, String> {
    let (mut floor_out, mut subject_out) = (Vec::new(), Vec::new());
    let (mut floor_note, mut subject_note) = (None, None);
    for _ in 0..pass.budget.rounds {
        if floor_note.is_none() {
            match measure(pass, floor)? {
                Measured::Figure(o) => floor_out.push(o),
                Measured::Limit(note) => floor_note = Some(note),
            }
        }
        if subject_note.is_none() {
            match measure(pass, subject)? {
                Measured::Figure(o) => subject_out.push(o),
                Measured::Limit(note) => subject_note = Some(note),
            }
        }
        if floor_note.is_some() && subject_note.is_some() {
            break;
        }
    }
    let mut record = subject.record(pass);
    record.add_outcomes(&subject_out);
    record.floor = Some(floor.name());
    record.floor_rounds = floor_out.iter().filter_map(Outcome::figure).collect();
    if floor_out.len() == subject_out.len() {
        record.ratio = Summary::of(rounds::ratios(record.figure_rounds(), &record.floor_rounds));
    }
    record.note = match (subject_note, &floor_note) {
        (Some(note), _) => Some(note),
        (None, Some(note)) => Some(format!("floor {}", note)),
        (None, None) => None,
    };
    if floor.is_floor() {
        let same = |p: &&mut Pooled| p.transport == floor.transport && p.size == floor.size;
        let pooled = match pool.iter_mut().find(|p| same(p)) {
            Some(p) => p,
            None => {
                pool.push(Pooled {
                    transport: floor.transport.clone(),
                    size: floor.size,
                    outcomes: Vec::new(),
                    note: None,
                });
                pool.last_mut().expect("just pushed")
            }
        };
        pooled.outcomes.extend(floor_out);
        pooled.note = pooled.note.take().or(floor_note);
    }
    Ok(record)
}

fn run_pass(pass: &Pass, args: &Args, records: &mut Vec<Record>) -> Result<(), String> {
    let list = comparisons(pass, args);
    let mut pool = Vec::new();
    let mut subjects = Vec::new();
    for (i, (floor, subject)) in list.iter().enumerate() {
        if !args.json {
            eprint!(
                "\r{:<72}",
                format!(
                    "{} pass {}/{}: {} vs {}",
                    pass.name,
                    i + 1,
                    list.len(),
                    subject.name(),
                    floor.name()
                )
            );
        }
        subjects.push(compare(pass, floor, subject, &mut pool)?);
    }
    if !args.json {
        eprint!("\r{:<72}\r", "");
    }
    // Floors in the order they were first used, each by size.
    let first_use: Vec<String> = pool.iter().map(|p| p.transport.clone()).collect();
    pool.sort_by_key(|p| (first_use.iter().position(|t| *t == p.transport), p.size));
    for p in pool {
        let mut record = Record {
            pass: pass.name,
            transport: p.transport,
            mode: "raw",
            kind: "floor",
            size: p.size,
            note: p.note,
            ..Record::default()
        };
        record.add_outcomes(&p.outcomes);
        records.push(record);
    }
    records.extend(subjects);
    Ok(())
}

/// Judges the issue's goals: the two-CPU ones on the pinned pass (the
/// unpinned one without two CPUs), the one-CPU ones on the one-CPU pass.
fn targets(
    records: &[Record],
    idle: Option<(&'static str, &Idle)>,
    two: &'static str,
) -> Vec<Target> {
    let one = "one-cpu";
    let ratio =
        |pass: &str, transport: &str, mode: &str, variant: &str, size: usize, floor: &str| {
            records
                .iter()
                .find(|r| {
                    r.pass == pass
                        && r.transport == transport
                        && r.mode == mode
                        && r.kind != "floor"
                        && r.variant == variant
                        && r.size == size
                        && r.floor.as_deref().is_some_and(|f| f.starts_with(floor))
                })
                .map(|r| r.ratio.clone())
                .unwrap_or_default()
        };
    let stream = |size: usize| {
        records
            .iter()
            .find(|r| r.pass == two && r.transport == "shm" && r.kind == "stream" && r.size == size)
            .map(|r| r.ratio.clone())
            .unwrap_or_default()
    };
    let target =
        |name: &str, pass: &'static str, value: Summary, limit: f64, at_most: bool| Target {
            name: name.to_owned(),
            pass,
            value,
            limit,
            at_most,
            unit: "x",
        };
    let mut out = vec![
        target(
            "64 B busy-poll round trip (zero-copy) / atomic floor",
            two,
            ratio(two, "shm", "spin", "zero-copy", 64, "atomic/"),
            1.5,
            true,
        ),
        target(
            "64 B streaming / line-stream floor",
            two,
            stream(64),
            0.8,
            false,
        ),
        target(
            "4 KiB streaming / line-stream floor",
            two,
            stream(4096),
            0.8,
            false,
        ),
        target(
            "64 KiB zero-copy round trip, every byte read / cross-core copy floor",
            two,
            ratio(two, "shm", "spin", "zero-copy-read", 65536, "cross-copy/"),
            1.3,
            true,
        ),
        target(
            "one CPU: blocking 64 B round trip / pipe-raw's",
            one,
            ratio(one, "shm", "block", "zero-copy", 64, "pipe-raw/"),
            0.5,
            true,
        ),
        target(
            "one CPU: busy-poll 64 B round trip / blocking",
            one,
            ratio(one, "shm", "block", "zero-copy", 64, "shm spin").inverse(),
            1.0,
            true,
        ),
        target(
            "blocking 64 B wake round trip / futex floor",
            two,
            ratio(two, "shm", "block", "wake", 64, "futex/"),
            1.1,
            true,
        ),
        target(
            "blocking 64 B round trip, steady traffic / busy-poll",
            two,
            ratio(two, "shm", "block", "zero-copy", 64, "shm spin"),
            1.2,
            true,
        ),
    ];
    for t in FALLBACKS {
        // The size whose median ratio is worst; throughput read as "how
        // many times slower than raw".
        let worst = |kind: &str| {
            records
                .iter()
                .filter(|r| r.pass == two && r.transport == t && r.kind == kind)
                .map(|r| {
                    let value = if kind == "stream" {
                        r.ratio.inverse()
                    } else {
                        r.ratio.clone()
                    };
                    (r.size, value)
                })
                .filter(|(_, v)| v.median.is_some())
                .max_by(|a, b| a.1.median.partial_cmp(&b.1.median).expect("finite"))
        };
        let (rtt_size, rtt) = worst("rtt").unwrap_or_default();
        out.push(target(
            &format!(
                "{t} round trip / {t}-raw, worst size ({})",
                size_name(rtt_size)
            ),
            two,
            rtt,
            1.1,
            true,
        ));
        let (stream_size, slower) = worst("stream").unwrap_or_default();
        out.push(target(
            &format!(
                "{t}-raw / {t} throughput, worst size ({})",
                size_name(stream_size)
            ),
            two,
            slower,
            1.1,
            true,
        ));
    }
    out.push(Target {
        name: "idle spin-then-futex receiver, % of a CPU".to_owned(),
        pass: idle.map_or(two, |(pass, _)| pass),
        value: Summary::of(idle.map(|(_, i)| i.cpu_percent).into_iter().collect()),
        limit: 1.0,
        at_most: true,
        unit: "%",
    });
    out.push(Target {
        name: "idle spin-then-futex receiver, wake-ups per second".to_owned(),
        pass: idle.map_or(two, |(pass, _)| pass),
        value: Summary::of(idle.map(|(_, i)| i.wakeups_per_s).into_iter().collect()),
        limit: 1.0,
        at_most: true,
        unit: "/s",
    });
    out
}

/// The readiness goals, measured in `pass`: the async round trip against
/// tokio over a unix socket, and the death notice.
fn readiness_targets(pass: &Pass, quick: bool) -> Result<Vec<Target>, String> {
    let cpus = (pass.cpus[0], pass.peer_cpu.unwrap_or(pass.cpus[0]));
    let trips = if quick { 2_000 } else { 20_000 };
    let figures = readiness::async_ratios(cpus, pass.budget.rounds, trips)?;
    peer::pin(&pass.cpus)?;
    let death = death_notice(pass)?;
    let (unix, spinning, arming) = figures.medians_ns;
    let fanin = fanin::fanin_ratios(pass.budget.rounds, if quick { 200 } else { 5_000 })?;
    let mut out = fanin_targets(pass, &fanin.spinning, "");
    out.extend(fanin_targets(
        pass,
        &fanin.sleeping,
        ", WaitMode::Futex (no spin)",
    ));
    out.extend(vec![        Target {
            name: format!(
                "async 64 B round trip (tokio current-thread, {} ns) / tokio over a unix stream socket ({} ns)",
                spinning.round(),
                unix.round()
            ),
            pass: pass.name,
            value: figures.spinning,
            limit: 0.3,
            at_most: true,
            unit: "x",
        },
        Target {
            name: format!(
                "the same, arming at once (no spin window: every receive waits on its fd, {} ns)",
                arming.round()
            ),
            pass: pass.name,
            value: figures.arming,
            limit: 0.3,
            at_most: true,
            unit: "x",
        },
        Target {
            name: "death notice: a peer's SIGKILL to a blocked receive's Disconnected".to_owned(),
            pass: pass.name,
            value: death,
            limit: 1.0,
            at_most: true,
            unit: "ms",
        },
    ]);
    Ok(out)
}

/// The many-clients rows of one shm wait mode (`how` says which).
fn fanin_targets(pass: &Pass, f: &fanin::FaninFigures, how: &str) -> Vec<Target> {
    let [
        (unix_rate, shm_rate),
        (unix_p50, shm_p50),
        (unix_p99, shm_p99),
    ] = f.medians;
    let clients = fanin::CLIENTS;
    let row = |name: String, value: &Summary, at_most: bool| Target {
        name,
        pass: pass.name,
        value: value.clone(),
        limit: 1.0,
        at_most,
        unit: "x",
    };
    vec![
        row(
            format!(
                "{clients}-client server, messages/s at the server{how}: shm ({:.0} k/s) / unix stream socket ({:.0} k/s)",
                shm_rate / 1e3,
                unix_rate / 1e3
            ),
            &f.rate,
            false,
        ),
        row(
            format!(
                "{clients}-client server, client round trip p50{how}: shm ({} ns) / unix stream socket ({} ns)",
                shm_p50.round(),
                unix_p50.round()
            ),
            &f.p50,
            true,
        ),
        row(
            format!(
                "{clients}-client server, client round trip p99{how}: shm ({} ns) / unix stream socket ({} ns)",
                shm_p99.round(),
                unix_p99.round()
            ),
            &f.p99,
            true,
        ),
    ]
}

fn size_name(size: usize) -> String {
    match size {
        0 => "-".to_owned(),
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// The goals of issue 12 this bench does not measure, and where they are.
const NOT_MEASURED: &str = "instructions per 64 B message (goal: <= 60 copied in and out, <= 50 through grants): counted with callgrind, not by this bench (see the README)";

fn charts(report: &Report, pass: &str) -> Vec<plot::Chart> {
    let rows: Vec<&Record> = report.records.iter().filter(|r| r.pass == pass).collect();
    let mut latency_categories: Vec<String> = [
        "atomic",
        "futex",
        "cross-copy",
        "shm spin zero-copy",
        "shm spin zero-copy-read",
        "shm spin copy",
        "shm block zero-copy",
        "shm block wake",
    ]
    .map(String::from)
    .to_vec();
    let mut stream_categories = vec!["line-stream".to_owned(), "shm spin".to_owned()];
    for t in FALLBACKS {
        for c in [format!("{t}-raw"), format!("{t} block")] {
            latency_categories.push(c.clone());
            stream_categories.push(c);
        }
    }
    let find = |category: &str, size: usize, stream: bool| -> Option<&Record> {
        rows.iter().copied().find(|r| {
            let floor = r.kind == "floor" && r.transport == category;
            let sized = r.size == size
                || (floor && matches!(r.transport.as_str(), "atomic" | "futex" | "line-stream"));
            (floor || (r.label() == category && (r.kind == "stream") == stream)) && sized
        })
    };
    // One bar per category and measured size, in one chart per kind.
    let chart = |title: String,
                 y_label: &str,
                 categories: Vec<String>,
                 all_sizes: &[usize],
                 stream: bool,
                 value: fn(&Record) -> Option<f64>| {
        let kind = if stream { "stream" } else { "rtt" };
        let series = all_sizes
            .iter()
            .filter(|&&s| rows.iter().any(|r| r.kind == kind && r.size == s))
            .map(|&size| plot::Series {
                name: format!("{size} B"),
                values: categories
                    .iter()
                    .map(|c| find(c, size, stream).and_then(value))
                    .collect(),
            })
            .collect();
        plot::Chart {
            title,
            y_label: y_label.to_owned(),
            categories,
            series,
            log_y: true,
        }
    };
    let mut rtt_sizes = RTT_SIZES.to_vec();
    rtt_sizes.push(1 << 20);
    let latency = chart(
        format!(
            "Round trip, median of the rounds ({pass}); floors: atomic, futex, cross-copy, *-raw"
        ),
        "ns (log scale)",
        latency_categories,
        &rtt_sizes,
        false,
        |r| r.p50_ns,
    );
    let throughput = chart(
        format!("Streaming throughput, median of the rounds ({pass}); floors: line-stream, *-raw"),
        "bytes/s (log scale)",
        stream_categories,
        &STREAM_SIZES,
        true,
        |r| r.bytes_per_s,
    );
    vec![latency, throughput]
}

fn main_run(args: Args) -> Result<(), String> {
    let cpus = peer::cpus();
    let two = cpus.len() >= 2;
    let dir = std::env::temp_dir();
    let budget = Budget::new(args.quick);
    let pass = |name, mine: Vec<usize>, peer_cpu| Pass {
        name,
        cpus: mine,
        peer_cpu,
        budget,
        dir: dir.clone(),
        serial: Default::default(),
    };
    let mut passes = Vec::new();
    if two {
        passes.push(pass("pinned", vec![cpus[0]], Some(cpus[1])));
        if !args.quick {
            passes.push(pass("unpinned", cpus.clone(), None));
        }
    }
    passes.push(pass("one-cpu", vec![cpus[0]], Some(cpus[0])));
    let mut records = Vec::new();
    let mut idle = None;
    let mut readiness = Vec::new();
    for pass in &passes {
        peer::pin(&pass.cpus)?;
        run_pass(pass, &args, &mut records)?;
        if idle.is_none() && args.wants("shm") {
            idle = Some((pass.name, idle_receiver(pass)?));
            readiness = readiness_targets(pass, args.quick)?;
        }
    }
    peer::pin(&cpus)?;
    let judged = if two { passes[0].name } else { "one-cpu" };
    let mut targets = targets(&records, idle.as_ref().map(|(p, i)| (*p, i)), judged);
    targets.extend(readiness);
    let report = Report {
        machine: Machine::probe(
            args.quick,
            passes.iter().map(|p| p.name).collect(),
            budget.rounds,
            cpus.len(),
        ),
        records,
        idle: idle.map(|(_, i)| i),
        targets,
        not_measured: vec![NOT_MEASURED.to_owned()],
    };
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if let Some(path) = &args.plot {
        plot::write_svg(path, &charts(&report, judged))
            .map_err(|e| format!("--plot {}: {e}", path.display()))?;
        if !args.json {
            println!("charts: {}", path.display());
        }
    }
    Ok(())
}

fn peer_main(job: Job) -> Result<(), String> {
    if let Some(cpu) = job.cpu {
        peer::pin(&[cpu])?;
    }
    let shared = || raw::Shared::from_fd(job.take_fd(0)?);
    match job.what.as_str() {
        "echo" => {
            let mut conn = peer_open(&job)?;
            rtt::echo(&mut conn, job.spin).map_err(|e| e.to_string())
        }
        "zero-copy-echo" => shm::echo(&job),
        "sink" => sink(&job),
        "atomic" => {
            raw::atomic_peer(&shared()?);
            Ok(())
        }
        "futex" => {
            raw::futex_peer(&shared()?);
            Ok(())
        }
        "cross-copy" => raw::cross_copy_peer(&shared()?, job.size),
        "line-stream" => {
            let shared = shared()?;
            peer::report("ready")?;
            raw::line_stream_peer(&shared)
        }
        other => Err(format!("unknown peer job {other:?}")),
    }
}

fn main() -> ExitCode {
    let mut words = std::env::args().skip(1).peekable();
    if words.peek().map(String::as_str) == Some("--peer") {
        words.next();
        let result = Job::parse(words).and_then(peer_main);
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench peer: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Bad arguments: a usage message and exit code 2 (clap's).
    let args = <Args as clap::Parser>::parse();
    shmlane_examples::run("bench", || main_run(args).map_err(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(quick: bool, only: &[&str]) -> Args {
        Args {
            quick,
            only: only.iter().map(|s| s.to_string()).collect(),
            json: true,
            plot: None,
        }
    }

    fn pass(name: &'static str) -> Pass {
        Pass {
            name,
            cpus: vec![0],
            peer_cpu: None,
            budget: Budget::new(true),
            dir: PathBuf::from("/tmp"),
            serial: Default::default(),
        }
    }

    #[test]
    fn every_ring_subject_has_the_floor_the_issue_names() {
        let list = comparisons(&pass("pinned"), &args(false, &["shm"]));
        let floor_of = |variant: &str, size: usize| {
            list.iter()
                .find(|(_, s)| {
                    s.transport == "shm"
                        && s.mode == "spin"
                        && s.kind == "rtt"
                        && s.variant == variant
                        && s.size == size
                })
                .map(|(f, _)| f.transport.clone())
        };
        assert_eq!(floor_of("zero-copy", 64).as_deref(), Some("atomic"));
        assert_eq!(floor_of("copy", 64).as_deref(), Some("atomic"));
        assert_eq!(floor_of("zero-copy", 65536).as_deref(), Some("cross-copy"));
        assert_eq!(
            floor_of("zero-copy", 1 << 20).as_deref(),
            Some("cross-copy")
        );
        for size in STREAM_SIZES {
            assert!(list.iter().any(|(f, s)| f.transport == "line-stream"
                && s.kind == "stream"
                && s.size == size));
        }
        assert!(
            list.iter()
                .any(|(f, s)| f.transport == "futex" && s.variant == "wake")
        );
    }

    #[test]
    fn one_cpu_pass_has_no_spinning_floor() {
        let list = comparisons(&pass("one-cpu"), &args(false, &[]));
        assert!(list.iter().all(|(f, _)| !matches!(
            f.transport.as_str(),
            "atomic" | "line-stream" | "cross-copy"
        )));
        assert!(
            list.iter().any(|(f, s)| f.transport == "pipe-raw"
                && s.transport == "shm"
                && s.mode == "block")
        );
    }

    #[test]
    fn quick_still_measures_every_transport() {
        let list = comparisons(&pass("pinned"), &args(true, &[]));
        for t in FALLBACKS {
            assert!(
                list.iter()
                    .any(|(_, s)| s.transport == t && s.kind == "rtt"),
                "{t}"
            );
            assert!(
                list.iter()
                    .any(|(_, s)| s.transport == t && s.kind == "stream"),
                "{t}"
            );
        }
    }

    #[test]
    fn a_streamed_message_is_checked_line_by_line() {
        let mut msg = vec![FILL; 4096];
        stamp(&mut msg, 7);
        assert_eq!(check(&msg, 4096, 7), Ok(()));
        assert!(check(&msg, 4096, 8).is_err());
        msg[64 * 9] = 0;
        assert!(check(&msg, 4096, 7).is_err());
        let mut short = vec![FILL; 8];
        stamp(&mut short, 3);
        assert_eq!(check(&short, 8, 3), Ok(()));
    }

    #[test]
    fn names_of_floors_and_subjects() {
        assert_eq!(Spec::rtt("atomic", "raw", "", 8).name(), "atomic/8");
        assert_eq!(
            Spec::rtt("shm", "spin", "zero-copy", 64).name(),
            "shm spin zero-copy/64"
        );
        assert_eq!(Spec::stream("pipe", "block", 64).name(), "pipe block/64");
    }
}
