//! Memory mapping: two processes share a regular file with
//! `mmap(MAP_SHARED)`, and what they wrote is still in the file after both
//! have exited.
//!
//! ```text
//! cargo run -p shmlane-examples --bin mmap_file -- [PATH] [MESSAGE]
//! created ./mapped_file: 4096 bytes (ftruncate)
//! writer: wrote "Hello World" (run 1)
//! reader: read "Hello World" (run 1)
//! writer: the reader replied "the reader (pid 4242) saw run 1"
//! writer: read(2) sees the reply too: one page cache
//! writer: msync: the pages are on the file system
//! past-eof: the file has 4096 bytes, 8192 are mapped; reading byte 4096
//! writer: the past-eof child was killed by SIGBUS
//! ```
//!
//! PATH defaults to `./mapped_file`, MESSAGE to `Hello World`. Run it again
//! with the same PATH: it says `opened ./mapped_file: kept from an earlier
//! run` and counts `run 2`, because the counter lives in the file. The
//! program never removes the file; `rm` does.
//!
//! The writer (the program as started) creates or opens the file, maps it,
//! counts a run and writes the message into the mapping. Then it starts a
//! reader, this program again with `--reader PATH`, which maps the same
//! file, prints the message and writes a reply into its own mapping. Once
//! the reader has exited, the writer finds the reply in *its* mapping.
//! Finally it starts `--past-eof PATH`, a child that maps more than the file
//! holds and touches a page past its end.
//!
//! The file's layout (one 4096-byte page; all of it bytes of the mapping):
//!
//! | offset | bytes | what |
//! | --- | --- | --- |
//! | 0 | 8 | `MMAPFILE`: a file this program made (others are refused) |
//! | 8 | 8 | runs so far, a native-endian `u64` |
//! | 64 | 256 | the writer's message, NUL-padded |
//! | 512 | 256 | the reader's reply, NUL-padded |
//!
//! What it teaches:
//!
//! - `mmap(MAP_SHARED)` of a regular file gives every process that maps it
//!   the *same* pages: the file's pages in the kernel's page cache. A store
//!   by one process is in the other's memory at once, with no `read` or
//!   `write` call. `read(2)` goes through the same cache, so it sees the
//!   stores too, before anything reached the disk.
//! - The difference from `shm_open` (see `shm_writer`): a POSIX shared
//!   memory object lives in `/dev/shm`, a `tmpfs`, so it is memory only,
//!   gone at reboot, removed with `shm_unlink`. A mapped file lives on a
//!   real file system: it persists after both processes exit (and after a
//!   reboot), anyone with the path and the permission can open it, `rm`
//!   removes it, and its pages get written back to the disk.
//! - `msync(MS_SYNC)` writes the dirty pages back and waits: it is about
//!   *durability* (a crash or power loss), not about *visibility*, which
//!   the shared page cache gives at once. Without `msync` the kernel writes
//!   them back by itself, some seconds later; `munmap` and exit write
//!   nothing back by themselves, and lose nothing either.
//! - The size comes first. A new file has 0 bytes, and `mmap` maps any
//!   length it is asked, but only pages backed by the file may be touched:
//!   so the writer sets the size with `ftruncate` (which extends the file
//!   with zeroes) *before* it maps. Touching a page wholly past the end of
//!   the file raises `SIGBUS`, at the access, not at `mmap` time: the
//!   `--past-eof` child shows it (the tail of the last page, past the end
//!   but inside the page, reads as zeroes and never reaches the file). The
//!   same happens to every process mapping a file that someone truncates:
//!   map only files you control.
//! - The mapping is accessed through atomics only (`AtomicU8`, `AtomicU64`):
//!   another process may write the file at any moment, and atomics make
//!   that well defined for Rust. The run counter is a `fetch_add` on the
//!   mapping, correct even if two runs overlap.
//! - Here the two processes take turns, and starting and waiting for the
//!   reader is what orders them: the writer writes before it starts the
//!   reader and reads the reply after the reader has exited. Processes that
//!   run at the same time need more: `shm_writer` and `shm_reader` use two
//!   futex semaphores in the mapping, shmlane a lock-free ring.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use rustix::mm::{MapFlags, MsyncFlags, ProtFlags, mmap, msync, munmap};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use shmlane_examples::{BoxError, run};

/// The file's size, set with `ftruncate` before it is mapped.
const FILE_LEN: usize = 4096;
/// The first bytes of a file this program made.
const MAGIC: &[u8; 8] = b"MMAPFILE";
/// Where the run counter lives (8-aligned, for the `AtomicU64`).
const RUNS_AT: usize = 8;
/// Where the writer's message lives, and its longest length.
const MESSAGE_AT: usize = 64;
const MESSAGE_MAX: usize = 256;
/// Where the reader's reply lives, and its longest length.
const REPLY_AT: usize = 512;
const REPLY_MAX: usize = 256;

const USAGE: &str = "usage: mmap_file [PATH] [MESSAGE]";

fn main() -> ExitCode {
    run("mmap_file", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["--reader", path] => reader(Path::new(path)),
            ["--past-eof", path] => past_eof(Path::new(path)),
            [flag, ..] if flag.starts_with("--") => {
                Err(format!("unexpected arguments {args:?}; {USAGE}").into())
            }
            [] => writer(Path::new("./mapped_file"), "Hello World"),
            [path] => writer(Path::new(path), "Hello World"),
            [path, message] => writer(Path::new(path), message),
            _ => Err(format!("unexpected arguments {args:?}; {USAGE}").into()),
        }
    })
}

/// A file mapped `MAP_SHARED`, readable and writable; unmapped on drop.
struct MappedFile {
    ptr: NonNull<u8>,
    len: usize,
}

impl MappedFile {
    /// Maps the first `len` bytes of `file`, which must be open for reading
    /// and writing.
    fn map(file: &File, len: usize) -> Result<MappedFile, BoxError> {
        // SAFETY: a null hint lets the kernel choose a fresh address range,
        // so the new mapping overlaps no memory Rust knows about.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                file,
                0,
            )
        }
        .map_err(|e| format!("mmap: {e}"))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or("mmap returned a null address")?;
        Ok(MappedFile { ptr, len })
    }

    /// `len` bytes of the mapping from `at`, as atomics.
    fn bytes(&self, at: usize, len: usize) -> &[AtomicU8] {
        assert!(at + len <= self.len.min(FILE_LEN), "outside the file");
        assert!(
            at + len <= RUNS_AT || at >= RUNS_AT + 8,
            "the run counter is an AtomicU64"
        );
        // SAFETY: the range lies inside the mapping (asserted above), which
        // stays mapped, readable and writable while `self` lives, and inside
        // the file (whose size was checked when it was opened), so touching
        // it does not fault. `AtomicU8` has the size and alignment of `u8`
        // and every value is valid; another process writing the file
        // meanwhile is allowed, because these bytes are only ever accessed
        // atomically, and always as bytes (the range stays clear of the
        // `AtomicU64` at `RUNS_AT`, asserted above).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(at).cast::<AtomicU8>(), len) }
    }

    /// The run counter.
    fn runs(&self) -> &AtomicU64 {
        const { assert!(RUNS_AT % 8 == 0 && RUNS_AT + 8 <= MESSAGE_AT) };
        // SAFETY: offset RUNS_AT of a page-aligned mapping is 8-aligned and
        // inside the file; the 8 bytes are only ever accessed through this
        // atomic (no byte view covers them), any bit pattern is a valid
        // `u64`, and the mapping outlives the returned borrow of `self`.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(RUNS_AT).cast()) }
    }

    /// The NUL-padded text at `at`, at most `max` bytes.
    fn text(&self, at: usize, max: usize) -> String {
        let bytes: Vec<u8> = self
            .bytes(at, max)
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .take_while(|&b| b != 0)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Writes `text` at `at` and NULs up to `max` bytes.
    fn store_text(&self, at: usize, max: usize, text: &str) {
        let text = text.as_bytes();
        for (i, byte) in self.bytes(at, max).iter().enumerate() {
            byte.store(text.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
    }

    /// Whether the file starts with [`MAGIC`].
    fn has_magic(&self) -> bool {
        self.bytes(0, MAGIC.len())
            .iter()
            .zip(MAGIC)
            .all(|(b, m)| b.load(Ordering::Relaxed) == *m)
    }

    /// Writes the dirty pages back to the file system and waits for it.
    fn sync(&self) -> Result<(), BoxError> {
        // SAFETY: `ptr..ptr + len` is exactly our mapping; `msync` writes
        // its pages back and changes no memory.
        unsafe { msync(self.ptr.as_ptr().cast(), self.len, MsyncFlags::SYNC) }
            .map_err(|e| format!("msync: {e}").into())
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range, and every borrow of it (from
        // `bytes` and `runs`) borrows `self`, so none outlives this.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Opens `path` read-write (creating it with `create`) and checks that it
/// is a file of this program, or new: `true` if it is new.
fn open_checked(path: &Path, create: bool) -> Result<(File, bool), BoxError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .mode(0o644)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
            _ => format!("cannot open {}: {e}", path.display()),
        })?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .len();
    match len {
        0 if create => Ok((file, true)),
        len if len == FILE_LEN as u64 => Ok((file, false)),
        len => Err(format!(
            "{} is not a mmap_file file ({len} bytes, not {FILE_LEN}); \
             choose another path",
            path.display()
        )
        .into()),
    }
}

/// Maps `file` (of [`FILE_LEN`] bytes) and checks its magic.
fn map_checked(file: &File, path: &Path) -> Result<MappedFile, BoxError> {
    let mapped = MappedFile::map(file, FILE_LEN)?;
    if !mapped.has_magic() {
        return Err(format!(
            "{} is not a mmap_file file (it does not start with {:?}); choose another path",
            path.display(),
            String::from_utf8_lossy(MAGIC)
        )
        .into());
    }
    Ok(mapped)
}

fn say(line: &str) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}").into())
}

/// Starts this program again with `args` and waits for it: its status.
fn child(args: &[&std::ffi::OsStr]) -> Result<std::process::ExitStatus, BoxError> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Command::new(exe)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run the child: {e}").into())
}

fn writer(path: &Path, message: &str) -> Result<(), BoxError> {
    if message.len() > MESSAGE_MAX || message.contains('\0') {
        return Err(format!("MESSAGE must be at most {MESSAGE_MAX} bytes, without NULs").into());
    }
    let (file, new) = open_checked(path, true)?;
    let mapped = if new {
        // Size first: the mapping may only touch pages the file has. The
        // new bytes are zeroes (and take no disk space until written).
        rustix::fs::ftruncate(&file, FILE_LEN as u64)
            .map_err(|e| format!("ftruncate {}: {e}", path.display()))?;
        let mapped = MappedFile::map(&file, FILE_LEN)?;
        for (byte, m) in mapped.bytes(0, MAGIC.len()).iter().zip(MAGIC) {
            byte.store(*m, Ordering::Relaxed);
        }
        say(&format!(
            "created {}: {FILE_LEN} bytes (ftruncate)",
            path.display()
        ))?;
        mapped
    } else {
        let mapped = map_checked(&file, path)?;
        say(&format!(
            "opened {}: kept from an earlier run",
            path.display()
        ))?;
        mapped
    };
    // The file descriptor is no longer needed: a mapping keeps the file
    // mapped by itself, until munmap.
    drop(file);

    let run = mapped.runs().fetch_add(1, Ordering::Relaxed) + 1;
    mapped.store_text(MESSAGE_AT, MESSAGE_MAX, message);
    mapped.store_text(REPLY_AT, REPLY_MAX, "");
    say(&format!("writer: wrote {message:?} (run {run})"))?;

    // The reader maps the file itself; starting it and waiting for it is
    // what orders its accesses after ours and our next ones after its.
    let status = child(&["--reader".as_ref(), path.as_os_str()])?;
    if !status.success() {
        return Err(format!("the reader failed ({status})").into());
    }
    let reply = mapped.text(REPLY_AT, REPLY_MAX);
    if reply.is_empty() {
        return Err("the reader left no reply in the mapping".into());
    }
    say(&format!("writer: the reader replied {reply:?}"))?;

    // read(2) and the mapping are two views of one page cache.
    let contents = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    if contents.get(REPLY_AT..REPLY_AT + reply.len()) != Some(reply.as_bytes()) {
        return Err("read(2) does not see what the mapping holds".into());
    }
    say("writer: read(2) sees the reply too: one page cache")?;

    mapped.sync()?;
    say("writer: msync: the pages are on the file system")?;
    drop(mapped);

    let status = child(&["--past-eof".as_ref(), path.as_os_str()])?;
    match status.signal() {
        Some(libc::SIGBUS) => say("writer: the past-eof child was killed by SIGBUS"),
        _ => Err(format!("the past-eof child was not killed by SIGBUS ({status})").into()),
    }
}

fn reader(path: &Path) -> Result<(), BoxError> {
    let (file, _) = open_checked(path, false)?;
    let mapped = map_checked(&file, path)?;
    drop(file);
    let run = mapped.runs().load(Ordering::Relaxed);
    let message = mapped.text(MESSAGE_AT, MESSAGE_MAX);
    say(&format!("reader: read {message:?} (run {run})"))?;
    let reply = format!("the reader (pid {}) saw run {run}", std::process::id());
    mapped.store_text(REPLY_AT, REPLY_MAX, &reply);
    // No msync: the writer maps the same pages and sees the reply as it is.
    Ok(())
}

/// Maps one page more than the file holds and reads it: dies of SIGBUS.
fn past_eof(path: &Path) -> Result<(), BoxError> {
    // A process killed by SIGBUS dumps core by default; this one is killed
    // on purpose, so it asks for no core file.
    let core = getrlimit(Resource::Core);
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: core.maximum,
        },
    )
    .map_err(|e| format!("setrlimit(RLIMIT_CORE): {e}"))?;

    let (file, _) = open_checked(path, false)?;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .map_err(|_| "sysconf(_SC_PAGESIZE) failed")?;
    // The first page that holds no byte of the file, and a mapping that
    // covers it: mmap does not check the file's size.
    let past = FILE_LEN.div_ceil(page) * page;
    let mapped = MappedFile::map(&file, past + page)?;
    say(&format!(
        "past-eof: the file has {FILE_LEN} bytes, {} are mapped; reading byte {past}",
        past + page
    ))?;
    // SAFETY: `past` is inside the mapping we just made, so the address is
    // one this process may read, not memory of any Rust object. The page
    // has no file behind it: the kernel answers the access with SIGBUS,
    // whose default action ends this process before the value is used.
    // That is the lesson (and `bytes` refuses such offsets).
    let byte = unsafe { mapped.ptr.as_ptr().add(past).read_volatile() };
    Err(format!(
        "read byte {past} past the end of the file ({byte}) without SIGBUS: \
         has someone extended {}?",
        path.display()
    )
    .into())
}
