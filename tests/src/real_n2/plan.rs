//! What the real-n2 gNBs send and when: the scenario's parameters (full and quick), the timed
//! NGAP messages of the benign background and of the registration storm, and the ground truth
//! the storm judge needs. The messages are specified here as JSON for the pycrate encoder
//! (`tests/peers/ngap_pycrate.py`); no byte of NGAP is built in Rust.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::{json, Value};

use crate::n2lab::ran::{
    cell_name, device_name, gnb_addr, nci, Rng, Truth, TMSI_BACKGROUND, TMSI_CROWD, TMSI_INFECTED,
};

/// AMF Set ID and Pointer of the lab's 5G-S-TMSIs (as `n2lab::ran` names devices).
const AMF_SET: u64 = 1;
const AMF_PTR: u64 = 1;

/// The scenario's knobs.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// Benign gNBs (10.100.0.11..); the victim of the forged INIT flood is the next address.
    pub benign: u32,
    pub cells_per_gnb: u32,
    /// Background access attempts (InitialUEMessage + UplinkNASTransport) per gNB per second.
    pub bg_per_gnb_s: f64,
    /// Distinct background devices (5G-S-TMSIs); most attempts come from them.
    pub bg_devices: u32,
    /// Storm: onset and length (s after the traffic starts), its gNB index and cell.
    pub storm_onset_s: f64,
    pub storm_len_s: f64,
    pub storm_gnb: u32,
    pub storm_cell: u32,
    pub infected: u32,
    pub rate_per_device: f64,
    /// A flash crowd beside the storm (T1, not T2): this many distinct devices, each accessing
    /// once, on every cell of gNB 0, over `crowd_len_s` from the storm's onset. Nothing may
    /// name them: a natural crowd is served, not barred (NGMN: tell a flash crowd from an attack).
    pub crowd_devices: u32,
    pub crowd_len_s: f64,
    /// Offenders needed for barring and for OVERLOAD START (docs/n2.md §4.2).
    pub min_offenders_barring: u32,
    pub min_offenders_overload: u32,
    /// Forged INIT flood: onset (s after the traffic starts), length, rate.
    pub flood_onset_s: f64,
    pub flood_len_s: f64,
    pub flood_pps: u64,
    /// The victim gNB reconnects this long after the flood's onset (the guard has staged its
    /// address by then).
    pub reconnect_after_s: f64,
    /// How long the victim's association may take before the run gives up waiting.
    pub assoc_wait_s: f64,
    /// HEARTBEAT interval of both stacks (RFC 9260 §8.3), ms.
    pub heartbeat_ms: u32,
}

impl Params {
    pub fn new(quick: bool) -> Params {
        if quick {
            Params {
                benign: 2,
                cells_per_gnb: 2,
                bg_per_gnb_s: 2.0,
                bg_devices: 200,
                storm_onset_s: 4.0,
                storm_len_s: 18.0,
                storm_gnb: 1,
                storm_cell: 1,
                infected: 40,
                rate_per_device: 1.25,
                crowd_devices: 120,
                crowd_len_s: 8.0,
                min_offenders_barring: 10,
                min_offenders_overload: 25,
                flood_onset_s: 23.0,
                flood_len_s: 14.0,
                flood_pps: 1000,
                reconnect_after_s: 4.0,
                assoc_wait_s: 25.0,
                heartbeat_ms: 1000,
            }
        } else {
            Params {
                benign: 4,
                cells_per_gnb: 4,
                bg_per_gnb_s: 2.0,
                bg_devices: 800,
                storm_onset_s: 5.0,
                storm_len_s: 24.0,
                storm_gnb: 1,
                storm_cell: 2,
                infected: 250,
                rate_per_device: 1.25,
                crowd_devices: 400,
                crowd_len_s: 10.0,
                min_offenders_barring: 50,
                min_offenders_overload: 200,
                flood_onset_s: 31.0,
                flood_len_s: 30.0,
                flood_pps: 1000,
                reconnect_after_s: 4.0,
                assoc_wait_s: 60.0,
                heartbeat_ms: 1000,
            }
        }
    }

    /// The forged INITs the flood is to send.
    pub fn flood_inits(&self) -> u64 {
        (self.flood_pps as f64 * self.flood_len_s) as u64
    }

    /// The victim gNB's index (its address is `gnb_addr(victim())`).
    pub fn victim(&self) -> u32 {
        self.benign
    }

    /// End of the background traffic.
    pub fn horizon_s(&self) -> f64 {
        self.flood_onset_s + self.flood_len_s + 4.0
    }
}

/// One NGAP message to send: when, from which gNB, on which stream, the pycrate spec.
#[derive(Clone, Debug)]
pub struct Msg {
    pub t_s: f64,
    pub gnb: u32,
    pub stream: u16,
    pub spec: Value,
    pub storm: bool,
    pub crowd: bool,
}

/// The RRC establishment causes of the background (TS 38.413 §9.3.1.111, pycrate's names):
/// root values and `notAvailable`, an extension value the guard reports as "no root cause".
const CAUSES: [&str; 6] = ["mo-Signalling", "mo-Data", "mt-Access", "mo-VoiceCall", "notAvailable", "mo-SMS"];

/// The NGSetupRequest of gNB `g` (TS 38.413 §8.7.1): gNB ID 0x100 + g, as `n2lab::ran::nci`.
pub fn ng_setup(g: u32) -> Value {
    json!({"k": "ng_setup", "gnb_id": 0x100 + g, "name": format!("real-gnb-{g}"), "tac": 1})
}

pub fn ng_setup_response() -> Value {
    json!({"k": "ng_setup_response", "name": "real-amf"})
}

/// The timed messages of the run and the storm's ground truth.
pub struct Plan {
    pub msgs: Vec<Msg>,
    pub truth: Truth,
    /// The flash crowd's devices and cells, as the hook would name them.
    pub crowd: BTreeSet<String>,
    pub crowd_cells: BTreeSet<String>,
}

impl Plan {
    pub fn new(p: &Params) -> Plan {
        let mut rng = Rng(0x5eed_2b0a_11ce_0001);
        let mut msgs = Vec::new();
        let mut ran_ue = vec![0u64; (p.benign + 1) as usize];
        let end = p.horizon_s();
        // Background: each benign gNB, Poisson-like attempts spread evenly with jitter. The
        // variants cover what labkit's own encoder never produces (TS 38.413 §9.2.5.1): SUCI
        // registrations without 5G-S-TMSI, a NAS-PDU over 128 octets (2-octet length), the
        // AMFSetID and UEContextRequest IEs, an extension RRC cause, Service Requests.
        for g in 0..p.benign {
            let n = (end * p.bg_per_gnb_s) as u64;
            for k in 0..n {
                let t = (k as f64 + rng.unit()) / p.bg_per_gnb_s;
                if t >= end {
                    continue;
                }
                let c = (rng.next() % u64::from(p.cells_per_gnb)) as u32;
                let dev = TMSI_BACKGROUND as u64 + rng.next() % u64::from(p.bg_devices);
                let id = &mut ran_ue[g as usize];
                *id += 1;
                let cause = CAUSES[(rng.next() % CAUSES.len() as u64) as usize];
                let mut spec = json!({"k": "iue", "ran_ue": *id, "nci": nci(g, c), "tac": 1, "cause": cause});
                match k % 8 {
                    0 => spec["nas"] = "reg_suci".into(),
                    1 => {
                        spec["nas"] = "long".into();
                        spec["ue_ctx_req"] = true.into();
                        spec["amf_set"] = json!([0xca, AMF_SET, AMF_PTR]);
                    }
                    2 | 5 => {
                        spec["nas"] = "service".into();
                        spec["s_tmsi"] = json!([AMF_SET, AMF_PTR, dev]);
                    }
                    _ => {
                        spec["nas"] = "reg_guti".into();
                        spec["guti"] = json!([AMF_SET, AMF_PTR, dev]);
                        spec["s_tmsi"] = json!([AMF_SET, AMF_PTR, dev]);
                    }
                }
                let stream = (*id % 3 + 1) as u16;
                msgs.push(Msg { t_s: t, gnb: g, stream, spec, storm: false, crowd: false });
                let ul = json!({"k": "ulnas", "amf_ue": 0x1000 + *id, "ran_ue": *id, "nci": nci(g, c), "tac": 1,
                                "nas_len": 21 + (*id % 40)});
                msgs.push(Msg { t_s: (t + 0.2).min(end), gnb: g, stream, spec: ul, storm: false, crowd: false });
            }
        }
        // The storm (T2): infected devices of one cell re-register with the same 5G-S-TMSI
        // again and again, each with a jittered period (±30 %).
        let mut infected = BTreeSet::new();
        let (sg, sc) = (p.storm_gnb, p.storm_cell);
        for i in 0..p.infected {
            let tmsi = TMSI_INFECTED + i;
            infected.insert(device_name(tmsi));
            let period = 1.0 / p.rate_per_device;
            let mut t = p.storm_onset_s + rng.unit() * period;
            let mut bound = 0;
            while t < p.storm_onset_s + p.storm_len_s && bound < 10_000 {
                bound += 1;
                let id = &mut ran_ue[sg as usize];
                *id += 1;
                let spec = json!({"k": "iue", "ran_ue": *id, "nci": nci(sg, sc), "tac": 1, "cause": "mo-Signalling",
                                  "nas": "reg_guti", "guti": [AMF_SET, AMF_PTR, tmsi],
                                  "s_tmsi": [AMF_SET, AMF_PTR, tmsi]});
                msgs.push(Msg { t_s: t, gnb: sg, stream: (*id % 3 + 1) as u16, spec, storm: true, crowd: false });
                t += period * (0.7 + 0.6 * rng.unit());
            }
        }
        // The flash crowd: gNB 0's cells, each device once (a fresh 5G-S-TMSI), spread over the
        // window, most as registrations and some as Service Requests.
        let mut crowd = BTreeSet::new();
        let mut crowd_cells = BTreeSet::new();
        for i in 0..p.crowd_devices {
            let tmsi = TMSI_CROWD + i;
            crowd.insert(device_name(tmsi));
            let c = i % p.cells_per_gnb;
            crowd_cells.insert(cell_name(0, c));
            let t = p.storm_onset_s + rng.unit() * p.crowd_len_s;
            let id = &mut ran_ue[0];
            *id += 1;
            let nas = if i % 4 == 0 { "service" } else { "reg_guti" };
            let mut spec = json!({"k": "iue", "ran_ue": *id, "nci": nci(0, c), "tac": 1, "cause": "mo-Data",
                                  "nas": nas, "s_tmsi": [AMF_SET, AMF_PTR, tmsi]});
            if nas == "reg_guti" {
                spec["guti"] = json!([AMF_SET, AMF_PTR, tmsi]);
            }
            msgs.push(Msg { t_s: t, gnb: 0, stream: (*id % 3 + 1) as u16, spec, storm: false, crowd: true });
        }
        msgs.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        let truth = Truth {
            infected,
            storm_gnb: Some(gnb_addr(sg).to_string()),
            storm_cell: Some(cell_name(sg, sc)),
            onset_s: p.storm_onset_s,
            attempts_storm: msgs.iter().filter(|m| m.storm).count() as u64,
            gnbs: (0..p.benign).map(gnb_addr).collect::<Vec<Ipv4Addr>>(),
            ..Truth::default()
        };
        Plan { msgs, truth, crowd, crowd_cells }
    }
}
