//! The plan of a scenario: its devices, their behaviour segments and variants, and the seeded
//! per-slot schedule ([`Plan::build`]); the profiles' packet emission (`emit`).

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Echo,
    ErrInd,
    Scan,
}

/// One behaviour segment of a device.
#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    pub from_s: f64,
    pub to_s: f64,
    pub class: Class,
    pub dst: Ipv4Addr,
    #[serde(skip)]
    pub profile: Profile,
}

/// One simulated device (or, for edge abuse, one abusive source).
#[derive(Clone, Debug, Serialize)]
pub struct Device {
    pub idx: usize,
    pub population: String,
    pub teid: u32,
    pub ue: Ipv4Addr,
    pub gnb: usize,
    /// Attack if any of its segments is attack traffic.
    pub class: Class,
    pub segments: Vec<Segment>,
    pub edge: Option<EdgeKind>,
    /// An Echo Request's Sequence Number or an Error Indication's TEID Data I, unique per device
    /// (how the sink tells the senders of one message type apart); a TEID scan's number (bits
    /// 20-23 of its TEIDs); 0 for G-PDU devices.
    pub tag: u32,
    #[serde(skip)]
    pub payload: usize,
    /// Fraction of G-PDUs sent fragmented, and the path MTU they are cut to.
    pub fragment: f64,
    #[serde(skip)]
    pub path_mtu: usize,
    /// The N3 address (outer destination) of its F-TEID.
    pub n3: Ipv4Addr,
    /// What its session carries beyond one IPv4 address.
    pub session: Session,
}

impl Device {
    pub fn class_at(&self, t_s: f64) -> Class {
        self.segments
            .iter()
            .find(|s| t_s >= s.from_s && t_s < s.to_s)
            .or(self.segments.last())
            .map(|s| s.class)
            .unwrap_or(self.class)
    }

    /// The UE's address(es) as `devices.csv` shows them: the IPv4 address, the IPv6 session's
    /// /64 (privacy addresses rotate inside it), both for IPv4v6 (space-separated), `-` for a
    /// non-IP session.
    pub fn ue_str(&self) -> String {
        use crate::variants::Family;
        let v6 = || format!("{}/64", self.session.v6_prefix);
        match (self.session.session_type, self.session.family) {
            (SessionType::Ethernet | SessionType::Unstructured, _) => "-".into(),
            (SessionType::Ip, Family::V4) => self.ue.to_string(),
            (SessionType::Ip, Family::V6) => v6(),
            (SessionType::Ip, Family::V4v6) => format!("{} {}", self.ue, v6()),
        }
    }

    pub fn label(&self) -> String {
        match self.edge {
            Some(EdgeKind::Echo) => format!("{}:echo@gnb{}", self.population, self.gnb),
            Some(EdgeKind::ErrInd) => format!("{}:err_ind@gnb{}", self.population, self.gnb),
            Some(EdgeKind::Scan) => format!("{}:teid_scan@gnb{}", self.population, self.gnb),
            None if self.n3 == CORE_V4 => format!("teid:{:#010x}", self.teid),
            None => format!("teid:{:#010x}@{}", self.teid, self.n3),
        }
    }
}

/// One device in one segment: one frame template.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub device: usize,
    pub segment: usize,
}

/// The whole traffic plan of a scenario.
#[derive(Clone, Debug)]
pub struct Plan {
    pub devices: Vec<Device>,
    pub variants: Vec<Variant>,
    /// Per slot: (variant, packets).
    pub slots: Vec<Vec<(u32, u32)>>,
    pub gnbs: usize,
    /// G-PDU F-TEID (N3 address, TEID) → device.
    pub by_fteid: HashMap<(Ipv4Addr, u32), usize>,
    /// (message type, tag) of a signalling device → device.
    pub by_tag: HashMap<(u8, u32), usize>,
    /// The TEID scans, by scan number (their tag).
    pub scan_devices: Vec<usize>,
}

/// Deterministic splitmix64 generator (no dependency, reproducible schedules).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    pub fn sym(&mut self) -> f64 {
        2.0 * self.f64() - 1.0
    }
}

impl Plan {
    /// Devices and schedule for `duration_s` seconds over `gnbs` gNBs.
    pub fn build(pops: &[PopulationSpec], gnbs: usize, duration_s: f64, seed: u64) -> Result<Plan> {
        let nslots = (duration_s * SLOTS_PER_SEC as f64).ceil() as usize;
        let mut devices = Vec::new();
        let mut spread = 0usize;
        let mut rng = Rng::new(seed);
        for p in pops {
            if p.count == 0 {
                continue;
            }
            let edge = p.profile.edge_kind();
            if edge == Some(EdgeKind::Scan) && p.count != 1 {
                bail!("population {}: a TEID scan is one source (count = 1)", p.name);
            }
            if !(0.0..=1.0).contains(&p.fragment) || p.path_mtu < 68 {
                bail!("population {}: fragment must be in [0, 1] and path_mtu at least 68 (RFC 791)", p.name);
            }
            if let Profile::TeidScan { sources, .. } = p.profile {
                if sources > MAX_ROTATE {
                    bail!("population {}: at most {MAX_ROTATE} rotating sources", p.name);
                }
            }
            if !(0.0..=1.0).contains(&p.forged) || !(0.0..=3600.0).contains(&p.privacy_rotate_s) {
                bail!("population {}: forged must be in [0, 1] and privacy_rotate_s in [0, 3600]", p.name);
            }
            if p.session_type != SessionType::Ip && (p.forged > 0.0 || p.framed_route.is_some()) {
                bail!("population {}: forged and framed_route need an IP session", p.name);
            }
            if let Some(net) = p.framed_route {
                let forged = crate::variants::forged_prefixes();
                if forged.iter().any(|&(a, l)| Net { addr: a, len: l }.contains(net.addr) || net.contains(a)) {
                    bail!("population {}: framed_route {net} overlaps the forged sources", p.name);
                }
            }
            // Only the lab's own N3 subnet, below the gNB addresses (10.200.0.1..=10.200.0.10).
            let n3 = u32::from(p.n3());
            if !(u32::from(CORE_V4)..u32::from(crate::lab::GNB_V4_BASE)).contains(&n3) {
                bail!("population {}: n3_addr must be in 10.200.0.1..=10.200.0.10 (the lab's core side)", p.name);
            }
            if edge.is_some() && p.n3_addr.is_some_and(|a| a != CORE_V4) {
                bail!("population {}: Echo, Error Indication and scan sources use the core's first address", p.name);
            }
            if p.gnb.is_some_and(|g| g >= gnbs) {
                bail!("population {}: gnb {} but the lab has {gnbs}", p.name, p.gnb.unwrap_or(0));
            }
            let stop = p.stop_s.unwrap_or(duration_s).min(duration_s);
            // Which members switch.
            let switching: Vec<bool> = match &p.change {
                Some(c) => {
                    let k = ((c.fraction.clamp(0.0, 1.0) * p.count as f64).round() as usize).min(p.count);
                    let mut order: Vec<usize> = (0..p.count).collect();
                    for i in (1..order.len()).rev() {
                        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                        order.swap(i, j);
                    }
                    let mut v = vec![false; p.count];
                    for &i in order.iter().take(k) {
                        v[i] = true;
                    }
                    v
                }
                None => vec![false; p.count],
            };
            for (i, &switches) in switching.iter().enumerate() {
                let teid = p.teid_base.wrapping_add(i as u32);
                if edge.is_none() && teid >= SCAN_TEID_BASE {
                    bail!("population {}: TEID {teid:#x} is in the scan range (>= {SCAN_TEID_BASE:#x})", p.name);
                }
                let gnb = match p.gnb {
                    Some(g) => g,
                    None => {
                        spread += 1;
                        (spread - 1) % gnbs
                    }
                };
                let mut segments = vec![Segment {
                    from_s: p.start_s,
                    to_s: stop,
                    class: p.class,
                    dst: p.dst,
                    profile: p.profile.clone(),
                }];
                if let (true, Some(c)) = (switches, &p.change) {
                    let at = (c.at_s + c.spread_s.max(0.0) * rng.f64()).clamp(p.start_s, stop);
                    let base = c.profile.clone().unwrap_or_else(|| p.profile.clone());
                    let profile = match &c.rate_factor {
                        Some(f) => base.scaled(f.draw(&mut rng)),
                        None => base,
                    };
                    segments[0].to_s = at;
                    segments.push(Segment {
                        from_s: at,
                        to_s: stop,
                        class: c.class.unwrap_or(p.class),
                        dst: c.dst.unwrap_or(p.dst),
                        profile,
                    });
                }
                let class =
                    if segments.iter().any(|s| s.class == Class::Attack) { Class::Attack } else { Class::Benign };
                let idx = devices.len();
                let tag = match edge {
                    // Sequence Numbers are 16 bits; 0 is left out.
                    Some(EdgeKind::Echo) if idx < 0xffff => idx as u32 + 1,
                    Some(EdgeKind::ErrInd) if idx < 0xffff => 0x0bad_0000 | idx as u32,
                    Some(EdgeKind::Echo | EdgeKind::ErrInd) => bail!("too many devices for signalling tags"),
                    Some(EdgeKind::Scan) => {
                        let n = devices.iter().filter(|d: &&Device| d.edge == Some(EdgeKind::Scan)).count();
                        if n >= MAX_SCANS {
                            bail!("population {}: at most {MAX_SCANS} teid_scan sources per scenario", p.name);
                        }
                        n as u32
                    }
                    None => 0,
                };
                let seed = mix(&[seed, idx as u64, 0x7365_7373]);
                let session = Session {
                    family: p.family,
                    session_type: p.session_type,
                    v6_prefix: Ipv6Addr::from(u128::from(p.ue_v6_base).wrapping_add(u128::from(i as u64 + 1) << 64)),
                    rotate_s: p.privacy_rotate_s,
                    rotate_at_s: p.start_s + p.privacy_rotate_s * ((seed >> 11) as f64 / (1u64 << 53) as f64),
                    router_solicitation: p.router_solicitation.unwrap_or(true) && p.family.has_v6(),
                    framed: p.framed_route,
                    forged: p.forged,
                    seed,
                };
                devices.push(Device {
                    idx,
                    population: p.name.clone(),
                    teid,
                    ue: Ipv4Addr::from(u32::from(p.ue_base).wrapping_add(i as u32 + 1)),
                    gnb,
                    class,
                    segments,
                    edge,
                    tag,
                    payload: p.payload,
                    fragment: p.fragment,
                    path_mtu: p.path_mtu,
                    n3: p.n3(),
                    session,
                });
            }
        }
        let mut by_fteid = HashMap::new();
        let mut by_tag = HashMap::new();
        let mut scan_devices = Vec::new();
        for d in &devices {
            match d.edge {
                None => {
                    if by_fteid.insert((d.n3, d.teid), d.idx).is_some() {
                        bail!(
                            "TEID {:#x} on {} is used by two devices (check teid_base and n3_addr of the populations)",
                            d.teid,
                            d.n3
                        );
                    }
                }
                Some(EdgeKind::Echo) => {
                    by_tag.insert((MSG_ECHO_REQUEST, d.tag), d.idx);
                }
                Some(EdgeKind::ErrInd) => {
                    by_tag.insert((MSG_ERROR_INDICATION, d.tag), d.idx);
                }
                Some(EdgeKind::Scan) => scan_devices.push(d.idx),
            }
        }
        let mut variants = Vec::new();
        let mut slots: Vec<Vec<(u32, u32)>> = vec![Vec::new(); nslots];
        for d in &devices {
            let mut drng = Rng::new(seed ^ (d.idx as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            for (si, s) in d.segments.iter().enumerate() {
                let vid = variants.len() as u32;
                variants.push(Variant { device: d.idx, segment: si });
                let mut counts: Vec<f64> = vec![0.0; nslots];
                emit(&s.profile, s.from_s, s.to_s, si > 0, &mut drng, &mut counts);
                for (slot, c) in counts.into_iter().enumerate() {
                    let n = c.round() as u32;
                    if n > 0 {
                        slots[slot].push((vid, n));
                    }
                }
            }
        }
        Ok(Plan { devices, variants, slots, gnbs, by_fteid, by_tag, scan_devices })
    }

    pub fn duration_s(&self) -> f64 {
        self.slots.len() as f64 / SLOTS_PER_SEC as f64
    }

    /// Packets offered per slot by class (`[benign, attack]`), from the schedule.
    pub fn offered_by_slot(&self) -> Vec<[u64; 2]> {
        self.slots
            .iter()
            .map(|s| {
                let mut c = [0u64; 2];
                for &(v, n) in s {
                    let var = self.variants[v as usize];
                    c[self.devices[var.device].segments[var.segment].class.idx()] += u64::from(n);
                }
                c
            })
            .collect()
    }

    /// Mean G-PDU rate per gNB over `[from_s, to_s)` (what the naive cell cap is sized from).
    pub fn gpdu_pps_per_gnb(&self, from_s: f64, to_s: f64) -> Vec<f64> {
        let mut sum = vec![0u64; self.gnbs];
        let a = (from_s * SLOTS_PER_SEC as f64) as usize;
        let b = ((to_s * SLOTS_PER_SEC as f64) as usize).min(self.slots.len());
        for s in self.slots.get(a..b).unwrap_or(&[]) {
            for &(v, n) in s {
                let d = &self.devices[self.variants[v as usize].device];
                if matches!(d.edge, None | Some(EdgeKind::Scan)) {
                    sum[d.gnb] += u64::from(n);
                }
            }
        }
        let secs = (b.saturating_sub(a)) as f64 / SLOTS_PER_SEC as f64;
        sum.into_iter().map(|n| if secs > 0.0 { n as f64 / secs } else { 0.0 }).collect()
    }

    /// The device a delivered G-PDU belongs to, by its F-TEID: outer destination and TEID
    /// (scan TEIDs map to their scan source).
    pub fn device_of(&self, n3: IpAddr, teid: u32) -> Option<usize> {
        if teid & !SCAN_TEID_MASK == SCAN_TEID_BASE {
            if let Some(&d) = self.scan_devices.get(((teid >> 20) & 0xf) as usize) {
                return Some(d);
            }
        }
        match n3 {
            IpAddr::V4(a) => self.by_fteid.get(&(a, teid)).copied(),
            IpAddr::V6(_) => None,
        }
    }

    /// The N3 addresses the sessions use, the core's own first.
    pub fn n3_addrs(&self) -> Vec<Ipv4Addr> {
        let mut v = vec![CORE_V4];
        for d in &self.devices {
            if !v.contains(&d.n3) {
                v.push(d.n3);
            }
        }
        v
    }

    /// Per variant, the G-PDU builder of a device whose frames vary packet by packet (a
    /// session variant, [`Session::is_plain`] false): MACs, outer addresses and TEID set.
    pub fn bases(&self, lab: &Lab) -> Vec<Option<GtpFrame>> {
        self.variants
            .iter()
            .map(|v| {
                let d = &self.devices[v.device];
                (d.edge.is_none() && !d.session.is_plain()).then(|| lab.gpdu_to(d.gnb, d.n3, d.teid))
            })
            .collect()
    }

    /// The `k`-th G-PDU of a session-variant device in variant `var`, sent at `t_s`: what it
    /// carries and its frame.
    pub fn variant_frame(&self, base: &GtpFrame, var: usize, k: u64, t_s: f64) -> (Pkt, Vec<u8>) {
        self.variant_frame_with(base, var, k, t_s, |_| true)
    }

    /// As [`Plan::variant_frame`]; a G-PDU due to be forged in a family for which `may_forge`
    /// says no ([`Pkt::family_bit`]) carries the UE's own source instead.
    pub fn variant_frame_with(
        &self,
        base: &GtpFrame,
        var: usize,
        k: u64,
        t_s: f64,
        may_forge: impl Fn(u8) -> bool,
    ) -> (Pkt, Vec<u8>) {
        let v = self.variants[var];
        let d = &self.devices[v.device];
        let s = &d.segments[v.segment];
        let mut pkt = d.session.packet(d.idx, d.ue, k, t_s);
        if pkt.forged && !may_forge(pkt.family_bit()) {
            pkt = d.session.packet_with(d.idx, d.ue, k, t_s, false);
        }
        let f = d.session.frame(base, &pkt, s.dst, d.payload);
        (pkt, f)
    }

    /// One frame template per variant.
    pub fn templates(&self, lab: &Lab) -> Vec<Vec<u8>> {
        self.variants
            .iter()
            .map(|v| {
                let d = &self.devices[v.device];
                let s = &d.segments[v.segment];
                let f = match d.edge {
                    Some(EdgeKind::Echo) => lab.route_v4(GtpFrame::echo_request(d.tag as u16), d.gnb),
                    Some(EdgeKind::ErrInd) => lab.route_v4(
                        GtpFrame::error_indication(d.tag, IpAddr::V4(lab.gnb_v4[d.gnb % lab.gnb_v4.len()])),
                        d.gnb,
                    ),
                    Some(EdgeKind::Scan) => {
                        lab.gpdu_v4(d.gnb, SCAN_TEID_BASE).inner_v4(d.ue, s.dst).payload_len(d.payload)
                    }
                    None if !d.session.is_plain() => {
                        let base = lab.gpdu_to(d.gnb, d.n3, d.teid);
                        return d.session.frame(&base, &d.session.packet(d.idx, d.ue, 0, s.from_s), s.dst, d.payload);
                    }
                    None => lab.gpdu_to(d.gnb, d.n3, d.teid).inner_v4(d.ue, s.dst).payload_len(d.payload),
                };
                f.build()
            })
            .collect()
    }
}

/// Offset of the GTP-U TEID in a frame built by [`Lab::gpdu_v4`] (Ethernet 14 + IPv4 20 + UDP 8 +
/// flags/type/length 4).
pub const TEID_OFFSET_V4: usize = 14 + 20 + 8 + 4;

/// Add a profile's packets over `[from, to)` to per-slot counts (fractional; rounded by the caller
/// after accumulation with a carry so rates are exact on average).
fn emit(p: &Profile, from: f64, to: f64, switched: bool, rng: &mut Rng, counts: &mut [f64]) {
    if to <= from {
        return;
    }
    let slot_s = SLOT_MS as f64 / 1000.0;
    let nslots = counts.len();
    let slot_of = |t: f64| ((t / slot_s + 1e-9).floor().max(0.0) as usize).min(nslots.saturating_sub(1));
    // Constant rate over an interval, with a carry so the integer counts add up.
    let mut carry = rng.f64();
    let rate = |counts: &mut [f64], a: f64, b: f64, pps: f64, carry: &mut f64| {
        if b <= a || pps <= 0.0 {
            return;
        }
        let (first, last) = (slot_of(a), slot_of(b - 1e-9));
        for (s, count) in counts.iter_mut().enumerate().take(last + 1).skip(first) {
            let lo = a.max(s as f64 * slot_s);
            let hi = b.min((s + 1) as f64 * slot_s);
            if hi <= lo {
                continue;
            }
            *carry += pps * (hi - lo);
            let n = carry.floor();
            *carry -= n;
            *count += n;
        }
    };
    match p {
        Profile::Idle => {}
        Profile::Periodic { period_s, jitter, burst } => {
            let period = period_s.draw(rng).max(0.05);
            let size = burst.draw(rng).round().max(1.0);
            // A meter keeps its own phase; after a switch the new period starts within one period.
            let mut t = from + period * rng.f64();
            while t < to {
                counts[slot_of(t)] += size;
                t += period * (1.0 + jitter * rng.sym());
            }
        }
        Profile::Session { rate_pps, on_s, off_s } => {
            // Random phase: start somewhere in an off period (or, after a switch, right away).
            let mut t = if switched { from } else { from + off_s.draw(rng) * rng.f64() };
            while t < to {
                let on = on_s.draw(rng);
                let r = rate_pps.draw(rng);
                rate(counts, t, (t + on).min(to), r, &mut carry);
                t += on + off_s.draw(rng);
            }
        }
        Profile::EchoPath { period_s, t3_s, retries } => {
            let period = period_s.draw(rng).max(1.0);
            let t3 = t3_s.max(0.1);
            let mut t = from + period.min(to - from) * rng.f64();
            while t < to {
                for k in 0..=*retries {
                    let at = t + t3 * f64::from(k);
                    if at < to {
                        counts[slot_of(at)] += 1.0;
                    }
                }
                t += period;
            }
        }
        Profile::Flood { pps }
        | Profile::EchoFlood { pps }
        | Profile::ErrIndFlood { pps }
        | Profile::TeidScan { pps, .. } => {
            let r = pps.draw(rng);
            rate(counts, from, to, r, &mut carry);
        }
        Profile::Chatty { period_s, jitter, burst, burst_ms } => {
            let period = period_s.draw(rng);
            let mut t = from;
            while t < to {
                let n = burst.draw(rng).round();
                // A burst up to one slot long goes into a single slot (the one it starts in):
                // the sender spreads a slot over 90 ms, so a burst straddling two slots would
                // last up to ~190 ms on the wire, much longer than `burst_ms` asks for. Longer
                // bursts are spread over their slots as asked.
                let dur = (burst_ms.draw(rng) / 1000.0).max(0.001);
                let (a, b) = if dur <= slot_s {
                    let a = (t / slot_s + 1e-9).floor() * slot_s;
                    (a, (a + slot_s).min(to))
                } else {
                    (t, (t + dur).min(to))
                };
                if b > a {
                    rate(counts, a, b, n / (b - a), &mut carry);
                }
                t += period * (1.0 + jitter * rng.sym());
            }
        }
    }
}
