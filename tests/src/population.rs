//! Device populations of a lab scenario and the traffic schedule they produce.
//!
//! A scenario lists populations (`[[population]]` in its TOML): a number of devices sharing a
//! traffic profile (periodic meter, human-like sessions, flood, chatty bursts, edge abuse), a
//! class label (benign / attack), a TEID and UE address range, a destination server and a gNB
//! (one fixed, or spread round-robin over the lab's gNBs). An optional `change` switches a
//! fraction of the population to another behaviour at a point in time: a flash crowd, an
//! infection, a bulk re-provisioning.
//!
//! [`Plan::build`] turns that into devices and a deterministic schedule (seeded): per 100 ms
//! slot, how many packets each *variant* (one device in one behaviour segment) sends. The same
//! plan is replayed for every mode (guard off, naive cell cap, guard), so they see identical
//! offered traffic.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::frames::GtpFrame;
use crate::lab::{Lab, CORE_V4};
use crate::variants::{mix, Family, Net, Pkt, Session, SessionType};

/// Length of one schedule slot.
pub const SLOT_MS: u64 = 100;
pub const SLOTS_PER_SEC: usize = (1000 / SLOT_MS) as usize;
/// TEIDs of the random-TEID scan: `SCAN_TEID_BASE | 24 random bits`. Device TEIDs must stay
/// below it.
pub const SCAN_TEID_BASE: u32 = 0xe000_0000;
pub const SCAN_TEID_MASK: u32 = 0x00ff_ffff;
/// The `n`-th TEID of the (first) random-TEID scan: see [`scan_teid_of`].
pub fn scan_teid(n: u32) -> u32 {
    scan_teid_of(0, n)
}

/// Scans a scenario may hold: each owns a sixteenth of the scan range (bits 20-23).
pub const MAX_SCANS: usize = 16;

/// The `n`-th TEID of scan number `scan`: a multiplicative hash of a counter (a bijection on 20
/// bits), so a scan does not repeat TEIDs within a run (a million) and the core sees "random"
/// TEIDs; bits 20-23 say which scan sent it.
pub fn scan_teid_of(scan: u32, n: u32) -> u32 {
    SCAN_TEID_BASE | ((scan & 0xf) << 20) | (n.wrapping_mul(0x9e37_79b1) & 0x000f_ffff)
}

/// GTP-U message types the edge-abuse profiles send.
pub const MSG_ECHO_REQUEST: u8 = 1;
pub const MSG_ERROR_INDICATION: u8 = 26;

/// Benign or attack: what the scores are computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    #[default]
    Benign,
    Attack,
}

impl Class {
    pub fn idx(self) -> usize {
        match self {
            Class::Benign => 0,
            Class::Attack => 1,
        }
    }
}

/// A number, or a `[low, high]` range drawn uniformly per device.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Num {
    One(f64),
    Range([f64; 2]),
}

impl Num {
    pub fn draw(&self, rng: &mut Rng) -> f64 {
        match *self {
            Num::One(x) => x,
            Num::Range([a, b]) => a + (b - a) * rng.f64(),
        }
    }

    pub fn max(&self) -> f64 {
        match *self {
            Num::One(x) => x,
            Num::Range([a, b]) => a.max(b),
        }
    }
}

/// What a device sends.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Profile {
    /// An IoT meter: `burst` packets every `period_s` (± `jitter` × period, uniform), random phase.
    Periodic {
        period_s: Num,
        #[serde(default = "default_jitter")]
        jitter: f64,
        #[serde(default = "one")]
        burst: Num,
    },
    /// Human-like: sessions of `on_s` at `rate_pps`, separated by `off_s` idle (all drawn per
    /// session), random phase.
    Session { rate_pps: Num, on_s: Num, off_s: Num },
    /// Constant rate from the segment start.
    Flood { pps: Num },
    /// Chatty (T3): `burst` packets within `burst_ms`, then idle; the first burst at the segment
    /// start (synchronised across the devices that switch together), then every `period_s` ±
    /// `jitter` × period.
    Chatty {
        period_s: Num,
        #[serde(default = "default_chatty_jitter")]
        jitter: f64,
        burst: Num,
        burst_ms: Num,
    },
    /// GTP-U Echo Requests (TEID 0) at `pps` from the device's gNB.
    EchoFlood { pps: Num },
    /// A gNB's own path supervision (TS 29.281 §7.2.1): one Echo Request per `period_s` on the
    /// path (gNB address → the core's address), the first at a random time within the first
    /// period (or the segment, if shorter), each followed by `retries` retransmissions
    /// `t3_s` apart (T3-RESPONSE, N3-REQUESTS): the lab's core never answers, so this is the
    /// most a real path sends. Benign: every one must pass.
    EchoPath {
        #[serde(default = "default_echo_period")]
        period_s: Num,
        #[serde(default = "default_t3")]
        t3_s: f64,
        #[serde(default = "default_retries")]
        retries: u32,
    },
    /// Error Indications (TEID 0) at `pps` from the device's gNB.
    ErrIndFlood { pps: Num },
    /// G-PDUs on never-seen random TEIDs at `pps` from the device's gNB, or, with `sources` > 0,
    /// from that many forged source addresses in turn ([`rotate_src`]), none of them a gNB's.
    TeidScan {
        pps: Num,
        #[serde(default)]
        sources: u32,
    },
    /// Sends nothing.
    Idle,
}

fn default_jitter() -> f64 {
    0.1
}
fn default_chatty_jitter() -> f64 {
    0.3
}
fn one() -> Num {
    Num::One(1.0)
}
fn default_echo_period() -> Num {
    Num::One(60.0)
}
fn default_t3() -> f64 {
    2.0
}
fn default_retries() -> u32 {
    3
}

/// Forged source addresses of a rotating TEID scan: `10.200.64.1` + k, k < [`MAX_ROTATE`] (up to
/// 10.201.64.0). Off the lab's /24, so the core never answers them, and never a gNB's; nothing is
/// configured for them, they are only written into the frames.
pub const ROTATE_SRC_BASE: Ipv4Addr = Ipv4Addr::new(10, 200, 64, 1);
pub const MAX_ROTATE: u32 = 65536;
pub fn rotate_src(k: u32, sources: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ROTATE_SRC_BASE) + k % sources.clamp(1, MAX_ROTATE))
}

impl Profile {
    /// The same profile `f` times as intense (more often, faster, or bigger bursts).
    pub fn scaled(&self, f: f64) -> Profile {
        let m = |n: &Num| match *n {
            Num::One(x) => Num::One(x * f),
            Num::Range([a, b]) => Num::Range([a * f, b * f]),
        };
        let d = |n: &Num| match *n {
            Num::One(x) => Num::One(x / f),
            Num::Range([a, b]) => Num::Range([a / f, b / f]),
        };
        match self {
            Profile::Periodic { period_s, jitter, burst } => {
                Profile::Periodic { period_s: d(period_s), jitter: *jitter, burst: *burst }
            }
            Profile::Session { rate_pps, on_s, off_s } => {
                Profile::Session { rate_pps: m(rate_pps), on_s: *on_s, off_s: *off_s }
            }
            Profile::Flood { pps } => Profile::Flood { pps: m(pps) },
            Profile::Chatty { period_s, jitter, burst, burst_ms } => {
                Profile::Chatty { period_s: *period_s, jitter: *jitter, burst: m(burst), burst_ms: *burst_ms }
            }
            Profile::EchoFlood { pps } => Profile::EchoFlood { pps: m(pps) },
            Profile::EchoPath { .. } => self.clone(),
            Profile::ErrIndFlood { pps } => Profile::ErrIndFlood { pps: m(pps) },
            Profile::TeidScan { pps, sources } => Profile::TeidScan { pps: m(pps), sources: *sources },
            Profile::Idle => Profile::Idle,
        }
    }

    fn edge_kind(&self) -> Option<EdgeKind> {
        match self {
            Profile::EchoFlood { .. } | Profile::EchoPath { .. } => Some(EdgeKind::Echo),
            Profile::ErrIndFlood { .. } => Some(EdgeKind::ErrInd),
            Profile::TeidScan { .. } => Some(EdgeKind::Scan),
            _ => None,
        }
    }
}

/// A behaviour switch of part of a population.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChangeSpec {
    /// When (seconds from the start).
    pub at_s: f64,
    /// Fraction of the population that switches (picked at random, seeded).
    #[serde(default = "one_f")]
    pub fraction: f64,
    /// Each switching device switches at a random time in `[at_s, at_s + spread_s]`; 0 = all at
    /// once, in phase.
    #[serde(default)]
    pub spread_s: f64,
    /// Class of the switched devices' traffic from then on (default: unchanged).
    pub class: Option<Class>,
    /// New profile (default: the old one, scaled by `rate_factor`).
    pub profile: Option<Profile>,
    /// Intensity factor applied to the (old or new) profile, drawn per device.
    pub rate_factor: Option<Num>,
    /// New inner destination.
    pub dst: Option<Ipv4Addr>,
}

fn one_f() -> f64 {
    1.0
}

/// `[[population]]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PopulationSpec {
    pub name: String,
    pub count: usize,
    #[serde(default)]
    pub class: Class,
    pub profile: Profile,
    /// First TEID; device i gets `teid_base + i`.
    #[serde(default)]
    pub teid_base: u32,
    /// UE addresses: `ue_base + i + 1`.
    #[serde(default = "default_ue")]
    pub ue_base: Ipv4Addr,
    /// Inner destination (the device's server).
    #[serde(default = "default_dst")]
    pub dst: Ipv4Addr,
    /// A fixed gNB index; default: spread round-robin over the lab's gNBs.
    pub gnb: Option<usize>,
    /// Start sending at (s).
    #[serde(default)]
    pub start_s: f64,
    /// Stop sending at (s; default: the end of the scenario).
    pub stop_s: Option<f64>,
    /// Inner payload bytes.
    #[serde(default = "default_payload")]
    pub payload: usize,
    /// Fraction of the devices' G-PDUs sent as outer IPv4 fragments (0..=1), cut to `path_mtu`.
    #[serde(default)]
    pub fragment: f64,
    /// IP MTU of the RAN's N3 path the fragmented G-PDUs are cut to (RFC 791 §3.2).
    #[serde(default = "default_path_mtu")]
    pub path_mtu: usize,
    pub change: Option<ChangeSpec>,
    /// Inner IP family of the sessions (TS 23.501 §5.8.2.1): `v4`, `v6` or `v4v6`.
    #[serde(default)]
    pub family: Family,
    /// IPv6 sessions: device i's /64 is this prefix's /64 number i + 1 (TS 23.501 §5.8.2.2.1).
    #[serde(default = "default_ue_v6")]
    pub ue_v6_base: Ipv6Addr,
    /// A new IPv6 privacy address inside the session's /64 every this many seconds (RFC 8981),
    /// each device at its own phase; 0: the SLAAC address only.
    #[serde(default)]
    pub privacy_rotate_s: f64,
    /// An IPv6 session's first G-PDU is a Router Solicitation from its link-local address
    /// (default: yes, for `v6` and `v4v6`).
    pub router_solicitation: Option<bool>,
    /// A network behind each UE (TS 23.501 §5.6.14): most inner sources of its family come from
    /// it; the lab lists it in the guard's `dataplane.framed_routes`.
    pub framed_route: Option<Net>,
    /// `ip`, or the non-IP `ethernet` / `unstructured` (TS 23.501 §5.6.10); the lab lists a
    /// non-IP population's TEID range in the guard's `dataplane.non_ip_teids`.
    #[serde(default)]
    pub session_type: SessionType,
    /// The outer destination: the UPF's N3 address the sessions' F-TEIDs were allocated on
    /// (TS 29.281 §5.1); default the lab's core address. Other addresses are added to the core's
    /// N3 link and listed in the guard's `guard.n3_addrs`.
    pub n3_addr: Option<Ipv4Addr>,
    /// Fraction of each device's G-PDUs sent with an inner source that is not the session's
    /// (a forger; `crate::variants::FORGED_V4` / `FORGED_V6`).
    #[serde(default)]
    pub forged: f64,
}

impl PopulationSpec {
    /// The N3 address its sessions use.
    pub fn n3(&self) -> Ipv4Addr {
        self.n3_addr.unwrap_or(CORE_V4)
    }

    /// Its TEID range, `[first, last]`.
    pub fn teid_range(&self) -> (u32, u32) {
        (self.teid_base, self.teid_base.wrapping_add(self.count.saturating_sub(1) as u32))
    }
}

fn default_ue_v6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x45, 0, 0, 0, 0, 0)
}
fn default_ue() -> Ipv4Addr {
    Ipv4Addr::new(10, 45, 0, 0)
}
fn default_dst() -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 10)
}
fn default_payload() -> usize {
    64
}
fn default_path_mtu() -> usize {
    1400
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(profile: Profile, count: usize) -> PopulationSpec {
        PopulationSpec {
            name: "p".into(),
            count,
            class: Class::Benign,
            profile,
            teid_base: 0x100,
            ue_base: default_ue(),
            dst: default_dst(),
            gnb: None,
            start_s: 0.0,
            stop_s: None,
            payload: 64,
            fragment: 0.0,
            path_mtu: 1400,
            change: None,
            family: Family::V4,
            ue_v6_base: default_ue_v6(),
            privacy_rotate_s: 0.0,
            router_solicitation: None,
            framed_route: None,
            session_type: SessionType::Ip,
            n3_addr: None,
            forged: 0.0,
        }
    }

    #[test]
    fn flood_rate_is_exact_and_deterministic() {
        let p = pop(Profile::Flood { pps: Num::One(250.0) }, 4);
        let a = Plan::build(std::slice::from_ref(&p), 2, 10.0, 7).unwrap();
        let b = Plan::build(&[p], 2, 10.0, 7).unwrap();
        let total: u64 = a.offered_by_slot().iter().map(|c| c[0]).sum();
        assert!((9_990..=10_010).contains(&total), "{total}");
        assert_eq!(a.slots, b.slots);
        assert_eq!(a.devices.iter().filter(|d| d.gnb == 1).count(), 2);
    }

    /// TS 29.281 §7.2.1 as the lab models a path: one request per period, each followed by its
    /// retransmissions T3-RESPONSE apart; every path device has its own Sequence Number tag.
    #[test]
    fn echo_path_sends_a_request_and_its_retransmissions_per_period() {
        let mut p = pop(Profile::EchoPath { period_s: Num::One(60.0), t3_s: 2.0, retries: 3 }, 4);
        p.teid_base = 0;
        let plan = Plan::build(&[p], 4, 100.0, 3).unwrap();
        let per_dev: Vec<u64> = (0..4)
            .map(|d| plan.slots.iter().flatten().filter(|(v, _)| *v as usize == d).map(|&(_, n)| u64::from(n)).sum())
            .collect();
        // A first round within the first 60 s, a second 60 s later if it fits in 100 s.
        assert!(per_dev.iter().all(|&n| (4..=8).contains(&n)), "{per_dev:?}");
        let tags: std::collections::BTreeSet<u32> = plan.devices.iter().map(|d| d.tag).collect();
        assert_eq!(tags.len(), 4);
        assert_eq!(plan.by_tag.len(), 4);
        assert!(plan.devices.iter().map(|d| d.gnb).collect::<std::collections::BTreeSet<_>>().len() == 4);
    }

    /// Several scans: each has its own sixteenth of the scan range, so the sink's counts go back
    /// to the right one.
    #[test]
    fn scans_own_their_part_of_the_scan_range() {
        let mut a = pop(Profile::TeidScan { pps: Num::One(10.0), sources: 0 }, 1);
        a.name = "a".into();
        a.gnb = Some(0);
        let mut b = pop(Profile::TeidScan { pps: Num::One(10.0), sources: 8 }, 1);
        b.name = "b".into();
        let plan = Plan::build(&[a, b], 2, 5.0, 1).unwrap();
        assert_eq!(plan.scan_devices, vec![0, 1]);
        for n in [1, 2, 1000, 0xfffff] {
            let core = IpAddr::V4(CORE_V4);
            assert_eq!(plan.device_of(core, scan_teid_of(0, n)), Some(0));
            assert_eq!(plan.device_of(core, scan_teid_of(1, n)), Some(1));
            assert_eq!(scan_teid_of(1, n) & !SCAN_TEID_MASK, SCAN_TEID_BASE);
        }
        assert_ne!(rotate_src(1, 8), rotate_src(2, 8));
        assert_eq!(rotate_src(1, 8), rotate_src(9, 8));
    }

    /// TS 29.281 §5.1: one TEID on two N3 addresses is two devices; on one address it is refused.
    #[test]
    fn colliding_teids_on_two_n3_addresses_are_two_devices() {
        let a = pop(Profile::Flood { pps: Num::One(1.0) }, 3);
        let mut b = a.clone();
        b.name = "b".into();
        b.n3_addr = Some(Ipv4Addr::new(10, 200, 0, 2));
        let plan = Plan::build(&[a.clone(), b.clone()], 2, 2.0, 1).unwrap();
        assert_eq!(plan.n3_addrs(), vec![CORE_V4, Ipv4Addr::new(10, 200, 0, 2)]);
        assert_eq!(plan.device_of(IpAddr::V4(CORE_V4), 0x101), Some(1));
        assert_eq!(plan.device_of(IpAddr::V4(Ipv4Addr::new(10, 200, 0, 2)), 0x101), Some(4));
        assert_eq!(plan.device_of(IpAddr::V4(Ipv4Addr::new(10, 200, 0, 3)), 0x101), None);
        assert!(Plan::build(&[a.clone(), a.clone()], 2, 2.0, 1).is_err());
        b.n3_addr = Some(Ipv4Addr::new(10, 200, 0, 11));
        assert!(Plan::build(&[b], 2, 2.0, 1).is_err(), "a gNB's address is no N3 address of the core");
    }

    #[test]
    fn change_switches_the_fraction_and_labels_attack() {
        let mut p = pop(Profile::Periodic { period_s: Num::One(1.0), jitter: 0.0, burst: Num::One(1.0) }, 100);
        p.change = Some(ChangeSpec {
            at_s: 5.0,
            fraction: 0.1,
            spread_s: 0.0,
            class: Some(Class::Attack),
            profile: Some(Profile::Flood { pps: Num::One(100.0) }),
            rate_factor: None,
            dst: None,
        });
        let plan = Plan::build(&[p], 4, 10.0, 1).unwrap();
        assert_eq!(plan.devices.iter().filter(|d| d.class == Class::Attack).count(), 10);
        let off = plan.offered_by_slot();
        assert_eq!(off[..50].iter().map(|c| c[1]).sum::<u64>(), 0);
        let attack: u64 = off[50..].iter().map(|c| c[1]).sum();
        assert!((4_900..=5_100).contains(&attack), "{attack}");
    }
}
