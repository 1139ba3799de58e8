//! The writing end of a named pipe (FIFO): opens it and writes a message.
//!
//! ```text
//! cargo run -p shmlane-examples --bin fifo_reader -- [PATH]            # first
//! cargo run -p shmlane-examples --bin fifo_writer -- [PATH] [MESSAGE...]
//! ```
//!
//! PATH defaults to `./named_pipe`, MESSAGE to `Hello World` (several words
//! are joined with spaces). `fifo_reader` creates the FIFO and prints the
//! message; see it for the lesson.
//!
//! The writer only opens an existing FIFO: it never creates one (the
//! reader does, and removes it), and it refuses a path that is not a FIFO,
//! so a typo cannot overwrite a regular file. Its `open` blocks until a
//! reader has the FIFO open; closing its end (at exit) is the reader's end
//! of file. It prints nothing.

use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::process::ExitCode;

use shmlane_examples::{BoxError, run};

fn main() -> ExitCode {
    run("fifo_writer", || {
        let mut args = std::env::args_os().skip(1);
        let path = PathBuf::from(args.next().unwrap_or_else(|| "./named_pipe".into()));
        let words: Vec<Vec<u8>> = args.map(|word| word.into_vec()).collect();
        let message = if words.is_empty() {
            b"Hello World".to_vec()
        } else {
            words.join(&b' ')
        };
        write_fifo(&path, &message)
    })
}

fn write_fifo(path: &std::path::Path, message: &[u8]) -> Result<(), BoxError> {
    let is_fifo = std::fs::metadata(path)
        .map_err(|e| {
            format!(
                "no FIFO at {} ({e}): start fifo_reader with this path first",
                path.display()
            )
        })?
        .file_type()
        .is_fifo();
    if !is_fifo {
        return Err(format!("{} is not a FIFO; refusing to write to it", path.display()).into());
    }
    // Write only, never create or truncate. Blocks until a reader opens it.
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open the FIFO {}: {e}", path.display()))?;
    fifo.write_all(message)
        .map_err(|e| format!("cannot write to the FIFO {}: {e}", path.display()))?;
    // Dropping `fifo` closes the write end: the reader sees end of file.
    Ok(())
}
