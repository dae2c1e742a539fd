//! The frames of one schedule slot: each variant's packets built from the plan (fragmented, scanning
//! or rotating sources where its profile says), tagged so the sink's counts are attributed to
//! devices and populations.

use super::*;

/// Per-run state of the frame builder: the random-TEID scan's counter, each device's G-PDU
/// count (which of them go out fragmented), each gNB's IPv4 Identification counter, and which
/// device each fragmented datagram (gNB address, Identification) belongs to.
#[derive(Default)]
pub(super) struct FrameState {
    pub(super) gpdus: Vec<u64>,
    pub(super) ip_ids: HashMap<Ipv4Addr, u16>,
    pub(super) frag_owner: HashMap<(Ipv4Addr, u16), usize>,
    /// Per device, the families (`variants::BIT_V4` / `BIT_V6`) of which a G-PDU with the UE's
    /// own source was *sent* (the sender's report, not the schedule): a forger forges a family
    /// only after that, so the guard's binding is the session's own even when the sender fell
    /// behind and dropped the first packets from its schedule (docs/dataplane.md: a forged first
    /// packet would hold the binding until `antispoof_rebind`).
    pub(super) own_sent: Vec<u8>,
}

/// One frame of a slot: its variant, whether it is the later fragment of a datagram, and
/// whether its inner source is forged.
#[derive(Clone, Copy)]
pub(super) struct FrameTag {
    pub(super) var: u32,
    pub(super) later: bool,
    pub(super) forged: bool,
    /// The family bit of a G-PDU with the UE's own source (0 for anything else).
    pub(super) own: u8,
}

/// Frames of one slot, interleaved so every device's packets spread over the slot; and the
/// variant of each frame. A fragmented G-PDU's fragments go out back to back, first first.
pub(super) fn slot_frames(
    plan: &Plan,
    templates: &[Vec<u8>],
    bases: &[Option<crate::frames::GtpFrame>],
    slot_idx: usize,
    slot: &[(u32, u32)],
    st: &mut FrameState,
) -> (Vec<Vec<u8>>, Vec<FrameTag>) {
    let t_s = slot_idx as f64 / SLOTS_PER_SEC as f64;
    let total: usize = slot.iter().map(|&(_, n)| n as usize).sum();
    let mut frames = Vec::with_capacity(total);
    let mut vars = Vec::with_capacity(total);
    let max = slot.iter().map(|&(_, n)| n).max().unwrap_or(0);
    if st.gpdus.len() < plan.devices.len() {
        st.gpdus.resize(plan.devices.len(), 0);
        st.own_sent.resize(plan.devices.len(), 0);
    }
    for round in 0..max {
        for &(v, n) in slot {
            if round >= n {
                continue;
            }
            let d = &plan.devices[plan.variants[v as usize].device];
            // The device's G-PDU counter: a scan's TEIDs and sources, which G-PDUs go fragmented,
            // what a session variant's k-th G-PDU carries.
            let k = st.gpdus[d.idx];
            st.gpdus[d.idx] += 1;
            let (mut f, forged, own) = match bases.get(v as usize).and_then(Option::as_ref) {
                Some(base) => {
                    let sent = st.own_sent[d.idx];
                    let (pkt, f) = plan.variant_frame_with(base, v as usize, k, t_s, |bit| sent & bit != 0);
                    let own = if d.session.is_own(&pkt) { pkt.family_bit() } else { 0 };
                    (f, pkt.forged, own)
                }
                None => (templates[v as usize].clone(), false, 0),
            };
            if d.edge == Some(EdgeKind::Scan) {
                // A never-seen TEID per packet.
                let n = (k as u32).wrapping_add(1);
                let teid = scan_teid_of(d.tag, n);
                f[TEID_OFFSET_V4..TEID_OFFSET_V4 + 4].copy_from_slice(&teid.to_be_bytes());
                if let Profile::TeidScan { sources, .. } = d.segments[plan.variants[v as usize].segment].profile {
                    if sources > 0 {
                        set_outer_src_v4(&mut f, rotate_src(n, sources));
                    }
                }
            }
            // Which G-PDUs of a device go out fragmented: the k-th when floor(k·f) steps, so a
            // fraction f of them, spread evenly, the same in every mode.
            let fragmented = d.edge.is_none()
                && d.fragment > 0.0
                && ((k + 1) as f64 * d.fragment).floor() > (k as f64 * d.fragment).floor();
            let src = outer_src_v4(&f);
            if let (true, Some(src)) = (fragmented, src) {
                // The gNB's own Identification counter (RFC 791 §3.2: unique per source,
                // destination and protocol while the datagram may be alive).
                let id = st.ip_ids.entry(src).or_insert(0);
                *id = id.wrapping_add(1);
                let id = *id;
                if let Some(parts) = fragment_ipv4(&f, 14, d.path_mtu, id) {
                    st.frag_owner.insert((src, id), d.idx);
                    for (i, p) in parts.into_iter().enumerate() {
                        frames.push(p);
                        vars.push(FrameTag { var: v, later: i > 0, forged, own });
                    }
                    continue;
                }
            }
            frames.push(f);
            vars.push(FrameTag { var: v, later: false, forged, own });
        }
    }
    (frames, vars)
}

/// The outer IPv4 source of a frame built by [`Lab::gpdu_v4`] / [`Lab::route_v4`] (no VLAN tag).
pub(super) fn outer_src_v4(f: &[u8]) -> Option<Ipv4Addr> {
    let a: [u8; 4] = f.get(26..30)?.try_into().ok()?;
    (f.get(12..14) == Some(&[0x08, 0x00])).then_some(Ipv4Addr::from(a))
}

/// Rewrite the outer IPv4 source (and the header checksum) of such a frame.
pub(super) fn set_outer_src_v4(f: &mut [u8], src: Ipv4Addr) {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    if f.len() < 14 + ihl {
        return;
    }
    f[26..30].copy_from_slice(&src.octets());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = crate::frames::internet_checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Delivered-packet accounting from sink snapshots: per F-TEID (forged inner sources apart) /
/// (message type, tag) / later fragment deltas, attributed to the device's class at the time of
/// the snapshot (forged G-PDUs: attack).
pub(super) struct Delivered {
    pub(super) prev_fteid: HashMap<(IpAddr, u32), u64>,
    pub(super) prev_marked: HashMap<(IpAddr, u32), u64>,
    pub(super) prev_tag: HashMap<(u8, u32), u64>,
    pub(super) prev_frag: HashMap<(Ipv4Addr, u16), u64>,
}

/// What a delivered delta counts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Counted {
    /// Whole G-PDUs, first fragments, signalling.
    Frames,
    /// Later fragments.
    Later,
    /// G-PDUs with a forged inner source.
    Forged,
}

/// One delivered delta: device, frames, what they are.
pub(super) type DeliveredDelta = (usize, u64, Counted);

impl Delivered {
    pub(super) fn new() -> Self {
        Delivered {
            prev_fteid: HashMap::new(),
            prev_marked: HashMap::new(),
            prev_tag: HashMap::new(),
            prev_frag: HashMap::new(),
        }
    }

    /// Counts delivered since the last call, per class; the per-device deltas go to `deltas`.
    pub(super) fn take(
        &mut self,
        plan: &Plan,
        snap: &crate::sink::SinkReport,
        frag_owner: &HashMap<(Ipv4Addr, u16), usize>,
        t_s: f64,
        deltas: &mut Vec<DeliveredDelta>,
    ) -> [u64; 2] {
        let mut c = [0u64; 2];
        let mut add = |dev: usize, n: u64, what: Counted, c: &mut [u64; 2]| {
            if n > 0 {
                // Forged G-PDUs are attack traffic whatever the device's class.
                let class = if what == Counted::Forged { Class::Attack } else { plan.devices[dev].class_at(t_s) };
                c[class.idx()] += n;
                deltas.push((dev, n, what));
            }
        };
        // By F-TEID: two sessions on two N3 addresses may share a TEID (TS 29.281 §5.1).
        for (&key, &n) in &snap.per_fteid {
            if key.1 == 0 {
                continue;
            }
            let p = self.prev_fteid.entry(key).or_insert(0);
            let d = n.saturating_sub(*p);
            *p = n;
            let m = snap.per_fteid_marked.get(&key).copied().unwrap_or(0);
            let pm = self.prev_marked.entry(key).or_insert(0);
            let dm = m.saturating_sub(*pm).min(d);
            *pm = m;
            if let Some(dev) = plan.device_of(key.0, key.1) {
                add(dev, d - dm, Counted::Frames, &mut c);
                add(dev, dm, Counted::Forged, &mut c);
            }
        }
        for (key, &n) in &snap.per_tag {
            let p = self.prev_tag.entry(*key).or_insert(0);
            let d = n.saturating_sub(*p);
            *p = n;
            if let Some(&dev) = plan.by_tag.get(key) {
                add(dev, d, Counted::Frames, &mut c);
            }
        }
        for (key, &n) in &snap.per_fragment {
            let p = self.prev_frag.entry(*key).or_insert(0);
            let d = n.saturating_sub(*p);
            *p = n;
            if let Some(&dev) = frag_owner.get(key) {
                add(dev, d, Counted::Later, &mut c);
            }
        }
        c
    }
}
