//! Two children joined by a pipe, like the shell's `seq 10 | grep even`:
//! redirection with `dup2`.
//!
//! ```text
//! cargo run -p shmlane-examples --bin filter -- [COUNT]
//! 2
//! 4
//! 6
//! 8
//! 10
//! ```
//!
//! The parent creates a pipe and starts two children, both running this
//! program again in a role given by the arguments:
//!
//! - the producer (`--produce COUNT WRITE_FD READ_FD`) turns its stdout into
//!   the pipe's write end with `dup2(WRITE_FD, 1)` and prints the numbers
//!   1 to COUNT (default 10), one a line, as if it were `seq`;
//! - the filter (`--keep-even READ_FD WRITE_FD`) turns its stdin into the
//!   pipe's read end with `dup2(READ_FD, 0)` and copies the even numbers
//!   from stdin to stdout, as if it were `grep`.
//!
//! Neither role knows about pipes: each just uses stdin and stdout, which
//! is what makes filters composable. The parent reads the filter's stdout,
//! as `popen(cmd, "r")` would, and prints what comes out of the pipeline.
//!
//! The rule that makes it end: every process closes the pipe ends it does
//! not use. The filter sees end of file only when *no* process holds the
//! write end any more: not the producer (it exits), not the parent (it
//! closes both ends as soon as the children have started), and not the
//! filter itself (after `dup2` it closes both original descriptors). Leave
//! one open anywhere and the filter waits for ever. (The producer closes
//! the read end too, so that if the filter quits early, its next write
//! fails with `EPIPE` instead of filling a pipe nobody reads.)
//!
//! The pipe is created *without* close-on-exec here, unlike in `pipe_hello`:
//! the children inherit both ends across exec under the same numbers, and
//! get those numbers as arguments. The roles refuse a number that is not an
//! open pipe.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::process::{Command, ExitCode, Stdio};

use shmlane_examples::{BoxError, run};

const USAGE: &str = "usage: filter [COUNT]";

fn main() -> ExitCode {
    run("filter", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            [] => parent(10),
            [count] if !count.starts_with("--") => parent(parse_count(count)?),
            ["--produce", count, write_fd, read_fd] => {
                let count = parse_count(count)?;
                let (write_end, read_end) = inherited_pipe(write_fd, read_fd)?;
                produce(count, write_end, read_end)
            }
            ["--keep-even", read_fd, write_fd] => {
                let (read_end, write_end) = inherited_pipe(read_fd, write_fd)?;
                keep_even(read_end, write_end)
            }
            _ => Err(format!("unexpected arguments {args:?}; {USAGE}").into()),
        }
    })
}

fn parse_count(arg: &str) -> Result<u64, BoxError> {
    arg.parse()
        .map_err(|e| format!("COUNT must be a whole number, not {arg:?} ({e}); {USAGE}").into())
}

/// Starts the producer and the filter on a pipe, prints what the filter
/// writes, waits for both.
fn parent(count: u64) -> Result<(), BoxError> {
    // Not close-on-exec: both children must inherit both ends.
    let (read_end, write_end) =
        rustix::pipe::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let (read_fd, write_fd) = (raw(&read_end), raw(&write_end));
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;

    let mut producer = Command::new(&exe)
        .args(["--produce", &count.to_string(), &write_fd, &read_fd])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the producer: {e}"))?;
    let filter = Command::new(&exe)
        .args(["--keep-even", &read_fd, &write_fd])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    // The parent uses neither end: close both now, or the filter never
    // sees end of file.
    drop((read_end, write_end));
    let mut filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            let _ = producer.wait();
            return Err(format!("cannot start the filter: {e}").into());
        }
    };

    // Like reading from `popen(cmd, "r")`.
    let pipeline = filter
        .stdout
        .take()
        .ok_or("the filter has no stdout pipe")?;
    let relayed = relay(BufReader::new(pipeline));
    let producer_status = producer.wait();
    let filter_status = filter.wait();
    relayed?;
    for (role, status) in [("producer", producer_status), ("filter", filter_status)] {
        let status = status.map_err(|e| format!("cannot wait for the {role}: {e}"))?;
        if !status.success() {
            return Err(format!("the {role} failed ({status})").into());
        }
    }
    Ok(())
}

/// Copies the pipeline's output to our stdout, line by line.
fn relay(pipeline: impl BufRead) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    for line in pipeline.lines() {
        let line = line.map_err(|e| format!("cannot read the pipeline's output: {e}"))?;
        writeln!(out, "{line}").map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    Ok(())
}

/// The producer: stdout becomes the pipe; prints 1..=count.
fn produce(count: u64, write_end: OwnedFd, read_end: OwnedFd) -> Result<(), BoxError> {
    // dup2(write_end, STDOUT_FILENO): fd 1 now refers to the pipe.
    rustix::stdio::dup2_stdout(&write_end).map_err(|e| format!("dup2 onto stdout: {e}"))?;
    // Fd 1 is enough; close the originals, the unused read end included.
    drop((write_end, read_end));

    let mut out = std::io::stdout().lock();
    for n in 1..=count {
        writeln!(out, "{n}").map_err(|e| format!("cannot write to the pipe: {e}"))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write to the pipe: {e}"))?;
    Ok(())
}

/// The filter: stdin becomes the pipe; copies even numbers to stdout.
fn keep_even(read_end: OwnedFd, write_end: OwnedFd) -> Result<(), BoxError> {
    // dup2(read_end, STDIN_FILENO): fd 0 now refers to the pipe.
    rustix::stdio::dup2_stdin(&read_end).map_err(|e| format!("dup2 onto stdin: {e}"))?;
    // Closing our copy of the write end is what lets end of file come.
    drop((read_end, write_end));

    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read the pipe: {e}"))?;
        let even = line.trim().parse::<u64>().is_ok_and(|n| n % 2 == 0);
        if even {
            writeln!(out, "{line}").map_err(|e| format!("cannot write to stdout: {e}"))?;
        }
    }
    Ok(())
}

/// The number of `fd`, as an argument for a child.
fn raw(fd: &OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd().to_string()
}

/// Takes ownership of the two pipe ends inherited as descriptors `used`
/// and `unused`.
fn inherited_pipe(used: &str, unused: &str) -> Result<(OwnedFd, OwnedFd), BoxError> {
    let (used, unused) = (fd_number(used)?, fd_number(unused)?);
    if used == unused {
        return Err(format!("the two pipe ends must differ, both are {used}").into());
    }
    Ok((inherited(used)?, inherited(unused)?))
}

fn fd_number(arg: &str) -> Result<RawFd, BoxError> {
    arg.parse()
        .map_err(|_| format!("{arg:?} is not a file descriptor number").into())
}

/// Takes ownership of the pipe end inherited as descriptor `fd`.
fn inherited(fd: RawFd) -> Result<OwnedFd, BoxError> {
    // Never stdin, stdout or stderr: `std` owns those.
    let is_pipe = fd > 2
        && std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok_and(|m| m.file_type().is_fifo());
    if !is_pipe {
        return Err(format!("descriptor {fd} is not an inherited pipe end").into());
    }
    // SAFETY: `fd` is open and is a pipe (checked just above, and this
    // process has one thread, so nothing closed or replaced it since). It
    // was inherited from the parent, which passed its number for us to
    // take; nothing in this process opened it, so nothing else owns it,
    // and `inherited_pipe` never takes the same number twice.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
