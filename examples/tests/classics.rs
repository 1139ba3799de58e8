//! The classic IPC programs, run as real processes.
//!
//! Nothing here sleeps to order events: a test waits for a line a program
//! prints (read from its stdout pipe), or for a process to exit. Every
//! read and wait has a 30-second deadline as a safety net only: a program
//! that hangs is killed and the test fails, instead of hanging the suite.
//!
//! Every test uses names and paths of its own (with this process's id), and
//! checks that the programs removed what they created.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;

mod support;
use support::*;

// ---------------------------------------------------------------- pipes

#[test]
fn pipe_hello_child_prints_what_the_parent_wrote() {
    let out = Program::run("pipe_hello", &[]);
    out.assert_success();
    assert_eq!(out.stdout, "Hello World!\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn pipe_hello_child_reads_until_end_of_file() {
    let mut child = Program::start("pipe_hello", &["--child"]);
    child.write_stdin("two\n");
    child.write_stdin("lines");
    // `finish` closes stdin: the end of file the child waits for.
    let out = child.finish();
    out.assert_success();
    assert_eq!(out.stdout, "two\nlines\n");
}

#[test]
fn pipe_hello_refuses_unknown_arguments() {
    let out = Program::run("pipe_hello", &["--parent"]);
    out.assert_failure("unexpected arguments");
    assert_eq!(out.stdout, "");
}

#[test]
fn filter_pipeline_keeps_the_even_numbers() {
    let out = Program::run("filter", &[]);
    out.assert_success();
    assert_eq!(out.stdout, "2\n4\n6\n8\n10\n");

    let out = Program::run("filter", &["7"]);
    out.assert_success();
    assert_eq!(out.stdout, "2\n4\n6\n");

    let out = Program::run("filter", &["1"]);
    out.assert_success();
    assert_eq!(out.stdout, "");
}

#[test]
fn filter_pipeline_carries_more_than_a_pipe_buffer() {
    // 100 000 numbers are some 590 kB: many times the 64 KiB a pipe
    // buffers, so the producer blocks on a full pipe until the filter reads.
    let out = Program::run("filter", &["100000"]);
    out.assert_success();
    let expected: String = (1..=100_000)
        .filter(|n| n % 2 == 0)
        .map(|n| format!("{n}\n"))
        .collect();
    assert!(out.stdout == expected, "wrong pipeline output");
}

#[test]
fn filter_refuses_bad_input() {
    Program::run("filter", &["ten"]).assert_failure("COUNT must be a whole number");
    Program::run("filter", &["-5"]).assert_failure("COUNT must be a whole number");
    // Roles given descriptors that are not inherited pipe ends.
    Program::run("filter", &["--keep-even", "1", "2"]).assert_failure("not an inherited pipe end");
    Program::run("filter", &["--keep-even", "40", "41"])
        .assert_failure("not an inherited pipe end");
    Program::run("filter", &["--produce", "3", "9", "9"]).assert_failure("must differ");
    Program::run("filter", &["--produce", "3", "x", "9"])
        .assert_failure("not a file descriptor number");
}

// ---------------------------------------------------------------- FIFOs

#[test]
fn fifo_reader_prints_what_fifo_writer_wrote() {
    let dir = TempDir::new("fifo");
    let path = dir.path_str("named_pipe");
    let mut reader = Program::start("fifo_reader", &[&path]);

    // The FIFO exists once the reader says so; its mode is 0666 & !umask.
    let mode = 0o666 & !umask();
    assert_eq!(
        reader.line(),
        format!(
            "ready: {path} has mode {mode:o} (asked for 666; the umask removed {:03o})",
            0o666 & umask()
        )
    );
    let meta = fs::metadata(&path).expect("the FIFO exists");
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, mode);

    let writer = Program::run("fifo_writer", &[&path, "through", "a", "FIFO"]);
    writer.assert_success();
    assert_eq!(writer.stdout, "");

    let out = reader.finish();
    out.assert_success();
    assert_eq!(out.stdout, "through a FIFO\n");
    assert!(dir.entries().is_empty(), "the reader removes its FIFO");
}

#[test]
fn fifo_writer_sends_hello_world_by_default() {
    let dir = TempDir::new("fifo-default");
    let path = dir.path_str("named_pipe");
    let mut reader = Program::start("fifo_reader", &[&path]);
    assert!(reader.line().starts_with("ready: "));
    Program::run("fifo_writer", &[&path]).assert_success();
    let out = reader.finish();
    out.assert_success();
    assert_eq!(out.stdout, "Hello World\n");
    assert!(dir.entries().is_empty());
}

#[test]
fn fifo_writer_refuses_a_missing_fifo_and_a_regular_file() {
    let dir = TempDir::new("fifo-refuse");
    Program::run("fifo_writer", &[&dir.path_str("missing")]).assert_failure("start fifo_reader");
    assert!(
        dir.entries().is_empty(),
        "the writer never creates the FIFO"
    );

    let file = dir.join("notes.txt");
    fs::write(&file, "keep me").unwrap();
    Program::run("fifo_writer", &[file.to_str().unwrap(), "overwritten"])
        .assert_failure("is not a FIFO");
    assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn fifo_reader_refuses_a_taken_path_and_keeps_the_file() {
    let dir = TempDir::new("fifo-taken");
    let file = dir.join("named_pipe");
    fs::write(&file, "not a FIFO").unwrap();
    let out = Program::run("fifo_reader", &[file.to_str().unwrap()]);
    out.assert_failure("cannot create the FIFO");
    assert_eq!(out.stdout, "");
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a FIFO");
}

// ---------------------------------------------------------------- shared memory

#[test]
fn shm_reader_prints_every_message_in_order() {
    let name = ShmName::new("shm");
    let mut writer = Program::start("shm_writer", &[&name.0, "one", "two words", "three"]);
    assert_eq!(writer.line(), "ready");
    assert!(name.exists());

    let reader = Program::run("shm_reader", &[&name.0]);
    reader.assert_success();
    assert_eq!(reader.stdout, "one\ntwo words\nthree\n");

    let out = writer.finish();
    out.assert_success();
    assert_eq!(out.stdout, "sent: one\nsent: two words\nsent: three\n");
    assert!(!name.exists(), "the writer removes its segment");
}

#[test]
fn shm_writer_sends_three_lines_by_default() {
    let name = ShmName::new("shm-default");
    let mut writer = Program::start("shm_writer", &[&name.0]);
    assert_eq!(writer.line(), "ready");
    let reader = Program::run("shm_reader", &[&name.0]);
    reader.assert_success();
    assert_eq!(
        reader.stdout,
        "Hello World\nsome synchronisation is required\nand two binary semaphores provide it\n"
    );
    writer.finish().assert_success();
    assert!(!name.exists());
}

#[test]
fn shm_reader_reports_a_killed_writer_and_the_next_writer_starts_afresh() {
    let name = ShmName::new("shm-killed");
    let mut writer = Program::start("shm_writer", &[&name.0, "first", "second"]);
    assert_eq!(writer.line(), "ready");
    // "first" is in the mailbox; the writer now waits for a reader to take
    // it before it can send "second". Kill it there.
    assert_eq!(writer.line(), "sent: first");
    assert!(!writer.kill().success());
    assert!(name.exists(), "a killed writer cannot remove its segment");

    // The reader gets what was sent, then learns that nothing more comes.
    let reader = Program::run("shm_reader", &[&name.0]);
    reader.assert_failure("the writer exited without sending \"done\"");
    assert_eq!(reader.stdout, "first\n");

    // The abandoned segment does not block the next writer.
    let mut writer = Program::start("shm_writer", &[&name.0, "again"]);
    assert_eq!(writer.line(), "ready");
    let reader = Program::run("shm_reader", &[&name.0]);
    reader.assert_success();
    assert_eq!(reader.stdout, "again\n");
    writer.finish().assert_success();
    assert!(!name.exists());
}

#[test]
fn shm_programs_refuse_bad_input() {
    let name = ShmName::new("shm-refuse");
    Program::run("shm_reader", &[&name.0]).assert_failure("start shm_writer first");
    Program::run("shm_writer", &[&name.0, "fine", ""]).assert_failure("must not be empty");
    let long = "x".repeat(1025);
    Program::run("shm_writer", &[&name.0, &long]).assert_failure("exceeds the maximum of 1024");
    Program::run("shm_writer", &["no-slash"]).assert_failure("must start with '/'");
    assert!(!name.exists(), "nothing was created");
}

// ---------------------------------------------------------------- message queues

#[test]
fn mq_urgent_messages_overtake_routine_ones() {
    let name = QueueName::new("mq");
    let mut server = Program::start("mq_server", &[&name.0]);
    assert_eq!(server.line(), "ready");

    // Everything is queued before the server receives anything.
    let client = Program::run("mq_client", &[&name.0]);
    client.assert_success();
    assert_eq!(
        client.stdout,
        "sent priority 1: routine: rotate the logs\n\
         sent priority 9: URGENT: the build is on fire\n\
         sent priority 5: normal: review the pull request\n\
         sent priority 1: routine: water the plants\n\
         sent priority 9: URGENT: page the on-call\n\
         sent priority 0: quit\n"
    );

    server.write_stdin("go\n");
    let out = server.finish();
    out.assert_success();
    // Highest priority first; the order sent within one priority.
    assert_eq!(
        out.stdout,
        "priority 9: URGENT: the build is on fire\n\
         priority 9: URGENT: page the on-call\n\
         priority 5: normal: review the pull request\n\
         priority 1: routine: rotate the logs\n\
         priority 1: routine: water the plants\n\
         priority 0: quit\n"
    );
    assert!(!name.exists(), "the server removes its queue");
}

#[test]
fn mq_equal_priorities_keep_their_order_and_quit_comes_last() {
    let name = QueueName::new("mq-args");
    let mut server = Program::start("mq_server", &[&name.0]);
    assert_eq!(server.line(), "ready");
    Program::run(
        "mq_client",
        &[
            &name.0,
            "0:low first",
            "2:b1",
            "7:a",
            "2:b2",
            "0:low second",
        ],
    )
    .assert_success();
    server.write_stdin("go\n");
    let out = server.finish();
    out.assert_success();
    assert_eq!(
        out.stdout,
        "priority 7: a\n\
         priority 2: b1\n\
         priority 2: b2\n\
         priority 0: low first\n\
         priority 0: low second\n\
         priority 0: quit\n"
    );
    assert!(!name.exists());
}

#[test]
fn mq_programs_refuse_bad_input() {
    let name = QueueName::new("mq-refuse");
    Program::run("mq_client", &[&name.0]).assert_failure("start mq_server first");
    Program::run("mq_client", &[&name.0, "urgent"]).assert_failure("is not PRIORITY:TEXT");
    Program::run("mq_client", &[&name.0, "40000:too high"])
        .assert_failure("is not a number from 0 to 32767");
    Program::run("mq_server", &["no-slash"]).assert_failure("must start with '/'");
    assert!(!name.exists());

    // A second server on a live queue is refused, and the first keeps it.
    let mut server = Program::start("mq_server", &[&name.0]);
    assert_eq!(server.line(), "ready");
    Program::run("mq_server", &[&name.0]).assert_failure("exists already");
    Program::run("mq_client", &[&name.0, "1:still here"]).assert_success();
    server.write_stdin("\n");
    let out = server.finish();
    out.assert_success();
    assert_eq!(out.stdout, "priority 1: still here\npriority 0: quit\n");
}

// ---------------------------------------------------------------- sockets

/// Client A stays connected (texts from its stdin) while B and C come and
/// go: a server that served one client at a time would never answer B.
fn three_clients_at_once(mode: &str, dir: &TempDir, server_path: &str) -> usize {
    let env = [("TMPDIR", dir.0.as_path())];
    let mut a = Program::start_in_env("socket_client", &[mode, server_path], &env);
    a.write_stdin("first from a\n");
    assert_eq!(a.line(), "FIRST FROM A");

    let b = Program::start_in_env(
        "socket_client",
        &[mode, server_path, "hello", "world"],
        &env,
    );
    let c = Program::start_in_env("socket_client", &[mode, server_path, "Mixed Case 42"], &env);
    let (b, c) = (b.finish(), c.finish());
    b.assert_success();
    assert_eq!(b.stdout, "HELLO\nWORLD\n");
    c.assert_success();
    assert_eq!(c.stdout, "MIXED CASE 42\n");

    a.write_stdin("last from a\n");
    assert_eq!(a.line(), "LAST FROM A");
    let a = a.finish();
    a.assert_success();
    assert_eq!(a.stdout, "");
    5 // messages answered
}

#[test]
fn socket_stream_server_serves_clients_at_once() {
    let dir = TempDir::new("stream");
    let path = dir.path_str("server.sock");
    let mut server = Program::start("socket_server", &["stream", &path, "3"]);
    assert_eq!(server.line(), "listening");
    let messages = three_clients_at_once("stream", &dir, &path);
    let out = server.finish();
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("served 3 clients, {messages} messages\n")
    );
    assert!(dir.entries().is_empty(), "the server removes its socket");
}

#[test]
fn socket_dgram_server_serves_clients_at_once() {
    let dir = TempDir::new("dgram");
    let path = dir.path_str("server.sock");
    let mut server = Program::start("socket_server", &["dgram", &path]);
    assert_eq!(server.line(), "listening");
    let messages = three_clients_at_once("dgram", &dir, &path);
    assert_eq!(
        dir.entries(),
        ["server.sock"],
        "every client removes its socket"
    );

    let env = [("TMPDIR", dir.0.as_path())];
    let quit = Program::start_in_env("socket_client", &["dgram", &path, "quit"], &env).finish();
    quit.assert_success();
    assert_eq!(quit.stdout, "QUIT\n");
    let out = server.finish();
    out.assert_success();
    assert_eq!(out.stdout, format!("served {} datagrams\n", messages + 1));
    assert!(dir.entries().is_empty(), "the server removes its socket");
}

#[test]
fn socket_dgram_server_replaces_only_an_abandoned_socket_file() {
    let dir = TempDir::new("dgram-stale");
    let path = dir.path_str("server.sock");

    // A live socket at the path is never taken over.
    let live = UnixDatagram::bind(&path).unwrap();
    Program::run("socket_server", &["dgram", &path]).assert_failure("cannot bind");
    // Once nobody is bound to it, the file is a leftover and is replaced.
    drop(live);
    assert!(dir.join("server.sock").exists());
    let mut server = Program::start("socket_server", &["dgram", &path]);
    assert_eq!(server.line(), "listening");
    let env = [("TMPDIR", dir.0.as_path())];
    Program::start_in_env("socket_client", &["dgram", &path, "quit"], &env)
        .finish()
        .assert_success();
    server.finish().assert_success();
    assert!(dir.entries().is_empty());
}

#[test]
fn socket_programs_refuse_bad_input() {
    let dir = TempDir::new("socket-refuse");
    let path = dir.path_str("nobody.sock");
    let env = [("TMPDIR", dir.0.as_path())];
    Program::start_in_env("socket_client", &["stream", &path, "hi"], &env)
        .finish()
        .assert_failure("start socket_server stream first");
    Program::start_in_env("socket_client", &["dgram", &path, "hi"], &env)
        .finish()
        .assert_failure("start socket_server dgram first");
    assert!(
        dir.entries().is_empty(),
        "the client removes its own socket"
    );
    Program::run("socket_client", &["pipe", &path, "hi"]).assert_failure("unknown mode");
    Program::run("socket_client", &["stream"]).assert_failure("usage");
    Program::run("socket_server", &["stream", &path, "three"])
        .assert_failure("CLIENTS must be a whole number");
    Program::run("socket_server", &["tcp", &path]).assert_failure("unexpected arguments");
    assert!(dir.entries().is_empty());
}

#[test]
fn async_echo_serves_many_clients_at_once_and_ends_when_they_do() {
    let name = ShmName::new("async-echo");
    let address = format!("shm:{}", name.0);
    let mut server = Program::start("async_echo", &["serve", &address, "4"]);
    assert_eq!(server.line(), "ready");
    let clients: Vec<Program> = (0..4)
        .map(|_| Program::start("async_echo", &["client", &address, "500"]))
        .collect();
    for client in clients {
        let out = client.finish();
        out.assert_success();
        assert_eq!(out.stdout, "connected\nechoed 500 messages\n");
    }
    let out = server.finish();
    out.assert_success();
    assert_eq!(out.stdout, "echoed 2000 messages from 4 clients\n");
    // Nothing is left in /dev/shm: the rings were never named.
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name.0[1..]))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn async_echo_outlives_a_killed_client_and_refuses_bad_input() {
    let name = ShmName::new("async-echo-kill");
    let address = format!("shm:{}", name.0);
    let mut server = Program::start("async_echo", &["serve", &address, "2"]);
    assert_eq!(server.line(), "ready");
    let mut victim = Program::start("async_echo", &["client", &address, "100000000"]);
    assert_eq!(victim.line(), "connected");
    victim.kill();
    let out = Program::run("async_echo", &["client", &address, "10"]);
    out.assert_success();
    let out = server.finish();
    out.assert_success();
    assert!(out.stdout.ends_with("from 2 clients\n"), "{}", out.stdout);
    Program::run("async_echo", &["serve", &address, "0"])
        .assert_failure("CLIENTS must be at least 1");
    Program::run("async_echo", &["client"]).assert_failure("usage: async_echo");
    Program::run("async_echo", &["client", "shm:/shmlane-no-such-echo", "1"])
        .assert_failure("start the server first");
}
