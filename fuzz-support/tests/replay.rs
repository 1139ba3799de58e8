//! Replays the committed corpus and the crash inputs of the shmlane-core
//! targets (`ring_ops`, `attach`, `hostile_peer`); the shmlane-posix ones
//! are replayed by `posix/tests/fuzz_replay.rs`.

use std::path::Path;

use shmlane_core::{Config, Ring, Spin, region_size};
use shmlane_fuzz_support::{AlignedBuf, FUZZ_DIR, payload, replay_committed as replay};

/// Writes the seed corpus (real ring images for `attach`, short op
/// sequences for the others). Run with
/// `SHMLANE_WRITE_SEEDS=1 cargo test -p shmlane-fuzz-support --test replay write_seed_corpus -- --ignored`.
#[test]
#[ignore = "tooling: writes fuzz/corpus"]
fn write_seed_corpus() {
    if std::env::var_os("SHMLANE_WRITE_SEEDS").is_none() {
        return;
    }
    let corpus = Path::new(FUZZ_DIR).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    // attach: images of live rings in several states.
    let image = |capacity: usize, sends: &[usize], reads: usize, close: bool| {
        let mut buf = AlignedBuf::for_capacity(capacity);
        let len = region_size(capacity);
        {
            let ring = Ring::create_in(&mut buf.bytes()[..len], Config::new(capacity)).unwrap();
            let mut tx = ring.producer(Spin::new()).unwrap();
            let mut rx = ring.consumer(Spin::new()).unwrap();
            for (i, &n) in sends.iter().enumerate() {
                tx.try_send(&payload(i as u64, n)).unwrap();
                if i < reads {
                    rx.try_read().unwrap().release();
                }
            }
            if close {
                drop(tx);
            } else {
                std::mem::forget(tx);
            }
            std::mem::forget(rx);
        }
        buf.bytes()[..len].to_vec()
    };
    write("attach", "fresh-256", &image(256, &[], 0, false));
    write(
        "attach",
        "three-messages-256",
        &image(256, &[0, 7, 120], 0, false),
    );
    write(
        "attach",
        "wrapped-padding-64",
        &image(64, &[8, 16, 24, 0], 2, false),
    );
    write(
        "attach",
        "closed-producer-128",
        &image(128, &[1, 56], 0, true),
    );
    write("attach", "full-64", &image(64, &[24, 24], 0, false));
    // ring_ops and hostile_peer: any bytes decode into operations.
    for (i, seed) in [&[0u8; 64][..], &[0x55; 96], &(0..=255).collect::<Vec<u8>>()]
        .iter()
        .enumerate()
    {
        write("ring_ops", &format!("seed-{i}"), seed);
        write("hostile_peer", &format!("seed-{i}"), seed);
    }
}

#[test]
#[cfg_attr(miri, ignore = "reads files")]
fn replay_ring_ops() {
    replay("ring_ops", shmlane_fuzz_support::ring_ops);
}

#[test]
#[cfg_attr(miri, ignore = "reads files")]
fn replay_attach() {
    replay("attach", shmlane_fuzz_support::attach);
}

#[test]
#[cfg_attr(miri, ignore = "reads files")]
fn replay_hostile_peer() {
    replay("hostile_peer", shmlane_fuzz_support::hostile_peer);
}
