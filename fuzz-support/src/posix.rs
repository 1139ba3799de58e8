//! The logic of the fuzz targets of shmlane-posix that need no operating
//! system: the frame decoder and the address parser.

use shmlane_posix::Error;
use shmlane_posix::address::{Address, parse};
use shmlane_posix::framing::{FrameReader, HEADER_LEN, READ_CHUNK};

/// Fuzz target: `data` is two bytes of maximum frame size (taken modulo
/// 4097), a byte of chunk limit (0: as much as [`FrameReader::spare`]
/// offers), a byte of chunking seed, then the stream. Feeds the stream to a
/// [`FrameReader`] in those chunks and checks every outcome against a
/// one-pass reference parser of the whole stream, and the buffer against
/// its bound. Panics only if a check fails.
///
/// # Examples
///
/// ```
/// shmlane_fuzz_support::frame_decoder(&[16, 0, 3, 7, 2, 0, 0, 0, b'h', b'i']);
/// ```
pub fn frame_decoder(data: &[u8]) {
    #[derive(Debug, PartialEq)]
    enum End {
        Clean,
        Truncated,
        TooLarge(usize),
    }

    let (params, stream) = data.split_at(data.len().min(4));
    let mut p = [0u8; 4];
    p[..params.len()].copy_from_slice(params);
    let max = usize::from(u16::from_le_bytes([p[0], p[1]])) % 4097;
    let chunk_limit = usize::from(p[2]);
    let mut rng = 0x9E37_79B9u32 ^ u32::from(p[3]);

    // The reference: one pass over the whole stream.
    let mut expected: Vec<&[u8]> = Vec::new();
    let mut rest = stream;
    let expected_end = loop {
        if rest.is_empty() {
            break End::Clean;
        }
        let Some((header, after)) = rest.split_first_chunk::<4>() else {
            break End::Truncated;
        };
        let len = u32::from_le_bytes(*header) as usize;
        if len > max {
            break End::TooLarge(len);
        }
        if after.len() < len {
            break End::Truncated;
        }
        expected.push(&after[..len]);
        rest = &after[len..];
    };

    let mut reader = FrameReader::new(max);
    let bound = HEADER_LEN + max + READ_CHUNK;
    let mut got: Vec<Vec<u8>> = Vec::new();
    let (mut fed, mut consumed) = (0, 0);
    let mut failed = None;
    'feed: while fed < stream.len() {
        let spare = reader.spare();
        assert!(!spare.is_empty(), "spare() is empty with no frame waiting");
        let mut n = spare.len().min(stream.len() - fed);
        if chunk_limit > 0 {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            n = n.min(1 + rng as usize % chunk_limit);
        }
        spare[..n].copy_from_slice(&stream[fed..fed + n]);
        reader.filled(n);
        fed += n;
        assert!(
            reader.allocated() <= bound,
            "allocated {} > bound {bound}",
            reader.allocated()
        );
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "frame of {} > max {max}", frame.len());
                    consumed += HEADER_LEN + frame.len();
                    got.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(Error::FrameTooLarge { len, max: m }) => {
                    assert_eq!(m, max);
                    assert!(len > max);
                    failed = Some(len);
                    break 'feed;
                }
                Err(e) => panic!("next_frame failed with {e:?}"),
            }
        }
        assert_eq!(reader.buffered(), fed - consumed);
    }
    let end = match failed {
        Some(len) => {
            // The error sticks.
            assert!(
                matches!(reader.next_frame(), Err(Error::FrameTooLarge { len: l, .. }) if l == len)
            );
            assert!(
                matches!(reader.finish(), Err(Error::FrameTooLarge { len: l, .. }) if l == len)
            );
            End::TooLarge(len)
        }
        None => match reader.finish() {
            Ok(()) => End::Clean,
            Err(Error::Truncated) => End::Truncated,
            Err(e) => panic!("finish failed with {e:?}"),
        },
    };
    assert_eq!(end, expected_end);
    assert_eq!(got, expected);
}

/// Fuzz target: if `data` is UTF-8, parses it; an address must print as a
/// string that parses back to an equal address (and prints the same), and
/// a failure must be [`Error::InvalidAddress`] naming the input. Panics
/// only if a check fails.
///
/// # Examples
///
/// ```
/// shmlane_fuzz_support::address(b"tcp:[::1]:7000");
/// shmlane_fuzz_support::address(b"\xff not utf-8");
/// ```
pub fn address(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match parse(s) {
        Ok(addr) => {
            let shown = addr.to_string();
            assert!(
                shown.starts_with(addr.transport()),
                "{shown:?} does not start with {}",
                addr.transport()
            );
            // Only a TCP port can be written in more than one way (leading
            // zeros); everything else prints exactly as it was written.
            if !matches!(addr, Address::Tcp { .. }) {
                assert_eq!(shown, s);
            }
            match parse(&shown) {
                Ok(again) => {
                    assert_eq!(again, addr, "{s:?} printed as {shown:?}");
                    assert_eq!(again.to_string(), shown);
                }
                Err(e) => panic!("{s:?} printed as {shown:?}, which does not parse: {e}"),
            }
        }
        Err(Error::InvalidAddress { address, reason }) => {
            assert_eq!(address, s);
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("{s:?} failed with {e:?}"),
    }
}
