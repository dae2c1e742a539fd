//! The fleet lab (issue 23, docs/fleet.md): `cargo xtask lab --scenario fleet`.
//!
//! A three-member etcd cluster ([`etcd`]) and two guard hosts, each an N2 lab topology
//! ([`crate::n2lab::topo`]: its own RAN and CORE namespaces, `guard run --n2-iface`), linked to
//! the cluster's namespace. The scenario (`lab/fleet/split_storm.toml`) is a registration storm in
//! one cell split evenly over the two AMF-side guards. Steps, each recorded as a check:
//! 1. **without fleet mode**: the split storm is missed by both guards (no response);
//! 2. **with fleet mode**: both answer (their own devices); etcd's load measured idle and in the
//!    storm; mid-storm, guard 2 is SIGKILLed and its summary and member keys expire within its
//!    lease, and guard 1 stops counting it;
//!    Device back-off lists: each guard's listed devices are held by the other within 2 s; two
//!    of guard 1's infected devices moved to guard 2's AMF mid-storm are on guard 2's hook list
//!    (marked as guard 1's) within 2 s of their first attempt there;
//! 3. a malformed and an oversized summary put straight into etcd are refused by both guards
//!    (log line, metric), which run on; so are a forged and an expired back-off list; an N3
//!    summary put into etcd is summed by both guards and a forged one refused; a known gNB list
//!    put into etcd is taken by both and a forged and a loopback one refused; a
//!    5G-S-TMSI pin typed on host 1 (`guard fleet pin --tmsi`) is on both hooks' lists within
//!    2 s, and off them within 2 s of its unpin; an operator pin typed on host 1 (`guard device pin --fleet`) is in host 2's data plane
//!    within 2 s;
//! 4. one etcd member killed: a pin still reaches the other host within 2 s; two killed: both
//!    guards run on (connected 0, pins kept, `/readyz` 200); both restored: both reconnect, and
//!    a pin and an unpin converge on both within 2 s.
//!
//! Everything (guards, etcd, namespaces, pins, temporary data) is removed on drop, panics
//! included; traffic stays in the namespaces the lab created and every loop is bounded.

mod backoff;
pub mod etcd;
pub mod n3split;
mod steps;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::generator::{send_frames, SendOpts};
use crate::n2lab::ran::Model;
use crate::n2lab::spec::N2Scenario;
use crate::n2lab::topo::{N2Topo, RunFiles};
use crate::n2lab::Check;
use crate::netns::{unique_name, VethPair};
use etcd::EtcdCluster;

/// How to run the fleet lab.
#[derive(Clone, Debug)]
pub struct FleetOpts {
    pub guard_bin: PathBuf,
    /// Results in `<out>/fleet/`.
    pub out: PathBuf,
    pub scenario: PathBuf,
    pub verbose: bool,
}

/// etcd's load over a window, summed over the members (from their own /metrics).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Load {
    pub window_s: f64,
    /// gRPC messages received (unary requests and stream messages: puts, ranges, keep-alives,
    /// watch requests) per second.
    pub requests_per_s: f64,
    pub puts_per_s: f64,
    pub received_bytes_per_s: f64,
    pub sent_bytes_per_s: f64,
}

/// What a guard answered in one phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Answer {
    pub responses: usize,
    pub max_level: u64,
    /// Seconds after the storm's onset of the first response (level >= 1).
    pub first_s: Option<f64>,
    /// Devices listed, and how many of them are this host's infected devices.
    pub listed: usize,
    pub listed_infected: usize,
    pub infected_here: usize,
    pub fleet_hot_cells: u64,
}

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FleetReport {
    pub scenario: String,
    pub wall_s: f64,
    pub without_fleet: Vec<Answer>,
    pub with_fleet: Vec<Answer>,
    pub load_idle: Load,
    pub load_storm: Load,
    /// Seconds from guard 2's SIGKILL to its keys gone from etcd (lease_ttl 3 s).
    pub guard_kill_expiry_s: Option<f64>,
    /// Seconds from the start of a pin command on one host to the stage in the other's maps.
    pub pin_delays_s: Vec<(String, f64)>,
    /// `overload_guard_fleet_cell_members` of each guard 12 s into the storm.
    pub cell_members_mid_storm: Vec<Option<f64>>,
    /// Seconds from killing one etcd member to a healthy cluster again (an election if it led).
    pub one_member_recovery_s: Option<f64>,
    /// `overload_guard_fleet_cells_published` of each guard then, and the summaries in etcd.
    pub cells_published_mid_storm: Vec<Option<f64>>,
    pub summaries_mid_storm: String,
    /// Seconds from guard i's first listed devices (its hook) to the other guard holding its
    /// list (`overload_guard_fleet_backoff_listed` > 0), polled every slot.
    pub backoff_held_s: Vec<Option<f64>>,
    /// Per device moved from guard 1 to guard 2: seconds from its first attempt at guard 2 to
    /// guard 2's hook listing it as guard 1's.
    pub moved_listed_s: Vec<(String, Option<f64>)>,
    /// Seconds from `guard fleet pin --tmsi` on host 1 to each host's hook listing the device,
    /// and from the unpin to each hook's response without it.
    pub tmsi_pin_s: Vec<Option<f64>>,
    pub tmsi_unpin_s: Vec<Option<f64>>,
    pub checks: Vec<Check>,
}

impl FleetReport {
    pub fn pass(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.pass)
    }

    fn check(&mut self, name: &str, pass: bool, detail: String) {
        eprintln!("{} {name}: {detail}", if pass { "PASS" } else { "FAIL" });
        self.checks.push(Check { name: name.to_owned(), pass, detail });
    }
}

/// The lease of each guard's fleet member (its keys expire this long after it dies).
pub const LEASE_TTL_S: u64 = 3;

/// When two of guard 1's infected devices move to guard 2's AMF, after the storm's onset: both
/// guards answer by then (guard 1 with those devices listed), guard 2 is killed 8 s later.
pub const MOVE_AFTER_ONSET_S: f64 = 16.0;

/// One guard host: an N2 lab topology, linked to the cluster.
pub struct Host {
    pub topo: N2Topo,
    _link: VethPair,
    pub member: String,
}

impl Host {
    fn new(opts: &FleetOpts, c: &EtcdCluster, i: u8, phase: &str, fleet: Option<&str>) -> Result<Host> {
        let files = RunFiles::new(&opts.out.join("fleet").join(phase).join(format!("host{i}")));
        let mut topo = N2Topo::new(&opts.guard_bin, files)?;
        let link = c.connect(&topo.lab.core, i)?;
        let member = format!("amf-{i}");
        // UE pins apply on guards keyed by UE address (docs/fleet.md).
        topo.guard_key("key_mode", "ue_addr".into());
        if let Some(name) = fleet {
            let t: toml::Table = toml::from_str(&format!(
                "endpoints = {eps:?}\nname = \"{name}\"\nmember = \"{member}\"\ninsecure = true\nlease_ttl = \"{LEASE_TTL_S}s\"\n\
                 [sync]\ntimeout = \"1s\"\nretry = \"200ms\"\nretry_max = \"1s\"\nresync = \"10s\"\n\
                 [cells]\ninterval = \"500ms\"\n",
                eps = EtcdCluster::endpoints(),
            ))
            .context("the lab's [fleet]")?;
            topo.add_table("fleet", t);
        }
        Ok(Host { topo, _link: link, member })
    }

    /// The value of a series of this guard's metrics.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let body = self.topo.metrics()?;
        body.lines()
            .find(|l| l.strip_prefix(series).is_some_and(|r| r.starts_with(' ')))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

/// Start both guards on `sc`'s N2 settings.
fn start(hosts: &mut [Host], sc: &N2Scenario) -> Result<()> {
    for h in hosts.iter_mut() {
        h.topo.write_configs(&sc.n2)?;
        h.topo.start_guard()?;
    }
    Ok(())
}

/// Send the split storm: host `i` gets the attempts of AMF `i` (`models[i]`). `at` is called once per slot
/// with the seconds since the start (for steps made mid-storm). Returns the monotonic start.
fn storm(
    hosts: &mut [Host],
    sc: &N2Scenario,
    models: &mut [Model],
    mut at: impl FnMut(f64, &mut [Host]),
) -> Result<u64> {
    let n = hosts.len() as u64;
    let slot = Duration::from_millis(sc.slot_ms);
    let slots = (sc.duration_s * 1000.0 / sc.slot_ms as f64).ceil() as u64;
    let start = Instant::now();
    let start_ns = guard::clock::monotonic_ns();
    for k in 0..slots {
        if crate::n2lab::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("interrupted");
        }
        let until = (k + 1) as f64 * sc.slot_ms as f64 / 1000.0;
        for (h, m) in hosts.iter().zip(models.iter_mut()) {
            let frames: Vec<Vec<u8>> = m.slot(until).into_iter().map(|t| t.frame).collect();
            if frames.is_empty() {
                continue;
            }
            // The hosts are sent to one after the other: each gets its frames spread over its
            // share of the slot, so the model keeps real time.
            let pps = (frames.len() as u64 * 1000 * n).div_ceil(sc.slot_ms).max(1);
            let o = SendOpts::new(frames.len() as u64, slot * 3).pps(pps).batch(16);
            send_frames(&h.topo.lab.ran, h.topo.ran_n2_if(), &frames, &o).context("sending a slot")?;
        }
        at(until, hosts);
        if let Some(rest) = (start + slot * (k as u32 + 1)).checked_duration_since(Instant::now()) {
            std::thread::sleep(rest);
        }
    }
    // The last ticks.
    std::thread::sleep(Duration::from_millis(1500));
    Ok(start_ns)
}

/// What host `i` answered, from its hook recorder.
fn answer(h: &Host, start_ns: u64, onset_s: f64, infected: &BTreeSet<String>) -> Answer {
    let hook: Vec<serde_json::Value> = std::fs::read_to_string(&h.topo.files.hook)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut a = Answer { infected_here: infected.len(), ..Answer::default() };
    let mut listed = BTreeSet::new();
    for v in &hook {
        let level = v["level"].as_u64().unwrap_or(0);
        a.responses += 1;
        a.max_level = a.max_level.max(level);
        if level >= 1 && a.first_s.is_none() {
            a.first_s = v["at_ns"].as_u64().map(|t| t.saturating_sub(start_ns) as f64 / 1e9 - onset_s);
        }
        a.fleet_hot_cells = a.fleet_hot_cells.max(v["evidence"]["fleet_hot_cells"].as_u64().unwrap_or(0));
        for d in v["devices"].as_array().into_iter().flatten() {
            // This host's own evidence only: a device listed because of the fleet is marked.
            if let (Some(id), true) = (d["id"].as_str(), d["fleet"].is_null()) {
                listed.insert(id.to_owned());
            }
        }
    }
    a.listed = listed.len();
    a.listed_infected = listed.intersection(infected).count();
    a
}

/// Run the fleet lab; `Err` is a setup failure, a run that misses its goals has failed checks.
pub fn run(opts: &FleetOpts) -> Result<FleetReport> {
    let t0 = Instant::now();
    let sc = N2Scenario::read(&opts.scenario)?;
    let onset = sc.storm.as_ref().map_or(0.0, |s| s.onset_s);
    let infected: Vec<BTreeSet<String>> = (0..2).map(|i| Model::new(&sc).split(i, 2).truth.infected).collect();
    // With fleet mode, two of guard 1's infected devices move to guard 2's AMF mid-storm.
    let moved: BTreeSet<u32> = infected[0]
        .iter()
        .filter_map(|d| d.rsplit("0x").next().and_then(|h| u32::from_str_radix(h, 16).ok()))
        .take(2)
        .collect();
    let move_at = onset + MOVE_AFTER_ONSET_S;
    let mut moving: Vec<Model> = (0..2).map(|i| Model::new(&sc).split_moving(i, 2, &moved, move_at, 1)).collect();
    let infected_moving: Vec<BTreeSet<String>> = moving.iter().map(|m| m.truth.infected.clone()).collect();
    let data = std::env::temp_dir().join(format!("og-fleet-lab-{}", unique_name("etcd")));
    let mut cluster = EtcdCluster::new(&data)?;
    let mut r = FleetReport { scenario: sc.name.clone(), ..FleetReport::default() };
    if opts.verbose {
        eprintln!("fleet lab: etcd cluster of 3 healthy in {:.1} s", t0.elapsed().as_secs_f64());
    }

    // 1. Without fleet mode: each guard alone.
    {
        let mut hosts =
            vec![Host::new(opts, &cluster, 1, "without", None)?, Host::new(opts, &cluster, 2, "without", None)?];
        start(&mut hosts, &sc)?;
        let mut models: Vec<Model> = (0..2).map(|i| Model::new(&sc).split(i, 2)).collect();
        let start_ns = storm(&mut hosts, &sc, &mut models, |_, _| {})?;
        for h in hosts.iter_mut() {
            h.topo.stop_guard();
        }
        r.without_fleet = hosts.iter().zip(&infected).map(|(h, inf)| answer(h, start_ns, onset, inf)).collect();
    }
    let missed = r.without_fleet.iter().all(|a| a.max_level == 0);
    r.check(
        "without fleet mode the split storm is missed by both guards",
        missed,
        format!("levels {:?}", r.without_fleet.iter().map(|a| a.max_level).collect::<Vec<_>>()),
    );

    // 2. With fleet mode.
    let fleet = format!("lab-{}", unique_name("f"));
    let mut hosts =
        vec![Host::new(opts, &cluster, 1, "with", Some(&fleet))?, Host::new(opts, &cluster, 2, "with", Some(&fleet))?];
    start(&mut hosts, &sc)?;
    steps::wait_connected(&mut hosts, Duration::from_secs(20))?;
    r.load_idle = steps::measure_load(&cluster, Duration::from_secs(5), || {});
    let mut storm_load = steps::LoadProbe::default();
    let mut kill = steps::GuardKill::new(&fleet, "amf-2", onset + 24.0);
    let mut held = backoff::BackoffHeld::default();
    let (mut mid, mut mid_pub, mut mid_kv) = (Vec::new(), Vec::new(), String::new());
    let start_ns = storm(&mut hosts, &sc, &mut moving, |t, hosts| {
        storm_load.at(&cluster, t, onset + 6.0, onset + 18.0);
        held.at(hosts);
        if t >= onset + 12.0 && mid.is_empty() {
            mid = hosts.iter().map(|h| h.metric("overload_guard_fleet_cell_members")).collect();
            mid_pub = hosts.iter().map(|h| h.metric("overload_guard_fleet_cells_published")).collect();
            for h in hosts.iter() {
                let _ = std::fs::write(
                    h.topo.files.dir.join("metrics-mid-storm.txt"),
                    h.topo.metrics().unwrap_or_default(),
                );
                let cells: Vec<String> = guard::n2::N2Maps::open_pinned(&h.topo.n2_pins())
                    .map(|m| {
                        m.cells()
                            .iter()
                            .map(|(k, c)| {
                                format!("{} {} {}", guard::n2::engine::cell_str(k), c.initial_ue, c.suci_only)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = std::fs::write(h.topo.files.dir.join("cells-mid-storm.txt"), cells.join("\n"));
            }
            let prefix = format!("/overload-guard/{fleet}/cells/");
            mid_kv = cluster
                .etcdctl(&["get", "--prefix", &prefix])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
        }
        kill.at(&cluster, t, hosts);
    })?;
    r.load_storm = storm_load.result();
    r.cell_members_mid_storm = mid;
    r.cells_published_mid_storm = mid_pub;
    r.summaries_mid_storm = mid_kv;
    r.with_fleet = hosts.iter().zip(&infected_moving).map(|(h, inf)| answer(h, start_ns, onset, inf)).collect();
    kill.finish(&cluster, &mut hosts, &mut r);
    held.finish(&hosts, start_ns, &mut r);
    let after: Vec<(String, f64)> = moved
        .iter()
        .filter_map(|t| {
            let first = moving[1].attempts_of(*t).into_iter().find(|a| *a >= move_at)?;
            // Sent at the start of its slot (`storm`).
            let slot = sc.slot_ms as f64 / 1000.0;
            Some((crate::n2lab::ran::device_name(*t), (first / slot).floor() * slot))
        })
        .collect();
    backoff::moved_listed(&hosts[1], "amf-1", start_ns, &after, &mut r);
    let both = r.with_fleet.iter().all(|a| a.max_level >= 1);
    r.check(
        "with fleet mode both guards answer the split storm",
        both,
        format!(
            "levels {:?}, first response {:?} s after the onset, fleet-hot cells {:?}",
            r.with_fleet.iter().map(|a| a.max_level).collect::<Vec<_>>(),
            r.with_fleet.iter().map(|a| a.first_s).collect::<Vec<_>>(),
            r.with_fleet.iter().map(|a| a.fleet_hot_cells).collect::<Vec<_>>()
        ),
    );
    let own = r.with_fleet.iter().all(|a| a.listed > 0 && a.listed_infected == a.listed);
    r.check(
        "each guard lists only its own infected devices",
        own,
        r.with_fleet
            .iter()
            .map(|a| {
                format!("{} listed, {} of them infected here (of {})", a.listed, a.listed_infected, a.infected_here)
            })
            .collect::<Vec<_>>()
            .join("; "),
    );

    // 3 and 4: pins and etcd faults, with guard 2 back.
    hosts[1].topo.start_guard()?;
    steps::wait_connected(&mut hosts, Duration::from_secs(20))?;
    steps::bad_summaries(&cluster, &fleet, &mut hosts, &mut r)?;
    backoff::bad_lists(&cluster, &fleet, &mut hosts, &mut r)?;
    backoff::gnb_lists(&cluster, &fleet, &mut hosts, &mut r)?;
    steps::n3_summaries(&cluster, &fleet, &mut hosts, &mut r)?;
    backoff::tmsi_pin(&mut hosts, &mut r)?;
    steps::pins_and_faults(&mut cluster, &mut hosts, &mut r)?;
    for h in hosts.iter_mut() {
        h.topo.stop_guard();
    }
    drop(hosts);
    drop(cluster);
    r.wall_s = t0.elapsed().as_secs_f64();
    Ok(r)
}
