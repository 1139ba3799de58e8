//! `shmlane`: look inside the channels in /dev/shm, and talk to any
//! shmlane address from the shell.
//!
//! ```text
//! shmlane ls                               # every name in /dev/shm: channels, their sides, pids, counts
//! shmlane stat /quotes --watch             # one channel; rates per second while watching
//! shmlane rm-stale --dry-run               # what nobody holds any more (then without --dry-run)
//! shmlane recv shm:/quotes --count 3 &     # listens; says "listening on ADDR" on stderr
//! shmlane send shm:/quotes hello world !   # connects; one message per argument
//! printf 'a\nb\n' | shmlane send shm:/quotes   # or one per line of stdin
//! ```
//!
//! `ls`, `stat` and `rm-stale` read copies of the ring headers and probe
//! the kernel's locks (`shmlane_posix::inspect`): they never map, claim or
//! follow anything, and never block on what they find. `--json` gives
//! every listing as JSON (`stat --watch --json`: one object per line).
//!
//! `recv` listens at the address (start it first), takes one client and
//! prints each message it receives on a line of its own (`--hex`: as hex;
//! `--json`: one JSON object per line), until `--count` messages or the
//! client's close. `send` connects and sends its arguments (or stdin's
//! lines), `--hex` taking them as hex. Exit status: 0 done, 1 an error
//! (`shmlane: message` on stderr), 2 a usage mistake.

mod inspect;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shmlane_posix::endpoint::{EndpointOptions, connect, listen};
use shmlane_posix::{Error, MessageReceiver, MessageSender};

/// Look inside the shmlane channels in /dev/shm (ls, stat, rm-stale), and
/// talk to any shmlane address (shm:/name, fifo:path, mq:/name, unix:path,
/// unix-dgram:path, tcp:host:port) from the shell (send, recv).
#[derive(Parser, Debug)]
#[command(name = "shmlane", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every name in /dev/shm: shmlane channels (capacity, bytes
    /// queued, each side's state and pid, messages), listeners' sockets,
    /// and what is not shmlane's.
    Ls {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one channel (NAME, /NAME or shm:/NAME): its header, each side's
    /// state, pid and counters; with --watch, rates per second.
    Stat {
        /// The channel's name.
        name: String,
        /// Print a line of rates every interval.
        #[arg(long)]
        watch: bool,
        /// Seconds between samples (with --watch).
        #[arg(
            long,
            default_value_t = 1.0,
            value_name = "SECONDS",
            requires = "watch"
        )]
        interval: f64,
        /// Stop after this many samples (with --watch; default: never).
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
        /// Print JSON (with --watch: one object per sample and line).
        #[arg(long)]
        json: bool,
    },
    /// Remove the channels no process holds and the listeners' sockets
    /// nobody listens at, of this user only, with the checks a create makes
    /// before it reclaims a name.
    RmStale {
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print a JSON array of what was (or would be) done.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a listener at ADDR and send each MSG (or each line of
    /// stdin when there is none) as one message.
    Send {
        /// The address a `shmlane recv` (or any listener) listens at.
        addr: String,
        /// The messages; none: the lines of stdin.
        msgs: Vec<String>,
        /// The messages are hex (two digits a byte).
        #[arg(long)]
        hex: bool,
    },
    /// Listen at ADDR, take one client, print each message it sends.
    Recv {
        /// The address to listen at (tcp:host:0: any free port; the real
        /// address is said on stderr).
        addr: String,
        /// Stop after this many messages (default: at the client's close).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Print each message as hex.
        #[arg(long, conflicts_with = "json")]
        hex: bool,
        /// Print each message as a JSON object: {"len":N,"hex":"..."}.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { json } => inspect::ls(json),
        Command::Stat {
            name,
            watch,
            interval,
            count,
            json,
        } => inspect::stat(&name, watch, interval, count, json),
        Command::RmStale { dry_run, json } => inspect::rm_stale(dry_run, json),
        Command::Send { addr, msgs, hex } => send(&addr, msgs, hex),
        Command::Recv {
            addr,
            count,
            hex,
            json,
        } => recv(&addr, count, hex, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmlane: {e}");
            ExitCode::FAILURE
        }
    }
}

fn send(addr: &str, msgs: Vec<String>, hex: bool) -> Result<(), String> {
    let mut conn =
        connect(addr, &EndpointOptions::default()).map_err(|e| format!("{addr}: {e}"))?;
    let mut one = |text: &str| -> Result<(), String> {
        let bytes = if hex {
            from_hex(text)?
        } else {
            text.as_bytes().to_vec()
        };
        conn.send(&bytes).map_err(|e| format!("send: {e}"))
    };
    if msgs.is_empty() {
        for line in std::io::stdin().lock().lines() {
            one(&line.map_err(|e| format!("stdin: {e}"))?)?;
        }
    } else {
        for msg in &msgs {
            one(msg)?;
        }
    }
    Ok(())
}

fn recv(addr: &str, count: Option<u64>, hex: bool, json: bool) -> Result<(), String> {
    let options = EndpointOptions::default();
    let mut listener = listen(addr, &options).map_err(|e| format!("{addr}: {e}"))?;
    let real = listener.local_address().map_err(|e| e.to_string())?;
    eprintln!("listening on {real}");
    let mut conn = listener.accept().map_err(|e| format!("accept: {e}"))?;
    let mut buf = vec![0u8; options.max_message];
    let mut out = std::io::stdout().lock();
    let mut received = 0;
    while count.is_none_or(|n| received < n) {
        let n = match conn.recv(&mut buf) {
            Ok(n) => n,
            Err(Error::Disconnected) => break,
            Err(e) => return Err(format!("recv: {e}")),
        };
        let msg = &buf[..n];
        let written = if json {
            writeln!(out, "{{\"len\":{n},\"hex\":\"{}\"}}", to_hex(msg))
        } else if hex {
            writeln!(out, "{}", to_hex(msg))
        } else {
            out.write_all(msg).and_then(|()| out.write_all(b"\n"))
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
        received += 1;
    }
    Ok(())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(format!("{text:?} is not hex: an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("{text:?} is not hex"))
        })
        .collect()
}
