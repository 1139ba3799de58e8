//! Shared helpers of the `shmlane-examples` programs.
//!
//! - [`run`]: the `main` of every program: run its body, and on error print
//!   `program: message` to stderr and exit with status 1.
//! - [`mailbox`]: the shared-memory mailbox of `shm_writer` and
//!   `shm_reader` (one layout, so it is defined once, here).
//! - [`ofd`]: open-file-description locks, for `shm_writer`/`shm_reader`'s
//!   mailbox and `file_lock`.
//! - [`rtt`]: round trips and their echoing peer, shared by `pingpong` and
//!   `bench`.

use std::error::Error;
use std::process::ExitCode;

pub mod mailbox;
pub mod ofd;
pub mod rtt;

/// The error type of the programs' bodies: any error, with a message that
/// says what failed. A `String` converts into it, so
/// `.map_err(|e| format!("opening {path}: {e}"))?` adds context.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Runs a program's body and turns its result into the exit status: `0` on
/// success; on error, `program: message` on stderr and status `1`.
///
/// (Returning `Result` from `main` would print the error's `Debug` form,
/// quotes and all; this prints its `Display` form.)
///
/// # Examples
///
/// ```
/// use std::process::ExitCode;
///
/// fn main() -> ExitCode {
///     shmlane_examples::run("hello", || {
///         let count: u32 = "3".parse().map_err(|e| format!("bad count: {e}"))?;
///         assert_eq!(count, 3);
///         Ok(())
///     })
/// }
/// ```
pub fn run(program: &str, body: impl FnOnce() -> Result<(), BoxError>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}
