//! Classic libpcap files (not pcapng): a writer for handing frames to tshark and a reader for
//! frames crafted elsewhere (scapy's `wrpcap`). Link type 1 (Ethernet).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub const LINKTYPE_ETHERNET: u32 = 1;
const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// Snap length written in the header.
pub const SNAPLEN: u32 = 262_144;

/// Writes a classic pcap file, microsecond timestamps, native (little-endian here) byte order.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl PcapWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> io::Result<Self> {
        PcapWriter::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&MAGIC_USEC.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?; // version 2.4
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?; // thiszone
        out.write_all(&0u32.to_le_bytes())?; // sigfigs
        out.write_all(&SNAPLEN.to_le_bytes())?;
        out.write_all(&LINKTYPE_ETHERNET.to_le_bytes())?;
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
        let incl = u32::try_from(frame.len()).map_err(|_| too_big())?;
        let orig = u32::try_from(orig_len.max(frame.len())).map_err(|_| too_big())?;
        self.out.write_all(&u32::try_from(now.as_secs()).unwrap_or(u32::MAX).to_le_bytes())?;
        self.out.write_all(&now.subsec_micros().to_le_bytes())?;
        self.out.write_all(&incl.to_le_bytes())?;
        self.out.write_all(&orig.to_le_bytes())?;
        self.out.write_all(frame)
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

/// Parse a classic pcap file held in memory.
pub fn parse_pcap(data: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let hdr = data.get(..24).ok_or_else(|| bad("pcap: short global header"))?;
    let magic_le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let le = match magic_le {
        MAGIC_USEC | MAGIC_NSEC => true,
        m if m.swap_bytes() == MAGIC_USEC || m.swap_bytes() == MAGIC_NSEC => false,
        _ => return Err(bad("pcap: bad magic (pcapng is not supported)")),
    };
    let u32_at = |b: &[u8], o: usize| -> io::Result<u32> {
        let s: [u8; 4] = b.get(o..o + 4).and_then(|s| s.try_into().ok()).ok_or_else(|| bad("pcap: truncated"))?;
        Ok(if le { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) })
    };
    if u32_at(hdr, 20)? != LINKTYPE_ETHERNET {
        return Err(bad("pcap: link type is not Ethernet"));
    }
    let mut frames = Vec::new();
    let mut off = 24;
    while off < data.len() {
        let incl = usize::try_from(u32_at(data, off + 8)?).map_err(|_| bad("pcap: record too long"))?;
        let start = off + 16;
        let rec = data.get(start..start + incl).ok_or_else(|| bad("pcap: truncated record"))?;
        frames.push(rec.to_vec());
        off = start + incl;
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
    }
}
