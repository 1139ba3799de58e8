//! `listen` / `connect` by address, for every transport: the same program,
//! only the address string changes.

mod support;

use shmlane_posix::endpoint::{EndpointOptions, connect, listen};
use shmlane_posix::{Error, Role};
use shmlane_posix::{MessageReceiver, MessageSender};
use support::{NOBODY, Peer, block_on_stdin, report, serial};

/// The peer side: runs in the child process.
#[test]
#[ignore = "runs only as the peer process of the other tests"]
fn peer_process() {
    let Some(args) = support::peer_spec() else {
        return;
    };
    match args[..] {
        ["listen-and-hold", address] => {
            let listener = listen(address, &EndpointOptions::default());
            report(&format!("listening {:?}", listener.as_ref().map(drop)));
            block_on_stdin();
        }
        ["connect-once", address] => {
            let result = connect(address, &EndpointOptions::default()).map(drop);
            report(&format!("connected {result:?}"));
        }
        _ => panic!("unknown peer spec {args:?}"),
    }
}

fn addresses() -> Vec<String> {
    let id = support::run_id();
    let tmp = std::env::temp_dir();
    vec![
        format!("shm:/shmlane-ep-{id}"),
        format!("fifo:{}/shmlane-ep-{id}.fifo", tmp.display()),
        format!("mq:/shmlane-ep-{id}"),
        format!("unix:{}/shmlane-ep-{id}.sock", tmp.display()),
        format!("unix-dgram:{}/shmlane-ep-{id}.dgram", tmp.display()),
        "tcp:127.0.0.1:0".to_owned(),
    ]
}

#[test]
fn every_address_kind_carries_round_trips_and_reports_the_close() {
    for address in addresses() {
        let options = EndpointOptions::default();
        let mut listener = listen(&address, &options).unwrap_or_else(|e| panic!("{address}: {e}"));
        let client_address = listener.local_address().unwrap();
        let client = std::thread::spawn(move || {
            let mut conn = connect(&client_address, &EndpointOptions::default()).unwrap();
            let mut buf = vec![0; 4096];
            for i in 0..1000u32 {
                let msg = vec![i as u8; (i as usize * 37) % 4097];
                conn.send(&msg).unwrap();
                let n = conn.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &msg[..], "round trip {i}");
            }
            conn.transport()
        });
        let mut conn = listener
            .accept()
            .unwrap_or_else(|e| panic!("{address}: {e}"));
        let mut buf = vec![0; 4096];
        let mut echoed = 0;
        loop {
            match conn.recv(&mut buf) {
                Ok(n) => {
                    conn.send(&buf[..n]).unwrap();
                    echoed += 1;
                }
                Err(Error::Disconnected) => break,
                Err(e) => panic!("{address}: {e}"),
            }
        }
        let transport = client.join().unwrap();
        assert_eq!(echoed, 1000, "{address}");
        assert_eq!(transport, conn.transport());
        assert!(address.starts_with(transport), "{address} vs {transport}");
    }
}

#[test]
fn malformed_and_unsuitable_addresses_are_typed_errors() {
    let options = EndpointOptions::default();
    for bad in [
        "",
        "shm",
        "shm:noslash",
        "http://x",
        "tcp:localhost",
        "tcp::80",
        "pipe:x",
    ] {
        let result = listen(bad, &options);
        assert!(
            matches!(result, Err(Error::InvalidAddress { .. })),
            "{bad}: {result:?}"
        );
        let result = connect(bad, &options);
        assert!(
            matches!(result, Err(Error::InvalidAddress { .. })),
            "{bad}: {result:?}"
        );
    }
    assert!(matches!(
        listen("pipe", &options),
        Err(Error::InvalidAddress { .. })
    ));
}

#[test]
fn bad_shm_capacities_are_typed_errors_not_panics() {
    let id = support::run_id();
    for capacity in [0, 1, 3, 8, 16, 100, usize::MAX / 2 + 1, usize::MAX] {
        let address = format!("shm:/shmlane-ep-capacity-{id}");
        let options = EndpointOptions {
            shm: shmlane_posix::Options::new().capacity(capacity),
            ..EndpointOptions::default()
        };
        let result = listen(&address, &options);
        assert!(
            matches!(result, Err(Error::InvalidCapacity { capacity: c }) if c == capacity),
            "{capacity}: {result:?}"
        );
        let result = connect(&address, &options);
        assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
        for suffix in ["c2s", "s2c", "sock"] {
            let path = format!("/dev/shm/shmlane-ep-capacity-{id}.{suffix}");
            assert!(
                !std::path::Path::new(&path).exists(),
                "{capacity}: left {path}"
            );
        }
        assert!(
            shmlane_posix::Options::new()
                .capacity(capacity)
                .region_size()
                .is_err()
        );
    }
}

#[test]
fn names_are_checked_with_the_suffixes_an_endpoint_adds() {
    // 252 bytes: a valid name alone, 256 with ".c2s" (the limit is 255).
    let long = format!("/{}", "n".repeat(251));
    assert!(shmlane_posix::names::validate_name(&long).is_ok());
    let options = EndpointOptions::default();
    // The queues' suffixes, and the shared-memory listener's socket.
    for (scheme, suffix) in [("shm", ".sock"), ("mq", ".c2s")] {
        let address = format!("{scheme}:{long}");
        for result in [
            listen(&address, &options).map(drop),
            connect(&address, &options).map(drop),
        ] {
            assert!(
                matches!(result, Err(Error::InvalidName { ref name, .. }) if name.ends_with(suffix)),
                "{address}: {result:?}"
            );
        }
    }
    // A name the rules allow whose socket path (/dev/shm/<name>.sock) is
    // over a socket address's 107 bytes.
    let address = format!("shm:/{}", "n".repeat(100));
    for result in [
        listen(&address, &options).map(drop),
        connect(&address, &options).map(drop),
    ] {
        assert!(
            matches!(result, Err(Error::InvalidAddress { .. })),
            "{result:?}"
        );
    }
}

/// Addresses of the transports whose listener creates named objects.
fn named_addresses(test: &str) -> Vec<String> {
    let id = support::run_id();
    let tmp = std::env::temp_dir();
    vec![
        format!("shm:/shmlane-ep-{test}-{id}"),
        format!("fifo:{}/shmlane-ep-{test}-{id}", tmp.display()),
        format!("mq:/shmlane-ep-{test}-{id}"),
        format!("unix:{}/shmlane-ep-{test}-{id}.sock", tmp.display()),
        format!("unix-dgram:{}/shmlane-ep-{test}-{id}.dgram", tmp.display()),
    ]
}

#[test]
fn a_listener_killed_with_sigkill_leaves_names_the_next_listen_takes_over() {
    let _serial = serial();
    for address in named_addresses("stale") {
        let mut peer = Peer::spawn(&format!("listen-and-hold {address}"));
        assert_eq!(peer.report(), "listening Ok(())", "{address}");
        // Live: not taken.
        let live = listen(&address, &EndpointOptions::default());
        assert!(
            matches!(live, Err(Error::AlreadyExists { .. })),
            "{address}: {live:?}"
        );
        peer.kill9();
        // Dead: its names are stale, and the next listener takes them over.
        let mut listener = listen(&address, &EndpointOptions::default())
            .unwrap_or_else(|e| panic!("{address} after the kill: {e}"));
        let client_address = listener.local_address().unwrap();
        let client = std::thread::spawn(move || -> shmlane_posix::Result<Vec<u8>> {
            let mut conn = connect(&client_address, &EndpointOptions::default())?;
            conn.send(b"after the crash")?;
            let mut buf = [0; 64];
            let n = conn.recv(&mut buf)?;
            Ok(buf[..n].to_vec())
        });
        let mut conn = listener.accept().unwrap();
        let mut buf = [0; 64];
        let n = conn.recv(&mut buf).unwrap();
        conn.send(&buf[..n]).unwrap();
        assert_eq!(
            client.join().unwrap().unwrap(),
            b"after the crash",
            "{address}"
        );
    }
}

#[test]
fn a_one_client_listener_refuses_a_second_client_and_a_second_accept() {
    let _serial = serial();
    for address in named_addresses("one-client") {
        if address.starts_with("unix:") || address.starts_with("shm:") {
            continue; // serve any number
        }
        let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
        let client_address = listener.local_address().unwrap();
        let first = std::thread::spawn({
            let client_address = client_address.clone();
            move || connect(&client_address, &EndpointOptions::default())
        });
        let mut conn = listener.accept().unwrap();
        let mut first = first.join().unwrap().unwrap();
        let second = connect(&client_address, &EndpointOptions::default());
        assert!(
            matches!(second, Err(Error::RoleTaken(_))),
            "{address}: {second:?}"
        );
        assert!(
            matches!(listener.accept(), Err(Error::RoleTaken(Role::Consumer))),
            "{address}"
        );
        // The first connection is not disturbed.
        first.send(b"still here").unwrap();
        let mut buf = [0; 64];
        assert_eq!(conn.recv(&mut buf).unwrap(), 10, "{address}");
    }
}

#[test]
fn unix_listeners_name_their_peers_and_can_refuse_other_uids() {
    let _serial = serial();
    let id = support::run_id();
    for scheme in ["unix", "unix-dgram"] {
        let dir = std::path::Path::new("/tmp").join(format!("shmlane-ep-uid-{scheme}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let address = format!("{scheme}:{}/socket", dir.display());
        let me = rustix::process::geteuid().as_raw();
        let options = EndpointOptions {
            mode: 0o666,        // anyone may connect …
            peer_uid: Some(me), // … but only we are accepted
            ..EndpointOptions::default()
        };
        let mut listener = listen(&address, &options).unwrap();
        if support::can_switch_users("unix_listeners_name_their_peers_and_can_refuse_other_uids") {
            use std::os::unix::fs::PermissionsExt;
            // (The socket file has 0o666 less the umask: open it up.)
            let socket = std::fs::Permissions::from_mode(0o666);
            std::fs::set_permissions(dir.join("socket"), socket).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            let mut stranger = Peer::spawn_as(&format!("connect-once {address}"), NOBODY);
            // Its connect (or hello) is queued: the listener refuses it.
            assert_eq!(stranger.report(), "connected Ok(())", "{scheme}");
            stranger.finish();
            let refused = listener.accept();
            assert!(
                matches!(refused, Err(Error::PeerRefused { uid: NOBODY, .. })),
                "{scheme}: {refused:?}"
            );
            assert_eq!(listener.refused(), 1, "{scheme}: the refusal is counted");
        }
        // (The client stays connected until it is accepted: a datagram
        // client gone before its hello is read is no client any more.)
        let client = connect(&address, &EndpointOptions::default()).unwrap();
        let conn = listener.accept().unwrap();
        let peer = conn
            .peer_credentials()
            .expect("the kernel names a unix peer");
        assert_eq!(
            (peer.pid, peer.uid),
            (std::process::id() as i32, me),
            "{scheme}"
        );
        drop(client);
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn oversized_limits_and_paths_are_typed_errors() {
    let options = EndpointOptions {
        max_message: usize::MAX,
        ..EndpointOptions::default()
    };
    for address in named_addresses("limits")
        .into_iter()
        .chain(["tcp:127.0.0.1:0".to_owned()])
    {
        for result in [
            listen(&address, &options).map(drop),
            connect(&address, &options).map(drop),
        ] {
            assert!(
                matches!(result, Err(Error::InvalidMaxMessage { .. })),
                "{address}: {result:?}"
            );
        }
    }
    // A datagram client binds `path.<pid>`: a path that fits alone but not
    // with the suffix is refused before anything is bound.
    let long = format!("/tmp/{}", "d".repeat(100));
    let result = connect(&format!("unix-dgram:{long}"), &EndpointOptions::default());
    assert!(
        matches!(result, Err(Error::InvalidAddress { .. })),
        "{result:?}"
    );
}

/// One `Selector` over a connection of every transport: it names exactly
/// the one that was sent to, then the one that was closed.
#[test]
fn a_selector_waits_on_connections_of_every_transport_at_once() {
    use shmlane_posix::Selector;
    use shmlane_posix::select::Ready;
    use std::time::Duration;
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    // Names of its own: the other tests of this binary run at the same time.
    for address in addresses()
        .iter()
        .map(|a| a.replace("shmlane-ep-", "shmlane-sel-"))
    {
        let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
        let client_address = listener.local_address().unwrap();
        let client =
            std::thread::spawn(move || connect(&client_address, &EndpointOptions::default()));
        servers.push(listener.accept().unwrap());
        clients.push(client.join().unwrap().unwrap());
    }
    let mut selector = Selector::new();
    let mut select = |servers: &mut Vec<shmlane_posix::endpoint::Connection>, timeout| {
        let mut sides: Vec<&mut dyn Ready> = servers.iter_mut().map(|s| s as _).collect();
        selector.select(&mut sides, timeout).unwrap()
    };
    assert!(select(&mut servers, Some(Duration::from_millis(5))).is_empty());
    let mut buf = [0; 64];
    for i in 0..servers.len() {
        let what = servers[i].transport();
        clients[i].send(what.as_bytes()).unwrap();
        assert_eq!(select(&mut servers, None), [i], "{what}: the one sent to");
        let n = servers[i].try_recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], what.as_bytes());
        assert!(
            select(&mut servers, Some(Duration::from_millis(5))).is_empty(),
            "{what}: drained, nothing ready"
        );
    }
    // Closed one at a time, the last first: each close readies its server
    // alone, which then says Disconnected and leaves the selection.
    while let Some(client) = clients.pop() {
        let i = servers.len() - 1;
        let what = servers[i].transport();
        drop(client);
        assert_eq!(select(&mut servers, None), [i], "{what}: the one closed");
        let end = servers[i].try_recv(&mut buf);
        assert!(matches!(end, Err(Error::Disconnected)), "{what}: {end:?}");
        servers.pop();
    }
}

/// `connect_async` / `listen_async`: the one-address API on tokio, every
/// transport, both sides tasks of one current-thread runtime.
#[cfg(feature = "tokio")]
#[test]
fn every_address_kind_carries_async_round_trips_and_reports_the_close() {
    use shmlane_posix::async_channel::{connect_async, listen_async};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for address in addresses()
            .iter()
            .map(|a| a.replace("shmlane-ep-", "shmlane-async-"))
        {
            let options = EndpointOptions::default();
            let mut listener = listen_async(&address, &options).await.unwrap();
            let client_address = listener.local_address().unwrap();
            let client = tokio::spawn(async move {
                let mut conn = connect_async(&client_address, &EndpointOptions::default())
                    .await
                    .unwrap();
                for i in 0..300u32 {
                    let msg = vec![i as u8; (i as usize * 37) % 4097];
                    conn.send(&msg).await.unwrap();
                    assert_eq!(conn.recv_vec().await.unwrap(), msg, "round trip {i}");
                }
                conn.transport()
            });
            let mut conn = listener.accept().await.unwrap();
            let mut echoed = 0;
            loop {
                match conn.recv_vec().await {
                    Ok(msg) => {
                        conn.send(&msg).await.unwrap();
                        echoed += 1;
                    }
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("{address}: {e}"),
                }
            }
            let transport = client.await.unwrap();
            assert_eq!(echoed, 300, "{address}");
            assert_eq!(transport, conn.transport());
        }
    });
}

/// An async accept on a listener with a readiness fd is cancel-safe: one
/// dropped before a client came leaves the listener whole, and clients
/// that connect while nobody accepts wait for the next accept.
#[cfg(feature = "tokio")]
#[test]
fn a_dropped_async_accept_loses_no_client() {
    use shmlane_posix::async_channel::{connect_async, listen_async};
    use std::time::Duration;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for address in addresses()
            .iter()
            .map(|a| a.replace("shmlane-ep-", "shmlane-async-cancel-"))
            .filter(|a| !a.starts_with("fifo:") && !a.starts_with("mq:"))
        {
            let options = EndpointOptions::default();
            let mut listener = listen_async(&address, &options).await.unwrap();
            // Nobody yet: the accept is cancelled by the timeout.
            let early = tokio::time::timeout(Duration::from_millis(20), listener.accept()).await;
            assert!(early.is_err(), "{address}: accepted nobody");
            let client_address = listener.local_address().unwrap();
            let client = tokio::spawn(async move {
                let mut conn = connect_async(&client_address, &EndpointOptions::default())
                    .await
                    .unwrap();
                conn.send(b"after a cancelled accept").await.unwrap();
                conn.recv_vec().await.unwrap()
            });
            let mut conn = listener.accept().await.unwrap();
            let msg = conn.recv_vec().await.unwrap();
            conn.send(&msg).await.unwrap();
            assert_eq!(
                client.await.unwrap(),
                b"after a cancelled accept",
                "{address}"
            );
        }
    });
}

/// Room as a selector side: a unix socket filled until `Full` is not
/// ready, and becomes ready once its peer drains it.
#[test]
fn a_selector_waits_for_room_on_a_full_socket() {
    use shmlane_posix::Selector;
    use shmlane_posix::select::{Ready, Room};
    use std::time::Duration;
    let address = format!(
        "unix:{}/shmlane-room-{}.sock",
        std::env::temp_dir().display(),
        support::run_id()
    );
    let mut listener = listen(&address, &EndpointOptions::default()).unwrap();
    let mut client = connect(&address, &EndpointOptions::default()).unwrap();
    let mut server = listener.accept().unwrap();
    let msg = [5u8; 1000];
    let mut sent = 0;
    while client.try_send(&msg).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    let mut selector = Selector::new();
    {
        let mut room = Room::new(&mut client, msg.len());
        let mut sides: [&mut dyn Ready; 1] = [&mut room];
        assert!(
            selector
                .select(&mut sides, Some(Duration::from_millis(5)))
                .unwrap()
                .is_empty(),
            "full: no room"
        );
    }
    let mut buf = [0u8; 1000];
    for _ in 0..sent {
        assert_eq!(server.recv(&mut buf).unwrap(), 1000);
    }
    {
        let mut room = Room::new(&mut client, msg.len());
        let mut sides: [&mut dyn Ready; 1] = [&mut room];
        assert_eq!(selector.select(&mut sides, None).unwrap(), [0]);
    }
    client.try_send(&msg).unwrap();
}
