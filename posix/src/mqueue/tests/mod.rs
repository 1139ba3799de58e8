//! Unit tests of the message queues (real queues of this process): the
//! shared helpers here, the tests by what they are about.

use super::*;
use crate::Object;
use std::time::Instant;

mod lifecycle;
mod messages;

/// A queue name unique to this test and this run of the process: the pid
/// and the time the first name was made (pids repeat across runs in fresh
/// containers, while a leaked queue outlives them in the IPC namespace).
fn qname(tag: &str) -> String {
    static RUN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.map_or(0, |d| d.as_nanos() as u64 & 0xffff_ffff_ffff)
    });
    format!("/shmlane-mq-test-{}-{run:x}-{tag}", std::process::id())
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
