//! Signals without a signal handler: a shmlane receiver that stops cleanly
//! on SIGTERM or SIGINT, after taking what is already queued.
//!
//! ```text
//! cargo run -p shmlane-examples --bin signals -- [NAME]              # terminal 1
//! ready: /shmlane-signals-4242 (stop it with kill -TERM 4242 or Ctrl-C)
//! cargo run -p shmlane-examples --bin signals -- --send /shmlane-signals-4242 hello world
//! received: hello                                                    # terminal 1
//! received: world
//! the sender closed: 2 received in all
//! removed /shmlane-signals-4242
//! ```
//!
//! NAME defaults to `/shmlane-signals-<pid>`. The receiver creates the
//! channel ([`shmlane_posix::Receiver::create`]), prints `ready: NAME ...`
//! and then one `received: MESSAGE` line per message. It stops in one of
//! two ways:
//!
//! - its sender closes (`--send NAME MESSAGE...` sends its messages and
//!   exits): `the sender closed: N received in all`;
//! - it gets SIGTERM (`kill`, a service manager stopping it) or SIGINT
//!   (Ctrl-C): it takes every message still queued in the ring, one
//!   `drained: MESSAGE` line each, then prints `got SIGTERM from pid P:
//!   drained D queued messages; N received in all` (`from the kernel` for a
//!   terminal's Ctrl-C).
//!
//! Either way it then drops the receiver, which removes the channel's name
//! from `/dev/shm` (`removed NAME`), and exits with status 0.
//!
//! What it teaches:
//!
//! - A signal handler interrupts the program anywhere, even inside `malloc`
//!   or while a lock is held, so it may only call async-signal-safe
//!   functions: no allocation, no locks, no `println!`. The safe design does
//!   no work in a handler at all. The classic way is the self-pipe trick (the
//!   handler writes one byte to a pipe that the main loop reads); Linux has
//!   `signalfd`, which needs no handler: the signals are *blocked*, so they
//!   stay pending instead of interrupting anything, and reading the
//!   signalfd takes them, as `signalfd_siginfo` records that even say who
//!   sent them (`ssi_pid`).
//! - The mask must be set before any thread exists. A blocked signal goes
//!   to a thread that does not block it; a thread started before the mask
//!   was set has it unblocked, gets the signal, and its default action
//!   (for SIGTERM and SIGINT: end the process) ends the whole process. New
//!   threads inherit their creator's mask, so blocking first, in `main`,
//!   covers them all. (The mask is also inherited across `exec`;
//!   `std::process::Command` resets it in the child, a bare
//!   `fork`/`exec` would have to.)
//! - The receiver waits on a futex in shared memory, not on a file
//!   descriptor, so one `poll` cannot wait for both a message and a signal.
//!   The loop waits for messages with `recv_timeout` in slices of
//!   [`SIGNAL_CHECK`] and reads the non-blocking signalfd after each message
//!   and each slice: a signal is seen within one slice, or after the message
//!   in hand. (That is one `read(2)` system call per message; a receiver
//!   under heavy load would look every few hundred messages instead.)
//! - A clean stop drains: once the signal is seen, `try_recv` takes what
//!   the ring still holds (it never waits), so nothing the sender sent
//!   before the signal is lost, and the exit after it removes the name.
//! - SIGKILL and SIGSTOP cannot be blocked, caught or read: a receiver killed
//!   with SIGKILL cannot clean up. That case is the kernel's: the
//!   receiver's lock on the segment dies with it, the sender sees
//!   `Disconnected`, and the next `Receiver::create` of the name reclaims
//!   the stale segment.

use std::io::Write;
use std::mem::{offset_of, size_of};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::Duration;

use rustix::io::Errno;
use shmlane_examples::{BoxError, run};
use shmlane_posix::{Error, Options, Receiver, Sender};

/// How long the receiver waits for a message before it looks at the
/// signalfd again: the longest a signal waits while no message comes.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

const USAGE: &str = "usage: signals [NAME] | signals --send NAME MESSAGE...";

fn main() -> ExitCode {
    run("signals", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            [] => receive(&format!("/shmlane-signals-{}", std::process::id())),
            [name] if !name.starts_with("--") => receive(name),
            ["--send", name, messages @ ..] => send(name, messages),
            _ => Err(format!("unexpected arguments {args:?}; {USAGE}").into()),
        }
    })
}

/// A signal taken from the signalfd.
struct Taken {
    signal: libc::c_int,
    /// The sending process; 0 when the kernel sent it (a terminal's Ctrl-C).
    from: u32,
}

/// Signals turned into data: blocked in this thread (and so in every
/// thread it starts), and read from a non-blocking signalfd.
struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks `signals` and opens a signalfd for them. Call it before any
    /// thread is started.
    fn block(signals: &[libc::c_int]) -> Result<SignalFd, BoxError> {
        // SAFETY: `sigset_t` is a plain C bit set, for which all zeroes is a
        // valid value; `sigemptyset` below gives it its proper empty value.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a `sigset_t` we own, valid for writes.
        unsafe { libc::sigemptyset(&mut set) };
        for &signal in signals {
            // SAFETY: as above; `sigaddset` checks the signal number.
            if unsafe { libc::sigaddset(&mut set, signal) } != 0 {
                return Err(
                    format!("sigaddset({signal}): {}", std::io::Error::last_os_error()).into(),
                );
            }
        }
        // SAFETY: `set` is initialised; a null old-mask pointer asks for
        // nothing back.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(
                format!("pthread_sigmask: {}", std::io::Error::from_raw_os_error(r)).into(),
            );
        }
        // SAFETY: -1 asks for a new descriptor; `set` is initialised and
        // only read during the call.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(format!("signalfd: {}", std::io::Error::last_os_error()).into());
        }
        // SAFETY: `signalfd` returned a new, open descriptor that nothing
        // else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// Takes the next pending signal, without waiting.
    fn take(&self) -> Result<Option<Taken>, BoxError> {
        let mut info = [0u8; size_of::<libc::signalfd_siginfo>()];
        let n = loop {
            match rustix::io::read(&self.fd, &mut info) {
                Ok(n) => break n,
                // Nothing pending.
                Err(Errno::AGAIN) => return Ok(None),
                Err(Errno::INTR) => {}
                Err(e) => return Err(format!("reading the signalfd: {e}").into()),
            }
        };
        if n != info.len() {
            return Err(format!("a short read of {n} bytes from the signalfd").into());
        }
        let field = |at: usize| u32::from_ne_bytes(info[at..at + 4].try_into().unwrap());
        Ok(Some(Taken {
            signal: field(offset_of!(libc::signalfd_siginfo, ssi_signo)) as libc::c_int,
            from: field(offset_of!(libc::signalfd_siginfo, ssi_pid)),
        }))
    }
}

fn signal_name(signal: libc::c_int) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".to_owned(),
        libc::SIGINT => "SIGINT".to_owned(),
        other => format!("signal {other}"),
    }
}

fn say(out: &mut impl Write, line: &str) -> Result<(), BoxError> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}").into())
}

fn receive(name: &str) -> Result<(), BoxError> {
    // First, while this is the only thread: from here on SIGTERM and SIGINT
    // wait in the signalfd instead of ending the process.
    let signals = SignalFd::block(&[libc::SIGTERM, libc::SIGINT])?;

    let mut rx = Receiver::create(name, &Options::new()).map_err(|e| match e {
        Error::AlreadyExists { .. } => {
            format!("cannot create the channel {name}: another receiver is using it")
        }
        e => format!("cannot create the channel {name}: {e}"),
    })?;
    let mut out = std::io::stdout().lock();
    let pid = std::process::id();
    say(
        &mut out,
        &format!("ready: {name} (stop it with kill -TERM {pid} or Ctrl-C)"),
    )?;

    let mut buf = vec![0u8; rx.max_message()];
    let mut received = 0u64;
    loop {
        if let Some(taken) = signals.take()? {
            // Take what is queued, without waiting for more.
            let mut drained = 0u64;
            loop {
                match rx.try_recv(&mut buf) {
                    Ok(n) => {
                        drained += 1;
                        let text = String::from_utf8_lossy(&buf[..n]);
                        say(&mut out, &format!("drained: {text}"))?;
                    }
                    Err(Error::Empty | Error::Disconnected) => break,
                    Err(e) => return Err(format!("draining {name}: {e}").into()),
                }
            }
            let from = match taken.from {
                0 => "the kernel".to_owned(),
                pid => format!("pid {pid}"),
            };
            say(
                &mut out,
                &format!(
                    "got {} from {from}: drained {drained} queued messages; {} received in all",
                    signal_name(taken.signal),
                    received + drained
                ),
            )?;
            break;
        }
        match rx.recv_timeout(&mut buf, SIGNAL_CHECK) {
            Ok(n) => {
                received += 1;
                let text = String::from_utf8_lossy(&buf[..n]);
                say(&mut out, &format!("received: {text}"))?;
            }
            Err(Error::TimedOut) => {}
            Err(Error::Disconnected) => {
                say(
                    &mut out,
                    &format!("the sender closed: {received} received in all"),
                )?;
                break;
            }
            Err(e) => return Err(format!("receiving on {name}: {e}").into()),
        }
    }
    // The creator's drop removes the name.
    drop(rx);
    say(&mut out, &format!("removed {name}"))
}

fn send(name: &str, messages: &[&str]) -> Result<(), BoxError> {
    let mut tx = Sender::open(name, &Options::new()).map_err(|e| match e {
        Error::NotFound { .. } => format!("there is no channel {name}: start signals first"),
        e => format!("cannot open the channel {name}: {e}"),
    })?;
    for message in messages {
        tx.send(message.as_bytes())
            .map_err(|e| format!("cannot send {message:?}: {e}"))?;
    }
    // Dropping the sender closes the channel: the receiver stops.
    Ok(())
}
