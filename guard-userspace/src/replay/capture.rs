//! Reading a capture (pcap or pcapng, through `pcap-parser`) into Ethernet frames with
//! nanosecond timestamps, for `guard replay`.
//!
//! Link types: Ethernet (802.1Q / QinQ tags stay in the frame: `guard_n3` parses them itself),
//! raw IP (`LINKTYPE_RAW`, `IPV4`, `IPV6`) and Linux cooked captures (`SLL`, `SLL2`, what
//! `tcpdump -i any` writes), the last two given a synthetic Ethernet header so the program sees
//! what a NIC would hand it. Anything else is refused by name: its frames cannot be what an XDP
//! program on an N3 or N2 NIC sees.
//!
//! Nothing is skipped silently: every error says how many frames were read before it, and the
//! caller reports what was replayed up to there.

use std::{fs::File, io::Read, path::Path};

use pcap_parser::{create_reader, traits::PcapReaderIterator, Block, Linktype, PcapBlockOwned, PcapError};

/// The reader's buffer: large enough for any frame a capture holds (pcapng's 256 KiB snaplen).
const BUFFER: usize = 1 << 20;

/// A timestamp may step back this far (ns) and the frame is replayed at the previous frame's
/// time: captures from multi-queue NICs interleave queues a few microseconds out of order. A
/// larger step is an error (a merged or edited capture: its order is not the wire's).
pub const REORDER_TOLERANCE_NS: u64 = 1_000_000;

/// A timestamp may leap at most this far (ns) past the frame before it. The replay steps its
/// controller through every tick of a gap, so a corrupt or forged timestamp years ahead (a legacy
/// pcap's `ts_sec` of 0xffffffff) would tick for hours and fill memory with timeline points; a
/// capture quiet for a day is no UPF's or AMF's.
pub const MAX_GAP_NS: u64 = 24 * 3600 * 1_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("opening the capture {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("not a pcap or pcapng file (no pcap header or pcapng section header at the start)")]
    NotACapture,
    #[error("the capture ends in the middle of a record after {frames} frames (truncated file)")]
    Truncated { frames: u64 },
    #[error("the capture is corrupt after {frames} frames: {detail}")]
    Corrupt { frames: u64, detail: String },
    #[error(
        "link type {linktype} is not supported (after {frames} frames): replay takes Ethernet (with VLAN tags), \
         raw IP and Linux cooked (SLL, SLL2) captures"
    )]
    UnknownLinkType { linktype: i32, frames: u64 },
    #[error("a packet refers to pcapng interface {if_id}, which the capture never described (after {frames} frames)")]
    UnknownInterface { if_id: u32, frames: u64 },
    #[error(
        "frame {frame} is {back_ms:.3} ms earlier than the frame before it: the capture is out of time order \
         (more than the {tol_ms} ms tolerated); sort it first (e.g. `reordercap in.pcapng sorted.pcapng`)"
    )]
    OutOfOrder { frame: u64, back_ms: f64, tol_ms: u64 },
    #[error(
        "frame {frame} is {gap_h:.1} h later than the frame before it (at most {max_h} h): a corrupt timestamp, \
         or captures joined across a long pause; split the capture there (e.g. `editcap -A`/`-B`)"
    )]
    Gap { frame: u64, gap_h: f64, max_h: u64 },
}

impl CaptureError {
    /// Frames read before the error (0 for errors at the start).
    pub fn frames(&self) -> u64 {
        match self {
            CaptureError::Open { .. } | CaptureError::NotACapture => 0,
            CaptureError::Truncated { frames }
            | CaptureError::Corrupt { frames, .. }
            | CaptureError::UnknownLinkType { frames, .. }
            | CaptureError::UnknownInterface { frames, .. } => *frames,
            CaptureError::OutOfOrder { frame, .. } | CaptureError::Gap { frame, .. } => frame.saturating_sub(1),
        }
    }
}

/// One frame, as an XDP program on the NIC would see it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Capture time, ns since the Unix epoch (never earlier than the previous frame's).
    pub ts_ns: u64,
    pub data: Vec<u8>,
    /// The frame was cut by the capture's snap length (`caplen < origlen`).
    pub snapped: bool,
}

/// What a pcapng interface says about its frames.
#[derive(Clone, Copy)]
struct Iface {
    link: Linktype,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
}

/// What the headers said so far.
struct Headers {
    /// Legacy pcap: its link type and whether timestamps are in ns (else µs).
    legacy: Option<(Linktype, bool)>,
    /// pcapng: the current section's interfaces.
    ifaces: Vec<Iface>,
    /// "pcap" or "pcapng".
    format: &'static str,
}

/// A capture being read, frame by frame.
pub struct Capture {
    reader: Box<dyn PcapReaderIterator + Send>,
    h: Headers,
    frames: u64,
    last_ts: u64,
    /// Frames replayed at the previous frame's time (stepped back within the tolerance).
    pub reordered: u64,
    /// Bytes of the file consumed so far (for progress).
    pub consumed: u64,
}

impl Capture {
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let file =
            File::open(path).map_err(|source| CaptureError::Open { path: path.display().to_string(), source })?;
        Capture::from_reader(file)
    }

    pub fn from_reader(r: impl Read + Send + 'static) -> Result<Capture, CaptureError> {
        let reader = create_reader(BUFFER, r).map_err(|e| match e {
            PcapError::Eof | PcapError::HeaderNotRecognized => CaptureError::NotACapture,
            PcapError::Incomplete(_) | PcapError::UnexpectedEof => CaptureError::Truncated { frames: 0 },
            e => CaptureError::Corrupt { frames: 0, detail: format!("{e:?}") },
        })?;
        Ok(Capture {
            reader,
            h: Headers { legacy: None, ifaces: Vec::new(), format: "pcap" },
            frames: 0,
            last_ts: 0,
            reordered: 0,
            consumed: 0,
        })
    }

    /// "pcap" or "pcapng".
    pub fn format(&self) -> &'static str {
        self.h.format
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next frame; `Ok(None)` at the clean end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            let frames = self.frames;
            let (offset, out) = match self.reader.next() {
                Ok((offset, block)) => (offset, self.h.block(block, frames)?),
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    self.reader.refill().map_err(|e| refill_error(e, frames))?;
                    continue;
                }
                Err(PcapError::UnexpectedEof) => return Err(CaptureError::Truncated { frames }),
                Err(e) => return Err(CaptureError::Corrupt { frames, detail: format!("{e:?}") }),
            };
            self.reader.consume(offset);
            self.consumed += offset as u64;
            let Some(mut f) = out else { continue };
            self.frames += 1;
            if f.ts_ns < self.last_ts {
                let back = self.last_ts - f.ts_ns;
                if back > REORDER_TOLERANCE_NS {
                    return Err(CaptureError::OutOfOrder {
                        frame: self.frames,
                        back_ms: back as f64 / 1e6,
                        tol_ms: REORDER_TOLERANCE_NS / 1_000_000,
                    });
                }
                self.reordered += 1;
                f.ts_ns = self.last_ts;
            }
            let gap = f.ts_ns - self.last_ts;
            if self.frames > 1 && gap > MAX_GAP_NS {
                return Err(CaptureError::Gap {
                    frame: self.frames,
                    gap_h: gap as f64 / 3.6e12,
                    max_h: MAX_GAP_NS / 3_600_000_000_000,
                });
            }
            self.last_ts = f.ts_ns;
            return Ok(Some(f));
        }
    }
}

impl Headers {
    /// A block: a frame, or None for headers and other blocks (which update the state).
    fn block(&mut self, block: PcapBlockOwned<'_>, frames: u64) -> Result<Option<Frame>, CaptureError> {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.legacy = Some((h.network, h.is_nanosecond_precision()));
                Ok(None)
            }
            PcapBlockOwned::Legacy(b) => {
                let (link, nanos) = self.legacy.ok_or(CaptureError::NotACapture)?;
                let frac = if nanos { u64::from(b.ts_usec) } else { u64::from(b.ts_usec) * 1000 };
                let ts = u64::from(b.ts_sec) * 1_000_000_000 + frac;
                let data = to_ethernet(link, b.data, frames)?;
                Ok(Some(Frame { ts_ns: ts, data, snapped: b.caplen < b.origlen }))
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                // Interface ids are per section.
                self.format = "pcapng";
                self.ifaces.clear();
                Ok(None)
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                let resolution = idb.ts_resolution().ok_or_else(|| CaptureError::Corrupt {
                    frames,
                    detail: format!("interface {} has an invalid if_tsresol {}", self.ifaces.len(), idb.if_tsresol),
                })?;
                self.ifaces.push(Iface { link: idb.linktype, resolution, offset_s: idb.if_tsoffset });
                Ok(None)
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let i = *self
                    .ifaces
                    .get(epb.if_id as usize)
                    .ok_or(CaptureError::UnknownInterface { if_id: epb.if_id, frames })?;
                let raw = (u128::from(epb.ts_high) << 32) | u128::from(epb.ts_low);
                let ns = raw * 1_000_000_000 / u128::from(i.resolution);
                // Clamped, not wrapped: 64 bits of microseconds are more nanoseconds than a u64 holds.
                let ns = (ns as i128 + i128::from(i.offset_s) * 1_000_000_000).clamp(0, i128::from(u64::MAX)) as u64;
                // `data` holds the block's padding to 4 octets too: the frame is `caplen` of it.
                let data = epb.data.get(..epb.caplen as usize).ok_or_else(|| CaptureError::Corrupt {
                    frames,
                    detail: format!("a packet block's caplen {} exceeds its data ({})", epb.caplen, epb.data.len()),
                })?;
                let data = to_ethernet(i.link, data, frames)?;
                Ok(Some(Frame { ts_ns: ns, data, snapped: epb.caplen < epb.origlen }))
            }
            PcapBlockOwned::NG(Block::SimplePacket(_)) => Err(CaptureError::Corrupt {
                frames,
                detail: "a pcapng Simple Packet Block (no timestamp): a replay needs every frame's time".into(),
            }),
            // Statistics, name resolution, comments, decryption secrets: nothing to replay.
            PcapBlockOwned::NG(_) => Ok(None),
        }
    }
}

fn refill_error(e: PcapError<&[u8]>, frames: u64) -> CaptureError {
    match e {
        PcapError::UnexpectedEof | PcapError::Eof | PcapError::Incomplete(_) => CaptureError::Truncated { frames },
        e => CaptureError::Corrupt { frames, detail: format!("{e:?}") },
    }
}

const ETH_P_IP: [u8; 2] = [0x08, 0x00];
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];

/// The frame as an Ethernet frame: Ethernet as it is, others behind a synthetic header (zero
/// MACs; `guard_n3` never reads them).
fn to_ethernet(link: Linktype, data: &[u8], frames: u64) -> Result<Vec<u8>, CaptureError> {
    let eth = |ethertype: [u8; 2], payload: &[u8]| {
        let mut v = Vec::with_capacity(14 + payload.len());
        v.extend_from_slice(&[0u8; 12]);
        v.extend_from_slice(&ethertype);
        v.extend_from_slice(payload);
        v
    };
    let by_version = |payload: &[u8]| match payload.first().map(|b| b >> 4) {
        Some(6) => eth(ETH_P_IPV6, payload),
        _ => eth(ETH_P_IP, payload),
    };
    match link {
        Linktype::ETHERNET => Ok(data.to_vec()),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => Ok(by_version(data)),
        // SLL: 16 octets, the protocol (an ethertype) in the last two (tcpdump's sll.h).
        Linktype::LINUX_SLL if data.len() >= 16 => Ok(eth([data[14], data[15]], &data[16..])),
        // SLL2: 20 octets, the protocol in the first two.
        Linktype::LINUX_SLL2 if data.len() >= 20 => Ok(eth([data[0], data[1]], &data[20..])),
        Linktype::LINUX_SLL | Linktype::LINUX_SLL2 => {
            Err(CaptureError::Corrupt { frames, detail: "a Linux cooked frame shorter than its header".into() })
        }
        other => Err(CaptureError::UnknownLinkType { linktype: other.0, frames }),
    }
}
