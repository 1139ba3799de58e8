//! Typed channels: values in place between processes, the message type
//! checked at open, wrong-sized messages, and (with the `serde` feature)
//! serde values over shared memory and kernel transports.

mod support;

use std::os::unix::net::{UnixListener, UnixStream};

use shmlane_core::{message_type_of, schema_id};
use shmlane_posix::fdpass::{recv_fd, send_fd};
use shmlane_posix::{Error, Options, Receiver, Sender};
use support::{Peer, block_on_stdin, report, serial};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

fn name(test: &str) -> String {
    format!("/shmlane-test-typed-{test}-{}", support::run_id())
}

/// Several fields, a `u64` at offset 0 and 8, no padding.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: u64,
    qty: u32,
    venue: u16,
    side: u8,
    flags: u8,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Other {
    a: u32,
    b: u32,
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        price: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        qty: (seq as u32).rotate_left(7),
        venue: (seq % 13) as u16,
        side: (seq & 1) as u8,
        flags: (seq % 5) as u8,
    }
}

/// The peer side: runs in the child process.
#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = support::peer_spec() else {
        return;
    };
    match args[..] {
        ["read-ticks", name, count] => {
            let options = Options::new().typed::<Tick>();
            let mut rx = Receiver::open(name, &options).unwrap();
            report(&check_ticks(&mut rx, count.parse().unwrap()));
        }
        ["write-ticks-fd", path, count] => {
            let socket = UnixStream::connect(path).unwrap();
            let fd = recv_fd(&socket).unwrap();
            let mut tx = Sender::from_fd(fd, &Options::new().typed::<Tick>()).unwrap();
            for seq in 0..count.parse::<u64>().unwrap() {
                let mut grant = tx.reserve_value::<Tick>().unwrap();
                *grant = tick(seq);
                grant.commit();
            }
            report("sent");
        }
        ["open-as-other", name] => {
            let result = match Receiver::open(name, &Options::new().typed::<Other>()) {
                Ok(_) => "opened".to_owned(),
                Err(Error::TypeMismatch {
                    expected, found, ..
                }) => {
                    format!("mismatch {expected:x} {found:x}")
                }
                Err(e) => format!("error {e}"),
            };
            report(&result);
            block_on_stdin();
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

/// Reads `count` ticks in place, checking each one and its alignment, then
/// expects `Disconnected`.
fn check_ticks(rx: &mut Receiver, count: u64) -> String {
    for seq in 0..count {
        let got = match rx.read_value::<Tick>() {
            Ok(got) => got,
            Err(e) => return format!("error at {seq}: {e}"),
        };
        if (&*got as *const Tick as usize) % 8 != 0 {
            return format!("misaligned at {seq}");
        }
        if *got != tick(seq) {
            return format!("mismatch at {seq}: {:?}", *got);
        }
    }
    match rx.read_value::<Tick>() {
        Err(Error::Disconnected) => format!("ok {count}"),
        Ok(extra) => format!("extra {:?}", *extra),
        Err(e) => format!("error after the end: {e}"),
    }
}

#[test]
fn values_in_place_across_processes() {
    let _serial = serial();
    let name = name("across");
    let count = 100_000;
    // A small ring, so that it wraps (with padding) many times.
    let options = Options::new().capacity(4096).typed::<Tick>();
    let mut tx = Sender::create(&name, &options).unwrap();
    let mut peer = Peer::spawn(&format!("read-ticks {name} {count}"));
    for seq in 0..count {
        if seq % 2 == 0 {
            let mut grant = tx.reserve_value::<Tick>().unwrap();
            // Field by field, in place.
            let want = tick(seq);
            grant.seq = want.seq;
            grant.price = want.price;
            grant.qty = want.qty;
            grant.venue = want.venue;
            grant.side = want.side;
            grant.flags = want.flags;
            grant.commit();
        } else {
            tx.send_value(&tick(seq)).unwrap();
        }
    }
    drop(tx);
    assert_eq!(peer.report(), format!("ok {count}"));
    peer.finish();
}

#[test]
fn values_in_place_over_a_passed_fd() {
    let _serial = serial();
    let dir = support::TestDir::new("typed-fd", 0o700);
    let path = dir.join("sock");
    let listener = UnixListener::bind(&path).unwrap();
    let count = 10_000u64;
    let (mut rx, fd) = Receiver::anonymous(&Options::new().typed::<Tick>()).unwrap();
    let peer = Peer::spawn(&format!(
        "write-ticks-fd {} {count}",
        path.to_str().unwrap()
    ));
    let (socket, _) = listener.accept().unwrap();
    send_fd(&socket, std::os::fd::AsFd::as_fd(&fd)).unwrap();
    drop(fd);
    assert_eq!(check_ticks(&mut rx, count), format!("ok {count}"));
    peer.finish();
}

#[test]
fn another_type_is_refused_at_open_in_another_process() {
    let _serial = serial();
    let name = name("other-process");
    let _tx = Sender::create(&name, &Options::new().typed::<Tick>()).unwrap();
    let mut peer = Peer::spawn(&format!("open-as-other {name}"));
    assert_eq!(
        peer.report(),
        format!(
            "mismatch {:x} {:x}",
            message_type_of::<Other>(),
            message_type_of::<Tick>()
        )
    );
    peer.finish();
    // The refused opener claimed nothing: a right one opens.
    let _rx = Receiver::open(&name, &Options::new().typed::<Tick>()).unwrap();
}

#[test]
fn type_mismatch_at_open() {
    let name = name("mismatch");
    let tick_type = message_type_of::<Tick>();
    let other_type = message_type_of::<Other>();
    let mut tx = Sender::create(&name, &Options::new().typed::<Tick>()).unwrap();

    // Another type.
    match Receiver::open(&name, &Options::new().typed::<Other>()) {
        Err(
            ref e @ Error::TypeMismatch {
                name: ref at,
                expected,
                found,
            },
        ) => {
            assert_eq!(
                (at.as_str(), expected, found),
                (&name[..], other_type, tick_type)
            );
            assert!(e.to_string().contains(&name), "{e}");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    // The same type through a schema id is another fingerprint too.
    let schema = schema_id(1, size_of::<Tick>(), align_of::<Tick>());
    assert!(matches!(
        Receiver::open(&name, &Options::new().message_type(schema)),
        Err(Error::TypeMismatch { .. })
    ));
    // An untyped opener opens a typed channel, and the role was free.
    let mut rx = Receiver::open(&name, &Options::new()).unwrap();
    tx.send_value(&tick(1)).unwrap();
    assert_eq!(rx.recv_value::<Tick>().unwrap(), tick(1));
    drop((tx, rx));

    // A typed opener refuses an untyped channel.
    let name = format!("{name}-untyped");
    let _rx = Receiver::create(&name, &Options::new()).unwrap();
    assert!(matches!(
        Sender::open(&name, &Options::new().typed::<Tick>()),
        Err(Error::TypeMismatch { expected, found: 0, .. }) if expected == tick_type
    ));
    Sender::open(&name, &Options::new()).unwrap();
}

#[test]
fn type_mismatch_over_an_fd() {
    let (_tx, fd) = Sender::anonymous(&Options::new().message_type(7)).unwrap();
    match Receiver::from_fd(fd, &Options::new().message_type(8)) {
        Err(Error::TypeMismatch {
            name,
            expected: 8,
            found: 7,
        }) => assert_eq!(name, "<fd>"),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
}

#[test]
fn wrong_sized_messages_stay_queued() {
    let name = name("wrong-size");
    let mut tx = Sender::create(&name, &Options::new()).unwrap();
    let mut rx = Receiver::open(&name, &Options::new()).unwrap();
    let size = size_of::<Tick>();
    tx.send(&vec![1; size - 1]).unwrap();
    tx.send(&vec![2; size + 1]).unwrap();
    for found in [size - 1, size + 1] {
        let want = |e: &Error| matches!(*e, Error::WrongSize { expected, found: f } if expected == size && f == found);
        assert!(want(&rx.try_read_value::<Tick>().unwrap_err()));
        assert!(want(&rx.read_value::<Tick>().unwrap_err()));
        assert!(want(&rx.try_recv_value::<Tick>().unwrap_err()));
        assert!(want(&rx.recv_value::<Tick>().unwrap_err()));
        assert!(want(
            &rx.recv_value_timeout::<Tick>(std::time::Duration::from_secs(5))
                .unwrap_err()
        ));
        assert_eq!(rx.recv_vec().unwrap().len(), found);
    }
    assert!(matches!(rx.try_recv_value::<Tick>(), Err(Error::Empty)));
}

#[test]
fn values_with_timeouts() {
    use std::time::Duration;
    let name = name("timeouts");
    let options = Options::new().capacity(64);
    let mut tx = Sender::create(&name, &options).unwrap();
    let mut rx = Receiver::open(&name, &options).unwrap();
    let short = Duration::from_millis(5);
    assert!(matches!(
        rx.recv_value_timeout::<u64>(short),
        Err(Error::TimedOut)
    ));
    assert!(matches!(
        rx.read_value_timeout::<u64>(short),
        Err(Error::TimedOut)
    ));
    tx.try_send_value(&[1u64; 3]).unwrap();
    tx.send_value_timeout(&[2u64; 3], short).unwrap();
    assert!(matches!(
        tx.try_reserve_value::<[u64; 3]>(),
        Err(Error::Full)
    ));
    assert!(matches!(
        tx.reserve_value_timeout::<[u64; 3]>(short),
        Err(Error::TimedOut)
    ));
    assert!(matches!(
        tx.send_value_timeout(&[3u64; 3], short),
        Err(Error::TimedOut)
    ));
    assert_eq!(*rx.try_read_value::<[u64; 3]>().unwrap(), [1; 3]);
    tx.try_reserve_value::<[u64; 3]>().unwrap().commit();
    assert_eq!(rx.try_recv_value::<[u64; 3]>().unwrap(), [2; 3]);
    drop(tx);
    // The reservation committed unwritten: whatever bytes the ring held.
    assert!(rx.read_value_timeout::<[u64; 3]>(short).is_ok());
    assert!(matches!(
        rx.try_recv_value::<[u64; 3]>(),
        Err(Error::Disconnected)
    ));
}

#[cfg(feature = "serde")]
mod serde_values {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Serialize};
    use shmlane_posix::serde::{SerdeReceiver, SerdeSender};
    use shmlane_posix::{Error, Framed, MessageReceiver, MessageSender, Options, Receiver, Sender};

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Command {
        Quote {
            symbol: String,
            levels: Vec<(u64, u32)>,
        },
        Config(BTreeMap<String, Option<i64>>),
        Stop,
    }

    fn commands() -> Vec<Command> {
        let mut config = BTreeMap::new();
        config.insert("depth".to_owned(), Some(-5));
        config.insert("venue".to_owned(), None);
        vec![
            Command::Quote {
                symbol: "EURUSD".into(),
                levels: vec![(10_842, 5), (10_841, 7)],
            },
            Command::Config(config),
            // Longer than the first receive buffer (4 KiB).
            Command::Quote {
                symbol: "x".repeat(5000),
                levels: (0..300).map(|i| (i, i as u32)).collect(),
            },
            Command::Stop,
        ]
    }

    /// Round trips, an oversized value, garbage and trailing bytes over one
    /// pair of a transport whose `max_message` is at least 16 KiB.
    fn exercise(tx: &mut impl MessageSender, rx: &mut impl MessageReceiver) {
        for (i, command) in commands().into_iter().enumerate() {
            match i % 3 {
                0 => tx.send_serde(&command).unwrap(),
                1 => tx.try_send_serde(&command).unwrap(),
                _ => tx
                    .send_serde_timeout(&command, Duration::from_secs(5))
                    .unwrap(),
            }
            let got: Command = match i % 3 {
                0 => rx.recv_serde().unwrap(),
                1 => rx.recv_serde_timeout(Duration::from_secs(5)).unwrap(),
                _ => rx.recv_serde().unwrap(),
            };
            assert_eq!(got, command);
        }

        // Too long to be one message: refused, nothing sent.
        let max = tx.max_message();
        let huge = Command::Quote {
            symbol: "y".repeat(max),
            levels: vec![],
        };
        match tx.send_serde(&huge) {
            Err(Error::TooLarge { len, max: m }) => assert!(len > max && m == max),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(matches!(
            rx.recv_serde_timeout::<Command>(Duration::from_millis(10)),
            Err(Error::TimedOut)
        ));

        // Garbage: an enum tag out of range, a length prefix claiming more
        // than the message holds, an empty message.
        for garbage in [&b"\x09"[..], b"\x00\xff\xff\xff\xff\x0f", b""] {
            tx.send(garbage).unwrap();
            match rx.recv_serde::<Command>() {
                Err(Error::Decode { message, reason }) => {
                    assert_eq!(message, garbage);
                    assert!(!reason.is_empty());
                }
                other => panic!("expected Decode, got {other:?}"),
            }
        }
        // A value with bytes after it is not a value either.
        let mut stop = postcard_bytes(&Command::Stop);
        stop.push(0);
        tx.send(&stop).unwrap();
        assert!(matches!(
            rx.try_recv_serde::<Command>(),
            Err(Error::Decode { .. })
        ));
        // The stream is still good.
        tx.send_serde(&Command::Stop).unwrap();
        assert_eq!(rx.recv_serde::<Command>().unwrap(), Command::Stop);
        assert!(matches!(rx.try_recv_serde::<Command>(), Err(Error::Empty)));
    }

    /// `Command::Stop` as the sender encodes it (variant 2, no fields).
    fn postcard_bytes(command: &Command) -> Vec<u8> {
        assert_eq!(command, &Command::Stop);
        vec![2]
    }

    #[test]
    fn serde_over_shared_memory() {
        let name = super::name("serde");
        let options = Options::new().capacity(1 << 16);
        let mut tx = Sender::create(&name, &options).unwrap();
        let mut rx = Receiver::open(&name, &options).unwrap();
        exercise(&mut tx, &mut rx);
    }

    #[test]
    fn serde_over_a_pipe() {
        let (mut tx, mut rx) = Framed::pipe(1 << 15).unwrap();
        exercise(&mut tx, &mut rx);
    }

    #[test]
    fn serde_over_a_unix_stream() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut tx = Framed::new(a, 1 << 15).unwrap();
        let mut rx = Framed::new(b, 1 << 15).unwrap();
        exercise(&mut tx, &mut rx);
    }

    #[test]
    fn a_receiver_with_a_small_max_message_bounds_the_decode() {
        // A pipe of 64-byte messages: a 5000-byte string never arrives
        // whole, and a length prefix claiming 5000 bytes fails to decode.
        let (mut tx, mut rx) = Framed::pipe(64).unwrap();
        assert!(matches!(
            tx.send_serde(&"z".repeat(5000)),
            Err(Error::TooLarge { max: 64, .. })
        ));
        tx.send(b"\x88\x27zzzz").unwrap(); // varint 5000, then 4 bytes
        assert!(matches!(
            rx.recv_serde::<String>(),
            Err(Error::Decode { .. })
        ));
    }
}
