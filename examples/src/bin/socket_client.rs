//! Unix domain sockets, one server and several clients at once: a client,
//! over a stream socket or a datagram socket.
//!
//! ```text
//! cargo run -p shmlane-examples --bin socket_client -- stream PATH [TEXT...]
//! cargo run -p shmlane-examples --bin socket_client -- dgram PATH [TEXT...]
//! ```
//!
//! Start `socket_server` in the same mode first (see it for the lesson).
//! The client sends each TEXT as one message, waits for the reply and
//! prints it, one line each. Without TEXT it sends each line of its stdin
//! instead, as it comes, so it can stay connected while other clients come
//! and go.
//!
//! **Stream**: `socket` and `connect` to PATH give a connection to the
//! server (its `accept` returns the other end); messages are framed over
//! it ([`shmlane_posix::Framed`]), and closing it at the end is
//! how the server learns that the client is done.
//!
//! **Datagram**: there is no connection to accept, so to receive replies
//! the client binds a socket file of its own (`socket_client-PID.sock` in
//! the temporary directory, `$TMPDIR` or `/tmp`), which the server's
//! `recvfrom` reports as the sender's address. It `connect`s that socket
//! to the server's PATH: for a datagram socket this only fixes the
//! default destination and filters what it receives to the server's
//! datagrams. It removes its socket file when it exits. A reply that takes
//! longer than 10 seconds is an error (a datagram client never learns
//! that its server is gone otherwise).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use shmlane_posix::Error;
use shmlane_posix::{Framed, MessageReceiver, MessageSender};

use shmlane_examples::{BoxError, run};

/// Longest message, in bytes (the server's limit too).
const MAX_MESSAGE: usize = 4096;
/// How long a datagram client waits for a reply before it gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const USAGE: &str = "usage: socket_client stream|dgram PATH [TEXT...]";

fn main() -> ExitCode {
    run("socket_client", || {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [mode, path, texts @ ..] = args.as_slice() else {
            return Err(USAGE.into());
        };
        let path = Path::new(path);
        // The texts from the command line, or else the lines of stdin.
        let texts: Box<dyn Iterator<Item = Result<String, BoxError>> + '_> = if texts.is_empty() {
            Box::new(
                std::io::stdin()
                    .lines()
                    .map(|line| line.map_err(|e| format!("cannot read stdin: {e}").into())),
            )
        } else {
            Box::new(texts.iter().cloned().map(Ok))
        };
        match mode.as_str() {
            "stream" => talk_stream(path, texts),
            "dgram" => talk_datagram(path, texts),
            _ => Err(format!("unknown mode {mode:?}; {USAGE}").into()),
        }
    })
}

/// Prints one reply on its own line.
fn print_reply(reply: &[u8]) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    out.write_all(reply)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| format!("cannot write to stdout: {e}").into())
}

fn talk_stream(
    path: &Path,
    texts: impl Iterator<Item = Result<String, BoxError>>,
) -> Result<(), BoxError> {
    // socket + connect.
    let mut connection = Framed::connect_unix(path, MAX_MESSAGE).map_err(|e| match e {
        Error::NotFound { .. } | Error::Disconnected => format!(
            "no server listening at {}: start socket_server stream first",
            path.display()
        ),
        e => format!("cannot connect to {}: {e}", path.display()),
    })?;
    let mut reply = vec![0u8; MAX_MESSAGE];
    for text in texts {
        let text = text?;
        connection
            .send(text.as_bytes())
            .map_err(|e| format!("cannot send {text:?}: {e}"))?;
        let len = connection
            .recv(&mut reply)
            .map_err(|e| format!("no reply to {text:?}: {e}"))?;
        print_reply(&reply[..len])?;
    }
    // Dropping `connection` closes it: the server's thread sees the end.
    Ok(())
}

/// Removes the client's socket file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn talk_datagram(
    server: &Path,
    texts: impl Iterator<Item = Result<String, BoxError>>,
) -> Result<(), BoxError> {
    let own = std::env::temp_dir().join(format!("socket_client-{}.sock", std::process::id()));
    let socket = UnixDatagram::bind(&own)
        .map_err(|e| format!("cannot bind the reply address {}: {e}", own.display()))?;
    let _remove = RemoveOnDrop(own);
    socket.connect(server).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
            "no server bound at {}: start socket_server dgram first",
            server.display()
        ),
        _ => format!("cannot connect to {}: {e}", server.display()),
    })?;
    socket
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(|e| format!("cannot set a reply timeout: {e}"))?;

    let mut reply = vec![0u8; MAX_MESSAGE];
    for text in texts {
        let text = text?;
        if text.len() > MAX_MESSAGE {
            return Err(format!("{text:?} is longer than {MAX_MESSAGE} bytes").into());
        }
        socket
            .send(text.as_bytes())
            .map_err(|e| format!("cannot send {text:?}: {e}"))?;
        let len = socket.recv(&mut reply).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("no reply to {text:?} within {REPLY_TIMEOUT:?}")
            }
            _ => format!("no reply to {text:?}: {e}"),
        })?;
        print_reply(&reply[..len])?;
    }
    Ok(())
}
