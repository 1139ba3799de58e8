//! Shared memory, with the synchronisation the notes say is required: the
//! reader.
//!
//! ```text
//! cargo run -p shmlane-examples --bin shm_writer -- [NAME] [MESSAGE...]   # first
//! cargo run -p shmlane-examples --bin shm_reader -- [NAME]
//! Hello World
//! some synchronisation is required
//! and two binary semaphores provide it
//! ```
//!
//! NAME defaults to `/shmlane-shm-demo`. The reader opens the segment the
//! writer created (`shm_open` without `O_CREAT`, then `mmap`: inside
//! [`shmlane_posix::Segment::open`]); if there is none yet it says so and
//! exits, so start the writer first. Then, for each message: wait on
//! `full`, copy the message out, post `empty` (the slot is free again),
//! print it. An empty message means the writer is done.
//!
//! Copying out *before* posting `empty` is the point: once `empty` is
//! posted, the writer may overwrite the slot. See `shm_writer` for the
//! whole lesson: why the semaphores are needed, and why futex words in the
//! segment work across processes.
//!
//! If the writer dies before it sends "done", the reader notices within a
//! fraction of a second (the writer's lock on the segment is gone) and
//! exits with an error instead of waiting for ever.

use std::io::Write;
use std::process::ExitCode;

use shmlane_examples::mailbox::{MailboxError, SharedMailbox};
use shmlane_examples::{BoxError, run};

const DEFAULT_NAME: &str = "/shmlane-shm-demo";

fn main() -> ExitCode {
    run("shm_reader", || {
        let mut args = std::env::args().skip(1);
        let name = args.next().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        if args.next().is_some() {
            return Err("usage: shm_reader [NAME]".into());
        }
        read_messages(&name)
    })
}

fn read_messages(name: &str) -> Result<(), BoxError> {
    let shared = SharedMailbox::open(name)
        .map_err(|e| format!("cannot open the mailbox {name}: {e} (start shm_writer first)"))?;
    let mailbox = shared.mailbox();
    let mut out = std::io::stdout().lock();
    loop {
        // 1. Wait until the writer has put a whole message in the slot.
        mailbox
            .full
            .wait(|| shared.peer_alive())
            .map_err(|e| match e {
                MailboxError::PeerGone => "the writer exited without sending \"done\"".to_owned(),
                e => format!("waiting for the writer: {e}"),
            })?;
        // 2. Copy it out, while the writer keeps its hands off.
        let message = mailbox.load();
        // 3. The slot is free again.
        mailbox.empty.post();
        if message.is_empty() {
            return Ok(()); // "done"
        }
        out.write_all(&message)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
}
