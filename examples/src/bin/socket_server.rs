//! Unix domain sockets, one server and several clients at once: the
//! server, over a stream socket or a datagram socket.
//!
//! ```text
//! cargo run -p shmlane-examples --bin socket_server -- stream PATH [CLIENTS]
//! cargo run -p shmlane-examples --bin socket_server -- dgram PATH
//! listening
//! ```
//!
//! It prints `listening` once clients can connect, then answers every
//! message with the same text in upper case (ASCII letters only). Run
//! `socket_client` with the same mode and PATH, several at once.
//!
//! **Stream** (`SOCK_STREAM`, like TCP): `socket`, `bind` to PATH, `listen`,
//! then `accept` hands out one new connected socket per client, and each
//! client is served by its own thread until it disconnects; the listening
//! socket keeps accepting meanwhile. After CLIENTS clients (default: no
//! limit) the server waits for their threads, prints `served N clients,
//! M messages` and exits. A stream carries bytes, not messages, so each
//! message is framed (a 4-byte length, then the bytes):
//! [`shmlane_posix::Framed`] does that over the connection, and
//! [`FramedListener`] does the `bind`/`listen`/`accept`.
//!
//! **Datagram** (`SOCK_DGRAM`, like UDP, but reliable and ordered on one
//! host): `socket` and `bind` to PATH, no `listen`, no `accept`, no
//! connections. Every `recvfrom` returns one whole datagram (message
//! boundaries are kept) and the address of its sender, and the reply goes
//! back with `sendto` to that address. One thread serves every client,
//! since each datagram says who sent it. A client must bind an address of
//! its own to get replies. The server stops after the text `quit` (which
//! is answered too), printing `served M datagrams`.
//!
//! The socket file at PATH is removed when the server exits. One left by a
//! killed server (nobody listening on it) is replaced; a live one is never
//! taken over.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread::JoinHandle;

use shmlane_posix::Error;
use shmlane_posix::{Framed, FramedListener, MessageReceiver, MessageSender};

use shmlane_examples::{BoxError, run};

/// Longest message, in bytes (both modes).
const MAX_MESSAGE: usize = 4096;
const USAGE: &str = "usage: socket_server stream PATH [CLIENTS] | socket_server dgram PATH";

fn main() -> ExitCode {
    run("socket_server", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["stream", path] => serve_stream(Path::new(path), None),
            ["stream", path, clients] => {
                let clients = clients
                    .parse()
                    .map_err(|_| format!("CLIENTS must be a whole number, not {clients:?}"))?;
                serve_stream(Path::new(path), Some(clients))
            }
            ["dgram", path] => serve_datagrams(Path::new(path)),
            _ => Err(format!("unexpected arguments {args:?}; {USAGE}").into()),
        }
    })
}

fn say(line: std::fmt::Arguments<'_>) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|e| format!("cannot write to stdout: {e}").into())
}

/// Stream mode: a thread per client, until `clients` clients were served.
fn serve_stream(path: &Path, clients: Option<u64>) -> Result<(), BoxError> {
    // socket + bind + listen; the socket file is removed on drop.
    let listener = FramedListener::bind_unix(path, MAX_MESSAGE)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    say(format_args!("listening"))?;

    let mut threads: Vec<JoinHandle<u64>> = Vec::new();
    let mut accepted = 0;
    while clients.is_none_or(|n| accepted < n) {
        let connection = listener
            .accept()
            .map_err(|e| format!("cannot accept a connection: {e}"))?;
        accepted += 1;
        let client = accepted;
        threads.push(std::thread::spawn(move || {
            echo_upper(connection).unwrap_or_else(|(served, e)| {
                eprintln!("socket_server: client {client}: {e}");
                served
            })
        }));
    }
    let mut messages = 0;
    for thread in threads {
        messages += thread.join().map_err(|_| "a client thread panicked")?;
    }
    say(format_args!(
        "served {accepted} clients, {messages} messages"
    ))
}

/// Answers each message of one client until it disconnects; returns how
/// many it answered (with the error, if one ended it).
fn echo_upper(mut connection: Framed) -> Result<u64, (u64, Error)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut served = 0;
    loop {
        let len = match connection.recv(&mut buf) {
            Ok(len) => len,
            Err(Error::Disconnected) => return Ok(served), // the client is done
            Err(e) => return Err((served, e)),
        };
        let reply = buf[..len].to_ascii_uppercase();
        connection.send(&reply).map_err(|e| (served, e))?;
        served += 1;
    }
}

/// Removes the socket file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Datagram mode: one socket, every datagram answered to its sender.
fn serve_datagrams(path: &Path) -> Result<(), BoxError> {
    let socket = bind_datagram(path)?;
    let _remove = RemoveOnDrop(path.to_owned());
    say(format_args!("listening"))?;

    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut served = 0;
    loop {
        let (len, sender) = socket
            .recv_from(&mut buf)
            .map_err(|e| format!("cannot receive: {e}"))?;
        let text = &buf[..len];
        served += 1;
        // A client that did not bind an address cannot be answered; one
        // that went away makes `send_to` fail. Neither stops the server.
        if sender.is_unnamed() {
            eprintln!("socket_server: a datagram from an unbound socket, no reply possible");
        } else if let Err(e) = socket.send_to_addr(&text.to_ascii_uppercase(), &sender) {
            eprintln!("socket_server: cannot reply to {sender:?}: {e}");
        }
        if text == b"quit" {
            return say(format_args!("served {served} datagrams"));
        }
    }
}

/// Binds a datagram socket at `path`, replacing a socket file that nobody
/// is bound to any more (a killed server's).
fn bind_datagram(path: &Path) -> Result<UnixDatagram, BoxError> {
    let cannot = |e: std::io::Error| format!("cannot bind {}: {e}", path.display());
    match UnixDatagram::bind(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let is_socket =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
            let abandoned = is_socket
                && UnixDatagram::unbound()
                    .and_then(|probe| probe.connect(path))
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            if !abandoned {
                return Err(cannot(e).into());
            }
            std::fs::remove_file(path).map_err(cannot)?;
            Ok(UnixDatagram::bind(path).map_err(cannot)?)
        }
        result => Ok(result.map_err(cannot)?),
    }
}
