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
