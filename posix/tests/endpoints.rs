//! `listen` / `connect` by address, for every transport: the same program,
//! only the address string changes.

use shmlane_posix::Error;
use shmlane_posix::endpoint::{EndpointOptions, connect, listen};
use shmlane_posix::transport::{MessageReceiver, MessageSender};

fn addresses() -> Vec<String> {
    let id = std::process::id();
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
    let id = std::process::id();
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
        for suffix in ["c2s", "s2c"] {
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
    for scheme in ["shm", "mq"] {
        let address = format!("{scheme}:{long}");
        for result in [
            listen(&address, &options).map(drop),
            connect(&address, &options).map(drop),
        ] {
            assert!(
                matches!(result, Err(Error::InvalidName { ref name, .. }) if name.ends_with(".c2s")),
                "{address}: {result:?}"
            );
        }
    }
}
