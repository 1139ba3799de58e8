//! The ring's own measurements, through its own API rather than the
//! message traits:
//!
//! - zero-copy round trips ([`round_trips`], the headline): the sender
//!   reserves a grant, writes the whole message in place and commits it;
//!   the receiver takes a read grant and checks the first and last byte,
//!   as peers' benchmarks do; [`echo`] answers the same way. Two anonymous
//!   rings, one each way, handed to the peer as inherited descriptors.
//!   Checking two bytes moves two of a large message's lines to the
//!   receiver's CPU, so with `read_all` both receivers read every byte in
//!   place instead, as the cross-core copy floor's reader does.
//! - streaming ([`stream`]): batches of up to 256 messages per published
//!   position; [`sink`] reads each in place, checks its sequence number
//!   and reads one byte of every 64-byte line of it, so that every line
//!   crosses to the receiver's CPU.

use std::time::{Duration, Instant};

use shmlane_examples::rtt::Plan;
use shmlane_posix::{Error, Options, Receiver, Sender, WaitMode};

use crate::Pass;
use crate::peer::{self, Job, Peer};

/// The wait mode of `spin` (busy-poll) or not (spin, then futex).
pub fn wait_mode(spin: bool) -> WaitMode {
    if spin {
        WaitMode::BusyPoll
    } else {
        WaitMode::SpinThenFutex
    }
}

/// The ring's two ends for zero-copy round trips, and the echoing peer.
pub struct ZeroCopy {
    /// To the peer.
    pub tx: Sender,
    /// From the peer.
    pub rx: Receiver,
    /// The echo.
    pub peer: Peer,
}

/// Creates the two rings for round trips of `size` bytes and starts the
/// echoing peer on them.
pub fn open(pass: &Pass, size: usize, spin: bool, read_all: bool) -> Result<ZeroCopy, String> {
    let options = Options::new()
        .capacity(crate::rtt_capacity(size))
        .max_message(size.max(64))
        .wait_mode(wait_mode(spin));
    let (tx, to_peer) = Sender::anonymous(&options).map_err(|e| format!("ring: {e}"))?;
    let (rx, from_peer) = Receiver::anonymous(&options).map_err(|e| format!("ring: {e}"))?;
    let mut job = pass.job("zero-copy-echo", "shm", size, spin);
    job.read_all = read_all;
    job.fds = vec![crate::raw_fd(&to_peer), crate::raw_fd(&from_peer)];
    let mut peer = Peer::spawn(&job, vec![to_peer, from_peer])?;
    crate::expect(&mut peer, "ready")?;
    Ok(ZeroCopy { tx, rx, peer })
}

/// Whether a received message is intact: `size` bytes, each `value`;
/// checked at the first and last byte, or at every byte (`read_all`).
fn intact(msg: &[u8], size: usize, value: u8, read_all: bool) -> bool {
    let ends = msg.len() == size && msg.first() == Some(&value) && msg.last() == Some(&value);
    // A fold without an early exit: read with vector loads.
    ends && (!read_all || msg.iter().fold(0, |odd, &b| odd | (b ^ value)) == 0)
}

/// Zero-copy round trips of `size`-byte messages: each is written in place
/// (every byte the round trip's number), echoed, and its echo checked at
/// its first and last byte (or, `read_all`, every byte). With a `gap`, sleeps that long before each
/// (untimed), so that the peer has gone to sleep when the message comes.
/// Returns the sorted round-trip times.
pub fn round_trips(
    zc: &mut ZeroCopy,
    size: usize,
    plan: Plan,
    gap: Duration,
    read_all: bool,
) -> Result<Vec<Duration>, String> {
    plan.run(|i| {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let value = i as u8;
        let start = Instant::now();
        let mut grant = zc.tx.reserve(size).map_err(|e| format!("reserve: {e}"))?;
        grant.fill(value);
        grant.commit(size);
        let reply = zc.rx.read().map_err(|e| format!("read: {e}"))?;
        let ok = intact(&reply, size, value, read_all);
        reply.release();
        let rtt = start.elapsed();
        if !ok {
            return Err(format!("round trip {i}: the echo came back changed"));
        }
        Ok(rtt)
    })
}

/// The peer of [`round_trips`]: checks every message as the job says
/// (`read_all`) and answers it with one of the same length written in
/// place, every byte the message's first, until the other side closes.
pub fn echo(job: &Job) -> Result<(), String> {
    let options = Options::new().wait_mode(wait_mode(job.spin));
    let mut rx = Receiver::from_fd(job.take_fd(0)?, &options).map_err(|e| format!("ring: {e}"))?;
    let mut tx = Sender::from_fd(job.take_fd(1)?, &options).map_err(|e| format!("ring: {e}"))?;
    peer::report("ready")?;
    loop {
        let msg = match rx.read() {
            Ok(msg) => msg,
            Err(Error::Disconnected) => return Ok(()),
            Err(e) => return Err(format!("read: {e}")),
        };
        let (len, value) = (msg.len(), msg.first().copied().unwrap_or(0));
        let ok = intact(&msg, len, value, job.read_all);
        msg.release();
        if !ok {
            return Err("a message arrived changed".to_owned());
        }
        let mut grant = match tx.reserve(len) {
            Ok(grant) => grant,
            Err(Error::Disconnected) => return Ok(()),
            Err(e) => return Err(format!("reserve: {e}")),
        };
        grant.fill(value);
        grant.commit(len);
    }
}

/// Streaming over the ring for `time`: batches of up to 256 messages per
/// published position, busy-polling for room. Returns (messages, elapsed
/// until the peer had them all).
pub fn stream(pass: &Pass, size: usize, time: Duration) -> Result<(u64, Duration), String> {
    let name = format!("/{}", pass.unique("shmlane-bench"));
    let capacity = crate::stream_capacity(size);
    let options = Options::new()
        .capacity(capacity)
        .max_message(size)
        .wait_mode(WaitMode::BusyPoll);
    let mut tx = Sender::create(&name, &options).map_err(|e| format!("{name}: {e}"))?;
    let mut job = pass.job("sink", "shm", size, true);
    job.capacity = capacity;
    job.addr = name.clone();
    let mut peer = Peer::spawn(&job, Vec::new())?;
    crate::expect(&mut peer, "ready")?;
    let _ = shmlane_posix::Segment::unlink(&name);
    let mut msg = vec![crate::FILL; size];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut batches = 0u32;
    loop {
        let mut batch = tx.batch();
        while batch.len() < 256 {
            crate::stamp(&mut msg, sent);
            match batch.try_send(&msg) {
                Ok(()) => sent += 1,
                Err(shmlane_core::Error::Full) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        let empty = batch.is_empty();
        drop(batch);
        if empty {
            crate::stamp(&mut msg, sent);
            tx.send(&msg).map_err(|e| e.to_string())?; // waits for room
            sent += 1;
        }
        batches += 1;
        if batches % 16 == 0 && start.elapsed() >= time {
            break;
        }
    }
    drop(tx);
    let got = peer.report()?;
    let elapsed = start.elapsed();
    peer.finish()?;
    if got != format!("received {sent}") {
        return Err(format!("sent {sent}, the peer reported {got:?}"));
    }
    Ok((sent, elapsed))
}

/// The peer of [`stream`]: reads every message in place, in batches, and
/// checks it ([`crate::check`]). Returns how many arrived.
pub fn sink(job: &Job) -> Result<u64, String> {
    let options = Options::new().wait_mode(WaitMode::BusyPoll);
    let mut rx = Receiver::open(&job.addr, &options).map_err(|e| format!("{}: {e}", job.addr))?;
    peer::report("ready")?;
    let mut count = 0u64;
    loop {
        let mut batch = rx.batch();
        let mut got = 0;
        while got < 256 {
            match batch.try_read() {
                Ok(msg) => crate::check(&msg, job.size, count + got)?,
                Err(_) => break,
            }
            got += 1;
        }
        drop(batch);
        count += got;
        if got == 0 {
            match rx.read() {
                Ok(msg) => {
                    crate::check(&msg, job.size, count)?;
                    count += 1;
                }
                Err(Error::Disconnected) => return Ok(count),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
