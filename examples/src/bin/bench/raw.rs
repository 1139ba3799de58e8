//! The floors: what the machine and the kernel do without shmlane.
//!
//! - an atomic ping-pong on one shared cache line, and the same with a
//!   futex wait and wake per turn ([`atomic_parent`], [`futex_parent`] and
//!   their peers);
//! - memcpy bandwidth ([`memcpy`]);
//! - the raw kernel transports that shmlane's fallbacks wrap, used the
//!   plain way (blocking calls, fixed-size messages, no framing):
//!   [`RawStream`] (pipe, FIFO, unix stream, TCP), [`RawDgram`] and
//!   [`RawMq`]. They speak the message traits so that the same round-trip
//!   and streaming code drives them; an empty message (or end of stream)
//!   marks the end.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;
use shmlane_posix::{Error, Segment};
use shmlane_posix::{MessageReceiver, MessageSender};

/// The value that tells a floor's peer to stop.
const DONE: u64 = u64::MAX;

/// One shared page for the atomic and futex floors (the word is its first
/// 8 bytes, alone on its cache line).
pub struct SharedWord {
    segment: Segment,
}

impl SharedWord {
    /// A fresh page, and a descriptor for the peer.
    pub fn create() -> Result<(SharedWord, OwnedFd), String> {
        let segment = Segment::anonymous(4096).map_err(|e| format!("memfd: {e}"))?;
        segment.seal().map_err(|e| format!("memfd seals: {e}"))?;
        let fd = segment
            .fd()
            .try_clone_to_owned()
            .map_err(|e| format!("dup: {e}"))?;
        Ok((SharedWord { segment }, fd))
    }

    /// The peer's view of the parent's page.
    pub fn from_fd(fd: OwnedFd) -> Result<SharedWord, String> {
        let segment = Segment::from_fd(fd).map_err(|e| format!("mapping the floor page: {e}"))?;
        if segment.len() < 8 {
            return Err("the floor page is too small".to_owned());
        }
        Ok(SharedWord { segment })
    }

    fn ptr(&self) -> NonNull<u8> {
        self.segment.as_ptr()
    }

    fn word64(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, at least 8 bytes long and
        // lives as long as `self`; it is only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.ptr().as_ptr().cast()) }
    }

    fn word32(&self) -> &AtomicU32 {
        // SAFETY: as in `word64` (4 aligned bytes).
        unsafe { AtomicU32::from_ptr(self.ptr().as_ptr().cast()) }
    }
}

/// Whether the process that started us is gone (then a floor's peer stops
/// instead of waiting forever).
fn orphaned(parent: Option<rustix::process::Pid>) -> bool {
    rustix::process::getppid() != parent
}

/// The parent's half of the atomic ping-pong: stores an odd count, spins
/// until the peer answers with the next even one. Returns sorted RTTs.
/// `gone` is asked now and then while waiting: true ends the run.
pub fn atomic_parent(
    page: &SharedWord,
    plan: shmlane_examples::rtt::Plan,
    gone: &mut dyn FnMut() -> bool,
) -> Result<Vec<Duration>, String> {
    let word = page.word64();
    let mut rtts = Vec::with_capacity(plan.min);
    let begun = Instant::now();
    for i in 0u64.. {
        let timed = (i as usize).saturating_sub(plan.warmup);
        if timed >= plan.max || (timed >= plan.min && begun.elapsed() >= plan.time) {
            break;
        }
        let start = Instant::now();
        word.store(2 * i + 1, Ordering::Release);
        let mut spins = 0u32;
        while word.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % (1 << 22) == 0 && gone() {
                return Err("the atomic floor's peer is gone".to_owned());
            }
        }
        if i as usize >= plan.warmup {
            rtts.push(start.elapsed());
        }
    }
    word.store(DONE, Ordering::Release);
    rtts.sort_unstable();
    Ok(rtts)
}

/// The peer's half of the atomic ping-pong.
pub fn atomic_peer(page: &SharedWord) {
    let word = page.word64();
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
pub fn futex_parent(
    page: &SharedWord,
    plan: shmlane_examples::rtt::Plan,
    gone: &mut dyn FnMut() -> bool,
) -> Result<Vec<Duration>, String> {
    let word = page.word32();
    let mut rtts = Vec::with_capacity(plan.min);
    let begun = Instant::now();
    for i in 0u32.. {
        let timed = (i as usize).saturating_sub(plan.warmup);
        if timed >= plan.max || (timed >= plan.min && begun.elapsed() >= plan.time) {
            break;
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
        if i as usize >= plan.warmup {
            rtts.push(start.elapsed());
        }
    }
    word.store(DONE as u32, Ordering::Release);
    futex_wake(word);
    rtts.sort_unstable();
    Ok(rtts)
}

/// The peer's half of the futex ping-pong.
pub fn futex_peer(page: &SharedWord) {
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

/// memcpy bandwidth: copies a `size`-byte buffer into another, over and
/// over, for about `time`. Returns (copies, elapsed).
pub fn memcpy(size: usize, time: Duration) -> (u64, Duration) {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    // Touch both first (page faults are not bandwidth).
    dst.copy_from_slice(&src);
    let mut copies = 0u64;
    let start = Instant::now();
    // Enough copies between clock reads that reading it costs nothing.
    let per_check = (1 << 20) / size.max(1) + 1;
    loop {
        for _ in 0..per_check {
            std::hint::black_box(&mut dst).copy_from_slice(std::hint::black_box(&src));
        }
        copies += per_check as u64;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return (copies, elapsed);
        }
    }
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
