//! The ring from C: `posix/tests/c/consumer.c` and `producer.c`, compiled
//! here with the system C compiler against `core/include/shmlane.h`, talk
//! to a Rust `Sender` / `Receiver` in another process — wrapping a small
//! ring, the Rust side sleeping whenever it must wait and the C side waking
//! it — and a C peer's `kill -9` is seen by the blocked Rust side, through
//! the lock bytes the C side holds as shmlane-posix does.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use shmlane_posix::{Error, Options, Receiver, Segment, Sender};

/// The C program `tests/c/<name>.c`, built once per test process.
fn c_program(name: &'static str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(&str, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, exe)) = built.iter().find(|(n, _)| *n == name) {
        return exe.clone();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::temp_dir().join(format!("shmlane-c-{name}-{}", support::run_id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = Command::new(&cc)
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("../core/include"))
        .arg("-o")
        .arg(&exe)
        .arg(root.join(format!("tests/c/{name}.c")))
        .arg("-lrt")
        .output()
        .unwrap_or_else(|e| panic!("the system C compiler ({cc}) is needed: {e}"));
    assert!(
        out.status.success(),
        "{cc}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    built.push((name, exe.clone()));
    exe
}

fn consumer() -> PathBuf {
    c_program("consumer")
}

/// Waits for a C peer in "hold" mode to say it claimed its role.
fn claimed(child: &mut std::process::Child) {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "claimed");
}

/// The test's messages: the generator the C producer uses too.
fn message(state: &mut u64) -> Vec<u8> {
    let len = (support::next(state) % 2041) as usize;
    let fill = support::next(state) as u8;
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

#[test]
fn a_c_consumer_receives_every_message_of_a_rust_sender() {
    let name = format!("/shmlane-c-interop-{}", support::run_id());
    // 4 KiB: messages up to 2040 bytes wrap it constantly, and the sender
    // fills it and sleeps over and over.
    // Kept after the sender's drop, for a look at the counters.
    let options = Options::new().capacity(4096).unlink_on_drop(false);
    let mut tx = Sender::create(&name, &options).unwrap();
    let child = Command::new(consumer())
        .arg(&name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut messages, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    let mut state = 0x5eed_c0de_u64;
    for _ in 0..20_000 {
        let msg = message(&mut state);
        tx.send(&msg).unwrap();
        messages += 1;
        bytes += msg.len() as u64;
        sum += msg.iter().map(|&b| u64::from(b)).sum::<u64>();
    }
    drop(tx); // closes: the C side ends after the last message
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("messages {messages} bytes {bytes} sum {sum}")
    );
    // The C side kept its count where a Rust reader finds it.
    let (consumer, producer) = counters_of(&name);
    assert_eq!((consumer.messages, producer.messages), (20_000, 20_000));
    assert_eq!(consumer.bytes, producer.bytes);
    Segment::unlink(&name).unwrap();
}

/// The (consumer, producer) counters of the channel `name`, as a third
/// process sees them.
fn counters_of(name: &str) -> (shmlane_posix::Counters, shmlane_posix::Counters) {
    let entry = shmlane_posix::inspect::inspect(name).unwrap();
    match entry.kind {
        shmlane_posix::inspect::Kind::Segment { channel: Ok(c), .. } => {
            (c.snapshot.consumer.counters, c.snapshot.producer.counters)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rust_sender_blocked_on_a_killed_c_consumer_is_disconnected() {
    let name = format!("/shmlane-c-interop-kill-{}", support::run_id());
    let mut tx = Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    let mut child = Command::new(consumer())
        .args([name.as_str(), "hold"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    claimed(&mut child);
    // Fill the ring; the next send waits for room the C side never makes.
    while tx.try_send(&[7; 512]).is_ok() {}
    let blocked = support::blocked_in(move || tx.send(&[7; 512]));
    let _ = child.kill();
    let _ = child.wait();
    let end = blocked.result();
    assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
}

#[test]
fn a_rust_receiver_receives_every_message_of_a_c_producer() {
    let name = format!("/shmlane-c-interop-producer-{}", support::run_id());
    let mut rx = Receiver::create(&name, &Options::new().capacity(4096)).unwrap();
    let (count, seed) = (20_000, 0x5eed_c0de_u64);
    let mut child = Command::new(c_program("producer"))
        .args([name.as_str(), &count.to_string(), &seed.to_string()])
        .spawn()
        .unwrap();
    let mut state = seed;
    for i in 0..count {
        // Often waiting (sleeping) for the C side, which wakes us.
        assert_eq!(rx.recv_vec().unwrap(), message(&mut state), "message {i}");
    }
    // Then its close: every message was read, and no more comes.
    assert!(matches!(rx.recv_vec(), Err(Error::Disconnected)));
    assert!(child.wait().unwrap().success());
    // The C side kept its count where a Rust reader finds it.
    let (consumer, producer) = counters_of(&name);
    assert_eq!((producer.messages, consumer.messages), (20_000, 20_000));
    assert_eq!(rx.counters(), consumer);
}

#[test]
fn a_rust_receiver_blocked_on_a_killed_c_producer_is_disconnected() {
    let name = format!("/shmlane-c-interop-producer-kill-{}", support::run_id());
    let mut rx = Receiver::create(&name, &Options::new().capacity(4096)).unwrap();
    let mut child = Command::new(c_program("producer"))
        .args([name.as_str(), "hold"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    claimed(&mut child);
    let blocked = support::blocked_in(move || rx.recv_vec());
    let _ = child.kill();
    let _ = child.wait();
    let end = blocked.result();
    assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
}
