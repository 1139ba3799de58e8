//! Two-thread streaming through the in-process ring: messages/s and bytes/s
//! for 64 B and 4 KiB messages, publishing and releasing per message and in
//! batches. Run with `cargo bench -p shmlane-core`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shmlane_core::{Config, Error, Ring, Spin, region_size};

const CAPACITY: usize = 256 * 1024;
const BATCH: usize = 64;

#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Block([u8; 128]);

/// Streams `count` messages of `size` bytes from this thread to another,
/// returns the time from the first send to the last receive.
fn stream(count: u64, size: usize, batched: bool) -> Duration {
    let mut blocks = vec![Block([0; 128]); region_size(CAPACITY).div_ceil(128)];
    let len = blocks.len() * 128;
    // SAFETY: `Block` is plain bytes; the vector holds `len` initialised bytes.
    let region = unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), len) };
    let ring = Ring::create_in(region, Config::new(CAPACITY)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    let msg = vec![0xa5u8; size];
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut received = 0u64;
            let mut bytes = 0usize;
            while received < count {
                if batched {
                    let mut batch = rx.batch();
                    while received < count {
                        match batch.try_read() {
                            Ok(m) => {
                                bytes += black_box(m[0]) as usize + m.len();
                                received += 1;
                            }
                            Err(Error::Empty) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                } else {
                    match rx.try_read() {
                        Ok(m) => {
                            bytes += black_box(m[0]) as usize + m.len();
                            received += 1;
                        }
                        Err(Error::Empty) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            black_box(bytes);
            Instant::now()
        });
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count {
            if batched {
                let mut batch = tx.batch();
                while sent < count && batch.len() < BATCH {
                    match batch.try_send(&msg) {
                        Ok(()) => sent += 1,
                        Err(Error::Full) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            } else {
                match tx.try_send(&msg) {
                    Ok(()) => sent += 1,
                    Err(Error::Full) => std::hint::spin_loop(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        drop(tx);
        consumer.join().unwrap() - start
    })
}

fn bench(c: &mut Criterion) {
    for size in [64usize, 4096] {
        for (mode, batched) in [("per_message", false), ("batched", true)] {
            let mut group = c.benchmark_group(format!("two_threads/{size}B"));
            group.throughput(Throughput::ElementsAndBytes {
                elements: 1,
                bytes: size as u64,
            });
            group.bench_function(mode, |b| {
                b.iter_custom(|iters| stream(iters, size, batched))
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
