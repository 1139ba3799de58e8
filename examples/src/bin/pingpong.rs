//! Round-trip latency over any transport, named by its address.
//!
//! ```text
//! cargo run --release -p shmlane-examples --bin pingpong -- --addr ADDR [--size N] [--count N] [--mode spin|block]
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

struct Args {
    addr: String,
    size: usize,
    count: usize,
    spin: bool,
    peer: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: String::new(),
        size: 64,
        count: 100_000,
        spin: false,
        peer: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => args.addr = value("--addr")?,
            "--size" => {
                args.size = value("--size")?
                    .parse()
                    .map_err(|e| format!("--size: {e}"))?
            }
            "--count" => {
                args.count = value("--count")?
                    .parse()
                    .map_err(|e| format!("--count: {e}"))?
            }
            "--mode" => {
                args.spin = match value("--mode")?.as_str() {
                    "spin" => true,
                    "block" => false,
                    other => return Err(format!("--mode must be spin or block, not {other:?}")),
                }
            }
            "--peer" => args.peer = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.addr.is_empty() {
        return Err("--addr ADDR is required".to_owned());
    }
    if args.count == 0 {
        return Err("--count must be at least 1".to_owned());
    }
    Ok(args)
}

fn options(args: &Args) -> EndpointOptions {
    let mode = if args.spin {
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
    let mode = if args.spin { "spin" } else { "block" };
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
        let rtts = round_trips(&mut pair, args.size, args.spin, Plan::count(args.count));
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
        return echo(&mut pair, args.spin).map_err(|e| e.to_string());
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
    args.spin && !args.addr.starts_with("shm:")
}

/// Our own descriptor for a standard stream (fd 0 or 1).
fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd, String> {
    fd.try_clone_to_owned().map_err(|e| format!("dup: {e}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!(
                "pingpong: {e}\nusage: pingpong --addr ADDR [--size N] [--count N] [--mode spin|block]"
            );
            return ExitCode::from(2);
        }
    };
    let result = if args.peer { peer(&args) } else { run(&args) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}
