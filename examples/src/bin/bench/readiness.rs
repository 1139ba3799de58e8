//! The readiness figures: the async round trip (tokio, current-thread, on
//! both sides) against tokio over a unix stream socket, the time from a
//! peer's SIGKILL to a blocked side's `Disconnected`, and the wake-ups of
//! an idle blocked receiver.
//!
//! The async comparison is interleaved like every other ratio (unix
//! socket, shm, unix socket, shm, …, a ratio per round), between two
//! threads of this process pinned to the pass's two CPUs: the transport is
//! the same between threads as between processes, and tokio runs the same
//! way.
//!
//! The invariant: every figure here is one value per round, summarised by
//! its median and spread, never a single run.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::{Duration, Instant};

use shmlane_posix::async_channel::{AsyncReceiver, AsyncSender};
use shmlane_posix::{Options, Receiver, Sender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::peer;
use crate::rounds::Summary;

const SIZE: usize = 64;

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// The median of `trips` round trips, in ns: `client` on this thread (pinned
/// to `cpus.0`), `server` on another (pinned to `cpus.1`), each on a
/// current-thread runtime of its own.
fn measure<C, S>(cpus: (usize, usize), trips: usize, client: C, server: S) -> Result<f64, String>
where
    C: FnOnce(usize) -> Result<Vec<Duration>, String>,
    S: FnOnce() -> Result<(), String> + Send + 'static,
{
    let server = std::thread::spawn(move || {
        peer::pin(&[cpus.1])?;
        server()
    });
    peer::pin(&[cpus.0])?;
    let mut times = client(trips)?;
    server
        .join()
        .map_err(|_| "the async echo thread panicked")??;
    times.sort();
    shmlane_examples::rtt::percentile(&times, 0.5)
        .map(|d| d.as_nanos() as f64)
        .ok_or_else(|| "no round trips".to_owned())
}

fn unix_round(cpus: (usize, usize), trips: usize) -> Result<f64, String> {
    let (a, b) = StdUnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    for s in [&a, &b] {
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let server = move || -> Result<(), String> {
        runtime()?.block_on(async move {
            let mut s = tokio::net::UnixStream::from_std(b).map_err(|e| e.to_string())?;
            let mut buf = [0; SIZE];
            // Until the client closes.
            while s.read_exact(&mut buf).await.is_ok() {
                s.write_all(&buf).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    };
    let client = move |trips| -> Result<Vec<Duration>, String> {
        runtime()?.block_on(async move {
            let mut s = tokio::net::UnixStream::from_std(a).map_err(|e| e.to_string())?;
            let (msg, mut buf) = ([7; SIZE], [0; SIZE]);
            let mut times = Vec::with_capacity(trips);
            for _ in 0..trips {
                let start = Instant::now();
                s.write_all(&msg).await.map_err(|e| e.to_string())?;
                s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
                times.push(start.elapsed());
            }
            Ok(times)
        })
    };
    measure(cpus, trips, client, server)
}

fn shm_round(cpus: (usize, usize), trips: usize, spin: Duration) -> Result<f64, String> {
    let e = |e: shmlane_posix::Error| e.to_string();
    let options = Options::new().capacity(1 << 16);
    let (req_tx, req_fd) = Sender::anonymous(&options).map_err(e)?;
    let req_rx = Receiver::from_fd(req_fd, &options).map_err(e)?;
    let (rep_tx, rep_fd) = Sender::anonymous(&options).map_err(e)?;
    let rep_rx = Receiver::from_fd(rep_fd, &options).map_err(e)?;
    let server = move || -> Result<(), String> {
        runtime()?.block_on(async move {
            let mut rx = AsyncReceiver::with_spin(req_rx, spin).map_err(e)?;
            let mut tx = AsyncSender::new(rep_tx).map_err(e)?;
            let mut buf = [0; SIZE];
            // Until the client closes.
            while let Ok(n) = rx.recv(&mut buf).await {
                tx.send(&buf[..n]).await.map_err(e)?;
            }
            Ok(())
        })
    };
    let client = move |trips| -> Result<Vec<Duration>, String> {
        runtime()?.block_on(async move {
            let mut tx = AsyncSender::new(req_tx).map_err(e)?;
            let mut rx = AsyncReceiver::with_spin(rep_rx, spin).map_err(e)?;
            let (msg, mut buf) = ([7; SIZE], [0; SIZE]);
            let mut times = Vec::with_capacity(trips);
            for _ in 0..trips {
                let start = Instant::now();
                tx.send(&msg).await.map_err(e)?;
                rx.recv(&mut buf).await.map_err(e)?;
                times.push(start.elapsed());
            }
            Ok(times)
        })
    };
    measure(cpus, trips, client, server)
}

/// What [`async_ratios`] measured.
pub struct AsyncFigures {
    /// shm with the default spin window / unix socket, per round.
    pub spinning: Summary,
    /// shm arming at once (no spin window) / unix socket, per round.
    pub arming: Summary,
    /// The medians over the rounds, in ns: unix socket, shm spinning, shm
    /// arming at once.
    pub medians_ns: (f64, f64, f64),
}

/// The async 64 B round trip over shm (with the default spin window, and
/// arming at once) divided by tokio's over a unix stream socket, a ratio
/// per interleaved round.
pub fn async_ratios(
    cpus: (usize, usize),
    rounds: usize,
    trips: usize,
) -> Result<AsyncFigures, String> {
    let (mut spinning, mut arming) = (Vec::new(), Vec::new());
    let (mut floors, mut spins, mut arms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let floor = unix_round(cpus, trips)?;
        let spin = shm_round(cpus, trips, shmlane_posix::async_channel::DEFAULT_SPIN)?;
        let arm = shm_round(cpus, trips, Duration::ZERO)?;
        spinning.push(spin / floor);
        arming.push(arm / floor);
        floors.push(floor);
        spins.push(spin);
        arms.push(arm);
    }
    let m = |v: &[f64]| crate::rounds::median(v).unwrap_or(f64::NAN);
    Ok(AsyncFigures {
        medians_ns: (m(&floors), m(&spins), m(&arms)),
        spinning: Summary::of(spinning),
        arming: Summary::of(arming),
    })
}

/// Context switches of every thread of process `pid` so far.
pub fn switches(pid: u32) -> Result<u64, String> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for task in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let path = task.map_err(|e| e.to_string())?.path().join("status");
        // A thread may end meanwhile: it switches no more.
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

/// Waits (at most a second) until every thread of process `pid` sleeps:
/// then its wake-ups can be counted from zero.
pub fn wait_until_all_asleep(pid: u32) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let dir = format!("/proc/{pid}/task");
    while Instant::now() < deadline {
        let mut all = true;
        for task in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
            let path = task.map_err(|e| e.to_string())?.path().join("stat");
            let asleep = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('S')));
            all &= asleep != Some(false);
        }
        if all {
            return Ok(());
        }
        std::thread::yield_now();
    }
    Err(format!("process {pid} did not go idle within a second"))
}
