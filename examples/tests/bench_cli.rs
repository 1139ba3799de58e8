//! The bench's command line: `--help` and `--version` answer, mistakes are
//! refused with a usage message and exit code 2 (the measurements
//! themselves are run by CI's `bench --quick --json` step).

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_and_version_answer_and_succeed() {
    let help = bench(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in [
        "Usage: bench",
        "--quick",
        "--json",
        "--plot <FILE.svg>",
        "--only",
        "unix-dgram",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let version = bench(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("bench {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn mistakes_are_refused_with_a_usage_message_before_measuring() {
    for args in [
        &["--only", "carrier-pigeon"][..],
        &["--only", "shm,bogus"],
        &["--only"],
        &["--plot"],
        &["--fast"],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: ")
                && (stderr.contains("Usage: bench") || stderr.contains("try '--help'")),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: measured anyway");
    }
}
