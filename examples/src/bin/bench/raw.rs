//! The floors: what the machine and the kernel do without shmlane.
//!
//! - an atomic ping-pong on one shared cache line, and the same with a
//!   futex wait and wake per turn ([`atomic_parent`], [`futex_parent`] and
//!   their peers);
//! - the line stream ([`line_stream_parent`]): 64-byte lines, each carrying
//!   a sequence word, written by one process and followed line by line by
//!   the other, the most any SPSC stream can move between two CPUs;
//! - the cross-core copy ([`cross_copy_parent`]): one process writes N
//!   bytes, the other reads all of them and writes N bytes back, ping-pong;
//!   the floor of a large round trip;
//! - the raw kernel transports that shmlane's fallbacks wrap, used the
//!   plain way (blocking calls, fixed-size messages, no framing):
//!   [`RawStream`] (pipe, FIFO, unix stream, TCP), [`RawDgram`] and
//!   [`RawMq`]. They speak the message traits so that the same round-trip
//!   and streaming code drives them; an empty message (or end of stream)
//!   marks the end.
//!
//! The shared-memory floors use one [`Shared`] mapping per measurement:
//! words and lines are only ever accessed atomically; the cross-core
//! copy's byte buffers are accessed plainly, by one side at a time, handed
//! over by a Release store and an Acquire load of a flag word.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;
use shmlane_examples::rtt::Plan;
use shmlane_posix::{Error, Segment};
use shmlane_posix::{MessageReceiver, MessageSender};

/// The value that tells a floor's peer to stop.
const DONE: u64 = u64::MAX;

/// Spins between two looks at whether the other process is gone.
const SPINS_PER_LOOK: u32 = 1 << 22;

/// One shared mapping for a floor: flag words on their own cache lines at
/// the start, data from [`DATA`] on.
#[derive(Debug)]
pub struct Shared {
    segment: Segment,
}

/// Where a floor's data (lines, buffers) starts in its [`Shared`] mapping:
/// the first page holds the flag words, each on its own 128 bytes.
const DATA: usize = 4096;

impl Shared {
    /// A fresh mapping of at least `len` bytes, and a descriptor for the
    /// peer.
    pub fn create(len: usize) -> Result<(Shared, OwnedFd), String> {
        let len = len.max(DATA).next_multiple_of(4096);
        let segment = Segment::anonymous(len).map_err(|e| format!("memfd: {e}"))?;
        segment.seal().map_err(|e| format!("memfd seals: {e}"))?;
        let fd = segment
            .fd()
            .try_clone_to_owned()
            .map_err(|e| format!("dup: {e}"))?;
        Ok((Shared { segment }, fd))
    }

    /// The peer's view of the parent's mapping.
    pub fn from_fd(fd: OwnedFd) -> Result<Shared, String> {
        let segment =
            Segment::from_fd(fd).map_err(|e| format!("mapping the floor's memory: {e}"))?;
        if segment.len() < DATA {
            return Err("the floor's memory is too small".to_owned());
        }
        Ok(Shared { segment })
    }

    /// Flag word `i` (0 to 31): 8 bytes alone on their 128-byte line.
    fn word64(&self, i: usize) -> &AtomicU64 {
        assert!(i < DATA / 128);
        // SAFETY: the mapping is page-aligned and at least `DATA` bytes
        // long, so `i * 128` is in it and 8-aligned; it lives as long as
        // `self`, and flag words are only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.segment.as_ptr().as_ptr().add(i * 128).cast()) }
    }

    /// The first 4 bytes of flag word 0, for the futex floor.
    fn word32(&self) -> &AtomicU32 {
        // SAFETY: as in `word64` (4 aligned bytes at the start).
        unsafe { AtomicU32::from_ptr(self.segment.as_ptr().as_ptr().cast()) }
    }

    /// The data area as 64-byte lines of atomic words.
    fn lines(&self) -> &[[AtomicU64; 8]] {
        let count = (self.segment.len() - DATA) / 64;
        // SAFETY: `DATA` is page-aligned, so the lines are 64-aligned; they
        // lie in the mapping, which lives as long as `self`; whoever uses
        // them as lines accesses them only atomically.
        unsafe {
            std::slice::from_raw_parts(
                self.segment
                    .as_ptr()
                    .as_ptr()
                    .add(DATA)
                    .cast::<[AtomicU64; 8]>(),
                count,
            )
        }
    }

    /// Data bytes `offset..offset + len`, as a raw pointer (the cross-core
    /// copy's buffers).
    fn bytes(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(DATA + offset + len <= self.segment.len());
        // SAFETY: checked to lie in the mapping.
        unsafe { self.segment.as_ptr().as_ptr().add(DATA + offset) }
    }
}

/// Whether the process that started us is gone (then a floor's peer stops
/// instead of waiting forever).
fn orphaned(parent: Option<rustix::process::Pid>) -> bool {
    rustix::process::getppid() != parent
}

/// Spins until `word` holds `value`, asking `gone` now and then (true:
/// the other side died, an error).
fn spin_until(
    word: &AtomicU64,
    value: u64,
    gone: &mut dyn FnMut() -> bool,
    what: &str,
) -> Result<(), String> {
    let mut spins = 0u32;
    while word.load(Ordering::Acquire) != value {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % SPINS_PER_LOOK == 0 && gone() {
            return Err(format!("the {what} floor's peer is gone"));
        }
    }
    Ok(())
}

/// The parent's half of the atomic ping-pong: stores an odd count, spins
/// until the peer answers with the next even one. Returns sorted RTTs.
/// `gone` is asked now and then while waiting: true ends the run.
pub fn atomic_parent(
    page: &Shared,
    plan: Plan,
    gone: &mut dyn FnMut() -> bool,
) -> Result<Vec<Duration>, String> {
    let word = page.word64(0);
    let rtts = plan.run(|i| {
        let start = Instant::now();
        word.store(2 * i + 1, Ordering::Release);
        spin_until(word, 2 * i + 2, gone, "atomic")?;
        Ok(start.elapsed())
    });
    word.store(DONE, Ordering::Release);
    rtts
}

/// The peer's half of the atomic ping-pong.
pub fn atomic_peer(page: &Shared) {
    let word = page.word64(0);
    let parent = rustix::process::getppid();
    let mut spins = 0u32;
    loop {
        let v = word.load(Ordering::Acquire);
        if v == DONE {
            return;
        }
        if v % 2 == 1 {
            word.store(v + 1, Ordering::Release);
            continue;
        }
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins == 0 && orphaned(parent) {
            return;
        }
    }
}

/// Sleeps while `word` holds `value` (at most 100 ms); true if it timed out.
fn futex_wait(word: &AtomicU32, value: u32) -> bool {
    let timeout = futex::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    // Any other outcome (woken, value changed, interrupted) means "look
    // again".
    futex::wait(word, futex::Flags::empty(), value, Some(&timeout))
        == Err(rustix::io::Errno::TIMEDOUT)
}

fn futex_wake(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}

/// The futex ping-pong: like the atomic one, but each side sleeps in
/// `futex_wait` until the other stores its value and calls `futex_wake`.
/// Before each round trip the parent sleeps `gap` (untimed), so that the
/// measured turn starts with the peer asleep, as a wake round trip of the
/// ring does.
pub fn futex_parent(
    page: &Shared,
    plan: Plan,
    gap: Duration,
    gone: &mut dyn FnMut() -> bool,
) -> Result<Vec<Duration>, String> {
    let word = page.word32();
    let rtts = plan.run(|i| {
        let i = i as u32;
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let start = Instant::now();
        word.store(2 * i + 1, Ordering::Release);
        futex_wake(word);
        loop {
            let v = word.load(Ordering::Acquire);
            if v == 2 * i + 2 {
                break;
            }
            if futex_wait(word, v) && gone() {
                return Err("the futex floor's peer is gone".to_owned());
            }
        }
        Ok(start.elapsed())
    });
    word.store(DONE as u32, Ordering::Release);
    futex_wake(word);
    rtts
}

/// The peer's half of the futex ping-pong.
pub fn futex_peer(page: &Shared) {
    let word = page.word32();
    let parent = rustix::process::getppid();
    loop {
        let v = word.load(Ordering::Acquire);
        if v == DONE as u32 || orphaned(parent) {
            return;
        }
        if v % 2 == 1 {
            word.store(v + 1, Ordering::Release);
            futex_wake(word);
            continue;
        }
        let _ = futex_wait(word, v);
    }
}

/// Lines of the line stream's ring: 256 KiB, the ring size the bench
/// streams 64 B and 4 KiB messages through.
pub const STREAM_LINES: usize = 4096;

/// How often the line stream's consumer publishes how far it has read:
/// every quarter of the ring (the producer looks only when the ring looks
/// full, so this costs one line transfer per quarter).
const LINES_PER_RELEASE: u64 = (STREAM_LINES / 4) as u64;

/// The bytes a line-stream mapping needs.
pub fn line_stream_len() -> usize {
    DATA + STREAM_LINES * 64
}

/// The line stream's producer: for about `time`, writes 64-byte lines,
/// each a sequence number in its last seven words and, stored last with
/// Release, its tag (sequence + 1) in its first; the peer follows line by
/// line. Waits for the peer to have read every line, then returns (lines,
/// elapsed).
pub fn line_stream_parent(
    shared: &Shared,
    time: Duration,
    gone: &mut dyn FnMut() -> bool,
) -> Result<(u64, Duration), String> {
    let read = shared.word64(0);
    let lines = &shared.lines()[..STREAM_LINES];
    let ring = STREAM_LINES as u64;
    let mut write = |seq: u64, payload: u64, released: &mut u64| -> Result<(), String> {
        // The producer may write line `seq` once the consumer has read
        // line `seq - ring`; it looks (Acquire, pairing with the
        // consumer's Release) only when its last look says full.
        let mut spins = 0u32;
        while seq - *released >= ring {
            *released = read.load(Ordering::Acquire);
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % SPINS_PER_LOOK == 0 && gone() {
                return Err("the line stream's peer is gone".to_owned());
            }
        }
        let line = &lines[(seq % ring) as usize];
        for word in &line[1..] {
            word.store(payload, Ordering::Relaxed);
        }
        // Release: the payload is visible to whoever sees the tag.
        line[0].store(seq + 1, Ordering::Release);
        Ok(())
    };
    let mut released = 0u64;
    let start = Instant::now();
    let mut seq = 0u64;
    loop {
        for _ in 0..1024 {
            write(seq, seq, &mut released)?;
            seq += 1;
        }
        if start.elapsed() >= time {
            break;
        }
    }
    write(seq, DONE, &mut released)?;
    // The consumer stores seq + 1 when it has read the end mark.
    spin_until(read, seq + 1, gone, "line stream")?;
    Ok((seq, start.elapsed()))
}

/// The line stream's consumer: follows the lines one by one, checks each
/// one's sequence number, until the end mark.
pub fn line_stream_peer(shared: &Shared) -> Result<(), String> {
    let read = shared.word64(0);
    let lines = &shared.lines()[..STREAM_LINES];
    let parent = rustix::process::getppid();
    let mut seq = 0u64;
    loop {
        let line = &lines[(seq % STREAM_LINES as u64) as usize];
        let mut spins = 0u32;
        // Acquire, pairing with the producer's Release of the tag.
        while line[0].load(Ordering::Acquire) != seq + 1 {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins == 0 && orphaned(parent) {
                return Err("the line stream's producer is gone".to_owned());
            }
        }
        let payload = line[7].load(Ordering::Relaxed);
        if payload == DONE {
            read.store(seq + 1, Ordering::Release);
            return Ok(());
        }
        if payload != seq {
            return Err(format!("line {seq} carried {payload}"));
        }
        seq += 1;
        if seq % LINES_PER_RELEASE == 0 {
            // Release: our reads of these lines happen before the
            // producer overwrites them.
            read.store(seq, Ordering::Release);
        }
    }
}

/// The bytes a cross-core copy mapping of `size`-byte messages needs: one
/// buffer each way.
pub fn cross_copy_len(size: usize) -> usize {
    DATA + 2 * size.next_multiple_of(4096)
}

/// Writes `value` into `len` bytes at `ptr`.
///
/// # Safety
///
/// `ptr..ptr + len` lies in a live mapping that nobody else accesses
/// until the caller hands it over.
unsafe fn fill(ptr: *mut u8, len: usize, value: u8) {
    // SAFETY: the caller's promise.
    unsafe { std::ptr::write_bytes(ptr, value, len) }
}

/// Reads all `len` bytes at `ptr`: whether every one is `value`.
///
/// # Safety
///
/// As for [`fill`].
unsafe fn all_are(ptr: *const u8, len: usize, value: u8) -> bool {
    // SAFETY: the caller's promise: nobody writes these bytes meanwhile.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    // A fold without an early exit: the compiler reads it with vector loads.
    bytes.iter().fold(0u8, |acc, &b| acc | (b ^ value)) == 0
}

/// The parent's half of the cross-core copy: writes `size` bytes (every
/// byte the round trip's number) into its buffer, publishes the number
/// (flag word 1), waits for the peer's number (flag word 2) and reads all
/// `size` bytes the peer wrote back. Returns sorted round-trip times.
pub fn cross_copy_parent(
    shared: &Shared,
    size: usize,
    plan: Plan,
    gone: &mut dyn FnMut() -> bool,
) -> Result<Vec<Duration>, String> {
    let (to_peer, from_peer) = (shared.word64(1), shared.word64(2));
    let stride = size.next_multiple_of(4096);
    let (out, back) = (shared.bytes(0, size), shared.bytes(stride, size));
    let rtts = plan.run(|i| {
        let value = i as u8;
        let start = Instant::now();
        // SAFETY: `out` is ours until the Release store below hands it to
        // the peer, which hands it back by its own store to `from_peer`
        // (it reads `out` before it writes `back` and publishes).
        unsafe { fill(out, size, value) };
        to_peer.store(i + 1, Ordering::Release);
        spin_until(from_peer, i + 1, gone, "cross-core copy")?;
        // SAFETY: the peer wrote `back` before its Release store that the
        // Acquire load above saw, and writes it again only after our next
        // store to `to_peer`.
        if !unsafe { all_are(back, size, value) } {
            return Err(format!("cross-core copy: round trip {i} came back changed"));
        }
        Ok(start.elapsed())
    });
    to_peer.store(DONE, Ordering::Release);
    rtts
}

/// The peer's half of the cross-core copy: reads all of each buffer the
/// parent publishes and writes `size` bytes back.
pub fn cross_copy_peer(shared: &Shared, size: usize) -> Result<(), String> {
    let (to_peer, from_peer) = (shared.word64(1), shared.word64(2));
    let stride = size.next_multiple_of(4096);
    let (out, back) = (shared.bytes(0, size), shared.bytes(stride, size));
    let parent = rustix::process::getppid();
    for i in 0u64.. {
        let mut spins = 0u32;
        loop {
            match to_peer.load(Ordering::Acquire) {
                DONE => return Ok(()),
                v if v == i + 1 => break,
                _ => {}
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins == 0 && orphaned(parent) {
                return Err("the cross-core copy's parent is gone".to_owned());
            }
        }
        let value = i as u8;
        // SAFETY: the parent wrote `out` before the Release store seen
        // above and writes it again only after our store below; `back` is
        // ours until that store (the parent reads it only after seeing it).
        unsafe {
            if !all_are(out, size, value) {
                return Err(format!("cross-core copy: message {i} arrived changed"));
            }
            fill(back, size, value);
        }
        from_peer.store(i + 1, Ordering::Release);
    }
    Ok(())
}

/// An operating-system error as the message traits report it.
fn io(op: &'static str, source: impl Into<std::io::Error>) -> Error {
    Error::Io {
        op,
        source: source.into(),
    }
}

/// A blocking byte stream carrying fixed-size messages: `recv` reads
/// exactly `size` bytes; end of stream at a message boundary is
/// `Disconnected`.
pub struct RawStream {
    fd: OwnedFd,
    size: usize,
}

impl RawStream {
    /// Wraps a blocking descriptor (pipe end, FIFO, stream socket).
    pub fn new(fd: impl Into<OwnedFd>, size: usize) -> Result<RawStream, String> {
        let fd = fd.into();
        // Blocking: the raw floor waits in read(2) itself.
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| format!("fcntl: {e}"))?;
        rustix::fs::fcntl_setfl(&fd, flags - rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| format!("fcntl: {e}"))?;
        Ok(RawStream { fd, size })
    }
}

impl MessageSender for RawStream {
    fn max_message(&self) -> usize {
        self.size
    }
    fn send(&mut self, mut msg: &[u8]) -> Result<(), Error> {
        while !msg.is_empty() {
            match rustix::io::write(&self.fd, msg) {
                Ok(n) => msg = &msg[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::PIPE | rustix::io::Errno::CONNRESET) => {
                    return Err(Error::Disconnected);
                }
                Err(e) => return Err(io("write", e)),
            }
        }
        Ok(())
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send(msg)
    }
    fn send_timeout(&mut self, msg: &[u8], _: Duration) -> Result<(), Error> {
        self.send(msg)
    }
}

impl MessageReceiver for RawStream {
    fn max_message(&self) -> usize {
        self.size
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let want = self.size.min(buf.len());
        let mut got = 0;
        while got < want {
            match rustix::io::read(&self.fd, &mut buf[got..want]) {
                Ok(0) if got == 0 => return Err(Error::Disconnected),
                Ok(0) => return Err(Error::Truncated),
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::CONNRESET) => return Err(Error::Disconnected),
                Err(e) => return Err(io("read", e)),
            }
        }
        Ok(got)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], _: Duration) -> Result<usize, Error> {
        self.recv(buf)
    }
}

/// A connected, blocking unix datagram socket: one `send`/`recv` per
/// message. Dropping it sends the empty end mark.
pub struct RawDgram {
    fd: OwnedFd,
    max: usize,
}

impl RawDgram {
    /// Wraps a connected datagram socket.
    pub fn new(fd: impl Into<OwnedFd>, max: usize) -> RawDgram {
        RawDgram { fd: fd.into(), max }
    }
}

impl Drop for RawDgram {
    fn drop(&mut self) {
        // Blocking: the receiver is draining (a dead one refuses at once).
        let _ = rustix::net::send(&self.fd, &[], rustix::net::SendFlags::empty());
    }
}

impl MessageSender for RawDgram {
    fn max_message(&self) -> usize {
        self.max
    }
    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        loop {
            match rustix::net::send(&self.fd, msg, rustix::net::SendFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::CONNREFUSED | rustix::io::Errno::CONNRESET) => {
                    return Err(Error::Disconnected);
                }
                Err(e) => return Err(io("send", e)),
            }
        }
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send(msg)
    }
    fn send_timeout(&mut self, msg: &[u8], _: Duration) -> Result<(), Error> {
        self.send(msg)
    }
}

impl MessageReceiver for RawDgram {
    fn max_message(&self) -> usize {
        self.max
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match rustix::net::recv(&self.fd, &mut *buf, rustix::net::RecvFlags::empty()) {
                Ok((0, _)) => return Err(Error::Disconnected),
                Ok((n, _)) => return Ok(n),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io("recv", e)),
            }
        }
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], _: Duration) -> Result<usize, Error> {
        self.recv(buf)
    }
}

/// POSIX message queues used directly (`mq_send`, `mq_receive`, blocking):
/// one queue to send on, one to receive from. Dropping it sends the empty
/// end mark; the creator unlinks the names.
pub struct RawMq {
    tx: libc::mqd_t,
    rx: libc::mqd_t,
    max: usize,
    unlink: Vec<CString>,
}

impl RawMq {
    /// Creates (`create`) or opens the two queues `tx` and `rx`, each
    /// holding `depth` messages of up to `max` bytes.
    pub fn open(
        tx: &str,
        rx: &str,
        max: usize,
        depth: usize,
        create: bool,
    ) -> Result<RawMq, String> {
        let open = |name: &str| -> Result<(libc::mqd_t, CString), String> {
            let c = CString::new(name).map_err(|e| format!("queue name: {e}"))?;
            // SAFETY: an all-zero mq_attr is a valid value of the C struct.
            let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
            attr.mq_maxmsg = depth as libc::c_long;
            attr.mq_msgsize = max.max(1) as libc::c_long;
            let flags = if create {
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC
            } else {
                libc::O_RDWR | libc::O_CLOEXEC
            };
            // SAFETY: `c` is a NUL-terminated name; with O_CREAT the mode
            // and a valid attr pointer follow, as mq_open(3) requires.
            let q = unsafe { libc::mq_open(c.as_ptr(), flags, 0o600 as libc::mode_t, &attr) };
            if q == -1 {
                return Err(format!(
                    "mq_open {name}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok((q, c))
        };
        let (tx, tx_name) = open(tx)?;
        let (rx, rx_name) = match open(rx) {
            Ok(q) => q,
            Err(e) => {
                // SAFETY: `tx` is a descriptor we opened and own.
                unsafe { libc::mq_close(tx) };
                return Err(e);
            }
        };
        Ok(RawMq {
            tx,
            rx,
            max: max.max(1),
            unlink: if create {
                vec![tx_name, rx_name]
            } else {
                Vec::new()
            },
        })
    }
}

impl Drop for RawMq {
    fn drop(&mut self) {
        // The end mark waits for room (the receiver is draining), but not
        // forever: a receiver that died leaves the queue full.
        let in_5s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 5;
        let end = libc::timespec {
            tv_sec: in_5s as libc::time_t,
            tv_nsec: 0,
        };
        // SAFETY: both descriptors are ours; the empty message needs no
        // buffer; the names are NUL-terminated; `end` is a valid absolute
        // CLOCK_REALTIME deadline, as mq_timedsend(3) takes.
        unsafe {
            libc::mq_timedsend(self.tx, [0u8; 1].as_ptr().cast(), 0, 0, &end);
            libc::mq_close(self.tx);
            libc::mq_close(self.rx);
            for name in &self.unlink {
                libc::mq_unlink(name.as_ptr());
            }
        }
    }
}

impl MessageSender for RawMq {
    fn max_message(&self) -> usize {
        self.max
    }
    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        loop {
            // SAFETY: `msg` is valid for its length; the queue is ours.
            if unsafe { libc::mq_send(self.tx, msg.as_ptr().cast(), msg.len(), 0) } == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io("mq_send", e));
            }
        }
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.send(msg)
    }
    fn send_timeout(&mut self, msg: &[u8], _: Duration) -> Result<(), Error> {
        self.send(msg)
    }
}

impl MessageReceiver for RawMq {
    fn max_message(&self) -> usize {
        self.max
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < self.max {
            return Err(Error::BufferTooSmall {
                needed: self.max,
                available: buf.len(),
            });
        }
        loop {
            // SAFETY: `buf` is writable for `buf.len()` bytes, at least the
            // queue's message size (checked above).
            let n = unsafe {
                libc::mq_receive(
                    self.rx,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                )
            };
            match n {
                0 => return Err(Error::Disconnected),
                n if n > 0 => return Ok(n as usize),
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(io("mq_receive", e));
                    }
                }
            }
        }
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], _: Duration) -> Result<usize, Error> {
        self.recv(buf)
    }
}
