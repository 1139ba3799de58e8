//! Shared memory, with the synchronisation the notes say is required: the
//! writer.
//!
//! ```text
//! cargo run -p shmlane-examples --bin shm_writer -- [NAME] [MESSAGE...]   # terminal 1
//! ready
//! cargo run -p shmlane-examples --bin shm_reader -- [NAME]                # terminal 2
//! ```
//!
//! NAME defaults to `/shmlane-shm-demo`; each further argument is one
//! message (default: three lines). The writer creates the named segment
//! (`shm_open` with `O_CREAT | O_EXCL`, `ftruncate`, `mmap`: all inside
//! [`shmlane_posix::Segment::create`]), prints `ready`, then hands each
//! message to the reader, printing `sent: MESSAGE` once it is in the
//! mailbox, and finally an empty message meaning "done". Dropping the
//! segment at the end removes its name (the creator unlinks). A reader
//! started before the writer reports that there is no segment yet.
//!
//! The notes' writer `memcpy`s into the mapping between two comments
//! "Some synchronisation is required". Here is why, and what provides it.
//! Shared memory is just memory: nothing tells the reader that a message
//! is complete, and nothing stops the writer from overwriting a message
//! the reader has not read yet. The segment therefore holds, next to a
//! length and a byte buffer, two binary semaphores:
//!
//! - `empty` (starts at 1): the writer may write;
//! - `full` (starts at 0): the reader may read.
//!
//! For each message the writer waits on `empty`, copies, posts `full`; the
//! reader waits on `full`, copies out, posts `empty`. The two take turns,
//! and neither ever sees half a message.
//!
//! The semaphores are futex words: 32-bit atomics in the segment, slept on
//! with `futex(FUTEX_WAIT)` and woken with `futex(FUTEX_WAKE)`, without the
//! `PRIVATE` flag. A shared futex is identified by the page it lives in
//! (the segment's file and offset), not by its virtual address, which
//! differs between the two processes; so the writer's wake reaches the
//! reader sleeping on the same word in its own mapping. The layout and the
//! semaphores are in [`shmlane_examples::mailbox`].
//!
//! A blocked side also notices when the other one dies (each holds a byte
//! lock on the segment that the kernel drops at its death), so killing one
//! never leaves the other waiting for ever; and a writer killed before it
//! could remove its segment does not block the next writer, which finds the
//! abandoned mailbox and replaces it.
//!
//! This is the classic one-slot version of the idea. The production version
//! is [`shmlane_posix::Sender`] / [`shmlane_posix::Receiver`]: a ring of many
//! messages, so the writer does not wait for every read, and an eventcount
//! gate that makes a system call only when a side really has to sleep.

use std::io::Write;
use std::process::ExitCode;

use shmlane_examples::mailbox::{MAX_MESSAGE, MailboxError, SharedMailbox};
use shmlane_examples::{BoxError, run};

const DEFAULT_NAME: &str = "/shmlane-shm-demo";
const DEFAULT_MESSAGES: [&str; 3] = [
    "Hello World",
    "some synchronisation is required",
    "and two binary semaphores provide it",
];

fn main() -> ExitCode {
    run("shm_writer", || {
        let mut args = std::env::args().skip(1);
        let name = args.next().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let mut messages: Vec<String> = args.collect();
        if messages.is_empty() {
            messages = DEFAULT_MESSAGES.map(str::to_owned).to_vec();
        }
        if messages.iter().any(String::is_empty) {
            return Err("messages must not be empty (an empty message means \"done\")".into());
        }
        if let Some(long) = messages.iter().find(|m| m.len() > MAX_MESSAGE) {
            let len = long.len();
            return Err(
                format!("a message of {len} bytes exceeds the maximum of {MAX_MESSAGE}").into(),
            );
        }
        write_messages(&name, &messages)
    })
}

fn write_messages(name: &str, messages: &[String]) -> Result<(), BoxError> {
    let shared = SharedMailbox::create(name).map_err(|e| match e {
        MailboxError::Segment(shmlane_posix::Error::AlreadyExists { .. }) => format!(
            "cannot create the mailbox {name}: another shm_writer is using it, \
             or the name belongs to something else"
        ),
        e => format!("cannot create the mailbox {name}: {e}"),
    })?;
    let mailbox = shared.mailbox();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").map_err(|e| format!("cannot write to stdout: {e}"))?;

    let done = String::new();
    for message in messages.iter().chain([&done]) {
        // 1. Wait until the reader has taken the previous message.
        mailbox
            .empty
            .wait(|| shared.peer_alive())
            .map_err(|e| match e {
                MailboxError::PeerGone => {
                    "the reader exited before taking every message".to_owned()
                }
                e => format!("waiting for the reader: {e}"),
            })?;
        // 2. The slot is ours: copy the message in.
        mailbox
            .store(message.as_bytes())
            .map_err(|e| format!("cannot send {message:?}: {e}"))?;
        // 3. Tell the reader that a whole message is there.
        mailbox.full.post();
        if !message.is_empty() {
            writeln!(out, "sent: {message}").map_err(|e| format!("cannot write to stdout: {e}"))?;
        }
    }
    // `shared` drops here: unmapped, and its name removed.
    Ok(())
}
