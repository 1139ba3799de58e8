//! Round-trip latency over any transport, named by its address.
//!
//! ```text
//! cargo run --release -p shmlane-examples --bin pingpong -- --addr ADDR [--size N] [--count N] [--mode spin|block]
//! cargo run --release -p shmlane-examples --bin pingpong -- --help
//! ```
//!
//! `ADDR` is any endpoint address: `shm:/name`, `fifo:path`, `mq:/name`,
//! `unix:path`, `unix-dgram:path`, `tcp:host:port` (`tcp:127.0.0.1:0` picks
//! a free port and tells the peer which) or `pipe`. The program listens,
//! starts its own peer process on the same address, sends `--count` messages
//! of `--size` bytes one at a time, each echoed back, and prints the median,
//! p99 and p99.9 round-trip times. `--mode spin` busy-polls (the shared
//! memory ring never sleeps; other transports poll with non-blocking
//! calls); `--mode block` waits in the kernel (futex, poll, mq_receive).
//!
//! What it teaches: the same program runs over every transport; only the
//! address string changes.

use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use shmlane_examples::rtt::{Pair, Plan, echo, percentile, round_trips};
use shmlane_posix::Framed;
use shmlane_posix::endpoint::{Connection, EndpointOptions, connect, listen};
use shmlane_posix::{Options, WaitMode};

/// Round-trip latency over any transport, named by its address: listens,
/// starts its own peer process on the same address, sends COUNT messages
/// of SIZE bytes one at a time, each echoed back, and prints the median,
/// p99 and p99.9 round-trip times.
#[derive(clap::Parser, Debug)]
#[command(name = "pingpong", version)]
struct Args {
    /// The endpoint: shm:/name, fifo:path, mq:/name, unix:path,
    /// unix-dgram:path, tcp:host:port (tcp:127.0.0.1:0 picks a free port)
    /// or pipe.
    #[arg(long, value_name = "ADDR")]
    addr: String,
    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_name = "N")]
    size: usize,
    /// Round trips to measure (at least 1).
    #[arg(long, default_value_t = 100_000, value_name = "N", value_parser = at_least_one)]
    count: usize,
    /// spin: busy-poll (the ring never sleeps; other transports poll with
    /// non-blocking calls); block: wait in the kernel (futex, poll,
    /// mq_receive).
    #[arg(long, value_enum, default_value_t = Mode::Block)]
    mode: Mode,
    /// Run as the echoing peer (started by pingpong itself).
    #[arg(long, hide = true)]
    peer: bool,
}

/// How the two ends wait.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Busy-poll.
    Spin,
    /// Wait in the kernel.
    Block,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl Args {
    fn spin(&self) -> bool {
        self.mode == Mode::Spin
    }
}

fn options(args: &Args) -> EndpointOptions {
    let mode = if args.spin() {
        WaitMode::BusyPoll
    } else {
        WaitMode::SpinThenFutex
    };
    // Room for the message, in every transport.
    let max = args.size.max(64);
    let capacity = (4 * (max + 8)).next_power_of_two().max(1 << 16);
    EndpointOptions {
        max_message: max,
        shm: Options::new().capacity(capacity).wait_mode(mode),
        mq_capacity: 10,
        ..EndpointOptions::default()
    }
}

fn run(args: &Args) -> Result<(), String> {
    let max = options(args).max_message;
    let mode = if args.spin() { "spin" } else { "block" };
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let peer_args = |addr: &str| {
        let mut command = Command::new(&exe);
        command.args([
            "--peer",
            "--addr",
            addr,
            "--size",
            &args.size.to_string(),
            "--mode",
            mode,
        ]);
        command
    };
    let (rtts, transport, mut child) = if args.addr == "pipe" {
        // The child's stdin and stdout are the two pipes.
        let (child_in, to_child) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| format!("pipe: {e}"))?;
        let (from_child, child_out) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| format!("pipe: {e}"))?;
        let child = peer_args("pipe")
            .stdin(Stdio::from(child_in))
            .stdout(Stdio::from(child_out))
            .spawn()
            .map_err(|e| format!("spawn the peer: {e}"))?;
        let framed = |fd| Framed::new(fd, max).map_err(|e| e.to_string());
        let mut pair = Pair {
            tx: framed(to_child)?,
            rx: framed(from_child)?,
        };
        // (`to_child` and `from_child` were the parent's ends; the child's
        // ends were moved into the Command and are closed here.)
        let rtts = round_trips(&mut pair, args.size, args.spin(), Plan::count(args.count));
        (rtts, "pipe", child)
    } else {
        let mut listener =
            listen(&args.addr, &options(args)).map_err(|e| format!("{}: {e}", args.addr))?;
        let addr = listener.local_address().map_err(|e| e.to_string())?;
        let child = peer_args(&addr)
            .spawn()
            .map_err(|e| format!("spawn the peer: {e}"))?;
        let mut conn: Connection = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let transport = conn.transport();
        let rtts = round_trips(
            &mut conn,
            args.size,
            poll_here(args),
            Plan::count(args.count),
        );
        (rtts, transport, child)
    };
    // The connection is closed now: the peer sees Disconnected and exits.
    let status = child.wait().map_err(|e| format!("peer: {e}"))?;
    let rtts = rtts.map_err(|e| format!("measuring: {e}"))?;
    if !status.success() {
        return Err(format!("peer failed: {status}"));
    }
    let ns = |p| percentile(&rtts, p).map_or(0, Duration::as_nanos);
    println!(
        "{transport} {mode} {} B x {}: median {} ns, p99 {} ns, p99.9 {} ns",
        args.size,
        rtts.len(),
        ns(0.5),
        ns(0.99),
        ns(0.999),
    );
    Ok(())
}

fn peer(args: &Args) -> Result<(), String> {
    let max = options(args).max_message;
    if args.addr == "pipe" {
        let framed = |fd| Framed::new(fd, max).map_err(|e| e.to_string());
        let mut pair = Pair {
            tx: framed(dup(std::io::stdout().as_fd())?)?,
            rx: framed(dup(std::io::stdin().as_fd())?)?,
        };
        return echo(&mut pair, args.spin()).map_err(|e| e.to_string());
    }
    let mut conn =
        connect(&args.addr, &options(args)).map_err(|e| format!("{}: {e}", args.addr))?;
    echo(&mut conn, poll_here(args)).map_err(|e| e.to_string())
}

/// Whether this program polls with non-blocking calls itself: with
/// `--mode spin`, except over shared memory, whose channel busy-polls by
/// itself (`WaitMode::BusyPoll`, which also knows whether its peer shares
/// its CPU and gives that CPU up if so).
fn poll_here(args: &Args) -> bool {
    args.spin() && !args.addr.starts_with("shm:")
}

/// Our own descriptor for a standard stream (fd 0 or 1).
fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd, String> {
    fd.try_clone_to_owned().map_err(|e| format!("dup: {e}"))
}

fn main() -> ExitCode {
    // Bad arguments: a usage message and exit code 2 (clap's).
    let args = <Args as clap::Parser>::parse();
    let result = if args.peer { peer(&args) } else { run(&args) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}
