//! A tokio server answering many shared-memory clients at once, on one
//! thread, with no system call per message while they are busy.
//!
//! ```text
//! cargo run -p shmlane-examples --bin async_echo -- serve shm:/NAME CLIENTS  # first; prints "ready"
//! cargo run -p shmlane-examples --bin async_echo -- client shm:/NAME COUNT
//! connected
//! echoed 1000 messages
//! ```
//!
//! The server listens on the address (`shm:/NAME`: a unix socket at
//! `/dev/shm/NAME.sock` where every client gets two rings of its own; any
//! other address of `endpoint::listen` works the same), accepts CLIENTS
//! clients with `AsyncListener::accept` on a current-thread tokio runtime,
//! and spawns one task per client: `recv_vec().await`, then
//! `send(..).await` of the same bytes. While a client keeps it busy the
//! ring is polled (with yields to the other tasks); an idle client's task
//! waits on its readiness fd, which the client rings itself, so a server
//! holding idle clients costs no CPU. A client that ends (closes or dies)
//! ends its task with `Disconnected`; when every client has ended, the
//! server prints how many messages it echoed and exits.
//!
//! The client is plain blocking code: it connects (and says "connected"),
//! sends COUNT numbered messages one at a time and checks each echo.

use std::process::ExitCode;

use shmlane_examples::{BoxError, run};
use shmlane_posix::async_channel::{AsyncConnection, listen_async};
use shmlane_posix::endpoint::{EndpointOptions, connect};
use shmlane_posix::{Error, MessageReceiver, MessageSender};

const USAGE: &str = "usage: async_echo serve ADDRESS CLIENTS | async_echo client ADDRESS COUNT";

fn main() -> ExitCode {
    run("async_echo", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["serve", address, clients] => serve(address, clients.parse().map_err(|_| USAGE)?),
            ["client", address, count] => client(address, count.parse().map_err(|_| USAGE)?),
            _ => Err(USAGE.into()),
        }
    })
}

fn serve(address: &str, clients: usize) -> Result<(), BoxError> {
    if clients == 0 {
        return Err("CLIENTS must be at least 1".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let echoed = runtime.block_on(async {
        let mut listener = listen_async(address, &EndpointOptions::default()).await?;
        println!("ready");
        let mut tasks = Vec::with_capacity(clients);
        for _ in 0..clients {
            let conn = listener.accept().await?;
            tasks.push(tokio::spawn(echo(conn)));
        }
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
async fn echo(mut conn: AsyncConnection) -> Result<u64, Error> {
    let mut echoed = 0;
    loop {
        let msg = match conn.recv_vec().await {
            Ok(msg) => msg,
            Err(Error::Disconnected) => return Ok(echoed),
            Err(e) => return Err(e),
        };
        match conn.send(&msg).await {
            Ok(()) => echoed += 1,
            Err(Error::Disconnected) => return Ok(echoed),
            Err(e) => return Err(e),
        }
    }
}

fn client(address: &str, count: u64) -> Result<(), BoxError> {
    let mut conn = connect(address, &EndpointOptions::default())
        .map_err(|e| format!("cannot connect to {address}: {e} (start the server first)"))?;
    println!("connected");
    let mut buf = vec![0; MessageReceiver::max_message(&conn).min(1 << 16)];
    for n in 0..count {
        let msg = format!("message {n}");
        conn.send(msg.as_bytes())?;
        let len = conn.recv(&mut buf)?;
        if &buf[..len] != msg.as_bytes() {
            return Err(format!(
                "echo of {msg:?} came back as {:?}",
                String::from_utf8_lossy(&buf[..len])
            )
            .into());
        }
    }
    println!("echoed {count} messages");
    Ok(())
}
