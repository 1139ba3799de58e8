//! A POSIX message queue with priorities: the server, which receives.
//!
//! ```text
//! cargo run -p shmlane-examples --bin mq_server -- [NAME]   # terminal 1
//! ready
//! cargo run -p shmlane-examples --bin mq_client -- [NAME]   # terminal 2
//! (press Enter in terminal 1)
//! priority 9: URGENT: the build is on fire
//! priority 9: URGENT: page the on-call
//! priority 5: normal: review the pull request
//! priority 1: routine: rotate the logs
//! priority 1: routine: water the plants
//! priority 0: quit
//! ```
//!
//! NAME defaults to `/shmlane-mq-demo`. The server creates the queue
//! (`mq_open` with `O_CREAT | O_EXCL`), prints `ready`, and waits for a
//! line on its stdin (`go`, or just Enter) before it receives, so that the
//! client's messages are all queued first. Then it prints
//! `priority P: TEXT` for each message until the text is `quit`. Dropping
//! the queue at the end removes its name (`mq_unlink`).
//!
//! What it teaches:
//!
//! - A message queue keeps message boundaries (a pipe is a byte stream),
//!   has a name that unrelated processes can open, and holds messages in
//!   the kernel until someone receives them, even if the sender is gone.
//! - Every message has a priority, and `mq_receive` returns the message of
//!   the highest priority first, in the order sent within one priority. So
//!   urgent messages overtake the routine ones queued before them, and the
//!   client's `quit`, sent last with priority 0, is received last.
//! - A queue holds at most `mq_maxmsg` messages (10 by default on Linux);
//!   a sender to a full queue waits for room.
//!
//! The queue is [`shmlane_posix::mqueue::MessageQueue`], a safe wrapper
//! over `mq_open`, `mq_send`, `mq_receive` and `mq_unlink`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use shmlane_posix::Error;
use shmlane_posix::mqueue::{MessageQueue, MqOptions};

use shmlane_examples::{BoxError, run};

const DEFAULT_NAME: &str = "/shmlane-mq-demo";
/// Longest message this server accepts, in bytes.
const MAX_MESSAGE: usize = 256;

fn main() -> ExitCode {
    run("mq_server", || {
        let mut args = std::env::args().skip(1);
        let name = args.next().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        if args.next().is_some() {
            return Err("usage: mq_server [NAME]".into());
        }
        serve(&name)
    })
}

fn serve(name: &str) -> Result<(), BoxError> {
    let options = MqOptions::new().max_message(MAX_MESSAGE);
    let mut queue = MessageQueue::create(name, &options).map_err(|e| match e {
        Error::AlreadyExists { .. } => format!(
            "a queue named {name} exists already: another mq_server is running, or a killed \
             one left it behind (then remove it: rm /dev/mqueue{name}, with the mqueue file \
             system mounted there)"
        ),
        e => format!("cannot create the queue {name}: {e}"),
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").map_err(|e| format!("cannot write to stdout: {e}"))?;

    // Wait for the go-ahead: one line on stdin (end of file counts too).
    let mut go = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut go)
        .map_err(|e| format!("cannot read stdin: {e}"))?;

    let mut buf = [0u8; MAX_MESSAGE];
    loop {
        let (len, priority) = queue
            .recv(&mut buf)
            .map_err(|e| format!("cannot receive from {name}: {e}"))?;
        let text = String::from_utf8_lossy(&buf[..len]);
        writeln!(out, "priority {priority}: {text}")
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
        if text == "quit" {
            return Ok(()); // `queue` drops: the name is removed
        }
    }
}
