//! Replays the committed corpus and the crash inputs of every fuzz target,
//! and drives the two parser targets with pseudo-random inputs that reach
//! both of their outcomes.

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

#[cfg(feature = "posix")]
#[test]
#[cfg_attr(miri, ignore = "reads files")]
fn replay_frame_decoder() {
    replay("frame_decoder", shmlane_fuzz_support::frame_decoder);
}

#[cfg(feature = "posix")]
#[test]
#[cfg_attr(miri, ignore = "reads files")]
fn replay_address() {
    replay("address", shmlane_fuzz_support::address);
}

#[cfg(feature = "posix")]
#[test]
fn address_on_pseudo_random_strings() {
    const PIECES: &[&str] = &[
        "shm:",
        "mq:",
        "fifo:",
        "unix:",
        "unix-dgram:",
        "tcp:",
        "pipe",
        ":",
        "/",
        "//",
        "[",
        "]",
        "::1",
        "[::1]",
        "127.0.0.1",
        "host",
        "0",
        "7000",
        "65535",
        "65536",
        "+",
        "-",
        ".",
        "..",
        " ",
        "\t",
        "\0",
        "é",
        "a",
        "Z",
        "@",
        "%",
        "\u{200b}",
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for _ in 0..5000 {
        let mut s = String::new();
        for _ in 0..(next() % 6) {
            s.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        shmlane_fuzz_support::address(s.as_bytes());
        parsed += usize::from(shmlane_posix::address::parse(&s).is_ok());
    }
    // The loop reaches both outcomes.
    assert!(parsed > 100, "only {parsed} strings parsed");
    assert!(parsed < 4900, "{parsed} strings parsed");
    // And bytes that are not UTF-8 are ignored.
    shmlane_fuzz_support::address(&[0xff, 0xfe, b's']);
    shmlane_fuzz_support::address(b"");
}

/// A small deterministic generator for the pseudo-random inputs below.
#[cfg(feature = "posix")]
struct XorShift(u64);

#[cfg(feature = "posix")]
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

#[cfg(feature = "posix")]
#[test]
fn frame_decoder_on_pseudo_random_inputs() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for round in 0..600 {
        let max = rng.below(4097);
        let mut data = Vec::new();
        data.extend_from_slice(&(max as u16).to_le_bytes());
        data.push(rng.below(256) as u8);
        data.push(rng.below(256) as u8);
        if round % 4 == 0 {
            // Raw noise: mostly a FrameTooLarge or a truncation early on.
            data.extend((0..rng.below(200)).map(|_| rng.next() as u8));
        } else {
            // Well-formed frames, then sometimes a bad header or a cut.
            for _ in 0..rng.below(20) {
                let len = rng.below(max as u64 + 1);
                data.extend_from_slice(&(len as u32).to_le_bytes());
                data.extend((0..len).map(|_| rng.next() as u8));
            }
            match rng.below(4) {
                0 => data.extend_from_slice(&((max + 1 + rng.below(1000)) as u32).to_le_bytes()),
                1 => {
                    let cut = rng.below(data.len() as u64 - 3);
                    data.truncate(data.len() - cut);
                }
                _ => {}
            }
        }
        shmlane_fuzz_support::frame_decoder(&data);
    }
    // Short and degenerate inputs.
    for len in 0..8 {
        shmlane_fuzz_support::frame_decoder(&vec![0; len]);
        shmlane_fuzz_support::frame_decoder(&vec![0xFF; len]);
    }
}
