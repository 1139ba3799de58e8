//! `shmlane send` and `shmlane recv` as processes, over several transports;
//! usage mistakes and runtime errors, as a script sees them.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

fn shmlane() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmlane"))
}

fn unique(test: &str) -> String {
    format!("shmlane-cli-{test}-{}", std::process::id())
}

/// Starts `shmlane recv ARGS…`; returns it and the address it says it
/// listens at.
fn recv(args: &[&str]) -> (Child, String) {
    let mut child = shmlane()
        .arg("recv")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    (child, addr)
}

fn send(addr: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = shmlane()
        .arg("send")
        .arg(addr)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn what_send_sends_recv_prints_over_several_transports() {
    let tmp = std::env::temp_dir();
    let addresses = [
        format!("shm:/{}", unique("shm")),
        format!("unix:{}/{}.sock", tmp.display(), unique("unix")),
        "tcp:127.0.0.1:0".to_owned(),
        format!("mq:/{}", unique("mq")),
    ];
    for address in addresses {
        let (child, addr) = recv(&[&address, "--count", "3"]);
        let out = send(&addr, &["hello", "shared", "memory"], None);
        assert!(out.status.success(), "{address}: {out:?}");
        let got = child.wait_with_output().unwrap();
        assert!(got.status.success(), "{address}: {got:?}");
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            "hello\nshared\nmemory\n",
            "{address}"
        );
    }
}

#[test]
fn stdin_lines_hex_and_json() {
    let address = format!("shm:/{}", unique("formats"));
    // Lines of stdin, until the sender closes.
    let (child, addr) = recv(&[&address]);
    let out = send(&addr, &[], Some("one\ntwo\n"));
    assert!(out.status.success(), "{out:?}");
    let got = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "one\ntwo\n");
    // Bytes that are no text, as hex both ways, and as JSON.
    let (child, addr) = recv(&[&address, "--hex", "--count", "2"]);
    assert!(send(&addr, &["--hex", "00ff10", ""], None).status.success());
    let got = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "00ff10\n\n");
    let (child, addr) = recv(&[&address, "--json", "--count", "1"]);
    assert!(send(&addr, &["hi"], None).status.success());
    let got = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "{\"len\":2,\"hex\":\"6869\"}\n"
    );
}

#[test]
fn mistakes_are_usage_errors_and_failures_are_errors_a_script_can_tell() {
    // Usage: exit code 2, before anything is done.
    for args in [
        &[][..],
        &["send"],
        &["recv"],
        &["frobnicate"],
        &["recv", "shm:/x", "--hex", "--json"],
    ] {
        let out = shmlane().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage: shmlane"),
            "{args:?}"
        );
    }
    // Runtime failures: exit code 1 and "shmlane: …".
    let nobody = format!("shm:/{}", unique("nobody"));
    for args in [
        vec!["send", nobody.as_str(), "x"],
        vec!["send", "carrier-pigeon:/x", "x"],
        vec!["recv", "shm:noslash"],
    ] {
        let out = shmlane().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("shmlane: "),
            "{args:?}"
        );
    }
    // Not hex: refused before sending anything.
    let address = format!("shm:/{}", unique("badhex"));
    let (child, addr) = recv(&[&address]);
    let out = send(&addr, &["--hex", "abc"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not hex"));
    let got = child.wait_with_output().unwrap();
    assert!(got.status.success());
    assert!(got.stdout.is_empty());
}

#[test]
fn help_and_version_answer() {
    let help = shmlane().arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("send") && text.contains("recv"), "{text}");
    let version = shmlane().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("shmlane {}", env!("CARGO_PKG_VERSION"))
    );
}
