//! Many clients per shared-memory listener: each `connect` gets its own
//! rings; clients (processes) connect, talk and die concurrently; the
//! listener names them (`SO_PEERCRED`), refuses other uids, survives
//! hostile clients and squatted names, frees a dead client's rings, and
//! sleeps without a timeout while its clients are idle.

mod support;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use shmlane_posix::endpoint::{Connection, EndpointOptions, Listener, connect, listen};
use shmlane_posix::rendezvous::HELLO;
use shmlane_posix::select::Ready;
use shmlane_posix::{Error, MessageReceiver, MessageSender, Selector};
use support::{HUNG, NOBODY, Peer, block_on_stdin, report, serial};

/// The peer side: runs in the child process.
#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = support::peer_spec() else {
        return;
    };
    match args[..] {
        // Connects, then `rounds` round trips of messages naming itself,
        // reports, and waits to be told to go (or killed).
        ["echo-client", address, rounds] => {
            let mut conn = match connect(address, &EndpointOptions::default()) {
                Ok(conn) => conn,
                Err(e) => return report(&format!("connect failed {e:?}")),
            };
            let server = conn.peer_credentials().unwrap();
            report(&format!("connected to {} uid {}", server.pid, server.uid));
            let me = std::process::id();
            let mut buf = [0u8; 64];
            for i in 0..rounds.parse::<u32>().unwrap() {
                let msg = format!("{me}:{i}");
                conn.send(msg.as_bytes()).unwrap();
                let n = conn.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], msg.as_bytes());
            }
            report("done");
            block_on_stdin();
        }
        // Connects and drops, over and over, until killed.
        ["connect-loop", address] => loop {
            match connect(address, &EndpointOptions::default()) {
                Ok(mut conn) => {
                    let _ = conn.send(b"x");
                }
                Err(e) => panic!("connect: {e}"),
            }
        },
        // Connects expecting the listener to belong to `owner`.
        ["connect-as", address, owner] => {
            let options = EndpointOptions {
                owner: Some(owner.parse().unwrap()),
                ..EndpointOptions::default()
            };
            match connect(address, &options) {
                Ok(conn) => {
                    let server = conn.peer_credentials().unwrap();
                    report(&format!("connected to uid {}", server.uid));
                    block_on_stdin();
                }
                Err(e) => report(&format!("refused {e:?}")),
            }
        }
        // Accepts and echoes one message per client, forever (until killed).
        ["listen-loop", address] => {
            let mut listener = listen(address, &EndpointOptions::default()).unwrap();
            report("listening");
            let mut buf = [0u8; 64];
            loop {
                let Ok(mut conn) = listener.accept() else {
                    continue;
                };
                if let Ok(n) = conn.recv(&mut buf) {
                    let _ = conn.send(&buf[..n]);
                }
            }
        }
        // A listener that runs out of descriptors, then gets them back.
        ["listen-starved", address] => {
            let mut listener = listen(address, &EndpointOptions::default()).unwrap();
            report("listening");
            let limit = starve(0);
            // No descriptor at all: the accept itself fails; the client
            // stays queued.
            report(&format!(
                "starved {:?}",
                listener.accept_timeout(HUNG).map(drop)
            ));
            // One: the client is taken in, its rings cannot be made.
            starve(1);
            report(&format!(
                "starved {:?}",
                listener.accept_timeout(HUNG).map(drop)
            ));
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
            let mut conn = listener.accept_timeout(HUNG).unwrap();
            let mut buf = [0u8; 16];
            let n = conn.recv(&mut buf).unwrap();
            conn.send(&buf[..n]).unwrap();
            report("served");
            block_on_stdin();
        }
        // A client that runs out of descriptors, then gets them back.
        ["connect-starved", address] => {
            let options = EndpointOptions::default();
            let limit = starve(0);
            report(&format!(
                "starved {:?}",
                connect(address, &options).map(drop)
            ));
            // Enough for the socket, not for what the listener sends.
            starve(2);
            report(&format!(
                "starved {:?}",
                connect(address, &options).map(drop)
            ));
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
            let mut conn = connect(address, &options).unwrap();
            conn.send(b"fed").unwrap();
            report("connected");
            block_on_stdin();
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

/// Lowers this process's descriptor limit so that only `free` more can be
/// opened (descriptors are numbered lowest first: the limit is set just
/// above the lowest free numbers); returns the old limit.
fn starve(free: u64) -> rustix::process::Rlimit {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let old = getrlimit(Resource::Nofile);
    // Room to probe (an earlier call may have starved us already).
    let open_up = Rlimit {
        current: old.maximum,
        maximum: old.maximum,
    };
    setrlimit(Resource::Nofile, open_up).unwrap();
    // The lowest free numbers, as the kernel hands them out: `free` + 1
    // probes; the limit is the last one's number, so exactly `free` stay
    // below it.
    let probes: Vec<std::fs::File> = (0..=free)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let limit = std::os::fd::AsRawFd::as_raw_fd(probes.last().unwrap()) as u64;
    drop(probes);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: old.maximum,
        },
    )
    .unwrap();
    old
}

fn address(test: &str) -> String {
    format!("shm:/shmlane-many-{test}-{}", support::run_id())
}

/// Rings (anonymous segments) this process has mapped.
fn mapped_rings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.contains("/memfd:shmlane"))
        .count()
}

/// How one client's connection ended at the server.
#[derive(Debug, Default)]
struct Served {
    round_trips: u32,
    uid: u32,
    ended: Option<String>,
}

/// Serves echo clients with one selector over the listener and every
/// connection, until `clients` connections have ended.
fn serve(mut listener: Listener, clients: usize) -> HashMap<i32, Served> {
    let mut conns: Vec<(i32, Connection)> = Vec::new();
    let mut served: HashMap<i32, Served> = HashMap::new();
    let mut ended = 0;
    let mut selector = Selector::new();
    let mut buf = [0u8; 64];
    while ended < clients {
        let ready = {
            let mut sides: Vec<&mut dyn Ready> = vec![&mut listener];
            sides.extend(conns.iter_mut().map(|(_, c)| c as &mut dyn Ready));
            selector.select(&mut sides, Some(HUNG)).unwrap()
        };
        assert!(!ready.is_empty(), "the server waited {HUNG:?} for nothing");
        let mut gone = Vec::new();
        for &i in &ready {
            if i == 0 {
                match listener.try_accept() {
                    Ok(conn) => {
                        let peer = conn.peer_credentials().expect("a shm peer is named");
                        served.entry(peer.pid).or_default().uid = peer.uid;
                        conns.push((peer.pid, conn));
                    }
                    Err(Error::Empty) => {}
                    Err(e) => panic!("accept: {e}"),
                }
                continue;
            }
            let (pid, conn) = &mut conns[i - 1];
            loop {
                match conn.try_recv(&mut buf) {
                    Ok(n) => {
                        conn.send(&buf[..n]).unwrap();
                        served.get_mut(pid).unwrap().round_trips += 1;
                    }
                    Err(Error::Empty) => break,
                    Err(e) => {
                        served.get_mut(pid).unwrap().ended = Some(format!("{e:?}"));
                        gone.push(i - 1);
                        break;
                    }
                }
            }
        }
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            conns.swap_remove(i); // its rings are unmapped here
            ended += 1;
        }
    }
    served
}

#[test]
fn many_client_processes_connect_talk_and_die_concurrently() {
    let _serial = serial();
    let address = address("echo");
    let before = mapped_rings();
    let listener = listen(&address, &EndpointOptions::default()).unwrap();
    let server = std::thread::spawn(move || serve(listener, 8));
    let mut peers: Vec<Peer> = (0..8)
        .map(|_| Peer::spawn(&format!("echo-client {address} 300")))
        .collect();
    let me = std::process::id();
    let euid = rustix::process::geteuid().as_raw();
    for peer in &mut peers {
        // The client names the listening process too.
        assert_eq!(peer.report(), format!("connected to {me} uid {euid}"));
    }
    // Half end cleanly after their round trips; half are killed mid-way.
    let mut pids = Vec::new();
    let mut killed = Vec::new();
    for (i, mut peer) in peers.into_iter().enumerate() {
        let pid = peer.child.id() as i32;
        pids.push(pid);
        if i % 2 == 0 {
            assert_eq!(peer.report(), "done");
            peer.finish();
        } else {
            peer.kill9();
            killed.push(pid);
        }
    }
    let served = server.join().unwrap();
    let mut seen: Vec<i32> = served.keys().copied().collect();
    seen.sort_unstable();
    pids.sort_unstable();
    assert_eq!(seen, pids, "the server named exactly its clients");
    for (pid, s) in &served {
        assert_eq!(s.uid, euid);
        assert_eq!(s.ended.as_deref(), Some("Disconnected"), "{pid}: {s:?}");
        if !killed.contains(pid) {
            assert_eq!(s.round_trips, 300, "{pid}");
        }
    }
    // Every client's rings are gone with its connection.
    assert_eq!(mapped_rings(), before);
    // And nothing is named for them.
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("shmlane-many-echo")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_client_killed_at_random_points_in_its_connects_never_stalls_the_listener() {
    let _serial = serial();
    let address = address("killed");
    let before = mapped_rings();
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    // Where the kills fall differs from run to run (the seed is printed).
    let mut state = std::process::id() as u64 | 1;
    eprintln!("kill points seed {state}");
    for _ in 0..4 {
        let mut peer = Peer::spawn(&format!("connect-loop {address}"));
        // Let it get through a few connects, then kill it wherever it is
        // (inside connect, in the handshake, or holding rings).
        for _ in 0..1 + support::next(&mut state) % 20 {
            let conn = listener.accept_timeout(HUNG).unwrap();
            drop(conn);
        }
        peer.kill9();
    }
    // The listener still serves a normal client at once.
    let client = std::thread::spawn({
        let address = address.clone();
        move || -> shmlane_posix::Result<Vec<u8>> {
            let mut conn = connect(&address, &EndpointOptions::default())?;
            conn.send(b"after the kills")?;
            let mut buf = [0; 64];
            let n = conn.recv(&mut buf)?;
            Ok(buf[..n].to_vec())
        }
    });
    let mut conn = loop {
        let conn = listener.accept_timeout(HUNG).unwrap();
        if conn.peer_credentials().unwrap().pid == std::process::id() as i32 {
            break conn;
        }
        // A killed loop's last connect, already queued.
    };
    let mut buf = [0; 64];
    let n = conn.recv(&mut buf).unwrap();
    conn.send(&buf[..n]).unwrap();
    assert_eq!(client.join().unwrap().unwrap(), b"after the kills");
    drop(conn);
    // The killed loops' clients that answered before they died are
    // connections still queued (a client may send and close before it is
    // accepted: its messages are kept for the server). Taking them frees
    // their rings; the ones that died before answering went at the
    // accepts above. Then nothing of the dead is left.
    loop {
        match listener.try_accept() {
            Ok(queued) => {
                assert_ne!(
                    queued.peer_credentials().unwrap().pid,
                    std::process::id() as i32
                );
            }
            Err(Error::Empty) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(mapped_rings(), before);
}

/// The listener's socket file of `address`.
fn socket_of(address: &str) -> String {
    format!("/dev/shm{}.sock", address.strip_prefix("shm:").unwrap())
}

/// Gives the listener's socket file the mode 0o666 it asked for (it got
/// that less the umask).
fn open_up(address: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(socket_of(address), std::fs::Permissions::from_mode(0o666)).unwrap();
}

#[test]
fn a_listener_restricted_to_a_uid_refuses_and_counts_others_and_clients_check_the_listener() {
    if !support::can_switch_users("uid restriction") {
        return;
    }
    let _serial = serial();
    let address = address("uid");
    let euid = rustix::process::geteuid().as_raw();
    // Anyone may connect (mode 0o666), but only our uid is accepted.
    let options = EndpointOptions {
        mode: 0o666,
        peer_uid: Some(euid),
        ..EndpointOptions::default()
    };
    let mut listener = listen(&address, &options).unwrap();
    open_up(&address);
    let mut peer = Peer::spawn_as(&format!("connect-as {address} {euid}"), NOBODY);
    let refused = listener.accept_timeout(HUNG);
    assert!(
        matches!(refused, Err(Error::PeerRefused { uid, .. }) if uid == NOBODY),
        "{refused:?}"
    );
    assert_eq!(listener.refused(), 1);
    assert_eq!(peer.report(), "refused Disconnected");
    peer.finish();
    drop(listener);

    // Unrestricted: the same client gets in, and each side names the other.
    let options = EndpointOptions {
        mode: 0o666,
        ..EndpointOptions::default()
    };
    let mut listener = listen(&address, &options).unwrap();
    open_up(&address);
    let mut peer = Peer::spawn_as(&format!("connect-as {address} {euid}"), NOBODY);
    let conn = listener.accept_timeout(HUNG).unwrap();
    assert_eq!(conn.peer_credentials().unwrap().uid, NOBODY);
    assert_eq!(peer.report(), format!("connected to uid {euid}"));
    peer.finish();
    assert_eq!(listener.refused(), 0);

    // A client that expects the listener to be its own uid's will not talk
    // to ours (as to a socket someone squats at the name).
    let mut peer = Peer::spawn_as(&format!("connect-as {address} {NOBODY}"), NOBODY);
    let report = peer.report();
    assert!(report.starts_with("refused ForeignOwner"), "{report}");
    peer.finish();
    drop(listener);

    // The default mode (0o600): another user cannot connect at all.
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    let mut peer = Peer::spawn_as(&format!("connect-as {address} {euid}"), NOBODY);
    let report = peer.report();
    assert!(report.starts_with("refused PermissionDenied"), "{report}");
    peer.finish();
    assert!(matches!(listener.try_accept(), Err(Error::Empty)));
}

#[test]
fn what_squats_at_the_socket_name_is_refused_and_left_alone() {
    let _serial = serial();
    let address = address("squat");
    let path = socket_of(&address);
    let options = EndpointOptions::default();

    // A symbolic link, a regular file, a FIFO: never followed or removed.
    std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
    let result = listen(&address, &options);
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    assert!(std::fs::symlink_metadata(&path).unwrap().is_symlink());
    std::fs::remove_file(&path).unwrap();

    std::fs::write(&path, b"not a socket").unwrap();
    let result = listen(&address, &options);
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    std::fs::remove_file(&path).unwrap();

    rustix::fs::mkfifoat(rustix::fs::CWD, path.as_str(), rustix::fs::Mode::RUSR).unwrap();
    let result = listen(&address, &options);
    assert!(matches!(result, Err(Error::WrongType { .. })), "{result:?}");
    std::fs::remove_file(&path).unwrap();

    // Another user's (dead) socket.
    if rustix::process::geteuid().is_root() {
        drop(UnixListener::bind(&path).unwrap());
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        let result = listen(&address, &options);
        assert!(
            matches!(result, Err(Error::ForeignOwner { owner, .. }) if owner == NOBODY),
            "{result:?}"
        );
        assert!(std::fs::symlink_metadata(&path).is_ok());
        std::fs::remove_file(&path).unwrap();
    }

    // A live socket of ours that is not a shmlane listener: connect talks
    // to it, and gets a typed error for what it answers.
    let squatter = UnixListener::bind(&path).unwrap();
    let result = listen(&address, &options);
    assert!(
        matches!(result, Err(Error::AlreadyExists { .. })),
        "{result:?}"
    );
    // (Its every caller, listen's liveness probe too, gets an answer.)
    std::thread::spawn(move || {
        for stream in squatter.incoming() {
            use std::io::Write;
            let mut stream = stream.unwrap();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
            std::mem::forget(stream); // open until the process ends
        }
    });
    let result = connect(&address, &options);
    assert!(
        matches!(result, Err(Error::NotASegment { .. })),
        "{result:?}"
    );
    std::fs::remove_file(&path).unwrap();
}

/// A fake listener at `address` that answers one client with `answer`.
fn fake_listener(address: &str, answer: impl FnOnce(&UnixStream) + Send + 'static) -> UnixListener {
    let path = socket_of(address);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let (stream, _) = accepting.accept().unwrap();
        answer(&stream);
        // Keep the stream open until the client has had its say.
        let _ = std::io::Read::read(&mut &stream, &mut [0u8; 1]);
    });
    listener
}

#[test]
fn a_hostile_listener_gets_typed_errors_at_connect() {
    let _serial = serial();
    let address = address("hostile-listener");
    let options = EndpointOptions::default();
    let sealed = || {
        let seg = shmlane_posix::Segment::anonymous(1 << 16).unwrap();
        seg.seal().unwrap();
        seg
    };
    let send = |stream: &UnixStream, payload: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]| {
        use std::mem::MaybeUninit;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(fds)));
        rustix::net::sendmsg(
            stream,
            &[std::io::IoSlice::new(payload)],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )
        .unwrap();
    };

    // Doorbells as the listener makes them: a datagram socket pair of its
    // own (here this process is the listener).
    let bells = || {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    };

    // What a connect to a fake listener that answers with `answer` gives.
    let answered = |answer: Box<dyn FnOnce(&UnixStream) + Send>, options: &EndpointOptions| {
        let _listener = fake_listener(&address, answer);
        connect(&address, options).map(drop)
    };
    let refused = |result: shmlane_posix::Result<()>, expected: fn(&Error) -> bool| {
        assert!(result.as_ref().is_err_and(expected), "{result:?}");
    };

    // Rings that are not sealed: the listener could shrink them under us.
    let unsealed = Box::new(move |s: &UnixStream| {
        let unsealed = rustix::fs::memfd_create("fake", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&unsealed, 1 << 16).unwrap();
        let other = sealed();
        let ((a, _), (b, _)) = (bells(), bells());
        send(
            s,
            HELLO,
            &[unsealed.as_fd(), other.fd(), a.as_fd(), b.as_fd()],
        );
    });
    refused(answered(unsealed, &options), |e| {
        matches!(e, Error::NotSealed)
    });

    // Doorbells that are not datagram socket pairs (a pipe, a stream pair):
    // refused before anything is mapped.
    let odd_bells = Box::new(move |s: &UnixStream| {
        let (a, b) = (sealed(), sealed());
        let (pipe, _w) = rustix::pipe::pipe().unwrap();
        let (stream, _) = UnixStream::pair().unwrap();
        send(s, HELLO, &[a.fd(), b.fd(), pipe.as_fd(), stream.as_fd()]);
    });
    refused(answered(odd_bells, &options), |e| {
        matches!(e, Error::NotASegment { .. })
    });

    // Sealed, but zeroes: not a ring.
    let zeroes = Box::new(move |s: &UnixStream| {
        let (a, b) = (sealed(), sealed());
        let ((c, _), (d, _)) = (bells(), bells());
        send(s, HELLO, &[a.fd(), b.fd(), c.as_fd(), d.as_fd()]);
    });
    refused(answered(zeroes, &options), |e| {
        matches!(e, Error::NotASegment { .. } | Error::NotReady)
    });

    // One descriptor, or another protocol version's tag.
    let one = Box::new(move |s: &UnixStream| send(s, HELLO, &[sealed().fd()]));
    refused(answered(one, &options), |e| {
        matches!(e, Error::NotASegment { .. })
    });
    let other_version = Box::new(move |s: &UnixStream| {
        let (a, b) = (sealed(), sealed());
        let ((c, _), (d, _)) = (bells(), bells());
        let mut tag = *HELLO;
        tag[7] += 1;
        send(s, &tag, &[a.fd(), b.fd(), c.as_fd(), d.as_fd()]);
    });
    refused(answered(other_version, &options), |e| {
        matches!(e, Error::NotASegment { .. })
    });

    // Closed at once (a listener that refuses us), or silent.
    let closed = Box::new(|s: &UnixStream| {
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    refused(answered(closed, &options), |e| {
        matches!(e, Error::Disconnected)
    });
    let hasty = EndpointOptions {
        shm: shmlane_posix::Options::new().open_timeout(Duration::from_millis(50)),
        ..EndpointOptions::default()
    };
    refused(answered(Box::new(|_: &UnixStream| {}), &hasty), |e| {
        matches!(e, Error::TimedOut)
    });
    let _ = std::fs::remove_file(socket_of(&address));
}

#[test]
fn hostile_clients_are_dropped_and_the_next_client_is_served() {
    let _serial = serial();
    let address = address("hostile-client");
    let path = socket_of(&address);
    let before = mapped_rings();
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    // One that answers the rings with garbage, one that keeps them and
    // hangs up, one that says nothing: then a real client.
    let garbage = UnixStream::connect(&path).unwrap();
    std::io::Write::write_all(&mut &garbage, b"no").unwrap();
    // The right answer without the doorbells it must carry.
    let bare = UnixStream::connect(&path).unwrap();
    std::io::Write::write_all(&mut &bare, b"A").unwrap();
    let keeps = UnixStream::connect(&path).unwrap();
    let silent = UnixStream::connect(&path).unwrap();
    let client = std::thread::spawn({
        let address = address.clone();
        move || {
            // After the hostile ones are queued.
            let mut conn = connect(&address, &EndpointOptions::default()).unwrap();
            conn.send(b"real").unwrap();
            conn
        }
    });
    let keeper = std::thread::spawn(move || {
        let mut rest = [0u8; 7];
        let fd = shmlane_posix::fdpass::recv_fd(&keeps);
        std::io::Read::read_exact(&mut &keeps, &mut rest).unwrap();
        (fd, keeps)
    });
    // The hostile ones are pending (their rings sent, no answer) or
    // dropped: the real client is served meanwhile.
    let mut conn = listener.accept_timeout(HUNG).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(conn.recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"real");
    assert_eq!(
        conn.peer_credentials().unwrap().pid,
        std::process::id() as i32
    );
    drop((conn, client.join().unwrap()));
    // The keeper got a ring descriptor; nothing of the listener's depends
    // on it. Once the hostile clients hang up, the listener drops their
    // rings at its next accept.
    let (kept, keeps) = keeper.join().unwrap();
    drop((kept.unwrap(), keeps, garbage, bare, silent));
    assert!(matches!(listener.try_accept(), Err(Error::Empty)));
    assert_eq!(mapped_rings(), before);
}

#[test]
fn every_listener_can_be_polled_timed_or_tried_and_joins_a_selector() {
    let _serial = serial();
    let id = support::run_id();
    let tmp = std::env::temp_dir();
    let addresses = [
        format!("shm:/shmlane-many-try-{id}"),
        format!("unix:{}/shmlane-many-try-{id}.sock", tmp.display()),
        "tcp:127.0.0.1:0".to_owned(),
        format!("unix-dgram:{}/shmlane-many-try-{id}.dgram", tmp.display()),
        format!("fifo:{}/shmlane-many-try-{id}", tmp.display()),
    ];
    for address in addresses {
        let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
        let result = listener.try_accept();
        assert!(matches!(result, Err(Error::Empty)), "{address}: {result:?}");
        let result = listener.accept_timeout(Duration::from_millis(20));
        assert!(
            matches!(result, Err(Error::TimedOut)),
            "{address}: {result:?}"
        );
        if address.starts_with("fifo:") {
            let result = listener.ready_fd();
            assert!(
                matches!(result, Err(Error::Unsupported { .. })),
                "{result:?}"
            );
            continue;
        }
        // Not ready with nobody there; ready (and accepted) once a client
        // connects.
        let mut selector = Selector::new();
        let ready = selector
            .select(&mut [&mut listener], Some(Duration::ZERO))
            .unwrap();
        assert!(ready.is_empty(), "{address}");
        let client_address = listener.local_address().unwrap();
        let client = std::thread::spawn(move || {
            let mut conn = connect(&client_address, &EndpointOptions::default()).unwrap();
            conn.send(b"hi").unwrap();
            conn
        });
        let ready = selector.select(&mut [&mut listener], Some(HUNG)).unwrap();
        assert_eq!(ready, [0], "{address}");
        let mut conn = loop {
            match listener.try_accept() {
                Ok(conn) => break conn,
                // The client's connect and its first step are not one event.
                Err(Error::Empty) => std::thread::yield_now(),
                Err(e) => panic!("{address}: {e}"),
            }
        };
        let mut buf = [0u8; 8];
        assert_eq!(conn.recv(&mut buf).unwrap(), 2, "{address}");
        drop(client.join().unwrap());
    }
    let mq = listen(
        &format!("mq:/shmlane-many-try-{id}"),
        &EndpointOptions::default(),
    )
    .unwrap();
    assert!(matches!(mq.ready_fd(), Err(Error::Unsupported { .. })));
}

#[test]
fn a_server_holding_idle_clients_sleeps_without_a_timeout() {
    let _serial = serial();
    let address = address("idle");
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    let mut peers: Vec<Peer> = (0..8)
        .map(|_| Peer::spawn(&format!("echo-client {address} 1")))
        .collect();
    let mut conns = Vec::new();
    while conns.len() < 8 {
        conns.push(listener.accept_timeout(HUNG).unwrap());
    }
    let mut buf = [0u8; 64];
    for conn in &mut conns {
        let n = conn.recv(&mut buf).unwrap();
        conn.send(&buf[..n]).unwrap();
    }
    for peer in &mut peers {
        assert!(peer.report().starts_with("connected"));
        assert_eq!(peer.report(), "done");
    }
    // All 8 idle: the server waits on them and the listener in one poll
    // with no timeout. The clients ring the server's readiness fds
    // themselves: no bridge thread is involved (none exists in this test
    // process, whose channels all come from listeners).
    let blocked = support::blocked_in(move || {
        let mut sides: Vec<&mut dyn Ready> = vec![&mut listener];
        sides.extend(conns.iter_mut().map(|c| c as &mut dyn Ready));
        let ready = Selector::new().select(&mut sides, None).unwrap();
        drop(sides);
        (ready, conns)
    });
    support::assert_asleep_without_timeout(blocked.tid, libc::SYS_ppoll, 2);
    assert!(
        !support::has_thread_named("shmlane-ready"),
        "a rendezvous connection's readiness went through the bridge thread"
    );
    // One client goes: the server wakes for exactly that one.
    let gone = peers.remove(3);
    let pid = gone.child.id() as i32;
    gone.finish();
    let (ready, mut conns) = blocked.result();
    let at = conns
        .iter()
        .position(|c| c.peer_credentials().unwrap().pid == pid)
        .unwrap();
    assert_eq!(ready, [1 + at]);
    assert!(matches!(
        conns[at].try_recv(&mut buf),
        Err(Error::Disconnected)
    ));
    conns.swap_remove(at);
    // Another is killed: the death watch rings the server's fd.
    let mut killed = peers.remove(0);
    let pid = killed.child.id() as i32;
    let blocked = support::blocked_in(move || {
        let mut sides: Vec<&mut dyn Ready> =
            conns.iter_mut().map(|c| c as &mut dyn Ready).collect();
        let ready = loop {
            let ready = Selector::new().select(&mut sides, None).unwrap();
            if !ready.is_empty() {
                break ready;
            }
        };
        drop(sides);
        (ready, conns)
    });
    support::assert_asleep_without_timeout(blocked.tid, libc::SYS_ppoll, 2);
    killed.kill9();
    let (ready, mut conns) = blocked.result();
    let at = conns
        .iter()
        .position(|c| c.peer_credentials().unwrap().pid == pid)
        .unwrap();
    assert!(ready.contains(&at), "{ready:?}, killed {at}");
    assert!(matches!(
        conns[at].try_recv(&mut buf),
        Err(Error::Disconnected)
    ));
    for peer in peers {
        peer.finish();
    }
}

#[test]
fn a_typed_listener_refuses_clients_of_another_type_at_connect() {
    let _serial = serial();
    #[derive(
        Clone,
        Copy,
        Debug,
        PartialEq,
        zerocopy::FromBytes,
        zerocopy::IntoBytes,
        zerocopy::KnownLayout,
        zerocopy::Immutable,
    )]
    #[repr(C)]
    struct Quote {
        price: u64,
        size: u32,
        venue: u32,
    }
    #[derive(
        zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable,
    )]
    #[repr(C)]
    struct Order {
        id: u64,
    }
    let typed = |options: shmlane_posix::Options| EndpointOptions {
        shm: options,
        ..EndpointOptions::default()
    };
    let address = address("typed");
    let mut listener = listen(
        &address,
        &typed(shmlane_posix::Options::new().typed::<Quote>()),
    )
    .unwrap();
    // Another type, or none where one is expected: refused at attach
    // (the rings come with the listener's accepts, so it accepts meanwhile;
    // none of them is handed out).
    let bad: Vec<_> = [
        shmlane_posix::Options::new().typed::<Order>(),
        shmlane_posix::Options::new().message_type(shmlane_core::schema_id(7, 16, 8)),
    ]
    .into_iter()
    .map(|options| {
        let address = address.clone();
        std::thread::spawn(move || connect(&address, &typed(options)).map(drop))
    })
    .collect();
    while !bad.iter().all(|c| c.is_finished()) {
        let result = listener.accept_timeout(Duration::from_millis(50));
        assert!(matches!(result, Err(Error::TimedOut)), "{result:?}");
    }
    for client in bad {
        let result = client.join().unwrap();
        assert!(
            matches!(result, Err(Error::TypeMismatch { .. })),
            "{result:?}"
        );
    }
    assert!(matches!(listener.try_accept(), Err(Error::Empty)));
    // The same type: values cross in place.
    let client = std::thread::spawn({
        let address = address.clone();
        move || {
            let mut conn = connect(
                &address,
                &typed(shmlane_posix::Options::new().typed::<Quote>()),
            )
            .unwrap();
            let quote = Quote {
                price: 10_842,
                size: 100,
                venue: 3,
            };
            conn.send(zerocopy::IntoBytes::as_bytes(&quote)).unwrap();
        }
    });
    let mut conn = listener.accept_timeout(HUNG).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(conn.recv(&mut buf).unwrap(), 16);
    let quote = <Quote as zerocopy::FromBytes>::read_from_bytes(&buf).unwrap();
    assert_eq!(
        quote,
        Quote {
            price: 10_842,
            size: 100,
            venue: 3
        }
    );
    client.join().unwrap();
}

#[test]
fn a_listener_out_of_descriptors_gives_typed_errors_and_serves_again() {
    let _serial = serial();
    let address = address("starved-listener");
    let mut peer = Peer::spawn(&format!("listen-starved {address}"));
    assert_eq!(peer.report(), "listening");
    let patient = EndpointOptions {
        shm: shmlane_posix::Options::new().open_timeout(HUNG),
        ..EndpointOptions::default()
    };
    let first = std::thread::spawn({
        let (address, patient) = (address.clone(), patient.clone());
        move || connect(&address, &patient).map(drop)
    });
    let report = peer.report();
    assert!(
        report.starts_with("starved Err(Io { op: \"accept\"") && report.contains("code: 24"),
        "{report}"
    );
    let report = peer.report();
    assert!(
        report.starts_with("starved Err(Io {") && report.contains("code: 24"),
        "{report}"
    );
    // That client was taken in and dropped: it is told so.
    let first = first.join().unwrap();
    assert!(matches!(first, Err(Error::Disconnected)), "{first:?}");
    // With its descriptors back, the listener serves the next one.
    let mut conn = connect(&address, &patient).unwrap();
    conn.send(b"fed").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(conn.recv(&mut buf).unwrap(), 3);
    assert_eq!(peer.report(), "served");
    peer.finish();
}

#[test]
fn a_client_out_of_descriptors_gets_typed_errors_and_connects_again() {
    let _serial = serial();
    let address = address("starved-client");
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    let mut peer = Peer::spawn(&format!("connect-starved {address}"));
    // No descriptor for the socket.
    let report = peer.report();
    assert!(
        report.starts_with("starved Err(Io { op: \"socket\"") && report.contains("code: 24"),
        "{report}"
    );
    // The socket, but no room for the rings the listener sends (its
    // accepts make them): that client is never handed out; the next,
    // with descriptors again, is.
    let server = std::thread::spawn(move || listener.accept_timeout(HUNG));
    let second = peer.report();
    assert!(
        second.starts_with("starved Err(Io { op: \"recvmsg (descriptors dropped)\"")
            && second.contains("code: 24"),
        "{second}"
    );
    let mut conn = server.join().unwrap().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        conn.recv(&mut buf).unwrap(),
        3,
        "the client that could connect"
    );
    assert_eq!(&buf[..3], b"fed");
    assert_eq!(peer.report(), "connected");
    peer.finish();
}

#[test]
fn a_listener_with_every_handshake_slot_taken_sleeps_and_serves_once_they_go() {
    let _serial = serial();
    let address = address("full");
    let path = socket_of(&address);
    let before = mapped_rings();
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    // 70 clients that connect and say nothing: 64 handshakes run (each
    // holding its rings), 6 wait in the backlog.
    let silent: Vec<UnixStream> = (0..70)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    let blocked = support::blocked_in(move || {
        let accepted = listener.accept_timeout(HUNG);
        (accepted, listener)
    });
    // It sleeps (until the first handshake's deadline), rather than
    // spinning on a backlog it has no slot for.
    let tid = blocked.tid;
    support::must_return("the full listener to sleep", move || {
        support::wait_until_asleep_in(tid, libc::SYS_ppoll)
    });
    assert_eq!(mapped_rings(), before + 2 * 64);
    // A real client; the silent ones hang up: their slots free, it is served.
    let client = std::thread::spawn({
        let address = address.clone();
        move || {
            let patient = EndpointOptions {
                shm: shmlane_posix::Options::new().open_timeout(HUNG),
                ..EndpointOptions::default()
            };
            let mut conn = connect(&address, &patient).unwrap();
            conn.send(b"real").unwrap();
            conn
        }
    });
    drop(silent);
    let (accepted, listener) = blocked.result();
    let mut conn = accepted.unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(conn.recv(&mut buf).unwrap(), 4);
    drop((conn, client.join().unwrap(), listener));
    assert_eq!(mapped_rings(), before);
}

#[test]
fn a_listener_killed_at_random_points_of_its_handshakes_fails_its_clients_cleanly() {
    let _serial = serial();
    let address = address("killed-listener");
    let mut state = std::process::id() as u64 | 1;
    eprintln!("kill points seed {state}");
    for _ in 0..3 {
        let mut peer = Peer::spawn(&format!("listen-loop {address}"));
        assert_eq!(peer.report(), "listening");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let (address, stop) = (address.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut served, mut failed) = (0u32, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let trip =
                            connect(&address, &EndpointOptions::default()).and_then(|mut c| {
                                c.send(b"ping")?;
                                let mut buf = [0u8; 8];
                                c.recv(&mut buf)
                            });
                        match trip {
                            Ok(4) => served += 1,
                            Ok(n) => panic!("an echo of {n} bytes"),
                            Err(e) => failed.push(e),
                        }
                    }
                    (served, failed)
                })
            })
            .collect();
        // Some round trips, then the kill, wherever the listener is.
        for _ in 0..1 + support::next(&mut state) % 200 {
            std::thread::yield_now();
        }
        peer.kill9();
        // Every client call in flight at the kill, or after it, ends with a
        // typed error (no listener: NotFound; mid-handshake or holding
        // rings: Disconnected), never a hang.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for client in clients {
            let (_served, failed) =
                support::must_return("a client of a killed listener", move || {
                    client.join().unwrap()
                });
            for e in &failed {
                assert!(
                    matches!(
                        e,
                        Error::NotFound { .. } | Error::Disconnected | Error::TimedOut
                    ),
                    "{e:?}"
                );
            }
        }
    }
    // The dead listener's socket is taken over by the next one.
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    let client = std::thread::spawn({
        let address = address.clone();
        move || connect(&address, &EndpointOptions::default()).map(drop)
    });
    listener.accept_timeout(HUNG).unwrap();
    client.join().unwrap().unwrap();
}
