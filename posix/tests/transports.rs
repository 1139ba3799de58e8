//! Every transport through the one message API: order, sizes 0..=max,
//! nothing lost, disconnect, oversized messages.

use std::time::Duration;

mod support;

use shmlane_posix::{Error, Options, Receiver, Sender};
use shmlane_posix::{Framed, FramedListener, MessageReceiver, MessageSender};

const COUNT: u64 = 10_000;

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 7 + i) as u8).collect()
}

/// Sizes: 0 and max first, then random 0..=max.
fn size(seq: u64, rng: &mut u64, max: usize) -> usize {
    match seq {
        0 => 0,
        1 => max,
        _ => (next(rng) % (max as u64 + 1)) as usize,
    }
}

/// Streams COUNT messages from `tx` (in a thread) to `rx`, checks each,
/// then checks that the sender's drop ends the receiver with Disconnected.
fn stream_and_disconnect(
    mut tx: impl MessageSender + Send + 'static,
    mut rx: impl MessageReceiver,
) {
    let max = tx.max_message();
    assert_eq!(rx.max_message(), max);
    let sender = std::thread::spawn(move || {
        let mut rng = 0x1234_5678;
        for seq in 0..COUNT {
            let len = size(seq, &mut rng, max);
            tx.send(&message(seq, len)).unwrap();
        }
        // Oversized: refused, nothing sent.
        assert!(matches!(
            tx.send(&vec![0; max + 1]),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            tx.try_send(&vec![0; max + 1]),
            Err(Error::TooLarge { .. })
        ));
        // tx drops here: the receiver sees Disconnected after the last message.
    });
    let mut rng = 0x1234_5678;
    let mut buf = vec![0; max];
    for seq in 0..COUNT {
        let len = size(seq, &mut rng, max);
        let n = rx
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("message {seq}: {e}"));
        assert_eq!(&buf[..n], &message(seq, len)[..], "message {seq}");
    }
    sender.join().unwrap();
    assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
}

/// Non-blocking and timed calls: Empty / TimedOut, BufferTooSmall keeps
/// the message.
fn edges(tx: &mut impl MessageSender, rx: &mut impl MessageReceiver) {
    let mut buf = [0u8; 16];
    assert!(matches!(rx.try_recv(&mut buf), Err(Error::Empty)));
    assert!(matches!(
        rx.recv_timeout(&mut buf, Duration::from_millis(5)),
        Err(Error::TimedOut)
    ));
    tx.send(b"twelve bytes").unwrap();
    let mut small = [0u8; 4];
    assert!(matches!(
        rx.recv(&mut small),
        Err(Error::BufferTooSmall {
            needed: 12,
            available: 4
        })
    ));
    assert_eq!(rx.recv(&mut buf).unwrap(), 12);
    assert_eq!(&buf[..12], b"twelve bytes");
}

#[test]
fn shm() {
    let name = format!("/shmlane-transport-{}", support::run_id());
    let options = Options::new().capacity(8192);
    let mut tx = Sender::create(&name, &options).unwrap();
    let mut rx = Receiver::open(&name, &options).unwrap();
    edges(&mut tx, &mut rx);
    stream_and_disconnect(tx, rx);
}

#[test]
fn pipe() {
    let (mut tx, mut rx) = Framed::pipe(4096).unwrap();
    edges(&mut tx, &mut rx);
    stream_and_disconnect(tx, rx);
}

#[test]
fn unix_stream() {
    let path = std::env::temp_dir().join(format!("shmlane-transport-{}.sock", support::run_id()));
    let listener = FramedListener::bind_unix(&path, 4096).unwrap();
    let mut client = Framed::connect_unix(&path, 4096).unwrap();
    let mut server = listener.accept().unwrap();
    edges(&mut client, &mut server);
    edges(&mut server, &mut client);
    stream_and_disconnect(client, server);
}

#[test]
fn tcp() {
    let listener = FramedListener::bind_tcp("127.0.0.1:0", 4096).unwrap();
    let port = listener.local_port().unwrap();
    let mut client = Framed::connect_tcp(&format!("127.0.0.1:{port}"), 4096).unwrap();
    let mut server = listener.accept().unwrap();
    edges(&mut client, &mut server);
    stream_and_disconnect(client, server);
}

#[test]
fn a_full_pipe_refuses_try_send_and_loses_nothing() {
    let (mut tx, mut rx) = Framed::pipe(1000).unwrap();
    let mut sent = 0u64;
    loop {
        match tx.try_send(&message(sent, 1000)) {
            Ok(()) => sent += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent > 0);
    // Everything accepted arrives, intact and in order (a message accepted
    // while only partly written is finished by the next send or flush).
    tx.flush().unwrap();
    drop(tx);
    let mut buf = vec![0; 1000];
    for seq in 0..sent {
        assert_eq!(rx.recv(&mut buf).unwrap(), 1000);
        assert_eq!(buf, message(seq, 1000), "message {seq}");
    }
    assert!(matches!(rx.recv(&mut buf), Err(Error::Disconnected)));
}

#[test]
fn a_stream_cut_inside_a_frame_is_truncated() {
    let (read, write) = rustix::pipe::pipe().unwrap();
    let mut rx = Framed::new(read, 100).unwrap();
    // A header announcing 50 bytes, then only 10 of them, then EOF.
    rustix::io::write(&write, &50u32.to_le_bytes()).unwrap();
    rustix::io::write(&write, &[7; 10]).unwrap();
    drop(write);
    assert!(matches!(rx.recv(&mut [0; 100]), Err(Error::Truncated)));
}

#[test]
fn an_oversized_frame_from_the_peer_is_an_error_not_an_allocation() {
    let (read, write) = rustix::pipe::pipe().unwrap();
    let mut rx = Framed::new(read, 100).unwrap();
    rustix::io::write(&write, &u32::MAX.to_le_bytes()).unwrap();
    assert!(matches!(
        rx.recv(&mut [0; 100]),
        Err(Error::FrameTooLarge { len, max: 100 }) if len == u32::MAX as usize
    ));
}

#[test]
fn a_live_unix_socket_is_not_stolen_and_a_stale_one_is_replaced() {
    let dir = std::env::temp_dir();
    let id = support::run_id();
    let path = dir.join(format!("shmlane-live-{id}.sock"));
    let live = FramedListener::bind_unix(&path, 64).unwrap();
    assert!(matches!(
        FramedListener::bind_unix(&path, 64),
        Err(Error::AlreadyExists { .. })
    ));
    drop(live);
    assert!(!path.exists(), "the listener removes its socket file");
    // std's listener leaves its socket file behind, as a killed process would.
    let stale_path = dir.join(format!("shmlane-stale-{id}.sock"));
    drop(std::os::unix::net::UnixListener::bind(&stale_path).unwrap());
    assert!(stale_path.exists());
    let replaced = FramedListener::bind_unix(&stale_path, 64);
    assert!(replaced.is_ok(), "{replaced:?}");
    drop(replaced);
    // A regular file is never removed.
    let file = dir.join(format!("shmlane-not-a-socket-{id}"));
    std::fs::write(&file, b"data").unwrap();
    assert!(matches!(
        FramedListener::bind_unix(&file, 64),
        Err(Error::WrongType { .. })
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn fifo() {
    let path = std::env::temp_dir().join(format!("shmlane-transport-fifo-{}", support::run_id()));
    let writer_path = path.clone();
    // Each end's open waits for the other: open the writer in a thread.
    let writer = std::thread::spawn(move || {
        loop {
            match Framed::open_fifo_writer(&writer_path, 4096) {
                Ok(tx) => return tx,
                Err(Error::NotFound { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut rx = Framed::create_fifo(&path, 0o600, 4096).unwrap();
    let mut tx = writer.join().unwrap();
    edges(&mut tx, &mut rx);
    stream_and_disconnect(tx, rx);
    assert!(!path.exists(), "the creator removes the FIFO");
}

#[test]
fn unix_datagram() {
    use shmlane_posix::dgram::Datagram;
    let dir = std::env::temp_dir();
    let id = support::run_id();
    let mut rx = Datagram::bind(dir.join(format!("shmlane-dg-rx-{id}")), 4096).unwrap();
    let mut tx = Datagram::bind(dir.join(format!("shmlane-dg-tx-{id}")), 4096).unwrap();
    tx.connect(dir.join(format!("shmlane-dg-rx-{id}"))).unwrap();
    tx.send_hello().unwrap();
    rx.accept_hello().unwrap();
    edges(&mut tx, &mut rx);
    stream_and_disconnect(tx, rx);
}

#[test]
fn mqueue() {
    use shmlane_posix::mqueue::MqChannel;
    use shmlane_posix::mqueue::MqOptions;
    let name = format!("/shmlane-transport-mq-{}", support::run_id());
    let mut rx =
        MqChannel::create(&name, &MqOptions::new().capacity(10).max_message(4097)).unwrap();
    let mut tx = MqChannel::open(&name).unwrap();
    assert_eq!(MessageSender::max_message(&tx), 4096);
    edges(&mut tx, &mut rx);
    stream_and_disconnect(tx, rx);
}

#[test]
fn a_pipe_holds_a_whole_frame_of_the_largest_message() {
    let pipe_size = |f: &Framed| rustix::pipe::fcntl_getpipe_size(f.fd()).unwrap();
    // The default 64 KiB buffer cannot hold a 64 KiB message and its header:
    // the pipe grows so that one frame goes in one write.
    let (tx, rx) = Framed::pipe(64 * 1024).unwrap();
    assert!(pipe_size(&tx) >= 64 * 1024 + 4, "{}", pipe_size(&tx));
    assert_eq!(pipe_size(&tx), pipe_size(&rx)); // one buffer, the pipe's
    // Never beyond 1 MiB, however large the messages may be.
    let (big, _rx) = Framed::pipe(16 << 20).unwrap();
    assert_eq!(pipe_size(&big), 1 << 20);
    // Small messages leave the default (a plain pipe's) alone.
    let (plain, _plain_write) = rustix::pipe::pipe().unwrap();
    let (small, _rx) = Framed::pipe(1024).unwrap();
    assert_eq!(
        pipe_size(&small),
        rustix::pipe::fcntl_getpipe_size(&plain).unwrap()
    );
    // And the grown pipe still carries every size, the largest included.
    let (mut tx, mut rx) = (tx, rx);
    let msg = message(1, 64 * 1024);
    tx.send(&msg).unwrap();
    let mut buf = vec![0; 64 * 1024];
    assert_eq!(rx.recv(&mut buf).unwrap(), msg.len());
    assert_eq!(buf, msg);
}
