//! Every transport side by side against the machine's own floors, in one
//! run.
//!
//! ```text
//! cargo run --release -p shmlane-examples --bin bench [-- --quick] [--json] [--plot FILE.svg]
//! ```
//!
//! The program runs itself again as the peer process, once pinned (this
//! process on one CPU, the peer on another, where the machine has two) and
//! once unpinned, and measures:
//!
//! - the floors: a raw atomic ping-pong on one shared cache line, a raw
//!   futex ping-pong, memcpy bandwidth, and each kernel transport used
//!   directly (`pipe-raw`, `fifo-raw`, `mqueue-raw`, `unix-stream-raw`,
//!   `unix-dgram-raw`, `tcp-raw`: blocking calls, fixed-size messages);
//! - round-trip latency (median, p99, p99.9) of 8, 64, 1024 and 65536-byte
//!   messages over the shared-memory ring (`spin`: busy-poll; `block`:
//!   spin-then-futex) and over every fallback transport (`block`);
//! - one-way streaming of 64 B, 4 KiB and 1 MiB messages (the ring
//!   busy-polls and batches; the receiver checks a sequence number in every
//!   message, in place);
//! - how much CPU a blocked spin-then-futex receiver uses while idle;
//! - each figure's ratio to its floor: latency / floor latency (lower is
//!   better), throughput / floor throughput (higher is better).
//!
//! It prints tables, or with `--json` one JSON document. `--quick` measures
//! one size of each kind for a few milliseconds (a smoke test); `--plot`
//! also draws the charts into an SVG file; `--only shm,pipe` measures only
//! the transports named (and their floors).

mod peer;
mod plot;
mod raw;
mod report;

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shmlane_examples::rtt::{self, Plan};
use shmlane_posix::endpoint::{EndpointOptions, connect, listen};
use shmlane_posix::{Error, Options, Receiver, Sender, WaitMode};
use shmlane_posix::{Framed, MessageReceiver, MessageSender};

use peer::{Job, Peer};
use report::{Idle, Machine, Record, Report, Target};

/// The fallback transports, in table order.
const FALLBACKS: [&str; 6] = ["pipe", "fifo", "mqueue", "unix-stream", "unix-dgram", "tcp"];
const RTT_SIZES: [usize; 4] = [8, 64, 1024, 65536];
const STREAM_SIZES: [usize; 3] = [64, 4096, 1 << 20];

struct Args {
    quick: bool,
    /// `--only`: the transports to measure (all when empty).
    only: Vec<String>,
    json: bool,
    plot: Option<PathBuf>,
}

const USAGE: &str = "usage: bench [--quick] [--json] [--plot FILE.svg] [--only TRANSPORT,...]";

impl Args {
    fn wants(&self, transport: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|t| t == transport)
    }
}

fn parse_args(words: Vec<String>) -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        only: Vec::new(),
        json: false,
        plot: None,
    };
    let mut it = words.into_iter();
    while let Some(word) = it.next() {
        match word.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = true,
            "--only" => {
                let list = it.next().ok_or("--only needs a list of transports")?;
                for t in list.split(',') {
                    if t != "shm" && !FALLBACKS.contains(&t) {
                        return Err(format!(
                            "--only: unknown transport {t:?} (shm, {})",
                            FALLBACKS.join(", ")
                        ));
                    }
                    args.only.push(t.to_owned());
                }
            }
            "--plot" => args.plot = Some(it.next().ok_or("--plot needs a file name")?.into()),
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// How long each measurement runs.
#[derive(Clone, Copy)]
struct Budget {
    rtt: Plan,
    stream: Duration,
    memcpy: Duration,
    idle: Duration,
}

impl Budget {
    fn new(quick: bool) -> Budget {
        if quick {
            Budget {
                rtt: Plan {
                    warmup: 100,
                    min: 300,
                    time: Duration::from_millis(10),
                    max: 200_000,
                },
                stream: Duration::from_millis(20),
                memcpy: Duration::from_millis(10),
                idle: Duration::from_millis(200),
            }
        } else {
            Budget {
                rtt: Plan {
                    warmup: 1000,
                    min: 2000,
                    time: Duration::from_millis(150),
                    max: 1_000_000,
                },
                stream: Duration::from_millis(300),
                memcpy: Duration::from_millis(100),
                idle: Duration::from_secs(1),
            }
        }
    }
}

/// One pass: pinned or not.
struct Pass {
    pinned: bool,
    /// The peer's CPU in the pinned pass.
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
        format!("{what}-{}-{n}", std::process::id())
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

    fn record(
        &self,
        transport: &str,
        mode: &'static str,
        kind: &'static str,
        size: usize,
    ) -> Record {
        Record {
            transport: transport.to_owned(),
            mode,
            kind,
            size,
            pinned: self.pinned,
            ..Record::default()
        }
    }
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

/// Round trips of `size` bytes over `transport` (shmlane's or raw).
fn round_trip(
    pass: &Pass,
    transport: &str,
    mode: &'static str,
    size: usize,
) -> Result<Record, String> {
    let spin = mode == "spin";
    let kind = if mode == "raw" { "floor" } else { "rtt" };
    let mut record = pass.record(transport, mode, kind, size);
    let mut job = pass.job("echo", transport, size, spin);
    job.capacity = rtt_capacity(size);
    let (mut conn, peer) = match open(pass, job) {
        Ok(opened) => opened,
        Err(Skip::Limit(note)) => {
            record.note = Some(note);
            return Ok(record);
        }
        Err(Skip::Failed(e)) => return Err(format!("{transport} {mode} {size} B: {e}")),
    };
    let rtts = rtt::round_trips(&mut conn, size, spin, pass.budget.rtt);
    drop(conn);
    let rtts = match rtts {
        Ok(rtts) => rtts,
        Err(e) => match limit_or_fail("round trips", e) {
            // (Dropping the peer ends it.)
            Skip::Limit(note) => {
                record.note = Some(note);
                return Ok(record);
            }
            Skip::Failed(e) => return Err(format!("{transport} {mode} {size} B: {e}")),
        },
    };
    peer.finish()?;
    record.set_latency(&rtts);
    Ok(record)
}

/// The sequence number a streamed message carries in its first 8 bytes.
fn stamp(msg: &mut [u8], seq: u64) {
    if let Some(head) = msg.first_chunk_mut::<8>() {
        *head = seq.to_le_bytes();
    }
}

/// Checks a streamed message's length and sequence number.
fn check(msg: &[u8], size: usize, seq: u64) -> Result<(), String> {
    if msg.len() != size {
        return Err(format!(
            "message {seq}: {} bytes, expected {size}",
            msg.len()
        ));
    }
    match msg.first_chunk::<8>() {
        Some(head) if u64::from_le_bytes(*head) != seq => Err(format!(
            "message {seq} arrived as {}: lost or reordered",
            u64::from_le_bytes(*head)
        )),
        _ => Ok(()),
    }
}

/// One-way streaming of `size`-byte messages: this process sends for the
/// pass's stream time, the peer receives and reports how many arrived.
fn stream(pass: &Pass, transport: &str, mode: &'static str, size: usize) -> Result<Record, String> {
    let kind = if mode == "raw" { "floor" } else { "stream" };
    let mut record = pass.record(transport, mode, kind, size);
    let context = |e: String| format!("{transport} stream {size} B: {e}");
    let (sent, elapsed) = if transport == "shm" {
        stream_shm(pass, size).map_err(context)?
    } else {
        let mut job = pass.job("sink", transport, size, false);
        job.capacity = stream_capacity(size);
        let (mut conn, mut peer) = match open(pass, job) {
            Ok(opened) => opened,
            Err(Skip::Limit(note)) => {
                record.note = Some(note);
                return Ok(record);
            }
            Err(Skip::Failed(e)) => return Err(context(e)),
        };
        expect(&mut peer, "ready").map_err(context)?;
        let mut msg = vec![0x5au8; size];
        let start = Instant::now();
        let mut sent = 0u64;
        loop {
            for _ in 0..16 {
                stamp(&mut msg, sent);
                if let Err(e) = conn.send(&msg) {
                    return match limit_or_fail("send", e) {
                        Skip::Limit(note) if sent == 0 => {
                            record.note = Some(note);
                            Ok(record)
                        }
                        Skip::Limit(e) | Skip::Failed(e) => Err(context(e)),
                    };
                }
                sent += 1;
            }
            if start.elapsed() >= pass.budget.stream {
                break;
            }
        }
        drop(conn);
        let got = peer.report().map_err(context)?;
        let elapsed = start.elapsed();
        peer.finish().map_err(context)?;
        if got != format!("received {sent}") {
            return Err(context(format!("sent {sent}, the peer reported {got:?}")));
        }
        (sent, elapsed)
    };
    record.set_rate(sent, elapsed);
    Ok(record)
}

fn expect(peer: &mut Peer, line: &str) -> Result<(), String> {
    let got = peer.report()?;
    if got == line {
        Ok(())
    } else {
        Err(format!("the peer said {got:?}, expected {line:?}"))
    }
}

/// Streaming over the ring: batches of up to 256 messages per published
/// position, busy-polling for room.
fn stream_shm(pass: &Pass, size: usize) -> Result<(u64, Duration), String> {
    let name = format!("/{}", pass.unique("shmlane-bench"));
    let capacity = stream_capacity(size);
    let options = Options::new()
        .capacity(capacity)
        .max_message(size)
        .wait_mode(WaitMode::BusyPoll);
    let mut tx = Sender::create(&name, &options).map_err(|e| format!("{name}: {e}"))?;
    let mut job = pass.job("sink", "shm", size, true);
    job.capacity = capacity;
    job.addr = name.clone();
    let mut peer = Peer::spawn(&job, Vec::new())?;
    expect(&mut peer, "ready")?;
    let _ = shmlane_posix::Segment::unlink(&name);
    let mut msg = vec![0x5au8; size];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut batches = 0u32;
    loop {
        let mut batch = tx.batch();
        while batch.len() < 256 {
            stamp(&mut msg, sent);
            match batch.try_send(&msg) {
                Ok(()) => sent += 1,
                Err(shmlane_core::Error::Full) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        let empty = batch.is_empty();
        drop(batch);
        if empty {
            stamp(&mut msg, sent);
            tx.send(&msg).map_err(|e| e.to_string())?; // waits for room
            sent += 1;
        }
        batches += 1;
        if batches % 16 == 0 && start.elapsed() >= pass.budget.stream {
            break;
        }
    }
    drop(tx);
    let got = peer.report()?;
    let elapsed = start.elapsed();
    peer.finish()?;
    if got != format!("received {sent}") {
        return Err(format!("sent {sent}, the peer reported {got:?}"));
    }
    Ok((sent, elapsed))
}

/// The peer's stream receiver.
fn sink(job: &Job) -> Result<(), String> {
    let mut count = 0u64;
    if job.transport == "shm" {
        let options = Options::new().wait_mode(WaitMode::BusyPoll);
        let mut rx =
            Receiver::open(&job.addr, &options).map_err(|e| format!("{}: {e}", job.addr))?;
        peer::report("ready")?;
        loop {
            let mut batch = rx.batch();
            let mut got = 0;
            while got < 256 {
                match batch.try_read() {
                    Ok(msg) => check(&msg, job.size, count + got)?,
                    Err(_) => break,
                }
                got += 1;
            }
            drop(batch);
            count += got;
            if got == 0 {
                match rx.read() {
                    Ok(msg) => {
                        check(&msg, job.size, count)?;
                        count += 1;
                    }
                    Err(Error::Disconnected) => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    } else {
        let mut conn = peer_open(job)?;
        peer::report("ready")?;
        let mut buf = vec![0u8; MessageReceiver::max_message(&conn).max(job.size)];
        loop {
            match conn.recv(&mut buf) {
                Ok(n) => check(&buf[..n], job.size, count)?,
                Err(Error::Disconnected) => break,
                Err(e) => return Err(e.to_string()),
            }
            count += 1;
        }
    }
    peer::report(&format!("received {count}"))
}

/// The atomic or futex floor.
fn ping_pong_floor(pass: &Pass, which: &str) -> Result<Record, String> {
    let (page, fd) = raw::SharedWord::create()?;
    let mut job = pass.job(which, which, 8, which == "atomic");
    job.fds = vec![raw_fd(&fd)];
    let mut peer = Peer::spawn(&job, vec![fd])?;
    let mut gone = || peer.exited();
    let rtts = if which == "atomic" {
        raw::atomic_parent(&page, pass.budget.rtt, &mut gone)?
    } else {
        raw::futex_parent(&page, pass.budget.rtt, &mut gone)?
    };
    peer.finish()?;
    let mut record = pass.record(which, "raw", "floor", if which == "atomic" { 8 } else { 4 });
    record.set_latency(&rtts);
    Ok(record)
}

fn memcpy_floor(pass: &Pass, size: usize) -> Record {
    let (copies, elapsed) = raw::memcpy(size, pass.budget.memcpy);
    let mut record = pass.record("memcpy", "raw", "floor", size);
    record.set_rate(copies, elapsed);
    record
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
    let before = cpu_ns(peer.pid())?;
    let start = Instant::now();
    std::thread::sleep(pass.budget.idle);
    let after = cpu_ns(peer.pid())?;
    let seconds = start.elapsed().as_secs_f64();
    drop(conn);
    peer.finish()?;
    Ok(Idle {
        seconds,
        cpu_percent: (after - before) as f64 / 1e9 / seconds * 100.0,
    })
}

/// Fills in each record's floor and ratio.
fn compare(records: &mut [Record]) {
    let find = |records: &[Record], transport: &str, size: usize, pinned: bool| {
        records
            .iter()
            .find(|r| {
                r.kind == "floor"
                    && r.transport == transport
                    && r.size == size
                    && r.pinned == pinned
            })
            .cloned()
    };
    for i in 0..records.len() {
        let r = &records[i];
        let (floor, latency) = match (r.kind, r.transport.as_str(), r.mode) {
            ("rtt", "shm", "spin") => (find(records, "atomic", 8, r.pinned), true),
            ("rtt", "shm", _) => (find(records, "futex", 4, r.pinned), true),
            ("rtt", t, _) => (find(records, &format!("{t}-raw"), r.size, r.pinned), true),
            ("stream", "shm", _) => (
                find(records, "memcpy", stream_capacity(r.size), r.pinned),
                false,
            ),
            ("stream", t, _) => (find(records, &format!("{t}-raw"), r.size, r.pinned), false),
            _ => continue,
        };
        let Some(floor) = floor else { continue };
        let ratio = if latency {
            r.p50_ns.zip(floor.p50_ns).map(|(a, b)| a / b)
        } else {
            r.bytes_per_s.zip(floor.bytes_per_s).map(|(a, b)| a / b)
        };
        let r = &mut records[i];
        r.floor = Some(format!("{}/{}", floor.transport, floor.size));
        r.ratio_to_floor = ratio;
    }
}

/// Judges the targets on the pinned pass (or the only pass).
fn targets(records: &[Record], idle: Option<&Idle>) -> Vec<Target> {
    let pinned = records.iter().any(|r| r.pinned);
    let get = |transport: &str, mode: &str, kind: &str, size: usize| {
        records.iter().find(|r| {
            r.pinned == pinned
                && r.transport == transport
                && r.mode == mode
                && r.kind == kind
                && r.size == size
        })
    };
    let target =
        |name: String, value: Option<f64>, limit: f64, at_most: bool, unit: &'static str| Target {
            name,
            value,
            limit,
            at_most,
            unit,
        };
    let mut out = vec![
        target(
            "shm spin 64 B round trip / atomic floor".into(),
            get("shm", "spin", "rtt", 64).and_then(|r| r.ratio_to_floor),
            1.5,
            true,
            "x",
        ),
        target(
            "shm 64 B streaming, M msgs/s".into(),
            get("shm", "spin", "stream", 64)
                .and_then(|r| r.msgs_per_s)
                .map(|v| v / 1e6),
            100.0,
            false,
            "",
        ),
        target(
            "shm 1 MiB streaming / memcpy of a ring-size buffer".into(),
            get("shm", "spin", "stream", 1 << 20).and_then(|r| r.ratio_to_floor),
            0.9,
            false,
            "x",
        ),
        target(
            "shm block 64 B round trip / shm spin".into(),
            get("shm", "block", "rtt", 64)
                .and_then(|b| b.p50_ns)
                .zip(get("shm", "spin", "rtt", 64).and_then(|s| s.p50_ns))
                .map(|(b, s)| b / s),
            2.0,
            true,
            "x",
        ),
        target(
            "idle spin-then-futex receiver, % of a CPU".into(),
            idle.map(|i| i.cpu_percent),
            1.0,
            true,
            "%",
        ),
    ];
    for t in FALLBACKS {
        let worst = |kind: &str, latency: bool| {
            records
                .iter()
                .filter(|r| r.pinned == pinned && r.transport == t && r.kind == kind)
                .filter_map(|r| r.ratio_to_floor)
                .map(|x| if latency { x } else { 1.0 / x })
                .reduce(f64::max)
        };
        out.push(target(
            format!("{t} round trip / {t}-raw (worst size)"),
            worst("rtt", true),
            1.1,
            true,
            "x",
        ));
        out.push(target(
            format!("{t}-raw / {t} throughput (worst size)"),
            worst("stream", false),
            1.1,
            true,
            "x",
        ));
    }
    out
}

fn run_pass(pass: &Pass, args: &Args, records: &mut Vec<Record>) -> Result<(), String> {
    let quick = args.quick;
    let rtt_sizes: &[usize] = if quick { &[64] } else { &RTT_SIZES };
    let stream_sizes: &[usize] = if quick { &[4096] } else { &STREAM_SIZES };
    let progress = |what: &str| {
        if !args.json {
            eprint!(
                "\r{:<60}",
                format!(
                    "{} pass: {what}",
                    if pass.pinned { "pinned" } else { "unpinned" }
                )
            );
        }
    };
    progress("floors");
    records.push(ping_pong_floor(pass, "atomic")?);
    records.push(ping_pong_floor(pass, "futex")?);
    let mut copies: Vec<usize> = vec![64, 4096, 1 << 20];
    copies.extend(stream_sizes.iter().map(|&s| stream_capacity(s)));
    copies.sort_unstable();
    copies.dedup();
    for size in copies {
        records.push(memcpy_floor(pass, size));
    }
    for t in FALLBACKS.into_iter().filter(|t| args.wants(t)) {
        let raw = format!("{t}-raw");
        progress(&raw);
        for &size in rtt_sizes {
            records.push(round_trip(pass, &raw, "raw", size)?);
        }
        for &size in stream_sizes {
            // A floor record holds both figures for its size.
            let streamed = stream(pass, &raw, "raw", size)?;
            merge(records, streamed);
        }
    }
    if args.wants("shm") {
        progress("shm");
        for mode in ["spin", "block"] {
            for &size in rtt_sizes {
                records.push(round_trip(pass, "shm", mode, size)?);
            }
        }
        for &size in stream_sizes {
            records.push(stream(pass, "shm", "spin", size)?);
        }
    }
    for t in FALLBACKS.into_iter().filter(|t| args.wants(t)) {
        progress(t);
        for &size in rtt_sizes {
            records.push(round_trip(pass, t, "block", size)?);
        }
        for &size in stream_sizes {
            records.push(stream(pass, t, "block", size)?);
        }
    }
    if !args.json {
        eprint!("\r{:<60}\r", "");
    }
    Ok(())
}

/// Adds a streamed floor's figures to the round-trip floor record of the
/// same transport and size, or adds it as its own record.
fn merge(records: &mut Vec<Record>, streamed: Record) {
    let same = records.iter_mut().find(|r| {
        r.kind == "floor"
            && r.transport == streamed.transport
            && r.size == streamed.size
            && r.pinned == streamed.pinned
    });
    match same {
        Some(r) if streamed.bytes_per_s.is_some() => {
            r.msgs_per_s = streamed.msgs_per_s;
            r.bytes_per_s = streamed.bytes_per_s;
        }
        Some(r) if r.note.is_none() => r.note = streamed.note,
        Some(_) => {}
        None => records.push(streamed),
    }
}

fn charts(report: &Report) -> Vec<plot::Chart> {
    let pinned = report.machine.pinned_pass;
    let rows: Vec<&Record> = report
        .records
        .iter()
        .filter(|r| r.pinned == pinned)
        .collect();
    let which = if pinned { "pinned" } else { "unpinned" };
    let mut latency_categories = vec![
        "atomic".to_owned(),
        "futex".to_owned(),
        "shm spin".to_owned(),
        "shm block".to_owned(),
    ];
    let mut stream_categories = vec!["shm".to_owned()];
    for t in FALLBACKS {
        latency_categories.push(format!("{t}-raw"));
        latency_categories.push(t.to_owned());
        stream_categories.push(format!("{t}-raw"));
        stream_categories.push(t.to_owned());
    }
    let find = |category: &str, size: usize, stream: bool| -> Option<&Record> {
        let (transport, mode) = category.split_once(' ').unwrap_or((category, ""));
        rows.iter().copied().find(|r| {
            r.transport == transport
                && (mode.is_empty() || r.mode == mode)
                && (r.kind == "floor" || (r.kind == "stream") == stream)
                && (r.size == size
                    || (r.kind == "floor" && (transport == "atomic" || transport == "futex")))
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
    let latency = chart(
        format!("Round trip, median ({which}); floors: atomic, futex, *-raw"),
        "ns (log scale)",
        latency_categories,
        &RTT_SIZES,
        false,
        |r| r.p50_ns,
    );
    let throughput = chart(
        format!("Streaming throughput ({which}); floors: *-raw"),
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
    let mut passes = Vec::new();
    if two {
        passes.push(Pass {
            pinned: true,
            peer_cpu: Some(cpus[1]),
            budget,
            dir: dir.clone(),
            serial: Default::default(),
        });
    }
    if !args.quick || !two {
        passes.push(Pass {
            pinned: false,
            peer_cpu: None,
            budget,
            dir,
            serial: Default::default(),
        });
    }
    let mut records = Vec::new();
    let mut idle = None;
    for pass in &passes {
        if pass.pinned {
            peer::pin(&cpus[..1])?;
        } else {
            peer::pin(&cpus)?;
        }
        // Each pass's serial numbers start again: keep names apart.
        pass.serial.set(if pass.pinned { 0 } else { 1 << 20 });
        run_pass(pass, &args, &mut records)?;
        if idle.is_none() && args.wants("shm") {
            idle = Some(idle_receiver(pass)?);
        }
    }
    peer::pin(&cpus)?;
    compare(&mut records);
    let targets = targets(&records, idle.as_ref());
    let report = Report {
        machine: Machine::probe(args.quick, two, cpus.len()),
        records,
        idle,
        targets,
    };
    if args.json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if let Some(path) = &args.plot {
        plot::write_svg(path, &charts(&report))
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
    match job.what.as_str() {
        "echo" => {
            let mut conn = peer_open(&job)?;
            rtt::echo(&mut conn, job.spin).map_err(|e| e.to_string())
        }
        "sink" => sink(&job),
        "atomic" => {
            raw::atomic_peer(&raw::SharedWord::from_fd(job.take_fd(0)?)?);
            Ok(())
        }
        "futex" => {
            raw::futex_peer(&raw::SharedWord::from_fd(job.take_fd(0)?)?);
            Ok(())
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
    let args = match parse_args(words.collect()) {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    shmlane_examples::run("bench", || main_run(args).map_err(Into::into))
}
