//! The reading end of a named pipe (FIFO): creates it, reads it, removes it.
//!
//! ```text
//! cargo run -p shmlane-examples --bin fifo_reader -- [PATH]      # terminal 1
//! ready: ./named_pipe has mode 644 (asked for 666; the umask removed 022)
//! cargo run -p shmlane-examples --bin fifo_writer -- [PATH] [MESSAGE]   # terminal 2
//! Hello World                                                  # terminal 1
//! ```
//!
//! PATH defaults to `./named_pipe`. Run `fifo_writer` with the same PATH.
//!
//! What it teaches:
//!
//! - A FIFO is a pipe with a name in the file system (`mkfifo`), so two
//!   processes that are not parent and child can find it. The data never
//!   touches the disk: it goes through the kernel, as in a pipe.
//! - `mkfifo(path, mode)` asks for permission bits `mode`, but the file
//!   gets `mode & !umask`: the process's umask removes bits. This program
//!   asks for 0666 and prints what it got (0644 under the usual umask 022).
//! - Opening a FIFO blocks until the other end is opened too: the reader's
//!   `open` returns when a writer opens the FIFO, and the other way round.
//!   That is the rendezvous. Then the reader reads until end of file,
//!   which comes when the writer closes its end.
//! - The process that created the FIFO removes it (`unlink`), also when it
//!   fails; the path is free for the next run.
//!
//! It prints `ready: ...` once the FIFO exists, before it blocks in `open`,
//! so that a script (or a test) knows when to start the writer.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustix::fs::{CWD, Mode};
use rustix::io::Errno;
use shmlane_examples::{BoxError, run};

/// The permission bits asked for; the FIFO gets `REQUESTED_MODE & !umask`.
const REQUESTED_MODE: u32 = 0o666;

fn main() -> ExitCode {
    run("fifo_reader", || {
        let mut args = std::env::args_os().skip(1);
        let path = PathBuf::from(args.next().unwrap_or_else(|| "./named_pipe".into()));
        if args.next().is_some() {
            return Err("usage: fifo_reader [PATH]".into());
        }
        read_fifo(&path)
    })
}

/// Removes the FIFO when dropped: the creator unlinks, on every path out.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

fn read_fifo(path: &Path) -> Result<(), BoxError> {
    rustix::fs::mkfifoat(CWD, path, Mode::from_raw_mode(REQUESTED_MODE)).map_err(|e| {
        let hint = match e {
            Errno::EXIST => " (remove it if no fifo_reader is using it)",
            _ => "",
        };
        format!("cannot create the FIFO {}: {e}{hint}", path.display())
    })?;
    let _remove = RemoveOnDrop(path);

    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot stat the FIFO {}: {e}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ready: {} has mode {mode:o} (asked for {REQUESTED_MODE:o}; the umask removed {:03o})",
        path.display(),
        REQUESTED_MODE & !mode,
    )
    .map_err(|e| format!("cannot write to stdout: {e}"))?;

    // Blocks until a writer opens the FIFO.
    let mut fifo = std::fs::File::open(path)
        .map_err(|e| format!("cannot open the FIFO {}: {e}", path.display()))?;
    let mut message = Vec::new();
    fifo.read_to_end(&mut message)
        .map_err(|e| format!("cannot read the FIFO {}: {e}", path.display()))?;
    message.push(b'\n');
    out.write_all(&message)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    Ok(())
}
