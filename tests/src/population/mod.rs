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

mod plan;
pub use plan::*;
#[cfg(test)]
mod tests;
