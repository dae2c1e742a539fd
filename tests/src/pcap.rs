//! Classic libpcap files (not pcapng), Ethernet (link type 1): a writer for handing frames to
//! tshark and a reader for frames crafted elsewhere (scapy's `wrpcap`). Both through rusticata's
//! pcap-parser (the reader `guard replay` uses too; its `serialize` feature writes).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pcap_parser::{LegacyPcapBlock, Linktype, PcapHeader, ToVec};

pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snap length written in the header.
pub const SNAPLEN: u32 = 262_144;

/// Writes a classic pcap file, microsecond timestamps, little-endian.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> io::Result<Self> {
        PcapWriter::new(BufWriter::new(File::create(path)?))
    }
}

fn serialize_error(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("pcap: {e:?}"))
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header (version 2.4) to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = PcapHeader::new();
        h.snaplen = SNAPLEN;
        h.network = Linktype(LINKTYPE_ETHERNET as i32);
        out.write_all(&h.to_vec().map_err(serialize_error)?)?;
        Ok(PcapWriter { out })
    }

    /// Append one complete frame stamped with the current time.
    pub fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        self.write_with_orig_len(frame, frame.len())
    }

    /// Append a captured prefix of a frame whose length on the wire was `orig_len`.
    pub fn write_with_orig_len(&mut self, frame: &[u8], orig_len: usize) -> io::Result<()> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 4 GiB");
        let b = LegacyPcapBlock {
            ts_sec: u32::try_from(now.as_secs()).unwrap_or(u32::MAX),
            ts_usec: now.subsec_micros(),
            caplen: u32::try_from(frame.len()).map_err(|_| too_big())?,
            origlen: u32::try_from(orig_len.max(frame.len())).map_err(|_| too_big())?,
            data: frame,
        };
        // `to_vec_raw`: `to_vec` would first "fix" the lengths from the data.
        self.out.write_all(&b.to_vec_raw().map_err(serialize_error)?)
    }

    /// Flush and hand back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Write `frames` to a new pcap file at `path`.
pub fn write_pcap<F: AsRef<[u8]>>(path: &Path, frames: &[F]) -> io::Result<()> {
    let mut w = PcapWriter::create(path)?;
    for f in frames {
        w.write(f.as_ref())?;
    }
    w.finish().map(drop)
}

/// Read every record of a classic pcap file (either byte order, µs or ns timestamps). Only
/// Ethernet captures are accepted.
pub fn read_pcap(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    parse_pcap(&data)
}

/// Parse a classic pcap file held in memory (either byte order, µs or ns timestamps): every
/// record's captured octets.
pub fn parse_pcap(data: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let (mut rest, header) = pcap_parser::parse_pcap_header(data)
        .map_err(|e| bad(format!("pcap: bad global header (pcapng is not supported): {e:?}")))?;
    if header.network != Linktype(LINKTYPE_ETHERNET as i32) {
        return Err(bad("pcap: link type is not Ethernet".into()));
    }
    if header.is_modified_format() {
        return Err(bad("pcap: the modified (Kuznetzov) format is not supported".into()));
    }
    let frame = if header.is_bigendian() { pcap_parser::parse_pcap_frame_be } else { pcap_parser::parse_pcap_frame };
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (r, b) =
            frame(rest).map_err(|e| bad(format!("pcap: truncated record ({} octets left): {e:?}", rest.len())))?;
        frames.push(b.data.to_vec());
        rest = r;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let frames = vec![vec![1u8; 60], vec![2u8; 14], (0..=255).collect::<Vec<u8>>()];
        let mut w = PcapWriter::new(Vec::new()).expect("header");
        for f in &frames {
            w.write(f).expect("record");
        }
        let bytes = w.finish().expect("finish");
        assert_eq!(bytes.len(), 24 + 3 * 16 + 60 + 14 + 256);
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(parse_pcap(&bytes).expect("parse"), frames);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_pcap(&[0u8; 24]).is_err());
        assert!(parse_pcap(&[0u8; 3]).is_err());
        // A record cut short is an error, not a shorter capture.
        let mut w = PcapWriter::new(Vec::new()).expect("header");
        w.write(&[7u8; 60]).expect("record");
        let bytes = w.finish().expect("finish");
        assert!(parse_pcap(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn reads_big_endian_and_nanosecond_files() {
        // A big-endian, nanosecond-stamped header and one 4-octet record, written out by hand.
        let mut f = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1];
        f.extend([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4, 9, 8, 7, 6]);
        assert_eq!(parse_pcap(&f).expect("parse"), vec![vec![9, 8, 7, 6]]);
    }
}
