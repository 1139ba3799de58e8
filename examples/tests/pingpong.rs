//! `pingpong` over every address kind, as a real pair of processes: it must
//! finish its round trips, report the percentiles and exit 0.

use std::process::Command;

mod support;

fn pingpong(addr: &str, mode: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pingpong"))
        .args([
            "--addr", addr, "--count", "500", "--size", "100", "--mode", mode,
        ])
        .output()
        .expect("run pingpong");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{addr} {mode}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn every_transport_completes_and_reports_percentiles() {
    let id = support::run_id();
    let tmp = std::env::temp_dir();
    let addresses = [
        format!("shm:/shmlane-pp-{id}"),
        "pipe".to_owned(),
        format!("fifo:{}/shmlane-pp-{id}", tmp.display()),
        format!("mq:/shmlane-pp-{id}"),
        format!("unix:{}/shmlane-pp-{id}.sock", tmp.display()),
        format!("unix-dgram:{}/shmlane-pp-{id}.dgram", tmp.display()),
        "tcp:127.0.0.1:0".to_owned(),
    ];
    for addr in &addresses {
        for mode in ["block", "spin"] {
            let out = pingpong(addr, mode);
            let transport = addr.split(':').next().unwrap();
            let prefix = format!("{transport} {mode} 100 B x 500: median ");
            assert!(out.starts_with(&prefix), "{addr}: {out:?}");
            assert!(
                out.contains(" ns, p99 ") && out.contains(" ns, p99.9 "),
                "{out:?}"
            );
        }
    }
    // Nothing left behind.
    assert!(!std::path::Path::new(&format!("/dev/shm/shmlane-pp-{id}.sock")).exists());
    assert!(!tmp.join(format!("shmlane-pp-{id}.sock")).exists());
    assert!(!tmp.join(format!("shmlane-pp-{id}.c2s")).exists());
}

#[test]
fn bad_arguments_are_refused_with_a_usage_message() {
    // Command-line mistakes: exit code 2 and a usage line.
    for args in [
        &[][..],
        &["--addr"],
        &["--addr", "pipe", "--mode", "fast"],
        &["--addr", "pipe", "--count", "0"],
        &["--addr", "pipe", "--size", "-1"],
        &["--addr", "pipe", "--colour"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_pingpong"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with("error: ")
                && (stderr.contains("Usage: pingpong") || stderr.contains("try '--help'")),
            "{args:?}: {stderr}"
        );
    }
    // A well-formed address nobody can use: the program's own error.
    let output = Command::new(env!("CARGO_BIN_EXE_pingpong"))
        .args(["--addr", "bogus:x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("pingpong: "));
}

#[test]
fn help_and_version_answer_and_succeed() {
    let help = Command::new(env!("CARGO_BIN_EXE_pingpong"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "Usage: pingpong",
        "--addr <ADDR>",
        "--mode",
        "spin",
        "block",
        "--count",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(!text.contains("--peer"), "the internal flag is hidden");
    let version = Command::new(env!("CARGO_BIN_EXE_pingpong"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("pingpong {}", env!("CARGO_PKG_VERSION"))
    );
}
