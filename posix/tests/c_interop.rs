//! The ring from C: `posix/tests/c/consumer.c`, compiled here with the
//! system C compiler against `core/include/shmlane.h`, consumes what a Rust
//! `Sender` publishes in another process — wrapping a small ring, with the
//! Rust side sleeping whenever it is full and the C side waking it — and
//! its `kill -9` is seen by the blocked Rust sender, through the lock bytes
//! the C side holds as shmlane-posix does.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use shmlane_posix::{Error, Options, Sender};

/// The C consumer, built once per test process.
fn consumer() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let exe =
                std::env::temp_dir().join(format!("shmlane-c-consumer-{}", support::run_id()));
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
            let out = Command::new(&cc)
                .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(root.join("../core/include"))
                .arg("-o")
                .arg(&exe)
                .arg(root.join("tests/c/consumer.c"))
                .arg("-lrt")
                .output()
                .unwrap_or_else(|e| panic!("the system C compiler ({cc}) is needed: {e}"));
            assert!(
                out.status.success(),
                "{cc}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            exe
        })
        .clone()
}

#[test]
fn a_c_consumer_receives_every_message_of_a_rust_sender() {
    let name = format!("/shmlane-c-interop-{}", support::run_id());
    // 4 KiB: messages up to 2040 bytes wrap it constantly, and the sender
    // fills it and sleeps over and over.
    let mut tx = Sender::create(&name, &Options::new().capacity(4096)).unwrap();
    let child = Command::new(consumer())
        .arg(&name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut messages, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    let mut state = 0x5eed_c0de_u64;
    for _ in 0..20_000 {
        let len = (support::next(&mut state) % 2041) as usize;
        let fill = support::next(&mut state) as u8;
        let msg: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        tx.send(&msg).unwrap();
        messages += 1;
        bytes += len as u64;
        sum += msg.iter().map(|&b| u64::from(b)).sum::<u64>();
    }
    drop(tx); // closes: the C side ends after the last message
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("messages {messages} bytes {bytes} sum {sum}")
    );
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
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "claimed");
    // Fill the ring; the next send waits for room the C side never makes.
    while tx.try_send(&[7; 512]).is_ok() {}
    let blocked = support::blocked_in(move || tx.send(&[7; 512]));
    let _ = child.kill();
    let _ = child.wait();
    let end = blocked.result();
    assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
}
