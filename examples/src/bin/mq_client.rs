//! A POSIX message queue with priorities: the client, which sends.
//!
//! ```text
//! cargo run -p shmlane-examples --bin mq_client -- [NAME] [PRIORITY:TEXT...]
//! sent priority 1: routine: rotate the logs
//! sent priority 9: URGENT: the build is on fire
//! ...
//! sent priority 0: quit
//! ```
//!
//! NAME defaults to `/shmlane-mq-demo`; start `mq_server` first (it creates
//! the queue; see it for the lesson). Each further argument is a message
//! as `PRIORITY:TEXT`, PRIORITY from 0 to 32767 (higher is more urgent);
//! without any, the client sends a mix of routine, normal and urgent
//! messages in an order the server will not receive them in. Last it sends
//! `quit` with priority 0, the lowest, which tells the server to stop once
//! everything else has been received.
//!
//! The client only opens the queue (`mq_open` without `O_CREAT`), sends
//! (`mq_send`, waiting for room if the queue is full) and closes it; the
//! messages stay in the queue after it exits.

use std::io::Write;
use std::process::ExitCode;

use shmlane_posix::Error;
use shmlane_posix::mqueue::{MAX_PRIORITY, MessageQueue};

use shmlane_examples::{BoxError, run};

const DEFAULT_NAME: &str = "/shmlane-mq-demo";
const USAGE: &str = "usage: mq_client [NAME] [PRIORITY:TEXT...]";

/// Sent when no messages are given: urgent ones after routine ones.
const DEFAULT_MESSAGES: [(u32, &str); 5] = [
    (1, "routine: rotate the logs"),
    (9, "URGENT: the build is on fire"),
    (5, "normal: review the pull request"),
    (1, "routine: water the plants"),
    (9, "URGENT: page the on-call"),
];

fn main() -> ExitCode {
    run("mq_client", || {
        let mut args = std::env::args().skip(1);
        let name = args.next().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let mut messages = args
            .map(|arg| parse_message(&arg))
            .collect::<Result<Vec<_>, _>>()?;
        if messages.is_empty() {
            messages = DEFAULT_MESSAGES
                .iter()
                .map(|&(priority, text)| (priority, text.to_owned()))
                .collect();
        }
        messages.push((0, "quit".to_owned()));
        send_all(&name, &messages)
    })
}

/// Parses `PRIORITY:TEXT`.
fn parse_message(arg: &str) -> Result<(u32, String), BoxError> {
    let (priority, text) = arg
        .split_once(':')
        .ok_or_else(|| format!("message {arg:?} is not PRIORITY:TEXT; {USAGE}"))?;
    let priority = priority
        .parse::<u32>()
        .ok()
        .filter(|&p| p <= MAX_PRIORITY)
        .ok_or_else(|| {
            format!("priority {priority:?} of {arg:?} is not a number from 0 to {MAX_PRIORITY}")
        })?;
    Ok((priority, text.to_owned()))
}

fn send_all(name: &str, messages: &[(u32, String)]) -> Result<(), BoxError> {
    let queue = MessageQueue::open(name).map_err(|e| match e {
        Error::NotFound { .. } => format!("no queue named {name}: start mq_server first"),
        e => format!("cannot open the queue {name}: {e}"),
    })?;
    let mut out = std::io::stdout().lock();
    for (priority, text) in messages {
        queue
            .send(text.as_bytes(), *priority)
            .map_err(|e| format!("cannot send {text:?}: {e}"))?;
        writeln!(out, "sent priority {priority}: {text}")
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    Ok(())
}
