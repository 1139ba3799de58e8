//! A pipe from a parent to its child: the first program of the notes.
//!
//! ```text
//! cargo run -p shmlane-examples --bin pipe_hello
//! Hello World!
//! ```
//!
//! The parent creates a pipe, starts a child with the pipe's read end as
//! its stdin, writes `Hello World!` into the write end and closes it. The
//! child reads until end of file and prints what it read and a newline.
//!
//! What it teaches:
//!
//! - A pipe is a one-way byte stream through the kernel: `pipe()` returns a
//!   read end and a write end, and data written to one comes out of the
//!   other, buffered by the kernel.
//! - End of file is how the reader learns that the writer is done: `read`
//!   returns 0 once *every* write end is closed and the pipe is drained.
//!   So every process must close the ends it does not use; a reader that
//!   keeps a write end open itself waits for ever.
//! - The C version forks, and each process closes the end it does not use.
//!   Rust starts a child with `std::process::Command` (fork and exec), and
//!   closing in the child is done by close-on-exec: the pipe is created
//!   with `CLOEXEC`, so the child inherits neither end, except the read end
//!   that `Command` installs as its stdin (`dup2` onto fd 0, which clears
//!   the flag there). Everything `std` opens is close-on-exec for the same
//!   reason. The parent closes its copy of the read end when the `Command`
//!   holding it is dropped, and its write end when it is done writing.
//! - The child is this same program run with `--child` (the exec half of
//!   fork-and-exec); `pipe_hello --child` alone echoes its stdin.

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};

use rustix::pipe::{PipeFlags, pipe_with};
use shmlane_examples::{BoxError, run};

const MESSAGE: &str = "Hello World!";

fn main() -> ExitCode {
    run("pipe_hello", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.as_slice() {
            [] => parent(),
            [flag] if flag == "--child" => child(),
            _ => Err(format!("unexpected arguments {args:?}; usage: pipe_hello").into()),
        }
    })
}

/// Creates the pipe, starts the child on its read end, writes the message.
fn parent() -> Result<(), BoxError> {
    let (read_end, write_end) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))?;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    // `Stdio::from` takes the read end: the child gets it as fd 0, and our
    // copy is closed when the `Command` is dropped, at the end of this
    // statement.
    let mut child = Command::new(exe)
        .arg("--child")
        .stdin(Stdio::from(read_end))
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;

    let mut pipe = std::fs::File::from(write_end);
    let written = pipe
        .write_all(MESSAGE.as_bytes())
        .map_err(|e| format!("cannot write to the pipe: {e}"));
    // Close the write end: the child's read returns 0 (end of file) once it
    // has read everything. Without this it would wait for more for ever.
    drop(pipe);

    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the child: {e}"))?;
    written?;
    if !status.success() {
        return Err(format!("the child failed ({status})").into());
    }
    Ok(())
}

/// Reads stdin (the pipe) until end of file, then prints it and a newline.
fn child() -> Result<(), BoxError> {
    let mut received = Vec::new();
    std::io::stdin()
        .read_to_end(&mut received)
        .map_err(|e| format!("cannot read the pipe: {e}"))?;
    received.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&received)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    Ok(())
}
