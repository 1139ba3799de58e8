//! Unit tests of the message queues (real queues of this process): the
//! shared helpers here, the tests by what they are about.

use super::*;
use crate::Object;
use std::time::Instant;

mod lifecycle;
mod messages;

#[path = "../../../tests/support/run_id.rs"]
mod run_id;

/// A queue name unique to this test and this run of the process (see
/// [`run_id::run_id`]).
fn qname(tag: &str) -> String {
    format!("/shmlane-mq-test-{}-{tag}", run_id::run_id())
}

/// Removes a name when dropped, for tests that keep a queue past its
/// handles (also on panic).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = MessageQueue::unlink(&self.0);
    }
}

fn small() -> MqOptions {
    MqOptions::new().capacity(4).max_message(256)
}

/// Creates a queue, or `None` (with a note) if this kernel has no
/// POSIX message queues.
fn create(name: &str, options: &MqOptions) -> Option<MessageQueue> {
    match MessageQueue::create(name, options) {
        Ok(q) => Some(q),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOSYS) => {
            eprintln!("skipped: POSIX message queues are not available (ENOSYS)");
            None
        }
        Err(e) => panic!("create {name}: {e}"),
    }
}

fn limit(file: &str) -> u64 {
    read_limit(file).expect("read /proc/sys/fs/mqueue limit")
}
