//! The RAN side of the N2 lab: gNBs with one NGAP association each, and the devices behind them.
//!
//! The guard sees frames only (no kernel SCTP here, DESIGN §4), so the lab plays the gNB side of
//! each association on the wire: INIT (verification tag 0, RFC 9260 §8.5.1), COOKIE ECHO, then
//! DATA with NGSetupRequest (TS 38.413 §8.7.1), then per access attempt an InitialUEMessage
//! (Registration Request, §8.6.1) and an UplinkNASTransport (§8.6.3) on the same RAN-UE-NGAP-ID;
//! HEARTBEATs now and then. Each association keeps its own verification tag (the AMF's) and a
//! TSN that grows by one per DATA chunk, as RFC 9260 §6.1 has it. Frames are built by
//! [`crate::sctp_frames`] (written from the specs, tshark-verified).
//!
//! [`Model::new`] turns a scenario into a list of timed events (reproducible from its seed);
//! [`Model::slot`] builds the frames of one time slot in order.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::spec::N2Scenario;
use crate::sctp_frames::{
    ngap::{self, FiveGSTmsi, InitialUeMessage, PLMN_00101},
    Chunk, SctpFrame,
};

pub const AMF: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 1);
/// MACs of the N2 veth pair (RAN side sends to the CORE side).
pub const CORE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
pub const RAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x02];
/// AMF Set ID and AMF Pointer of every 5G-S-TMSI in the lab.
const AMF_SET: u16 = 1;
const AMF_PTR: u8 = 1;

/// gNB `g`'s address: 10.100.0.11 + g.
pub fn gnb_addr(g: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 100, 0, 11)) + g)
}

/// NR Cell Identity (36 bits, TS 38.413 §9.3.1.7): a 22-bit gNB ID (0x100 + g) and a 14-bit
/// cell number.
pub fn nci(g: u32, c: u32) -> u64 {
    ((0x100 + u64::from(g)) << 14) | u64::from(c)
}

/// A cell as the response hook names it (docs/n2.md §4.3): `nr:<PLMN octets>:<NCI>`.
pub fn cell_name(g: u32, c: u32) -> String {
    format!("nr:00f110:0x{:09x}", nci(g, c))
}

/// A device as the response hook names it: `5g-s-tmsi:<AMF set>:<AMF pointer>:<5G-TMSI>`.
pub fn device_name(tmsi: u32) -> String {
    format!("5g-s-tmsi:{AMF_SET}:{AMF_PTR}:0x{tmsi:08x}")
}

/// 5G-TMSI ranges of the device populations (distinct, so ground truth is exact).
pub const TMSI_BACKGROUND: u32 = 0x1000_0000;
pub const TMSI_CROWD: u32 = 0x2000_0000;
pub const TMSI_BENIGN_IN_CELL: u32 = 0xb000_0000;
pub const TMSI_INFECTED: u32 = 0xc000_0000;

/// What a frame is, for counting at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxKind {
    Init,
    CookieEcho,
    Data,
    Heartbeat,
    Other,
}

impl TxKind {
    /// The kind of an SCTP frame by its first chunk type (RFC 9260 §3.2): every lab frame
    /// carries one chunk.
    pub fn of_chunk(t: u8) -> TxKind {
        match t {
            0 => TxKind::Data,
            1 => TxKind::Init,
            10 => TxKind::CookieEcho,
            4 => TxKind::Heartbeat,
            _ => TxKind::Other,
        }
    }
}

/// One frame to send.
#[derive(Clone, Debug)]
pub struct Tx {
    pub frame: Vec<u8>,
    pub src: Ipv4Addr,
    pub kind: TxKind,
}

/// A device: registered (5G-S-TMSI, Registration Request with its 5G-GUTI) or registering from
/// scratch (SUCI, no S-TMSI).
#[derive(Clone, Copy, Debug)]
enum Dev {
    Tmsi(u32),
    Suci(u64),
    /// SUCI-only with a given RRC establishment cause.
    SuciCause(u64, u8),
}

#[derive(Clone, Copy, Debug)]
enum Event {
    /// INIT, COOKIE ECHO and NGSetupRequest of gNB g.
    Setup(u32),
    Heartbeat(u32),
    /// An access attempt of a device in cell (g, c).
    Attempt {
        g: u32,
        c: u32,
        dev: Dev,
    },
    /// An UplinkNASTransport of an existing UE context of gNB g.
    Data(u32),
    RogueInit,
}

/// One gNB's association, as its packets show it.
#[derive(Clone, Debug)]
struct Assoc {
    src: Ipv4Addr,
    /// The AMF's Initiate Tag, which the gNB puts in every packet after the INIT.
    vtag: u32,
    init_tag: u32,
    tsn: u32,
    ran_ue: u32,
    amf_ue: u64,
}

impl Assoc {
    fn new(src: Ipv4Addr, i: u32) -> Assoc {
        Assoc { src, vtag: 0xa000_0000 | i, init_tag: 0x5000_0000 | i, tsn: 1000, ran_ue: 0, amf_ue: 0 }
    }

    fn tx(&self, f: SctpFrame, kind: TxKind) -> Tx {
        let mut frame = f.build();
        frame[0..6].copy_from_slice(&CORE_MAC);
        frame[6..12].copy_from_slice(&RAN_MAC);
        Tx { frame, src: self.src, kind }
    }

    fn base(&self) -> SctpFrame {
        SctpFrame::ngap().v4(self.src, AMF).vtag(self.vtag)
    }

    fn init(&self) -> Tx {
        let f = SctpFrame::ngap().v4(self.src, AMF).vtag(0).chunk(Chunk::init(self.init_tag, self.tsn));
        self.tx(f, TxKind::Init)
    }

    fn data(&mut self, pdu: &[u8]) -> Tx {
        let t = self.tsn;
        self.tsn = self.tsn.wrapping_add(1);
        self.tx(self.base().chunk(Chunk::ngap(t, pdu)), TxKind::Data)
    }
}

/// A 5GMM Authentication Response (TS 24.501 §8.2.2): plain, RES* (16 octets).
fn authentication_response(seed: u32) -> Vec<u8> {
    let mut n = vec![0x7e, 0x00, 0x57, 0x2d, 0x10];
    n.extend((0..16u32).map(|i| (seed.wrapping_mul(31).wrapping_add(i)) as u8));
    n
}

/// xorshift64*: reproducible traffic from the scenario's seed.
/// xorshift64*: the same traffic from the same seed (also the real-n2 plan's).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the lab knows that the guard must find out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Truth {
    /// Storm: the infected devices, their gNB and cell, as the hook names them.
    pub infected: BTreeSet<String>,
    pub storm_gnb: Option<String>,
    pub storm_cell: Option<String>,
    /// Storm and crowd: the onset, seconds after the traffic starts.
    pub onset_s: f64,
    /// Attempts planned per population.
    pub attempts_storm: u64,
    pub attempts_crowd: u64,
    pub attempts_background: u64,
    pub crowd_devices: u64,
    /// INIT flood: the rogue and the established gNBs.
    pub rogue: Option<Ipv4Addr>,
    pub gnbs: Vec<Ipv4Addr>,
    /// SUCI-only storm: its cells and their gNBs, as the hook names them, and its attempts.
    pub suci_cells: BTreeSet<String>,
    pub suci_gnbs: BTreeSet<String>,
    pub attempts_suci: u64,
}

/// The scenario's traffic, as timed events.
pub struct Model {
    events: Vec<(f64, Event)>,
    next: usize,
    assocs: Vec<Assoc>,
    rogue: Option<Assoc>,
    pub truth: Truth,
}

impl Model {
    pub fn new(s: &N2Scenario) -> Model {
        let mut rng = Rng::new(s.seed);
        let mut ev: Vec<(f64, Event)> = Vec::new();
        let mut truth = Truth { gnbs: (0..s.ran.gnbs).map(gnb_addr).collect(), ..Truth::default() };
        let dur = s.duration_s;
        for g in 0..s.ran.gnbs {
            // Associations come up in the first 100 ms, before any UE traffic.
            ev.push((0.01 * f64::from(g % 10), Event::Setup(g)));
            if s.ran.heartbeat_s > 0.0 {
                let mut t = s.ran.heartbeat_s * rng.unit();
                while t < dur {
                    ev.push((t, Event::Heartbeat(g)));
                    t += s.ran.heartbeat_s;
                }
            }
        }
        let cells = s.ran.gnbs * s.ran.cells_per_gnb;
        let b = &s.background;
        if b.attempts_per_s > 0.0 {
            let period = 1.0 / b.attempts_per_s;
            let n = (dur * b.attempts_per_s) as u64;
            for k in 0..n {
                let t = (0.5 + k as f64 * period + period * rng.unit()).min(dur - 0.01);
                // Devices take turns (k modulo the population); each lives in one cell.
                let d = (k % u64::from(b.devices)) as u32;
                let cell = d % cells;
                let dev = Dev::Tmsi(TMSI_BACKGROUND + d);
                ev.push((t, Event::Attempt { g: cell / s.ran.cells_per_gnb, c: cell % s.ran.cells_per_gnb, dev }));
                truth.attempts_background += 1;
            }
        }
        if let Some(st) = &s.storm {
            truth.onset_s = st.onset_s;
            truth.storm_gnb = Some(gnb_addr(st.gnb).to_string());
            truth.storm_cell = Some(cell_name(st.gnb, st.cell));
            let period = 1.0 / st.rate_per_device;
            let end = st.onset_s + st.length_s;
            for i in 0..st.infected {
                let tmsi = TMSI_INFECTED + i;
                truth.infected.insert(device_name(tmsi));
                let mut t = st.onset_s + period * rng.unit();
                while t < end {
                    ev.push((t, Event::Attempt { g: st.gnb, c: st.cell, dev: Dev::Tmsi(tmsi) }));
                    truth.attempts_storm += 1;
                    t += period * (1.0 + st.jitter * (2.0 * rng.unit() - 1.0));
                }
            }
            for i in 0..st.benign_in_cell {
                let t = st.onset_s + st.length_s * rng.unit();
                ev.push((t, Event::Attempt { g: st.gnb, c: st.cell, dev: Dev::Tmsi(TMSI_BENIGN_IN_CELL + i) }));
            }
        }
        if let Some(c) = &s.crowd {
            truth.onset_s = c.onset_s;
            truth.crowd_devices = u64::from(c.devices);
            for i in 0..c.devices {
                let dev = if rng.unit() < c.with_s_tmsi_fraction {
                    Dev::Tmsi(TMSI_CROWD + i)
                } else {
                    Dev::Suci(1_000_000_000 + u64::from(i))
                };
                let cell = c.cells[i as usize % c.cells.len()];
                let t = c.onset_s + c.length_s * rng.unit();
                ev.push((t, Event::Attempt { g: c.gnb, c: cell, dev }));
                truth.attempts_crowd += 1;
                if rng.unit() < c.retry_fraction {
                    let r = t + 2.0 + 4.0 * rng.unit();
                    if r < dur {
                        ev.push((r, Event::Attempt { g: c.gnb, c: cell, dev }));
                        truth.attempts_crowd += 1;
                    }
                }
            }
        }
        if let Some(st) = &s.suci_storm {
            truth.onset_s = st.onset_s;
            // MSINs never reused: no attempt can be linked to another by identity.
            let mut msin = 7_000_000_000u64;
            let period = 1.0 / st.rate_per_cell;
            for &[g, c] in &st.cells {
                truth.suci_cells.insert(cell_name(g, c));
                truth.suci_gnbs.insert(gnb_addr(g).to_string());
                let mut t = st.onset_s + period * rng.unit();
                while t < st.onset_s + st.length_s {
                    msin += 1;
                    ev.push((t, Event::Attempt { g, c, dev: Dev::SuciCause(msin, st.cause) }));
                    truth.attempts_suci += 1;
                    t += period * (0.7 + 0.6 * rng.unit());
                }
            }
            if st.benign_new_per_s > 0.0 {
                let n = (dur * st.benign_new_per_s) as u64;
                for k in 0..n {
                    let cell = (rng.next() % u64::from(cells)) as u32;
                    let t = (0.5 + (dur - 0.5) * rng.unit()).min(dur - 0.01);
                    let dev = Dev::Suci(8_000_000_000 + k);
                    ev.push((t, Event::Attempt { g: cell / s.ran.cells_per_gnb, c: cell % s.ran.cells_per_gnb, dev }));
                }
            }
        }
        let mut rogue = None;
        if let Some(f) = &s.init_flood {
            truth.rogue = Some(f.rogue);
            rogue = Some(Assoc::new(f.rogue, 0xfff));
            let n = (f.length_s * f.init_pps as f64) as u64;
            for k in 0..n {
                ev.push((f.onset_s + k as f64 / f.init_pps as f64, Event::RogueInit));
            }
            if f.data_pps_per_gnb > 0.0 {
                let period = 1.0 / f.data_pps_per_gnb;
                for g in 0..s.ran.gnbs {
                    let mut t = 0.3 + period * rng.unit();
                    while t < dur {
                        ev.push((t, Event::Data(g)));
                        t += period;
                    }
                }
            }
        }
        // Stable: events at the same instant keep their order.
        ev.sort_by(|a, b| a.0.total_cmp(&b.0));
        let assocs = (0..s.ran.gnbs).map(|g| Assoc::new(gnb_addr(g), g)).collect();
        Model { events: ev, next: 0, assocs, rogue, truth }
    }

    /// Keep only the access attempts that reach AMF `member` of an AMF set of `of`, as a gNB
    /// spreads them (TS 23.501 §5.21.2.1): a registered device by its 5G-S-TMSI (it goes back to
    /// the AMF it names), a new one by its SUCI; each gNB keeps an association with every AMF,
    /// so setups and heartbeats stay. The split is even and fixed per device.
    pub fn split(mut self, member: u64, of: u64) -> Model {
        let of = of.max(1);
        self.events.retain(|(_, e)| match e {
            Event::Attempt { dev: Dev::Tmsi(t), .. } => u64::from(*t) % of == member,
            Event::Attempt { dev: Dev::Suci(m) | Dev::SuciCause(m, _), .. } => m % of == member,
            _ => true,
        });
        self.truth.infected.retain(|d| {
            d.rsplit("0x").next().and_then(|h| u64::from_str_radix(h, 16).ok()).is_some_and(|t| t % of == member)
        });
        self
    }

    /// [`Model::split`], with the devices `moved` (5G-TMSIs) going to AMF `to` from `after_s` on:
    /// the storm moved them to another AMF of the set (one failed or was overloaded, the gNB
    /// re-selected; TS 23.501 §5.21.2). The ground truth's infected devices are those whose
    /// attempts reach this AMF at some point.
    pub fn split_moving(mut self, member: u64, of: u64, moved: &BTreeSet<u32>, after_s: f64, to: u64) -> Model {
        let of = of.max(1);
        let owner = |t: u32, at: f64| if moved.contains(&t) && at >= after_s { to } else { u64::from(t) % of };
        self.events.retain(|(at, e)| match e {
            Event::Attempt { dev: Dev::Tmsi(t), .. } => owner(*t, *at) == member,
            Event::Attempt { dev: Dev::Suci(m) | Dev::SuciCause(m, _), .. } => m % of == member,
            _ => true,
        });
        self.truth.infected.retain(|d| {
            d.rsplit("0x")
                .next()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .is_some_and(|t| u64::from(t) % of == member || (moved.contains(&t) && to == member))
        });
        self
    }

    /// When the attempts of 5G-TMSI `tmsi` reach this model's AMF, in seconds from the start.
    pub fn attempts_of(&self, tmsi: u32) -> Vec<f64> {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Attempt { dev: Dev::Tmsi(t), .. } if *t == tmsi))
            .map(|(at, _)| *at)
            .collect()
    }

    /// Events left.
    pub fn remaining(&self) -> usize {
        self.events.len() - self.next
    }

    /// The frames of the events in [.., `until_s`), in order.
    pub fn slot(&mut self, until_s: f64) -> Vec<Tx> {
        let mut out = Vec::new();
        while let Some(&(t, e)) = self.events.get(self.next) {
            if t >= until_s {
                break;
            }
            self.next += 1;
            self.emit(e, &mut out);
        }
        out
    }

    fn emit(&mut self, e: Event, out: &mut Vec<Tx>) {
        match e {
            Event::Setup(g) => {
                let Some(a) = self.assocs.get_mut(g as usize) else { return };
                out.push(a.init());
                let cookie: Vec<u8> = (0..32).map(|i| (i as u8) ^ (g as u8)).collect();
                out.push(a.tx(a.base().chunk(Chunk::cookie_echo(&cookie)), TxKind::CookieEcho));
                out.push(a.data(&ngap::ng_setup_request(0x100 + g, &format!("lab-gnb-{g}"))));
            }
            Event::Heartbeat(g) => {
                let Some(a) = self.assocs.get(g as usize) else { return };
                out.push(a.tx(a.base().chunk(Chunk::heartbeat(&g.to_be_bytes().repeat(3))), TxKind::Heartbeat));
            }
            Event::Attempt { g, c, dev } => {
                let Some(a) = self.assocs.get_mut(g as usize) else { return };
                a.ran_ue = a.ran_ue.wrapping_add(1);
                a.amf_ue = a.amf_ue.wrapping_add(1);
                let (ran_ue, amf_ue, cell) = (a.ran_ue, a.amf_ue, nci(g, c));
                let msg = match dev {
                    Dev::Tmsi(tmsi) => {
                        let t = FiveGSTmsi { set_id: AMF_SET, pointer: AMF_PTR, tmsi };
                        InitialUeMessage::nr(ran_ue, cell)
                            .s_tmsi(AMF_SET, AMF_PTR, tmsi)
                            .nas(ngap::registration_request_guti(&PLMN_00101, 1, t))
                    }
                    Dev::Suci(msin) => {
                        InitialUeMessage::nr(ran_ue, cell).nas(ngap::registration_request_suci(&PLMN_00101, msin))
                    }
                    Dev::SuciCause(msin, cause) => InitialUeMessage::nr(ran_ue, cell)
                        .cause(cause)
                        .nas(ngap::registration_request_suci(&PLMN_00101, msin)),
                };
                out.push(a.data(&msg.encode()));
                let nas = authentication_response(ran_ue);
                out.push(a.data(&ngap::uplink_nas_transport(amf_ue, ran_ue, &nas, cell)));
            }
            Event::Data(g) => {
                let Some(a) = self.assocs.get_mut(g as usize) else { return };
                let (ran_ue, cell) = (1 + (a.tsn % 64), nci(g, 0));
                let nas = authentication_response(a.tsn);
                out.push(a.data(&ngap::uplink_nas_transport(u64::from(ran_ue), ran_ue, &nas, cell)));
            }
            Event::RogueInit => {
                if let Some(r) = self.rogue.as_mut() {
                    // A fresh Initiate Tag per INIT, as a flooding tool would send.
                    r.init_tag = r.init_tag.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    out.push(r.init());
                }
            }
        }
    }
}
