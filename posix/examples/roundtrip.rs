//! Cross-process round-trip latency and one-way streaming of 64-byte
//! messages over shmlane channels, in busy-poll and spin-then-futex modes.
//!
//! ```text
//! cargo run --release -p shmlane-posix --example roundtrip [-- --count N]
//! ```
//!
//! The program runs itself again as the peer process, pinned to another
//! CPU where there is one. The full comparison with the machine's floors and
//! the other transports is the `bench` program of `shmlane-examples`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmlane_posix::{Error, Options, Receiver, Segment, Sender, WaitMode};

const SIZE: usize = 64;

fn mode_name(mode: WaitMode) -> &'static str {
    match mode {
        WaitMode::BusyPoll => "busy",
        WaitMode::Futex => "sleep",
        _ => "futex",
    }
}

fn parse_mode(word: &str) -> WaitMode {
    match word {
        "busy" => WaitMode::BusyPoll,
        "sleep" => WaitMode::Futex,
        _ => WaitMode::SpinThenFutex,
    }
}

/// Pins this process to `cpu` if the machine has it (best effort).
fn pin(cpu: usize) {
    // Online CPUs, not `available_parallelism`, which counts our inherited
    // affinity mask (a child of a pinned parent would see one CPU).
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    if cpus > 1 {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu % cpus);
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
}

/// The peer: echoes every ping until the pinger closes, then counts the
/// streamed messages until their sender closes, and reports the count.
fn peer(ping: &str, pong: &str, stream: &str, mode: WaitMode) -> Result<(), Error> {
    pin(1);
    let options = Options::new().wait_mode(mode);
    let mut rx = Receiver::open(ping, &options)?;
    let mut tx = Sender::open(pong, &options)?;
    let mut buf = [0u8; SIZE];
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => tx.send(&buf[..n])?,
            Err(Error::Disconnected) => break,
            Err(e) => return Err(e),
        }
    }
    drop(tx);
    let mut rx = Receiver::open(stream, &options)?;
    let mut count = 0u64;
    loop {
        let mut batch = rx.batch();
        let mut got = 0;
        while let Ok(msg) = batch.try_read() {
            std::hint::black_box(&*msg);
            got += 1;
            if got == 256 {
                break;
            }
        }
        drop(batch);
        count += got;
        if got == 0 {
            match rx.read() {
                Ok(_) => count += 1,
                Err(Error::Disconnected) => break,
                Err(e) => return Err(e),
            }
        }
    }
    println!("received {count}");
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Round trips, then streaming; returns the sorted round-trip times, the
/// number of streamed messages and the time they took.
fn measure(
    names: &[String; 3],
    mut ping: Sender,
    mut pong: Receiver,
    mut stream: Sender,
    mut report: BufReader<std::process::ChildStdout>,
    count: usize,
) -> Result<(Vec<Duration>, u64, Duration), Error> {
    let msg = [0x5au8; SIZE];
    let mut buf = [0u8; SIZE];
    let warmup = count / 10;
    let mut rtts = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let start = Instant::now();
        ping.send(&msg)?;
        pong.recv(&mut buf)?;
        if i >= warmup {
            rtts.push(start.elapsed());
        }
        if i == 0 {
            // Both sides are attached: the names are no longer needed, and
            // removing them now leaves nothing behind if we are killed.
            Segment::unlink(&names[0])?;
            Segment::unlink(&names[1])?;
        }
    }
    drop(ping);
    rtts.sort();

    let messages = 20 * count as u64;
    let start = Instant::now();
    let mut sent = 0;
    while sent < messages {
        let mut batch = stream.batch();
        while sent < messages && batch.len() < 256 {
            match batch.try_send(&msg) {
                Ok(()) => sent += 1,
                Err(shmlane_core::Error::Full) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if batch.is_empty() {
            drop(batch);
            stream.send(&msg)?; // wait for room
            sent += 1;
        }
    }
    drop(stream);
    let mut line = String::new();
    report.read_line(&mut line).expect("report");
    let elapsed = start.elapsed();
    assert_eq!(line.trim(), format!("received {messages}"));
    Ok((rtts, messages, elapsed))
}

fn run(mode: WaitMode, count: usize) -> Result<(), Error> {
    let id = std::process::id();
    let names = [
        format!("/roundtrip-ping-{id}"),
        format!("/roundtrip-pong-{id}"),
        format!("/roundtrip-stream-{id}"),
    ];
    let options = Options::new().wait_mode(mode).capacity(1 << 16);
    let ping = Sender::create(&names[0], &options)?;
    let pong = Receiver::create(&names[1], &options)?;
    let stream = Sender::create(&names[2], &options.clone().capacity(1 << 20))?;
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--peer", &names[0], &names[1], &names[2], mode_name(mode)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the peer");
    // Pin after spawning: the child inherits our mask otherwise.
    pin(0);
    let report = BufReader::new(child.stdout.take().expect("piped"));
    let measured = measure(&names, ping, pong, stream, report, count);
    // Reap the peer on every path; on failure, stop it first.
    if measured.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().expect("peer");
    let (rtts, messages, elapsed) = measured?;
    assert!(status.success(), "peer failed");
    println!(
        "{:<6} rtt 64 B: median {:>7.0} ns  p99 {:>7.0} ns  p99.9 {:>7.0} ns | stream 64 B: {:>6.1} M msgs/s {:>6.2} GB/s",
        mode_name(mode),
        percentile(&rtts, 0.5).as_nanos() as f64,
        percentile(&rtts, 0.99).as_nanos() as f64,
        percentile(&rtts, 0.999).as_nanos() as f64,
        messages as f64 / elapsed.as_secs_f64() / 1e6,
        messages as f64 * SIZE as f64 / elapsed.as_secs_f64() / 1e9,
    );
    std::io::stdout().flush().ok();
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--peer") {
        return peer(&args[1], &args[2], &args[3], parse_mode(&args[4]));
    }
    let count = match args.iter().position(|a| a == "--count") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--count N"),
        None => 200_000,
    };
    for mode in [WaitMode::BusyPoll, WaitMode::SpinThenFutex] {
        run(mode, count)?;
    }
    Ok(())
}
