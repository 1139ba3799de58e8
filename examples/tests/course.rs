//! The course programs (memory mapping, signals, file locks, condition
//! variables), run as real processes.
//!
//! As in `classics.rs`, nothing sleeps to order events: a test waits for a
//! line a program prints, for its exit, or for the kernel to report its
//! state, each with a 30-second safety net (see `support`). Every test uses
//! paths and names of its own (with this process's id), and checks that
//! the programs removed what they created, or kept what they must keep.

mod support;

use std::fs;
use std::os::unix::process::ExitStatusExt;

use support::{Program, TempDir};

// ---------------------------------------------------------------- memory mapping

/// The file `mmap_file` leaves: (runs, message, reply).
fn mapped_file(path: &str) -> (u64, String, String) {
    let bytes = fs::read(path).expect("the mapped file outlives the programs");
    assert_eq!(bytes.len(), 4096, "the size set with ftruncate");
    assert_eq!(&bytes[..8], b"MMAPFILE");
    let runs = u64::from_ne_bytes(bytes[8..16].try_into().unwrap());
    let text = |at: usize| {
        let field = &bytes[at..at + 256];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        assert!(
            field[end..].iter().all(|&b| b == 0),
            "NUL-padded to the end of its field"
        );
        String::from_utf8(field[..end].to_vec()).unwrap()
    };
    (runs, text(64), text(512))
}

#[test]
fn mmap_file_is_shared_by_two_processes_and_outlives_them() {
    let dir = TempDir::new("mmap");
    let path = dir.path_str("mapped_file");

    let out = Program::run("mmap_file", &[&path, "through the page cache"]);
    out.assert_success();
    let lines = out.lines();
    assert_eq!(lines.len(), 8, "{}", out.stdout);
    assert_eq!(lines[0], format!("created {path}: 4096 bytes (ftruncate)"));
    assert_eq!(lines[1], "writer: wrote \"through the page cache\" (run 1)");
    // The reader, another process, saw what the writer stored in memory.
    assert_eq!(lines[2], "reader: read \"through the page cache\" (run 1)");
    let reply = lines[3]
        .strip_prefix("writer: the reader replied \"")
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no reply line: {:?}", lines[3]));
    assert!(
        reply.starts_with("the reader (pid ") && reply.ends_with(") saw run 1"),
        "{reply:?}"
    );
    assert_eq!(
        lines[4],
        "writer: read(2) sees the reply too: one page cache"
    );
    assert_eq!(lines[5], "writer: msync: the pages are on the file system");

    // Both processes have exited; the file still holds what they wrote.
    assert_eq!(
        mapped_file(&path),
        (1, "through the page cache".to_owned(), reply.to_owned())
    );

    // A second run finds the file, and the counter in it, as left.
    let out = Program::run("mmap_file", &[&path, "again"]);
    out.assert_success();
    let lines = out.lines();
    assert_eq!(lines[0], format!("opened {path}: kept from an earlier run"));
    assert_eq!(lines[1], "writer: wrote \"again\" (run 2)");
    assert_eq!(lines[2], "reader: read \"again\" (run 2)");
    let (runs, message, reply) = mapped_file(&path);
    assert_eq!((runs, message.as_str()), (2, "again"));
    assert!(reply.ends_with(") saw run 2"), "{reply:?}");
}

#[test]
fn mmap_file_touching_a_page_past_the_end_of_the_file_is_sigbus() {
    let dir = TempDir::new("mmap-sigbus");
    let path = dir.path_str("mapped_file");
    let out = Program::run("mmap_file", &[&path]);
    out.assert_success();
    let lines = out.lines();
    assert!(
        lines[6].starts_with("past-eof: the file has 4096 bytes, "),
        "{}",
        out.stdout
    );
    assert_eq!(lines[7], "writer: the past-eof child was killed by SIGBUS");

    // The child on its own: mmap succeeds, the access kills it.
    let out = Program::run("mmap_file", &["--past-eof", &path]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGBUS),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stderr, "", "killed before it could report anything");
    // It only read: the file is as the first run left it.
    assert_eq!(mapped_file(&path).0, 1);
}

#[test]
fn mmap_file_refuses_files_it_did_not_make_and_leaves_them_alone() {
    let dir = TempDir::new("mmap-refuse");
    let small = dir.path_str("notes.txt");
    fs::write(&small, "keep me").unwrap();
    Program::run("mmap_file", &[&small]).assert_failure("is not a mmap_file file (7 bytes");
    assert_eq!(fs::read_to_string(&small).unwrap(), "keep me");

    // The right size is not enough: the magic says whose file it is.
    let page = dir.path_str("page.bin");
    fs::write(&page, [b'x'; 4096]).unwrap();
    Program::run("mmap_file", &[&page]).assert_failure("does not start with \"MMAPFILE\"");
    assert_eq!(fs::read(&page).unwrap(), [b'x'; 4096]);

    let missing = dir.path_str("missing");
    Program::run("mmap_file", &["--reader", &missing]).assert_failure("does not exist");
    assert!(!dir.join("missing").exists(), "a reader never creates");
    let long = "x".repeat(257);
    Program::run("mmap_file", &[&missing, &long]).assert_failure("at most 256 bytes");
    Program::run("mmap_file", &["--writer"]).assert_failure("unexpected arguments");
}
