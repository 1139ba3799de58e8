//! Endpoint addresses (`shm:/name`, `fifo:path`, `mq:/name`, `unix:path`,
//! `unix-dgram:path`, `tcp:host:port`, `pipe`).
//!
//! One string names both the transport and the endpoint, so that a program
//! can take it from its command line or configuration and the transport is
//! chosen at run time. The scheme before the first `:` is the transport;
//! what follows is checked as far as it can be without touching the system
//! (no file is opened and no host name is resolved).
//!
//! The invariant: an [`Address`] obtained by parsing is valid for its
//! transport, and its [`Display`](fmt::Display) form parses back to an
//! equal address.
//!
//! # Examples
//!
//! ```
//! use shmlane_posix::address::Address;
//!
//! let addr: Address = "tcp:[::1]:7000".parse()?;
//! assert_eq!(addr, Address::Tcp { host: "::1".into(), port: 7000 });
//! assert_eq!(addr.transport(), "tcp");
//! assert_eq!(addr.to_string(), "tcp:[::1]:7000");
//! # Ok::<(), shmlane_posix::Error>(())
//! ```

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::names::validate_name;
use crate::{Error, Result};

/// Longest unix socket path in bytes: `sun_path` holds 108 bytes, the last
/// of which is the terminating NUL.
pub const MAX_UNIX_PATH_LEN: usize = 107;

/// The transports, for the messages about a missing or unknown one.
macro_rules! expected_transports {
    () => {
        "expected shm:, fifo:, mq:, unix:, unix-dgram:, tcp: or pipe"
    };
}

const MISSING_TRANSPORT: &str = concat!("missing transport; ", expected_transports!());
const UNKNOWN_TRANSPORT: &str = concat!("unknown transport; ", expected_transports!());
const NUL: &str = "contains a NUL byte";
const EMPTY_PATH: &str = "empty path";
const EMPTY_NAME: &str = "empty name; shm: and mq: take a name such as /name";
const IPC_NAME: &str = "shm and mq names must start with '/' and contain no other '/' \
     (and be 2 to 255 bytes long, and not /. or /..)";
const UNIX_TOO_LONG: &str = "unix socket paths must be at most 107 bytes (the sun_path limit)";
const PIPE_TAKES_NOTHING: &str = "pipe takes nothing after it; write just `pipe`";
const TCP_NEEDS_PORT: &str = "tcp: needs host:port";
const TCP_EMPTY_HOST: &str = "empty host; tcp: needs host:port";
const TCP_BAD_PORT: &str = "the port must be a number from 0 to 65535";
const TCP_UNBRACKETED_V6: &str = "IPv6 hosts must be in brackets, as in tcp:[::1]:7000";
const TCP_UNCLOSED_BRACKET: &str = "missing ']' after the IPv6 host";
const TCP_BAD_V6: &str = "the host in brackets must be an IPv6 address";
const TCP_BAD_HOST: &str = "the host must not contain whitespace, control characters, '[' or ']'";

/// An endpoint: a transport and where to find the peer on it.
///
/// Parse one with [`parse`] or [`str::parse`]; its
/// [`Display`](fmt::Display) form is the same syntax.
///
/// # Examples
///
/// ```
/// use std::path::PathBuf;
/// use shmlane_posix::address::Address;
///
/// assert_eq!("shm:/quotes".parse::<Address>()?, Address::Shm("/quotes".into()));
/// assert_eq!("unix:/run/app.sock".parse::<Address>()?, Address::Unix(PathBuf::from("/run/app.sock")));
/// assert_eq!("pipe".parse::<Address>()?, Address::Pipe);
/// assert!("udp:host:53".parse::<Address>().is_err());
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// `shm:/name`: a shmlane ring in a named POSIX shared-memory segment
    /// (`/dev/shm/name`), the zero-copy transport between processes of one
    /// host. The name is a POSIX IPC name: `/` then at least one byte, with
    /// no other `/`.
    Shm(String),
    /// `fifo:path`: a named pipe (`mkfifo`) in the file system, for a byte
    /// stream to an unrelated process on the same host without sockets.
    /// The path may be relative.
    Fifo(PathBuf),
    /// `mq:/name`: a POSIX message queue (`mq_open`), kernel-buffered
    /// messages with their boundaries kept. The name follows the same rules
    /// as for `shm:`.
    Mq(String),
    /// `unix:path`: a unix-domain stream socket, a byte stream that can also
    /// pass file descriptors (as anonymous segments are). The path is at
    /// most [`MAX_UNIX_PATH_LEN`] bytes.
    Unix(PathBuf),
    /// `unix-dgram:path`: a unix-domain datagram socket, messages with
    /// their boundaries kept, with the same path rules as `unix:`.
    UnixDgram(PathBuf),
    /// `tcp:host:port`: a TCP connection, for a peer on another host (or a
    /// container without shared `/dev/shm`). The host is a name or an IPv4
    /// address, or an IPv6 address written in brackets
    /// (`tcp:[::1]:7000`, stored without them). Port 0 asks for any free
    /// port when listening.
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port; 0 when listening means "any free port".
        port: u16,
    },
    /// `pipe`: the process's standard input and output, for a parent and a
    /// child joined by anonymous pipes.
    Pipe,
}

impl Address {
    /// The transport, as in the address's scheme: `"shm"`, `"fifo"`,
    /// `"mq"`, `"unix"`, `"unix-dgram"`, `"tcp"` or `"pipe"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmlane_posix::address::Address;
    ///
    /// assert_eq!(Address::Pipe.transport(), "pipe");
    /// assert_eq!("unix-dgram:/tmp/s".parse::<Address>()?.transport(), "unix-dgram");
    /// # Ok::<(), shmlane_posix::Error>(())
    /// ```
    pub fn transport(&self) -> &'static str {
        match self {
            Address::Shm(_) => "shm",
            Address::Fifo(_) => "fifo",
            Address::Mq(_) => "mq",
            Address::Unix(_) => "unix",
            Address::UnixDgram(_) => "unix-dgram",
            Address::Tcp { .. } => "tcp",
            Address::Pipe => "pipe",
        }
    }
}

/// Parses an address; the same as [`str::parse::<Address>`](str::parse).
///
/// Fails with [`Error::InvalidAddress`], whose `reason` says what is wrong:
/// a missing or unknown transport, an empty path or name, a NUL byte, a
/// `shm:` or `mq:` name that is not a POSIX IPC name, a unix socket path
/// over [`MAX_UNIX_PATH_LEN`] bytes, a `tcp:` address without `host:port`,
/// with an empty host or a port that is not a number from 0 to 65535, an
/// IPv6 host without brackets, or anything after `pipe`.
///
/// # Examples
///
/// ```
/// use shmlane_posix::Error;
/// use shmlane_posix::address::{Address, parse};
///
/// assert_eq!(parse("tcp:localhost:0")?, Address::Tcp { host: "localhost".into(), port: 0 });
/// match parse("tcp:localhost:http") {
///     Err(Error::InvalidAddress { reason, .. }) => assert!(reason.contains("0 to 65535")),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), shmlane_posix::Error>(())
/// ```
pub fn parse(s: &str) -> Result<Address> {
    let invalid = |reason: &'static str| Error::InvalidAddress {
        address: s.to_owned(),
        reason,
    };
    if s.contains('\0') {
        return Err(invalid(NUL));
    }
    if s == "pipe" {
        return Ok(Address::Pipe);
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return Err(invalid(MISSING_TRANSPORT));
    };
    match scheme {
        "shm" | "mq" => {
            if rest.is_empty() {
                return Err(invalid(EMPTY_NAME));
            }
            validate_name(rest).map_err(|_| invalid(IPC_NAME))?;
            let name = rest.to_owned();
            Ok(if scheme == "shm" {
                Address::Shm(name)
            } else {
                Address::Mq(name)
            })
        }
        "fifo" => {
            if rest.is_empty() {
                return Err(invalid(EMPTY_PATH));
            }
            Ok(Address::Fifo(PathBuf::from(rest)))
        }
        "unix" | "unix-dgram" => {
            if rest.is_empty() {
                return Err(invalid(EMPTY_PATH));
            }
            if rest.len() > MAX_UNIX_PATH_LEN {
                return Err(invalid(UNIX_TOO_LONG));
            }
            let path = PathBuf::from(rest);
            Ok(if scheme == "unix" {
                Address::Unix(path)
            } else {
                Address::UnixDgram(path)
            })
        }
        "tcp" => {
            let (host, port) = parse_host_port(rest).map_err(invalid)?;
            Ok(Address::Tcp {
                host: host.to_owned(),
                port,
            })
        }
        "pipe" => Err(invalid(PIPE_TAKES_NOTHING)),
        _ => Err(invalid(UNKNOWN_TRANSPORT)),
    }
}

/// Splits `host:port` or `[ipv6]:port`; the error is the reason.
fn parse_host_port(s: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = if let Some(bracketed) = s.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(TCP_UNCLOSED_BRACKET)?;
        let port = after.strip_prefix(':').ok_or(TCP_NEEDS_PORT)?;
        if host.is_empty() {
            return Err(TCP_EMPTY_HOST);
        }
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(TCP_BAD_V6);
        }
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or(TCP_NEEDS_PORT)?;
        if host.is_empty() {
            return Err(TCP_EMPTY_HOST);
        }
        if host.contains(':') {
            return Err(TCP_UNBRACKETED_V6);
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '[' || c == ']')
        {
            return Err(TCP_BAD_HOST);
        }
        (host, port)
    };
    // `u16::from_str` alone would also take a leading '+'.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TCP_BAD_PORT);
    }
    let port = port.parse::<u16>().map_err(|_| TCP_BAD_PORT)?;
    Ok((host, port))
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address> {
        parse(s)
    }
}

impl fmt::Display for Address {
    /// The address in the syntax [`parse`] reads. A path that is not UTF-8
    /// (possible only in an address built by hand) is shown lossily.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Shm(name) => write!(f, "shm:{name}"),
            Address::Fifo(path) => write!(f, "fifo:{}", path.display()),
            Address::Mq(name) => write!(f, "mq:{name}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
            Address::UnixDgram(path) => write!(f, "unix-dgram:{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Address::Pipe => f.write_str("pipe"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> &'static str {
        match parse(s) {
            Err(Error::InvalidAddress { address, reason }) => {
                assert_eq!(address, s);
                reason
            }
            other => panic!("{s:?}: expected InvalidAddress, got {other:?}"),
        }
    }

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn valid_forms() {
        let cases = [
            ("shm:/quotes", Address::Shm("/quotes".into())),
            ("mq:/orders", Address::Mq("/orders".into())),
            ("fifo:/tmp/f", Address::Fifo("/tmp/f".into())),
            ("fifo:relative/f", Address::Fifo("relative/f".into())),
            ("fifo:has:colon", Address::Fifo("has:colon".into())),
            ("unix:/run/app.sock", Address::Unix("/run/app.sock".into())),
            ("unix:s", Address::Unix("s".into())),
            (
                "unix-dgram:/run/d.sock",
                Address::UnixDgram("/run/d.sock".into()),
            ),
            ("tcp:localhost:7000", tcp("localhost", 7000)),
            ("tcp:127.0.0.1:0", tcp("127.0.0.1", 0)),
            ("tcp:example.com:65535", tcp("example.com", 65535)),
            ("tcp:[::1]:7000", tcp("::1", 7000)),
            (
                "tcp:[2001:db8::8a2e:370:7334]:443",
                tcp("2001:db8::8a2e:370:7334", 443),
            ),
            ("tcp:[::ffff:10.0.0.1]:1", tcp("::ffff:10.0.0.1", 1)),
            ("pipe", Address::Pipe),
        ];
        for (s, expected) in cases {
            let addr = parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(addr, expected, "{s:?}");
            assert_eq!(s.parse::<Address>().unwrap(), expected);
            assert_eq!(addr.to_string(), s);
            assert!(s.starts_with(addr.transport()));
        }
    }

    #[test]
    fn transports() {
        let names: Vec<&str> = [
            "shm:/a",
            "fifo:a",
            "mq:/a",
            "unix:a",
            "unix-dgram:a",
            "tcp:a:1",
            "pipe",
        ]
        .iter()
        .map(|s| parse(s).unwrap().transport())
        .collect();
        assert_eq!(
            names,
            ["shm", "fifo", "mq", "unix", "unix-dgram", "tcp", "pipe"]
        );
    }

    #[test]
    fn missing_or_unknown_transport() {
        for s in ["", "/dev/shm/x", "localhost", "shm"] {
            assert_eq!(reason(s), MISSING_TRANSPORT, "{s:?}");
        }
        for s in ["udp:h:1", "SHM:/a", ":x", "unix_dgram:/a", "Pipe:"] {
            assert_eq!(reason(s), UNKNOWN_TRANSPORT, "{s:?}");
        }
        for known in [
            "shm:",
            "fifo:",
            "mq:",
            "unix:",
            "unix-dgram:",
            "tcp:",
            "pipe",
        ] {
            assert!(UNKNOWN_TRANSPORT.contains(known));
            assert!(MISSING_TRANSPORT.contains(known));
        }
    }

    #[test]
    fn empty_paths_and_names() {
        for s in ["fifo:", "unix:", "unix-dgram:"] {
            assert_eq!(reason(s), EMPTY_PATH, "{s:?}");
        }
        for s in ["shm:", "mq:"] {
            assert_eq!(reason(s), EMPTY_NAME, "{s:?}");
        }
    }

    #[test]
    fn nul_bytes() {
        for s in [
            "shm:/a\0b",
            "fifo:a\0",
            "unix:\0",
            "tcp:h\0:1",
            "pipe\0",
            "\0",
        ] {
            assert_eq!(reason(s), NUL, "{s:?}");
        }
    }

    #[test]
    fn ipc_names() {
        let long = format!("shm:/{}", "n".repeat(255));
        for s in [
            "shm:name", "shm:/a/b", "mq:/", "mq:a", "shm:/.", "mq:/..", &long,
        ] {
            assert_eq!(reason(s), IPC_NAME, "{s:?}");
        }
        let longest = format!("mq:/{}", "n".repeat(254));
        assert!(parse(&longest).is_ok());
    }

    #[test]
    fn unix_path_limit() {
        let fits = format!("/{}", "p".repeat(MAX_UNIX_PATH_LEN - 1));
        assert_eq!(
            parse(&format!("unix:{fits}")).unwrap(),
            Address::Unix(fits.clone().into())
        );
        assert!(parse(&format!("unix-dgram:{fits}")).is_ok());
        let over = format!("{fits}p");
        assert_eq!(reason(&format!("unix:{over}")), UNIX_TOO_LONG);
        assert_eq!(reason(&format!("unix-dgram:{over}")), UNIX_TOO_LONG);
        assert!(UNIX_TOO_LONG.contains("107"));
        // Bytes, not characters, count.
        let wide = format!("unix:{}", "é".repeat(54));
        assert_eq!(reason(&wide), UNIX_TOO_LONG);
        // A FIFO has no such limit.
        assert!(parse(&format!("fifo:{over}")).is_ok());
    }

    #[test]
    fn tcp_errors() {
        let cases = [
            ("tcp:", TCP_NEEDS_PORT),
            ("tcp:localhost", TCP_NEEDS_PORT),
            ("tcp:[::1]", TCP_NEEDS_PORT),
            ("tcp:[::1]7000", TCP_NEEDS_PORT),
            ("tcp::7000", TCP_EMPTY_HOST),
            ("tcp:[]:7000", TCP_EMPTY_HOST),
            ("tcp:host:", TCP_BAD_PORT),
            ("tcp:host:65536", TCP_BAD_PORT),
            ("tcp:host:-1", TCP_BAD_PORT),
            ("tcp:host:+80", TCP_BAD_PORT),
            ("tcp:host:http", TCP_BAD_PORT),
            ("tcp:host:8 0", TCP_BAD_PORT),
            ("tcp:host:99999999999999999999", TCP_BAD_PORT),
            ("tcp:[::1]:x", TCP_BAD_PORT),
            ("tcp:::1:7000", TCP_UNBRACKETED_V6),
            ("tcp:fe80::1:7000", TCP_UNBRACKETED_V6),
            ("tcp:[::1:7000", TCP_UNCLOSED_BRACKET),
            ("tcp:[localhost]:7000", TCP_BAD_V6),
            ("tcp:[1.2.3.4]:7000", TCP_BAD_V6),
            ("tcp:a b:1", TCP_BAD_HOST),
            ("tcp:a]:1", TCP_BAD_HOST),
            ("tcp:\t:1", TCP_BAD_HOST),
        ];
        for (s, expected) in cases {
            assert_eq!(reason(s), expected, "{s:?}");
        }
    }

    #[test]
    fn pipe_takes_nothing() {
        for s in ["pipe:", "pipe:x", "pipe:/dev/stdin"] {
            assert_eq!(reason(s), PIPE_TAKES_NOTHING, "{s:?}");
        }
        assert_eq!(reason("pipe "), MISSING_TRANSPORT);
    }

    #[test]
    fn round_trips() {
        let built = [
            Address::Shm("/x".into()),
            Address::Mq("/queue.1".into()),
            Address::Fifo("/tmp/my fifo".into()),
            Address::Unix("./sock".into()),
            Address::UnixDgram("@looks-abstract".into()),
            tcp("10.1.2.3", 80),
            tcp("::", 0),
            tcp("host-name.example", 1),
            Address::Pipe,
        ];
        for addr in built {
            let shown = addr.to_string();
            assert_eq!(parse(&shown).unwrap(), addr, "{shown:?}");
        }
        // Leading zeros in a port are read, and printed canonically.
        let addr = parse("tcp:h:0080").unwrap();
        assert_eq!(addr, tcp("h", 80));
        assert_eq!(addr.to_string(), "tcp:h:80");
    }

    #[test]
    fn errors_display_their_reason() {
        let e = parse("tcp:h:70000").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("tcp:h:70000"), "{text}");
        assert!(text.contains(TCP_BAD_PORT), "{text}");
    }
}
