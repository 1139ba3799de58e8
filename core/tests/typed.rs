//! The typed API: values in place and copied, fingerprints and their check
//! at attach, and the typed errors for messages of the wrong size.

use proptest::prelude::*;
use shmlane_core::{
    Config, Error, HEADER_SIZE, PAYLOAD_ALIGN, REGION_ALIGN, Region, Ring, Spin, message_type_of,
    region_size, schema_id,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Several fields, a `u64` at an 8-aligned offset, no padding (the derive
/// of `IntoBytes` checks that).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: u64,
    qty: u32,
    venue: u16,
    flags: u8,
    side: u8,
    tag: [u8; 8],
}

const _: () = assert!(core::mem::size_of::<Tick>() == 32);

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Other {
    a: u64,
    b: u64,
}

fn tick(seq: u64) -> Tick {
    Tick {
        seq,
        price: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        qty: seq as u32 ^ 0xdead,
        venue: (seq % 7) as u16,
        flags: (seq % 3) as u8,
        side: (seq & 1) as u8,
        tag: seq.to_le_bytes(),
    }
}

fn is_aligned<T>(value: &T, align: usize) -> bool {
    (value as *const T as usize) % align == 0
}

#[test]
fn values_round_trip_in_place_across_laps() {
    // 512 bytes, 32-byte values in 40-byte records: the ring wraps (with
    // padding records) many times, and every payload must stay 8-aligned.
    let mut region = Region::<{ region_size(512) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(512)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    let count = if cfg!(miri) { 60 } else { 2000u64 };
    for seq in 0..count {
        let want = tick(seq);
        let mut grant = tx.try_reserve_value::<Tick>().unwrap();
        assert!(is_aligned(&*grant, PAYLOAD_ALIGN));
        grant.seq = want.seq;
        grant.price = want.price;
        grant.qty = want.qty;
        grant.venue = want.venue;
        grant.flags = want.flags;
        grant.side = want.side;
        grant.tag = want.tag;
        grant.commit();
        if seq % 3 == 0 {
            // Let a few queue up, so reads and writes are at different offsets.
            continue;
        }
        while let Ok(got) = rx.try_read_value::<Tick>() {
            assert!(is_aligned(&*got, 8));
            assert!(got.seq % 3 == 0 || got.seq == seq);
            assert_eq!(*got, tick(got.seq));
        }
    }
}

#[test]
fn copies_and_views_mix() {
    let mut region = Region::<{ region_size(1024) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    tx.try_send_value(&tick(1)).unwrap();
    {
        let mut grant = tx.try_reserve_value::<Tick>().unwrap();
        *grant = tick(2);
        grant.commit();
    }
    tx.try_send_value(&tick(3)).unwrap();
    // A value's message is exactly its bytes.
    assert_eq!(rx.peek().unwrap(), tick(1).as_bytes());
    let view = rx.try_read_value::<Tick>().unwrap();
    assert_eq!(*view, tick(1));
    view.release();
    assert_eq!(rx.try_recv_value::<Tick>(), Ok(tick(2)));
    let mut buf = [0u8; 64];
    let n = rx.try_recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], tick(3).as_bytes());
    assert_eq!(rx.try_recv_value::<Tick>(), Err(Error::Empty));
    drop(tx);
    assert_eq!(rx.try_read_value::<Tick>().err(), Some(Error::Disconnected));
}

#[test]
fn an_abandoned_value_grant_sends_nothing() {
    let mut region = Region::<{ region_size(256) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(256)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    let mut grant = tx.try_reserve_value::<Other>().unwrap();
    grant.a = 1;
    drop(grant);
    assert_eq!(rx.try_recv_value::<Other>(), Err(Error::Empty));
    // The room was not lost: the next value takes the same place.
    tx.try_send_value(&Other { a: 5, b: 6 }).unwrap();
    assert_eq!(rx.try_recv_value::<Other>(), Ok(Other { a: 5, b: 6 }));
    assert!(tx.is_empty());
}

#[test]
fn wrong_sized_messages_are_typed_errors_and_stay_in_the_ring() {
    let mut region = Region::<{ region_size(1024) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(1024)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    let size = core::mem::size_of::<Tick>();
    let short = vec![0xab; size - 1];
    let long = vec![0xcd; size + 8];
    tx.try_send(&short).unwrap();
    tx.try_send(&long).unwrap();
    tx.try_send(&[]).unwrap();

    let short_error = Error::WrongSize {
        expected: size,
        found: size - 1,
    };
    assert_eq!(rx.try_read_value::<Tick>().err(), Some(short_error));
    assert_eq!(rx.try_recv_value::<Tick>(), Err(short_error));
    assert_eq!(rx.recv_value::<Tick>(), Err(short_error));
    assert_eq!(rx.read_value::<Tick>().err(), Some(short_error));
    let mut buf = [0u8; 128];
    assert_eq!(rx.try_recv(&mut buf), Ok(size - 1));
    assert_eq!(&buf[..size - 1], &short[..]);

    let long_error = Error::WrongSize {
        expected: size,
        found: size + 8,
    };
    assert_eq!(rx.try_read_value::<Tick>().err(), Some(long_error));
    assert_eq!(rx.try_recv_value::<Tick>(), Err(long_error));
    assert_eq!(&*rx.try_read().unwrap(), &long[..]);

    // An empty message is a zero-sized value, and nothing else.
    assert_eq!(
        rx.try_recv_value::<u64>(),
        Err(Error::WrongSize {
            expected: 8,
            found: 0
        })
    );
    assert_eq!(rx.try_recv_value::<()>(), Ok(()));
    assert_eq!(rx.try_recv_value::<()>(), Err(Error::Empty));
    assert_eq!(
        Error::WrongSize {
            expected: 8,
            found: 3
        }
        .to_string(),
        "message of 3 bytes is not a value of the expected 8 bytes"
    );
}

#[test]
fn a_too_large_value_is_refused_whole() {
    let mut region = Region::<{ region_size(64) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(64)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    // max_message of a 64-byte ring: 24 bytes.
    assert_eq!(
        tx.try_send_value(&[0u64; 4]),
        Err(Error::TooLarge { len: 32, max: 24 })
    );
    assert_eq!(
        tx.try_reserve_value::<[u64; 4]>().err(),
        Some(Error::TooLarge { len: 32, max: 24 })
    );
    assert!(tx.is_empty());
}

#[test]
fn fingerprints_are_checked_at_attach() {
    let tick_type = message_type_of::<Tick>();
    let other_type = message_type_of::<Other>();
    assert_ne!(tick_type, other_type);

    let mut region = Region::<{ region_size(256) }>::new();
    let ring = Ring::create_in(
        region.as_mut_slice(),
        Config::new(256).message_type(tick_type),
    )
    .unwrap();
    assert_eq!(ring.message_type(), Some(tick_type));

    let ring = Ring::attach_in(region.as_mut_slice()).unwrap();
    assert_eq!(ring.message_type(), Some(tick_type));
    assert_eq!(ring.expect_message_type(Some(tick_type)), Ok(()));
    // An untyped opener attaches to a typed ring.
    assert_eq!(ring.expect_message_type(None), Ok(()));
    assert_eq!(
        ring.expect_message_type(Some(other_type)),
        Err(Error::TypeMismatch {
            expected: other_type,
            found: tick_type
        })
    );
    // The check leaves the ring as it was: both roles can still be claimed.
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    tx.try_send_value(&tick(9)).unwrap();
    assert_eq!(rx.try_recv_value::<Tick>(), Ok(tick(9)));
    drop((tx, rx));

    // A typed opener refuses an untyped ring.
    let mut region = Region::<{ region_size(256) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(256)).unwrap();
    assert_eq!(ring.message_type(), None);
    let e = ring.expect_message_type(Some(tick_type)).unwrap_err();
    assert_eq!(
        e,
        Error::TypeMismatch {
            expected: tick_type,
            found: 0
        }
    );
    assert!(e.to_string().contains("0x0000000000000000"), "{e}");

    // A schema id works the same way.
    let schema = schema_id(
        42,
        core::mem::size_of::<Tick>(),
        core::mem::align_of::<Tick>(),
    );
    let mut region = Region::<{ region_size(256) }>::new();
    Ring::create_in(region.as_mut_slice(), Config::new(256).message_type(schema)).unwrap();
    let ring = Ring::attach_in(region.as_mut_slice()).unwrap();
    assert_eq!(ring.expect_message_type(Some(schema)), Ok(()));
    assert!(ring.expect_message_type(Some(tick_type)).is_err());
}

#[test]
fn the_fingerprint_sits_at_identity_offset_64() {
    let fingerprint = 0x0123_4567_89ab_cdefu64;
    let mut region = Region::<{ region_size(256) }>::new();
    Ring::create_in(
        region.as_mut_slice(),
        Config::new(256).message_type(fingerprint),
    )
    .unwrap();
    let bytes = region.as_mut_slice();
    assert_eq!(bytes[64..72], fingerprint.to_ne_bytes());
    // The rest of the identity line after it stays zero.
    assert!(bytes[72..128].iter().all(|&b| b == 0));
}

#[test]
fn creating_writes_every_header_byte_the_same_way() {
    // Two regions full of different garbage: a create leaves the same header
    // bytes in both (seeds and images are reproducible).
    let config = Config::new(256).message_type(message_type_of::<Tick>());
    let mut a = Region::<{ region_size(256) }>::new();
    let mut b = Region::<{ region_size(256) }>::new();
    a.as_mut_slice().fill(0x5a);
    b.as_mut_slice().fill(0xa5);
    Ring::create_in(a.as_mut_slice(), config).unwrap();
    Ring::create_in(b.as_mut_slice(), config).unwrap();
    assert_eq!(
        a.as_mut_slice()[..HEADER_SIZE],
        b.as_mut_slice()[..HEADER_SIZE]
    );
}

#[test]
fn a_misaligned_region_is_refused() {
    // A ring never exists in a region that could misalign a payload: create
    // and attach refuse any region not aligned to REGION_ALIGN.
    let mut region = Region::<{ region_size(256) + 128 }>::new();
    for offset in [8, 64] {
        let bytes = &mut region.as_mut_slice()[offset..];
        assert_eq!(
            Ring::create_in(bytes, Config::new(256)).unwrap_err(),
            Error::Misaligned {
                required: REGION_ALIGN
            }
        );
        let bytes = &mut region.as_mut_slice()[offset..];
        assert_eq!(
            Ring::attach_in(bytes).unwrap_err(),
            Error::Misaligned {
                required: REGION_ALIGN
            }
        );
    }
}

#[test]
fn blocking_values_between_threads() {
    let mut region = Region::<{ region_size(256) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(256)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    let count = if cfg!(miri) { 50 } else { 20_000u64 };
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..count {
                if seq % 2 == 0 {
                    tx.send_value(&tick(seq)).unwrap();
                } else {
                    let mut grant = tx.reserve_value::<Tick>().unwrap();
                    *grant = tick(seq);
                    grant.commit();
                }
            }
        });
        for seq in 0..count {
            if seq % 2 == 0 {
                assert_eq!(*rx.read_value::<Tick>().unwrap(), tick(seq));
            } else {
                assert_eq!(rx.recv_value::<Tick>().unwrap(), tick(seq));
            }
        }
        assert_eq!(rx.recv_value::<Tick>(), Err(Error::Disconnected));
    });
}

#[test]
fn timeouts_give_up() {
    let mut region = Region::<{ region_size(64) }>::new();
    let ring = Ring::create_in(region.as_mut_slice(), Config::new(64)).unwrap();
    let mut tx = ring.producer(Spin::new()).unwrap();
    let mut rx = ring.consumer(Spin::new()).unwrap();
    // Spin's deadline is a number of rounds.
    assert_eq!(rx.recv_value_timeout::<u64>(10), Err(Error::TimedOut));
    assert_eq!(
        rx.read_value_timeout::<u64>(10).err(),
        Some(Error::TimedOut)
    );
    tx.send_value_timeout(&[1u64; 3], 10).unwrap();
    tx.send_value_timeout(&[2u64; 3], 10).unwrap();
    assert_eq!(tx.send_value_timeout(&[3u64; 3], 10), Err(Error::TimedOut));
    assert_eq!(
        tx.reserve_value_timeout::<[u64; 3]>(10).err(),
        Some(Error::TimedOut)
    );
    assert_eq!(rx.recv_value_timeout::<[u64; 3]>(10), Ok([1; 3]));
    let grant = tx.reserve_value_timeout::<[u64; 3]>(10).unwrap();
    grant.commit();
    assert_eq!(*rx.read_value_timeout::<[u64; 3]>(10).unwrap(), [2; 3]);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 256 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any bytes of the right length are a `Tick` (FromBytes): viewed in
    /// place and copied out, they read back field for field.
    #[test]
    fn any_bytes_are_a_value(bytes in proptest::collection::vec(any::<u8>(), core::mem::size_of::<Tick>())) {
        let mut region = Region::<{ region_size(256) }>::new();
        let ring = Ring::create_in(region.as_mut_slice(), Config::new(256)).unwrap();
        let mut tx = ring.producer(Spin::new()).unwrap();
        let mut rx = ring.consumer(Spin::new()).unwrap();
        let want = Tick::read_from_bytes(&bytes).unwrap();
        tx.try_send(&bytes).unwrap();
        tx.try_send(&bytes).unwrap();
        let view = rx.try_read_value::<Tick>().unwrap();
        prop_assert_eq!(*view, want);
        prop_assert_eq!(view.as_bytes(), &bytes[..]);
        view.release();
        prop_assert_eq!(rx.try_recv_value::<Tick>(), Ok(want));
    }
}
