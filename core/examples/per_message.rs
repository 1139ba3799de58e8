//! The per-message cost of the ring, for an instruction counter: one thread
//! sends and receives N 64-byte messages, one at a time, through the copy
//! path (`try_send` + `try_recv`) or the zero-copy one (`try_reserve` +
//! `commit`, `try_read` + release).
//!
//! ```text
//! cargo build --release -p shmlane-core --example per_message
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/per_message copy 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/per_message copy 200000
//! ```
//!
//! The difference of the two "Collected" counts over 100 000 is the
//! instructions per message sent and received (start-up cancels out).
//! Instruction counts do not drift with the CPU's clock or placement, so
//! two builds compare exactly.

use shmlane_core::{Config, Region, Ring, Spin, region_size};

const CAPACITY: usize = 1 << 16;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (grant, count) = match args.as_slice() {
        [mode, n] if mode == "copy" || mode == "grant" => {
            (mode == "grant", n.parse::<u64>().expect("a message count"))
        }
        _ => {
            eprintln!("usage: per_message copy|grant COUNT");
            std::process::exit(2);
        }
    };
    let mut region = Box::new(Region::<{ region_size(CAPACITY) }>::new());
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(CAPACITY)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let mut sum = 0u64;
    for _ in 0..count {
        if grant {
            let mut g = tx.try_reserve(64).unwrap();
            g[0] = 1;
            g.commit(64);
            let m = rx.try_read().unwrap();
            sum += u64::from(m[0]);
        } else {
            tx.try_send(&msg).unwrap();
            sum += rx.try_recv(&mut buf).unwrap() as u64;
        }
    }
    std::hint::black_box(sum);
}
