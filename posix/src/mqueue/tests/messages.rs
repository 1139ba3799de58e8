//! Sending and receiving: sizes, priorities, full and empty queues,
//! timeouts, small buffers, waking, polling.

use super::*;

#[test]
fn round_trip_sizes_zero_one_and_max() {
    let max = limit(MSGSIZE_MAX).min(8192) as usize;
    let name = qname("round-trip");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(3).max_message(max)) else {
        return;
    };
    assert_eq!(q.max_message(), max);
    let big: Vec<u8> = (0..max).map(|i| (i * 7 + 3) as u8).collect();
    let msgs: [&[u8]; 3] = [b"", b"x", &big];
    for m in msgs {
        q.send(m, 0).unwrap();
    }
    assert_eq!(q.len().unwrap(), 3);
    // Exactly `max` bytes (received directly) and a larger buffer.
    for (m, mut buf) in msgs
        .into_iter()
        .zip([vec![0xAA; max], vec![0xAA; max + 10], vec![0; max]])
    {
        let (len, priority) = q.recv(&mut buf).unwrap();
        assert_eq!((&buf[..len], priority), (m, 0));
    }
    assert!(q.is_empty().unwrap());
    // The same through the scratch buffer (a caller buffer shorter than
    // the queue's message size).
    q.send(b"", 1).unwrap();
    q.send(b"y", 2).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(q.recv(&mut buf).unwrap(), (1, 2));
    assert_eq!(buf, *b"y");
    assert_eq!(q.recv(&mut [][..]).unwrap(), (0, 1));
}

#[test]
fn highest_priority_first_then_fifo() {
    let name = qname("priorities");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(6).max_message(64)) else {
        return;
    };
    let sent: [(&[u8], u32); 6] = [
        (b"low-1", 1),
        (b"high", MAX_PRIORITY),
        (b"medium-1", 100),
        (b"low-2", 1),
        (b"medium-2", 100),
        (b"zero", 0),
    ];
    for (m, p) in sent {
        q.send(m, p).unwrap();
    }
    let expected: [(&[u8], u32); 6] = [
        (b"high", MAX_PRIORITY),
        (b"medium-1", 100),
        (b"medium-2", 100),
        (b"low-1", 1),
        (b"low-2", 1),
        (b"zero", 0),
    ];
    let mut buf = [0u8; 64];
    for (m, p) in expected {
        let (len, priority) = q.try_recv(&mut buf).unwrap();
        assert_eq!((&buf[..len], priority), (m, p));
    }
}

#[test]
fn priority_above_max_is_refused() {
    let name = qname("bad-priority");
    let Some(q) = create(&name, &small()) else {
        return;
    };
    for r in [
        q.send(b"x", MAX_PRIORITY + 1),
        q.try_send(b"x", u32::MAX),
        q.send_timeout(b"x", 32768, Duration::from_millis(1)),
    ] {
        assert!(
            matches!(
                r,
                Err(Error::LimitExceeded {
                    limit: "MQ_PRIO_MAX - 1",
                    max: 32767,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    assert!(q.is_empty().unwrap());
}

#[test]
fn try_send_on_full_queue_is_full_and_sends_nothing() {
    let name = qname("full");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(2).max_message(32)) else {
        return;
    };
    q.try_send(b"one", 1).unwrap();
    q.try_send(b"two", 1).unwrap();
    let started = Instant::now();
    assert!(matches!(q.try_send(b"three", 9), Err(Error::Full)));
    assert!(matches!(q.try_send(b"", 0), Err(Error::Full)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "try_send waited"
    );
    assert_eq!(q.len().unwrap(), 2);
    // The descriptor was never made non-blocking.
    let attr = getattr(q.as_fd()).unwrap();
    assert_eq!(attr.mq_flags & libc::O_NONBLOCK as libc::c_long, 0);

    let mut buf = [0u8; 32];
    for m in [&b"one"[..], b"two"] {
        let (len, priority) = q.try_recv(&mut buf).unwrap();
        assert_eq!((&buf[..len], priority), (m, 1));
    }
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
    // Room again.
    q.try_send(b"three", 9).unwrap();
}

#[test]
fn try_receive_on_empty_queue_is_empty() {
    let name = qname("empty");
    let Some(mut q) = create(&name, &small()) else {
        return;
    };
    let mut big = [0u8; 256];
    let mut short = [0u8; 8];
    assert!(matches!(q.try_recv(&mut big), Err(Error::Empty)));
    assert!(matches!(q.try_recv(&mut short), Err(Error::Empty)));
    let attr = getattr(q.as_fd()).unwrap();
    assert_eq!(attr.mq_flags & libc::O_NONBLOCK as libc::c_long, 0);
}

#[test]
fn timeouts_time_out_after_waiting() {
    let name = qname("timeouts");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(1).max_message(16)) else {
        return;
    };
    let timeout = Duration::from_millis(50);
    let mut buf = [0u8; 16];

    let started = Instant::now();
    assert!(matches!(
        q.recv_timeout(&mut buf, timeout),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= timeout / 2, "returned at once");

    q.send_timeout(b"fills it", 0, timeout).unwrap();
    let started = Instant::now();
    assert!(matches!(
        q.send_timeout(b"no room", 0, timeout),
        Err(Error::TimedOut)
    ));
    assert!(started.elapsed() >= timeout / 2, "returned at once");
    assert_eq!(q.len().unwrap(), 1);

    // A zero timeout behaves like the try_ calls; a huge one saturates
    // instead of overflowing into an invalid deadline.
    assert!(matches!(
        q.send_timeout(b"x", 0, Duration::ZERO),
        Err(Error::TimedOut)
    ));
    assert_eq!(q.recv_timeout(&mut buf, Duration::MAX).unwrap(), (8, 0));
    q.send_timeout(b"again", 3, Duration::MAX).unwrap();
    assert_eq!(q.recv_timeout(&mut buf, Duration::ZERO).unwrap(), (5, 3));
}

#[test]
fn oversized_send_is_too_large() {
    let name = qname("too-large");
    let Some(q) = create(&name, &MqOptions::new().capacity(2).max_message(100)) else {
        return;
    };
    let msg = [7u8; 101];
    for r in [
        q.send(&msg, 0),
        q.try_send(&msg, 0),
        q.send_timeout(&msg, 0, Duration::from_millis(1)),
    ] {
        assert!(
            matches!(r, Err(Error::TooLarge { len: 101, max: 100 })),
            "{r:?}"
        );
    }
    assert!(q.is_empty().unwrap());
    q.send(&msg[..100], 0).unwrap();
}

#[test]
fn small_buffer_keeps_the_message_until_a_large_one() {
    let name = qname("small-buffer");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(4).max_message(128)) else {
        return;
    };
    let msg: Vec<u8> = (0..100u8).collect();
    q.send(&msg, 7).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(
        q.recv(&mut small),
        Err(Error::BufferTooSmall {
            needed: 100,
            available: 10
        })
    ));
    // Kept by the handle, whatever kind of receive comes next.
    assert!(matches!(
        q.try_recv(&mut small),
        Err(Error::BufferTooSmall {
            needed: 100,
            available: 10
        })
    ));
    assert!(matches!(
        q.recv_timeout(&mut small, Duration::from_millis(1)),
        Err(Error::BufferTooSmall {
            needed: 100,
            available: 10
        })
    ));
    assert_eq!(q.len().unwrap(), 0);
    // A later message of higher priority does not overtake it.
    q.send(b"later", MAX_PRIORITY).unwrap();

    let mut buf = [0u8; 100];
    assert_eq!(q.recv(&mut buf).unwrap(), (100, 7));
    assert_eq!(&buf[..], &msg[..]);
    assert_eq!(q.try_recv(&mut buf).unwrap(), (5, MAX_PRIORITY));
    assert_eq!(&buf[..5], b"later");
    assert!(matches!(q.try_recv(&mut buf), Err(Error::Empty)));
}

#[test]
fn two_handles_exchange_messages() {
    let name = qname("two-handles");
    let Some(mut a) = create(&name, &MqOptions::new().capacity(3).max_message(48)) else {
        return;
    };
    let mut b = MessageQueue::open(&name).unwrap();
    assert_eq!(
        (b.capacity(), b.max_message(), b.name()),
        (3, 48, name.as_str())
    );
    let mut buf = [0u8; 48];

    a.send(b"ping", 1).unwrap();
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(b.recv(&mut buf).unwrap(), (4, 1));
    assert_eq!(&buf[..4], b"ping");
    b.send(b"pong", 2).unwrap();
    assert_eq!(a.recv(&mut buf).unwrap(), (4, 2));
    assert_eq!(&buf[..4], b"pong");

    // Dropping the opener leaves the queue; dropping the creator removes it.
    drop(b);
    let c = MessageQueue::open(&name).unwrap();
    drop(a);
    assert!(matches!(
        MessageQueue::open(&name),
        Err(Error::NotFound { .. })
    ));
    // The remaining handle still works on the nameless queue.
    c.try_send(b"still", 0).unwrap();
    assert_eq!(c.len().unwrap(), 1);
}

#[test]
fn blocking_calls_wake_up() {
    let name = qname("blocking");
    let Some(q) = create(&name, &MqOptions::new().capacity(1).max_message(16)) else {
        return;
    };
    let mut peer = MessageQueue::open(&name).unwrap();
    q.send(b"first", 0).unwrap();
    std::thread::scope(|s| {
        // Blocks until the main thread makes room.
        let sender = s.spawn(|| q.send(b"second", 0));
        let mut buf = [0u8; 16];
        let (len, _) = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"first");
        let (len, _) = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"second");
        sender.join().unwrap().unwrap();

        // And a blocked receiver wakes for a message.
        let receiver = s.spawn(move || {
            let mut buf = [0u8; 4];
            peer.recv(&mut buf).map(|(len, p)| (buf[..len].to_vec(), p))
        });
        q.send(b"wake", 5).unwrap();
        assert_eq!(receiver.join().unwrap().unwrap(), (b"wake".to_vec(), 5));
    });
}

#[test]
fn descriptor_can_be_polled() {
    let name = qname("poll");
    let Some(mut q) = create(&name, &MqOptions::new().capacity(1).max_message(8)) else {
        return;
    };
    let poll = |q: &MessageQueue| {
        let mut pfd = libc::pollfd {
            fd: q.as_fd().as_raw_fd(),
            events: libc::POLLIN | libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid `pollfd` for the call, timeout 0.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        assert!(n >= 0, "poll: {}", io::Error::last_os_error());
        pfd.revents
    };
    assert_eq!(poll(&q), libc::POLLOUT);
    q.send(b"x", 0).unwrap();
    assert_eq!(poll(&q), libc::POLLIN);
    q.recv(&mut [0u8; 8]).unwrap();
    assert_eq!(poll(&q), libc::POLLOUT);
}
