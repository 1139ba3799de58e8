//! Round trips over any transport: the measuring side of `pingpong` and
//! `bench`, and the echoing peer they both start.
//!
//! - [`Pair`] joins a sending and a receiving half (two pipes, two
//!   channels) into one two-way connection;
//! - [`recv`] receives one message, busy-polling when asked;
//! - [`echo`] is the peer: it sends back every message until the other side
//!   closes;
//! - [`round_trips`] sends messages one at a time, times each echo and
//!   checks it came back intact; [`Plan`] says how many.

use std::time::{Duration, Instant};

use shmlane_posix::Error;
use shmlane_posix::{MessageReceiver, MessageSender};

/// A sending half and a receiving half used as one two-way connection.
///
/// # Examples
///
/// ```
/// use shmlane_examples::rtt::Pair;
/// use shmlane_posix::{Framed, MessageReceiver, MessageSender};
///
/// let (tx, rx) = Framed::pipe(64)?;
/// let mut pair = Pair { tx, rx }; // a loop-back connection
/// pair.send(b"hi")?;
/// let mut buf = [0; 64];
/// assert_eq!(pair.recv(&mut buf)?, 2);
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug)]
pub struct Pair<T, R> {
    /// Where messages go.
    pub tx: T,
    /// Where messages come from.
    pub rx: R,
}

impl<T: MessageSender, R> MessageSender for Pair<T, R> {
    fn max_message(&self) -> usize {
        self.tx.max_message()
    }
    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.tx.send(msg)
    }
    fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.tx.try_send(msg)
    }
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), Error> {
        self.tx.send_timeout(msg, timeout)
    }
}

impl<T, R: MessageReceiver> MessageReceiver for Pair<T, R> {
    fn max_message(&self) -> usize {
        self.rx.max_message()
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.rx.recv(buf)
    }
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.rx.try_recv(buf)
    }
    fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, Error> {
        self.rx.recv_timeout(buf, timeout)
    }
}

/// Empty polls between two `sched_yield`s of a busy-polling [`recv`]
/// (some tens of microseconds of polling: longer than a round trip between
/// two CPUs, so a process whose peer runs on another CPU practically never
/// yields, and when it does the call returns at once; a peer that shares
/// the CPU runs after that instead of after a time slice). The ring's own
/// busy-poll (`WaitMode::BusyPoll`) knows where its peer runs and yields
/// sooner when it shares the CPU; this loop cannot tell.
const POLLS_PER_YIELD: u32 = 4096;

/// Receives one message into `buf`. With `spin`, busy-polls with
/// non-blocking calls instead of waiting in the kernel, yielding the CPU
/// every 4096 empty polls so that two ends on one CPU still
/// take turns.
pub fn recv(conn: &mut impl MessageReceiver, buf: &mut [u8], spin: bool) -> Result<usize, Error> {
    if !spin {
        return conn.recv(buf);
    }
    let mut empty = 0u32;
    loop {
        match conn.try_recv(buf) {
            Err(Error::Empty) => {
                empty = empty.wrapping_add(1);
                if empty % POLLS_PER_YIELD == 0 {
                    rustix::thread::sched_yield();
                } else {
                    std::hint::spin_loop();
                }
            }
            other => return other,
        }
    }
}

/// The peer of [`round_trips`]: sends back every message until the other
/// side closes (then returns `Ok`).
pub fn echo(conn: &mut (impl MessageSender + MessageReceiver), spin: bool) -> Result<(), Error> {
    let mut buf = vec![0; MessageReceiver::max_message(conn)];
    loop {
        match recv(conn, &mut buf, spin) {
            Ok(n) => conn.send(&buf[..n])?,
            Err(Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// How many round trips [`round_trips`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Untimed round trips first (caches, branch predictors, page faults).
    pub warmup: usize,
    /// Timed round trips: at least this many...
    pub min: usize,
    /// ...and more until `time` has passed...
    pub time: Duration,
    /// ...but never more than this many.
    pub max: usize,
}

impl Plan {
    /// Exactly `count` timed round trips after a warm-up of a tenth of that
    /// (at most 10 000).
    pub fn count(count: usize) -> Plan {
        Plan {
            warmup: (count / 10).min(10_000),
            min: count,
            time: Duration::ZERO,
            max: count,
        }
    }

    /// Runs `trip` for round trip 0, 1, 2 … as the plan says, and returns
    /// the sorted times of the timed ones. `trip(i)` does round trip `i`
    /// and returns how long it took (what it does before it starts the
    /// clock, such as an idle gap, is not counted); an error ends the run.
    /// The clock that ends the plan is read every 16 timed round trips.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmlane_examples::rtt::Plan;
    ///
    /// let mut seen = Vec::new();
    /// let times = Plan::count(20).run(|i| {
    ///     seen.push(i);
    ///     Ok::<_, ()>(Duration::from_nanos(100 - i))
    /// })?;
    /// assert_eq!(seen.len(), 22); // 2 untimed, then 20 timed
    /// assert_eq!(times.len(), 20);
    /// assert!(times.is_sorted());
    /// # Ok::<(), ()>(())
    /// ```
    pub fn run<E>(
        &self,
        mut trip: impl FnMut(u64) -> Result<Duration, E>,
    ) -> Result<Vec<Duration>, E> {
        let mut rtts = Vec::with_capacity(self.min.min(1 << 20));
        let mut begun = Instant::now();
        for i in 0u64.. {
            let timed = i as usize >= self.warmup;
            if i as usize == self.warmup {
                begun = Instant::now();
            }
            if timed {
                let n = rtts.len();
                let enough = n >= self.min && n % 16 == 0 && begun.elapsed() >= self.time;
                if n >= self.max || enough {
                    break;
                }
            }
            let rtt = trip(i)?;
            if timed {
                rtts.push(rtt);
            }
        }
        rtts.sort_unstable();
        Ok(rtts)
    }
}

/// Sends `size`-byte messages one at a time, each to be echoed back, and
/// returns the sorted round-trip times. An echo that differs from what was
/// sent is an error ([`Error::Corrupt`]).
///
/// # Examples
///
/// ```
/// use shmlane_examples::rtt::{Pair, Plan, echo, round_trips};
/// use shmlane_posix::Framed;
///
/// let (to_peer, peer_rx) = Framed::pipe(64)?;
/// let (peer_tx, from_peer) = Framed::pipe(64)?;
/// let peer = std::thread::spawn(move || echo(&mut Pair { tx: peer_tx, rx: peer_rx }, false));
/// let rtts = round_trips(&mut Pair { tx: to_peer, rx: from_peer }, 64, false, Plan::count(100))?;
/// assert_eq!(rtts.len(), 100);
/// assert!(rtts.is_sorted());
/// peer.join().unwrap()?; // our ends closed: the echo saw the end
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn round_trips(
    conn: &mut (impl MessageSender + MessageReceiver),
    size: usize,
    spin: bool,
    plan: Plan,
) -> Result<Vec<Duration>, Error> {
    // A pattern that changes from message to message, so that a stale
    // echo is caught.
    let mut msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut buf = vec![0; MessageReceiver::max_message(conn)];
    plan.run(|i| {
        if let Some(first) = msg.first_mut() {
            *first = i as u8;
        }
        let start = Instant::now();
        conn.send(&msg)?;
        let n = recv(conn, &mut buf, spin)?;
        let rtt = start.elapsed();
        if buf.get(..n) != Some(&msg[..]) {
            return Err(Error::Corrupt(shmlane_posix::Corruption::RecordLength));
        }
        Ok(rtt)
    })
}

/// The `p`-quantile (0.0 ..= 1.0) of sorted samples, by nearest rank;
/// `None` when there are none.
///
/// # Examples
///
/// ```
/// use shmlane_examples::rtt::percentile;
///
/// let samples: Vec<u32> = (1..=1000).collect();
/// assert_eq!(percentile(&samples, 0.5), Some(&501));
/// assert_eq!(percentile(&samples, 0.999), Some(&999));
/// assert_eq!(percentile::<u32>(&[], 0.5), None);
/// ```
pub fn percentile<T>(sorted: &[T], p: f64) -> Option<&T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last as f64 * p.clamp(0.0, 1.0)).round() as usize)
}
