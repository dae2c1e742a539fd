//! N2 lab scenario files (`lab/scenarios/n2_*.toml`): what traffic the RAN side sends, what the
//! lab must see, and the `--n2-config` handed to `guard run` (the `[n2]` table, with the keys of
//! `config/n2.example.toml`; its windows are shortened so a scenario fits in about 30 s).
//!
//! Every key is documented in the shipped scenario files; unknown keys are refused.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct N2Scenario {
    /// Short name: the output directory `<out>/n2/<name>/` and the report row.
    pub name: String,
    pub title: String,
    /// The DESIGN §1 threat it exercises.
    pub threat: String,
    pub description: String,
    /// Length of the traffic, seconds (the guard is up before it starts).
    pub duration_s: f64,
    /// Pacing granularity: the traffic of each slot is sent evenly spread over the slot.
    #[serde(default = "default_slot_ms")]
    pub slot_ms: u64,
    /// Seed of the traffic model (device phases, jitter, crowd arrival times).
    #[serde(default)]
    pub seed: u64,
    pub ran: RanSpec,
    #[serde(default)]
    pub background: BackgroundSpec,
    pub storm: Option<StormSpec>,
    pub crowd: Option<CrowdSpec>,
    pub init_flood: Option<InitFloodSpec>,
    pub suci_storm: Option<SuciStormSpec>,
    #[serde(default)]
    pub expect: ExpectSpec,
    /// The N2 configuration of `guard run` (`--n2-config`), as in `config/n2.example.toml`. The lab
    /// adds the `[hook]` (an exec recorder) itself.
    pub n2: toml::Table,
}

fn default_slot_ms() -> u64 {
    250
}

/// The RAN: gNBs with an established NGAP association each (INIT, COOKIE ECHO, NGSetupRequest
/// at the start), `cells_per_gnb` NR cells each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RanSpec {
    /// gNBs 10.100.0.11, .12, ... (1..=50).
    pub gnbs: u32,
    /// NR cells per gNB (1..=16). Cell `c` of gNB `g` has NCI (gNB-ID 0x100+g) << 14 | c.
    pub cells_per_gnb: u32,
    /// A HEARTBEAT per association this often (0: none).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_s: f64,
}

fn default_heartbeat() -> f64 {
    5.0
}

/// Normal signalling: registered devices (5G-S-TMSI) spread over every cell, each attempt an
/// InitialUEMessage (Registration Request with the 5G-GUTI) and an UplinkNASTransport.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackgroundSpec {
    pub devices: u32,
    /// InitialUEMessages per second, all cells together. The devices take turns, so each
    /// attempts about `attempts_per_s × duration_s / devices` times.
    pub attempts_per_s: f64,
}

/// T2: infected devices in one cell registering again and again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StormSpec {
    pub onset_s: f64,
    pub length_s: f64,
    /// Index of the gNB (0-based) and of the cell on it.
    pub gnb: u32,
    pub cell: u32,
    /// Infected devices (distinct 5G-S-TMSIs).
    pub infected: u32,
    /// Registration attempts per second per infected device, each period jittered by ±`jitter`.
    pub rate_per_device: f64,
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Normal devices of the same cell that register once during the storm (must not be listed).
    #[serde(default)]
    pub benign_in_cell: u32,
}

fn default_jitter() -> f64 {
    0.3
}

/// A natural flash crowd (an earthquake): many distinct devices, about one attempt each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrowdSpec {
    pub onset_s: f64,
    pub length_s: f64,
    pub gnb: u32,
    /// Cells of that gNB the crowd is in.
    pub cells: Vec<u32>,
    pub devices: u32,
    /// Share of the devices that try a second time 2-6 s later (a failed first attempt).
    #[serde(default)]
    pub retry_fraction: f64,
    /// Share of the devices already registered (5G-S-TMSI + GUTI); the others register from
    /// scratch with a SUCI (no S-TMSI: keyed by gNB + RAN-UE-NGAP-ID).
    #[serde(default = "default_half")]
    pub with_s_tmsi_fraction: f64,
}

fn default_half() -> f64 {
    0.5
}

/// A storm of SUCI-only registrations (issue 18): every attempt from a SUCI never seen before
/// (a cohort misprovisioned by a re-flash, devices that discard their GUTI, or a forger), so no
/// device repeats; the guard must attribute it to its cells by pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuciStormSpec {
    pub onset_s: f64,
    pub length_s: f64,
    /// The storm's cells, as [gNB index, cell index] pairs.
    pub cells: Vec<[u32; 2]>,
    /// SUCI-only Registration Requests per second in each of those cells.
    pub rate_per_cell: f64,
    /// Their RRC establishment cause (TS 38.413 §9.3.1.111 root index; 3 mo-Signalling).
    #[serde(default = "default_cause")]
    pub cause: u8,
    /// Benign new devices registering with a SUCI anywhere (every cell, the whole scenario, each
    /// once), so a SUCI-only attempt alone proves nothing.
    #[serde(default)]
    pub benign_new_per_s: f64,
}

fn default_cause() -> u8 {
    3
}

/// An INIT flood from a rogue source while the established associations carry DATA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitFloodSpec {
    pub onset_s: f64,
    pub length_s: f64,
    /// The rogue source (not one of the gNBs).
    pub rogue: Ipv4Addr,
    pub init_pps: u64,
    /// UplinkNASTransport DATA per second per established gNB during the whole scenario.
    pub data_pps_per_gnb: f64,
}

/// Pass thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpectSpec {
    /// Storm: the OVERLOAD START's device list against the infected devices.
    pub min_precision: f64,
    pub min_recall: f64,
    /// Storm: OVERLOAD START within this many seconds of the onset.
    pub overload_within_s: f64,
    /// INIT flood: the share of the established associations' DATA that must arrive.
    pub data_delivery: f64,
    /// INIT flood: the share of the rogue's INITs that may arrive.
    pub max_init_share: f64,
}

impl Default for ExpectSpec {
    fn default() -> Self {
        ExpectSpec {
            min_precision: 0.9,
            min_recall: 0.9,
            overload_within_s: 30.0,
            data_delivery: 1.0,
            max_init_share: 0.25,
        }
    }
}

/// What the lab checks, by the traffic the scenario has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Storm,
    Crowd,
    InitFlood,
    SuciStorm,
}

impl N2Scenario {
    pub fn read(path: &Path) -> Result<N2Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<N2Scenario> {
        let s: N2Scenario = toml::from_str(text).context("parsing the scenario")?;
        s.validate()?;
        Ok(s)
    }

    pub fn kind(&self) -> Kind {
        if self.storm.is_some() {
            Kind::Storm
        } else if self.crowd.is_some() {
            Kind::Crowd
        } else if self.suci_storm.is_some() {
            Kind::SuciStorm
        } else {
            Kind::InitFlood
        }
    }

    /// Bounds that keep a scenario a lab run: bounded in time and packets.
    fn validate(&self) -> Result<()> {
        let n = [self.storm.is_some(), self.crowd.is_some(), self.init_flood.is_some(), self.suci_storm.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if n != 1 {
            bail!("exactly one of [storm], [crowd], [init_flood], [suci_storm] (got {n})");
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 120.0) {
            bail!("duration_s must be within (0, 120]");
        }
        if !(50..=1000).contains(&self.slot_ms) {
            bail!("slot_ms must be within 50..=1000");
        }
        if !(1..=50).contains(&self.ran.gnbs) || !(1..=16).contains(&self.ran.cells_per_gnb) {
            bail!("ran.gnbs must be 1..=50, ran.cells_per_gnb 1..=16");
        }
        if self.background.attempts_per_s < 0.0 || self.background.attempts_per_s > 2000.0 {
            bail!("background.attempts_per_s must be within 0..=2000");
        }
        if self.background.attempts_per_s > 0.0 && self.background.devices == 0 {
            bail!("background.attempts_per_s needs background.devices");
        }
        let window = |on: f64, len: f64| on >= 0.0 && len > 0.0 && on + len <= self.duration_s;
        let cell_ok = |g: u32, c: u32| g < self.ran.gnbs && c < self.ran.cells_per_gnb;
        if let Some(s) = &self.storm {
            if !window(s.onset_s, s.length_s) || !cell_ok(s.gnb, s.cell) {
                bail!("storm: onset + length within duration_s, gnb / cell within [ran]");
            }
            if !((1..=20_000).contains(&s.infected) && s.rate_per_device > 0.0 && s.rate_per_device <= 20.0) {
                bail!("storm: infected 1..=20000, rate_per_device within (0, 20]");
            }
            if !(0.0..1.0).contains(&s.jitter) {
                bail!("storm: jitter within [0, 1)");
            }
        }
        if let Some(c) = &self.crowd {
            if !window(c.onset_s, c.length_s) || c.cells.is_empty() || c.cells.iter().any(|x| !cell_ok(c.gnb, *x)) {
                bail!("crowd: onset + length within duration_s, gnb / cells within [ran]");
            }
            if !(1..=100_000).contains(&c.devices)
                || !(0.0..=1.0).contains(&c.retry_fraction)
                || !(0.0..=1.0).contains(&c.with_s_tmsi_fraction)
            {
                bail!("crowd: devices 1..=100000, fractions within [0, 1]");
            }
        }
        if let Some(f) = &self.init_flood {
            if !window(f.onset_s, f.length_s) || !(1..=20_000).contains(&f.init_pps) {
                bail!("init_flood: onset + length within duration_s, init_pps 1..=20000");
            }
            if !(0.0..=2000.0).contains(&f.data_pps_per_gnb) {
                bail!("init_flood: data_pps_per_gnb within 0..=2000");
            }
            if (0..self.ran.gnbs).any(|g| crate::n2lab::ran::gnb_addr(g) == f.rogue) {
                bail!("init_flood: the rogue must not be one of the gNBs");
            }
        }
        if let Some(s) = &self.suci_storm {
            if !window(s.onset_s, s.length_s) || s.cells.is_empty() || s.cells.iter().any(|c| !cell_ok(c[0], c[1])) {
                bail!("suci_storm: onset + length within duration_s, cells within [ran]");
            }
            if !(s.rate_per_cell > 0.0 && s.rate_per_cell <= 500.0 && (0.0..=100.0).contains(&s.benign_new_per_s)) {
                bail!("suci_storm: rate_per_cell within (0, 500], benign_new_per_s within [0, 100]");
            }
            if s.cause > 9 {
                bail!("suci_storm: cause is a root index 0..=9 (TS 38.413 §9.3.1.111)");
            }
        }
        if self.n2.contains_key("hook") {
            bail!("[n2.hook] is set by the lab (an exec recorder)");
        }
        Ok(())
    }
}
