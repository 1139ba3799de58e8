//! The many-clients figures: one server thread serving [`CLIENTS`] echo
//! clients through `listen("shm:…")` against the same server and clients
//! through `listen("unix:…")`: messages per second at the server, and the
//! clients' round trip p50 and p99.
//!
//! The server is what a user would write: one thread, one [`Selector`]
//! over the listener and every connection, `try_recv` until empty, echo.
//! The clients are threads of this process (the transports are the same
//! between threads as between processes), each doing its round trips of
//! [`SIZE`] bytes back to back. Both transports run in the same pass,
//! interleaved (unix, shm, unix, shm, …), a ratio per round.
//!
//! The invariant: every figure here is one value per round, summarised by
//! its median and spread, never a single run.

use std::time::{Duration, Instant};

use shmlane_posix::endpoint::{Connection, EndpointOptions, Listener, connect, listen};
use shmlane_posix::select::Ready;
use shmlane_posix::{Error, MessageReceiver, MessageSender, Selector, WaitMode};

use crate::rounds::Summary;

/// Clients per server.
pub const CLIENTS: usize = 8;
/// Bytes per message.
pub const SIZE: usize = 64;

/// What one round measured.
struct Round {
    /// Messages the server echoed per second, from its first message to
    /// its last.
    rate: f64,
    /// The clients' round trips (all of them), p50 and p99, in ns.
    p50: f64,
    p99: f64,
}

/// Serves echo clients until all `CLIENTS` have connected and gone; the
/// messages echoed and the time from the first to the last.
fn serve(mut listener: Listener) -> Result<(u64, Duration), String> {
    let mut conns: Vec<Connection> = Vec::new();
    let (mut accepted, mut echoed) = (0, 0u64);
    let (mut first, mut last) = (None, Instant::now());
    let mut selector = Selector::new();
    let mut buf = [0u8; SIZE];
    while accepted < CLIENTS || !conns.is_empty() {
        let ready = {
            let mut sides: Vec<&mut dyn Ready> = vec![&mut listener];
            sides.extend(conns.iter_mut().map(|c| c as &mut dyn Ready));
            selector
                .select(&mut sides, Some(Duration::from_secs(20)))
                .map_err(|e| e.to_string())?
        };
        if ready.is_empty() {
            return Err("the fan-in server waited 20 s for nothing".to_owned());
        }
        let mut gone = Vec::new();
        for &i in &ready {
            if i == 0 {
                match listener.try_accept() {
                    Ok(conn) => {
                        conns.push(conn);
                        accepted += 1;
                    }
                    Err(Error::Empty) => {}
                    Err(e) => return Err(format!("accept: {e}")),
                }
                continue;
            }
            let conn = &mut conns[i - 1];
            loop {
                match conn.try_recv(&mut buf) {
                    Ok(n) => {
                        conn.send(&buf[..n]).map_err(|e| e.to_string())?;
                        echoed += 1;
                        last = Instant::now();
                        first.get_or_insert(last);
                    }
                    Err(Error::Empty) => break,
                    Err(Error::Disconnected) => {
                        gone.push(i - 1);
                        break;
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            conns.swap_remove(i);
        }
    }
    Ok((echoed, last - first.unwrap_or(last)))
}

/// One round over `address`: the server on a thread, `CLIENTS` client
/// threads of `trips` round trips each.
fn round(address: &str, trips: usize, wait: WaitMode) -> Result<Round, String> {
    let options = EndpointOptions {
        shm: shmlane_posix::Options::new()
            .capacity(1 << 16)
            .wait_mode(wait),
        ..EndpointOptions::default()
    };
    let listener = listen(address, &options).map_err(|e| e.to_string())?;
    let address = listener.local_address().map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || serve(listener));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (address, options) = (address.clone(), options.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut conn = connect(&address, &options).map_err(|e| e.to_string())?;
                let (msg, mut buf) = ([7u8; SIZE], [0u8; SIZE]);
                let mut times = Vec::with_capacity(trips);
                for _ in 0..trips {
                    let start = Instant::now();
                    conn.send(&msg).map_err(|e| e.to_string())?;
                    conn.recv(&mut buf).map_err(|e| e.to_string())?;
                    times.push(start.elapsed());
                }
                Ok(times)
            })
        })
        .collect();
    let mut times = Vec::with_capacity(CLIENTS * trips);
    for client in clients {
        times.extend(client.join().map_err(|_| "a fan-in client panicked")??);
    }
    let (echoed, took) = server.join().map_err(|_| "the fan-in server panicked")??;
    times.sort();
    let at = |q| {
        shmlane_examples::rtt::percentile(&times, q)
            .map(|d| d.as_nanos() as f64)
            .ok_or_else(|| "no round trips".to_owned())
    };
    Ok(Round {
        rate: echoed as f64 / took.as_secs_f64().max(1e-9),
        p50: at(0.5)?,
        p99: at(0.99)?,
    })
}

/// What [`fanin_ratios`] measured for one shm wait mode: shm over the unix
/// socket, per round.
pub struct FaninFigures {
    /// Messages per second at the server (higher is better).
    pub rate: Summary,
    /// Client round trip p50 and p99 (lower is better).
    pub p50: Summary,
    pub p99: Summary,
    /// The medians over the rounds: (unix, shm) messages per second, p50
    /// ns and p99 ns.
    pub medians: [(f64, f64); 3],
}

/// The figures of both shm wait modes: the default (spin, then futex) and
/// [`WaitMode::Futex`] (no spin), each against the unix socket of its round.
pub struct Fanin {
    pub spinning: FaninFigures,
    pub sleeping: FaninFigures,
}

/// `rounds` interleaved rounds of the unix socket and shm fan-in (unix,
/// shm spinning, shm sleeping at once, unix, …).
pub fn fanin_ratios(rounds: usize, trips: usize) -> Result<Fanin, String> {
    let id = std::process::id();
    let unix_path = std::env::temp_dir().join(format!("shmlane-bench-fanin-{id}.sock"));
    let unix = format!("unix:{}", unix_path.display());
    let shm = format!("shm:/shmlane-bench-fanin-{id}");
    let (mut spinning, mut sleeping) = (Columns::default(), Columns::default());
    for _ in 0..rounds {
        let u = round(&unix, trips, WaitMode::SpinThenFutex)?;
        spinning.push(&u, &round(&shm, trips, WaitMode::SpinThenFutex)?);
        sleeping.push(&u, &round(&shm, trips, WaitMode::Futex)?);
    }
    Ok(Fanin {
        spinning: spinning.figures(),
        sleeping: sleeping.figures(),
    })
}

/// Per-round values of one comparison.
#[derive(Default)]
struct Columns {
    ratios: [Vec<f64>; 3],
    values: [Vec<f64>; 6],
}

impl Columns {
    fn push(&mut self, unix: &Round, shm: &Round) {
        self.ratios[0].push(shm.rate / unix.rate);
        self.ratios[1].push(shm.p50 / unix.p50);
        self.ratios[2].push(shm.p99 / unix.p99);
        let values = [unix.rate, shm.rate, unix.p50, shm.p50, unix.p99, shm.p99];
        for (column, v) in self.values.iter_mut().zip(values) {
            column.push(v);
        }
    }

    fn figures(self) -> FaninFigures {
        let m = |v: &[f64]| crate::rounds::median(v).unwrap_or(f64::NAN);
        let [rate, p50, p99] = self.ratios;
        let v = &self.values;
        FaninFigures {
            medians: [
                (m(&v[0]), m(&v[1])),
                (m(&v[2]), m(&v[3])),
                (m(&v[4]), m(&v[5])),
            ],
            rate: Summary::of(rate),
            p50: Summary::of(p50),
            p99: Summary::of(p99),
        }
    }
}
