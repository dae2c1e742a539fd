//! The capture reader on files written here byte by byte (pcap: the libpcap format; pcapng:
//! draft-ietf-opsawg-pcapng §4.1 SHB, §4.2 IDB, §4.3 EPB): timestamps, link types and every kind
//! of bad input. Host-only: no BPF.

use std::io::Cursor;

use super::capture::{Capture, CaptureError, Frame, REORDER_TOLERANCE_NS};

const ETH: u32 = 1;

fn eth_frame(tag: u8) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, tag, 10, 0, 0, 1]);
    f
}

/// A classic pcap, µs or ns timestamps.
fn pcap(linktype: u32, nanos: bool, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(if nanos { 0xa1b2_3c4du32 } else { 0xa1b2_c3d4 }).to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&65535u32.to_le_bytes());
    v.extend_from_slice(&linktype.to_le_bytes());
    for (ts, f) in frames {
        let frac = if nanos { ts % 1_000_000_000 } else { ts % 1_000_000_000 / 1000 };
        v.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        v.extend_from_slice(&(frac as u32).to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(&(f.len() as u32).to_le_bytes());
        v.extend_from_slice(f);
    }
    v
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut v = kind.to_le_bytes().to_vec();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(body);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

/// A pcapng: one section, one interface with `tsresol` (None: the default, µs), frames in
/// that resolution's units.
fn pcapng(linktype: u16, tsresol: Option<u8>, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut v = block(0x0A0D_0D0A, &shb);
    let mut idb = linktype.to_le_bytes().to_vec();
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    if let Some(r) = tsresol {
        // if_tsresol (code 9, length 1, padded to 4), then opt_endofopt.
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[r, 0, 0, 0]);
        idb.extend_from_slice(&[0; 4]);
    }
    v.extend(block(1, &idb));
    for (units, f) in frames {
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*units as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        v.extend(block(6, &epb));
    }
    v
}

/// Every frame, or the error and the frames before it.
fn read_all(bytes: Vec<u8>) -> (Vec<Frame>, Option<CaptureError>) {
    let mut c = match Capture::from_reader(Cursor::new(bytes)) {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    loop {
        match c.next_frame() {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

const T0: u64 = 1_765_000_000_000_000_000;

#[test]
fn pcap_microseconds_and_nanoseconds() {
    let frames = vec![(T0, eth_frame(1)), (T0 + 1_500_000, eth_frame(2)), (T0 + 2_000_000_123, eth_frame(3))];
    let (got, err) = read_all(pcap(ETH, true, &frames));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.iter().map(|f| f.ts_ns).collect::<Vec<_>>(), frames.iter().map(|f| f.0).collect::<Vec<_>>());
    assert_eq!(got[1].data, frames[1].1);
    let (got, err) = read_all(pcap(ETH, false, &frames));
    assert!(err.is_none(), "{err:?}");
    // µs resolution: the 123 ns are gone.
    assert_eq!(got[2].ts_ns, T0 + 2_000_000_000);
}

#[test]
fn pcapng_default_and_nanosecond_resolution() {
    let us = T0 / 1000;
    let (got, err) = read_all(pcapng(1, None, &[(us, eth_frame(1)), (us + 250, eth_frame(2))]));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.iter().map(|f| f.ts_ns).collect::<Vec<_>>(), vec![T0, T0 + 250_000]);
    let (got, err) = read_all(pcapng(1, Some(9), &[(T0, eth_frame(1)), (T0 + 7, eth_frame(2))]));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got.iter().map(|f| f.ts_ns).collect::<Vec<_>>(), vec![T0, T0 + 7]);
    assert_eq!(got[0].data.len(), eth_frame(1).len(), "the EPB's padding is not part of the frame");
}

#[test]
fn raw_ip_and_linux_cooked_become_ethernet() {
    let ip = eth_frame(9)[14..].to_vec();
    let (got, err) = read_all(pcap(101, true, &[(T0, ip.clone())]));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(&got[0].data[12..14], &[0x08, 0x00]);
    assert_eq!(&got[0].data[14..], &ip[..]);
    // SLL: packet type, ARPHRD, address length, 8 octets of address, protocol.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd];
    sll.extend_from_slice(&[0x60, 0, 0, 0]);
    let (got, err) = read_all(pcap(113, true, &[(T0, sll)]));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(&got[0].data[12..], &[0x86, 0xdd, 0x60, 0, 0, 0]);
}

#[test]
fn unknown_link_type_is_refused_by_number() {
    let (got, err) = read_all(pcap(105, true, &[(T0, eth_frame(1))]));
    assert!(got.is_empty());
    let e = err.expect("802.11 is refused");
    assert!(matches!(e, CaptureError::UnknownLinkType { linktype: 105, frames: 0 }), "{e:?}");
    assert!(e.to_string().contains("link type 105"), "{e}");
}

#[test]
fn truncated_file_says_how_many_frames_were_read() {
    let frames: Vec<_> = (0..5).map(|i| (T0 + i * 1000, eth_frame(i as u8))).collect();
    for bytes in [pcap(ETH, true, &frames), pcapng(1, Some(9), &frames)] {
        let cut = bytes.len() - 10;
        let (got, err) = read_all(bytes[..cut].to_vec());
        assert_eq!(got.len(), 4, "the four whole frames are read");
        let e = err.expect("a cut file is an error, not a clean end");
        assert!(matches!(e, CaptureError::Truncated { frames: 4 }), "{e:?}");
        assert_eq!(e.frames(), 4);
    }
}

#[test]
fn garbage_and_empty_files_are_not_captures() {
    for bytes in [Vec::new(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\nsome more text to fill".to_vec()] {
        let (_, err) = read_all(bytes);
        assert!(matches!(err, Some(CaptureError::NotACapture)), "{err:?}");
    }
}

#[test]
fn corrupt_record_stops_with_an_error() {
    let frames: Vec<_> = (0..3).map(|i| (T0 + i * 1000, eth_frame(i as u8))).collect();
    let mut bytes = pcapng(1, Some(9), &frames);
    // The third EPB's trailing length no longer matches its leading one.
    let n = bytes.len();
    bytes[n - 4] ^= 0x55;
    let (got, err) = read_all(bytes);
    assert!(got.len() <= 2, "{} frames", got.len());
    assert!(err.is_some(), "a corrupt block must not end the file cleanly");
}

#[test]
fn out_of_order_within_the_tolerance_is_clamped_beyond_it_refused() {
    let small = REORDER_TOLERANCE_NS / 2;
    let frames = vec![(T0 + small, eth_frame(1)), (T0, eth_frame(2)), (T0 + 2 * small, eth_frame(3))];
    let mut c = Capture::from_reader(Cursor::new(pcap(ETH, true, &frames))).expect("open");
    let ts: Vec<u64> = std::iter::from_fn(|| c.next_frame().expect("in order enough")).map(|f| f.ts_ns).collect();
    assert_eq!(ts, vec![T0 + small, T0 + small, T0 + 2 * small], "replayed at the previous frame's time");
    assert_eq!(c.reordered, 1);

    let frames = vec![(T0, eth_frame(1)), (T0 + 3 * REORDER_TOLERANCE_NS, eth_frame(2)), (T0, eth_frame(3))];
    let (got, err) = read_all(pcap(ETH, true, &frames));
    assert_eq!(got.len(), 2);
    let e = err.expect("3 ms back is refused");
    assert!(matches!(e, CaptureError::OutOfOrder { frame: 3, .. }), "{e:?}");
    assert_eq!(e.frames(), 2);
    assert!(e.to_string().contains("reordercap"), "the message says how to fix it: {e}");
}

/// A timestamp that leaps more than a day ahead stops the read with an error naming the frame
/// (the replay would otherwise tick its controller through every second of the leap); a day
/// exactly is still read.
#[test]
fn a_timestamp_leap_of_more_than_a_day_is_refused() {
    use super::capture::MAX_GAP_NS;
    let frames = vec![(T0, eth_frame(1)), (T0 + MAX_GAP_NS, eth_frame(2)), (T0 + 2 * MAX_GAP_NS + 1, eth_frame(3))];
    let (got, err) = read_all(pcap(ETH, true, &frames));
    assert_eq!(got.len(), 2, "a leap of a day exactly is read");
    let e = err.expect("a leap past a day is refused");
    assert!(matches!(e, CaptureError::Gap { frame: 3, .. }), "{e:?}");
    assert_eq!(e.frames(), 2);
    // A legacy pcap's largest `ts_sec` after an ordinary frame: the same error, at once.
    let frames = vec![(T0, eth_frame(1)), (u64::from(u32::MAX) * 1_000_000_000, eth_frame(2))];
    let (got, err) = read_all(pcap(ETH, true, &frames));
    assert_eq!(got.len(), 1);
    assert!(matches!(err, Some(CaptureError::Gap { frame: 2, .. })), "{err:?}");
}
