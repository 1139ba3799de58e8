//! A tokio server answering many shared-memory clients at once, on one
//! thread, with no system call per message while they are busy.
//!
//! ```text
//! cargo run -p shmlane-examples --bin async_echo -- serve NAME CLIENTS    # first; prints "ready"
//! cargo run -p shmlane-examples --bin async_echo -- client NAME I COUNT   # I in 0..CLIENTS
//! connected
//! echoed 1000 messages
//! ```
//!
//! The server creates, for each client `I`, a request channel
//! `NAME-I.req` (it receives) and a reply channel `NAME-I.rep` (it sends),
//! wraps each side in `AsyncReceiver` / `AsyncSender`, and spawns one task
//! per client on a current-thread tokio runtime: `recv().await`, then
//! `send(..).await` of the same bytes. While a client keeps it busy the
//! ring is polled (with yields to the other tasks); an idle client's task
//! waits on its readiness fd, so a server holding idle clients costs no
//! CPU. A client that ends (closes or dies) ends its task with
//! `Disconnected`; when every client has ended, the server prints how many
//! messages it echoed and exits.
//!
//! The client is plain blocking code: it opens its two channels (and says
//! "connected"), sends COUNT numbered messages one at a time and checks
//! each echo.

use std::process::ExitCode;

use shmlane_examples::{BoxError, run};
use shmlane_posix::async_channel::{AsyncReceiver, AsyncSender};
use shmlane_posix::{Error, Options, Receiver, Sender};

const USAGE: &str = "usage: async_echo serve NAME CLIENTS | async_echo client NAME I COUNT";

fn main() -> ExitCode {
    run("async_echo", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["serve", name, clients] => serve(name, clients.parse().map_err(|_| USAGE)?),
            ["client", name, i, count] => client(
                name,
                i.parse().map_err(|_| USAGE)?,
                count.parse().map_err(|_| USAGE)?,
            ),
            _ => Err(USAGE.into()),
        }
    })
}

fn names(name: &str, i: usize) -> (String, String) {
    (format!("{name}-{i}.req"), format!("{name}-{i}.rep"))
}

fn serve(name: &str, clients: usize) -> Result<(), BoxError> {
    if clients == 0 {
        return Err("CLIENTS must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let echoed = runtime.block_on(async {
        let mut tasks = Vec::with_capacity(clients);
        for i in 0..clients {
            let (req, rep) = names(name, i);
            let rx = AsyncReceiver::new(Receiver::create(&req, &Options::new())?)?;
            let tx = AsyncSender::new(Sender::create(&rep, &Options::new())?)?;
            tasks.push(tokio::spawn(echo(rx, tx)));
        }
        println!("ready");
        let mut echoed = 0u64;
        for task in tasks {
            echoed += task.await??;
        }
        Ok::<u64, BoxError>(echoed)
    })?;
    println!("echoed {echoed} messages from {clients} clients");
    Ok(())
}

/// Echoes one client until it ends: the number of messages echoed.
async fn echo(mut rx: AsyncReceiver, mut tx: AsyncSender) -> Result<u64, Error> {
    let mut echoed = 0;
    loop {
        let msg = match rx.recv_vec().await {
            Ok(msg) => msg,
            Err(Error::Disconnected) => return Ok(echoed),
            Err(e) => return Err(e),
        };
        match tx.send(&msg).await {
            Ok(()) => echoed += 1,
            Err(Error::Disconnected) => return Ok(echoed),
            Err(e) => return Err(e),
        }
    }
}

fn client(name: &str, i: usize, count: u64) -> Result<(), BoxError> {
    let (req, rep) = names(name, i);
    let mut tx = Sender::open(&req, &Options::new())
        .map_err(|e| format!("cannot open {req}: {e} (start the server first)"))?;
    let mut rx = Receiver::open(&rep, &Options::new())?;
    println!("connected");
    for n in 0..count {
        let msg = format!("client {i} message {n}");
        tx.send(msg.as_bytes())?;
        let echo = rx.recv_vec()?;
        if echo != msg.as_bytes() {
            return Err(format!(
                "echo of {msg:?} came back as {:?}",
                String::from_utf8_lossy(&echo)
            )
            .into());
        }
    }
    println!("echoed {count} messages");
    Ok(())
}
