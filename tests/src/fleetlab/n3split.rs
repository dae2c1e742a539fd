//! A real G-PDU overload of one gNB split over two UPF-side guards (issue 23, docs/fleet.md "Cell
//! summaries on N3"): the fleet lab's two hosts ([`Host`], each a lab topology with its N3 veth),
//! the same gNB address on both, and 25 flooding devices per host. Each guard alone sees half the
//! gNB's demand, under its cell capacity: no cap. With `[fleet]` each sums the other's N3
//! summary and caps the gNB at its share, its audit line naming the other member.
//!
//! Scaled down from production so that it runs in about a minute: cell capacity 1500 G-PDUs/s,
//! 30 offenders for a cap; 25 devices per host at 100 pps shaped to 40 (1000 G-PDUs/s of demand
//! left per host, 2000 for the gNB); cold devices judged against `dataplane.observe` (10 pps), so
//! no warm-up is needed. Traffic stays in the namespaces the lab created; every send is bounded
//! in packets and time; everything goes on drop.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::etcd::EtcdCluster;
use super::{FleetOpts, Host};
use crate::generator::{send_frames, SendOpts};
use crate::n2lab::Check;

/// Devices per host flooding the gNB, and quiet ones beside them.
const OFFENDERS: u32 = 25;
const QUIET: u32 = 5;
/// Offenders' rate, quiet devices' rate (G-PDUs/s).
const FLOOD_PPS: u64 = 100;
const QUIET_PPS: u64 = 5;
/// Seconds of quiet traffic (devices known), then of the flood.
const QUIET_S: u64 = 3;
const FLOOD_S: u64 = 20;

/// What each host's audit says about the gNB caps it set.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CapSeen {
    /// `set_cell_cap` lines (not refreshes).
    pub caps: usize,
    /// The members its first cap's `evidence.fleet` names (empty: judged locally).
    pub members: Vec<String>,
    /// Its first cap's packet rate, and its share of the gNB's cap.
    pub pps: Option<f64>,
    pub share: Option<f64>,
    /// Devices the engine staged (first stage decisions), and the audit's actions counted.
    pub device_stages: usize,
    /// Mid-flood: other members summed and gNBs published (N3 summaries).
    pub n3_members: Option<f64>,
    pub n3_published: Option<f64>,
    /// Seconds from the flood's start to the first cap (the audit line's time).
    pub cap_after_s: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct N3SplitReport {
    pub without_fleet: Vec<CapSeen>,
    pub with_fleet: Vec<CapSeen>,
    pub checks: Vec<Check>,
    pub wall_s: f64,
}

impl N3SplitReport {
    /// Every check passed (and there was one).
    pub fn pass(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.pass)
    }
}

/// `report.md` of `cargo xtask lab --scenario fleet-n3` (the `lab_fleet --n3-split` binary): the
/// checks, then per run and guard what it did about the gNB.
pub fn markdown(r: &N3SplitReport) -> String {
    use std::fmt::Write as _;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Fleet lab, N3: a G-PDU overload of one gNB split over two UPF-side guards ({:.0} s)\n",
        r.wall_s
    );
    let _ = writeln!(
        m,
        "Per host {OFFENDERS} devices flooding at {FLOOD_PPS} G-PDUs/s (shaped to 40: 1000 G-PDUs/s of demand left \
         per host, 2000 for the gNB) and {QUIET} quiet ones, the same gNB address on both; cell capacity 1500 \
         G-PDUs/s, `min_offenders` 30; {QUIET_S} s quiet, then {FLOOD_S} s of flood (scaled down from production, \
         docs/fleet.md \"Cell summaries on N3\").\n"
    );
    let _ = writeln!(m, "| check | result | detail |\n|---|---|---|");
    for c in &r.checks {
        let _ =
            writeln!(m, "| {} | {} | {} |", c.name, if c.pass { "PASS" } else { "FAIL" }, c.detail.replace('|', "/"));
    }
    let _ = writeln!(
        m,
        "\n## The split overload\n\n| run | guard | gNB caps | first cap after flood start | cap (G-PDUs/s) | share | \
         members summed (audit) | devices staged | N3 summaries summed / published mid-flood |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let num = |v: Option<f64>, unit: &str, digits: usize| v.map_or("-".to_owned(), |x| format!("{x:.digits$}{unit}"));
    for (run, seen) in [("without `[fleet]`", &r.without_fleet), ("with `[fleet]`", &r.with_fleet)] {
        for (i, s) in seen.iter().enumerate() {
            let _ = writeln!(
                m,
                "| {run} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                i + 1,
                s.caps,
                num(s.cap_after_s, " s", 1),
                num(s.pps, "", 0),
                num(s.share, "", 3),
                if s.members.is_empty() { "-".to_owned() } else { s.members.join(", ") },
                s.device_stages,
                num(s.n3_members, "", 0),
                num(s.n3_published, "", 0)
            );
        }
    }
    let caps: f64 = r.with_fleet.iter().filter_map(|s| s.pps).sum();
    if caps > 0.0 {
        let _ = writeln!(
            m,
            "\nWith `[fleet]` the two caps admit {caps:.0} G-PDUs/s together: about the gNB's `cap_pps` (1500), \
             what one UPF carrying the whole gNB would admit, not twice it."
        );
    }
    m
}

/// The guard settings of this scenario (besides `[fleet]`, which [`Host::new`] adds).
fn configure(h: &mut Host) -> Result<()> {
    let t: toml::Table = toml::from_str(
        "[dataplane]\nobserve = { pps = 10, burst = 20 }\n\
         [classify]\nmin_profile_pps = 10.0\n\
         [ladder.shape]\ntrigger_windows = 2\nrate_pps = 40\nburst = 40\n\
         [ladder.strict]\nescalate_windows = 1000\n\
         [capacity]\nsustain_windows = 3\n\
         [capacity.cell]\ncapacity_pps = 1500\ncap_pps = 1500\nburst = 1500\nmin_offenders = 30\nttl = \"30s\"\nquiet = \"2m\"\n",
    )
    .context("the N3 split scenario's settings")?;
    for (k, v) in t {
        if let toml::Value::Table(tab) = v {
            h.topo.add_table(&k, tab);
        }
    }
    Ok(())
}

/// One host's frames for one second of `phase`: offenders interleaved with quiet devices in
/// proportion to their rates (the generator sends the list round-robin).
fn frames(h: &Host, host: u32, flood: bool) -> Vec<Vec<u8>> {
    let lab = &h.topo.lab;
    // TEIDs distinct per host (each UPF allocates its own); the gNB is the lab's gNB 0 on both.
    let teid = |i: u32| 0x0060_0000 + host * 0x1000 + i;
    // Each device its own UE address too: the lab's guards key devices by UE address.
    let dst = std::net::Ipv4Addr::new(198, 51, 100, 10);
    let gpdu =
        |i: u32| lab.gpdu_v4(0, teid(i)).inner_v4(std::net::Ipv4Addr::new(10, 60, host as u8, i as u8), dst).build();
    let off_pps = if flood { FLOOD_PPS } else { QUIET_PPS };
    let mut out = Vec::new();
    for round in 0..off_pps {
        for i in 0..OFFENDERS {
            out.push(gpdu(i));
        }
        if round % (off_pps / QUIET_PPS).max(1) == 0 {
            for i in 0..QUIET {
                out.push(gpdu(OFFENDERS + i));
            }
        }
    }
    out
}

/// Send `secs` seconds of `flood` (or quiet) traffic to both hosts at once.
fn send(hosts: &[Host], flood: bool, secs: u64) -> Result<()> {
    std::thread::scope(|s| {
        let runs: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(k, h)| {
                let f = frames(h, k as u32, flood);
                s.spawn(move || {
                    let pps = f.len() as u64;
                    let o = SendOpts::new(pps * secs, Duration::from_secs(secs + 5)).pps(pps).batch(16);
                    send_frames(&h.topo.lab.ran, h.topo.lab.ran_ifname(), &f, &o).context("sending G-PDUs")
                })
            })
            .collect();
        for r in runs {
            r.join().map_err(|_| anyhow::anyhow!("a sender panicked"))??;
        }
        Ok(())
    })
}

/// The gNB caps in host `h`'s audit trail.
fn caps(h: &Host, mid: (Option<f64>, Option<f64>), flood_start: std::time::SystemTime) -> CapSeen {
    let all: Vec<serde_json::Value> = std::fs::read_to_string(&h.topo.files.audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let fresh = |v: &&serde_json::Value| v["detail"]["refresh"] == false;
    let lines: Vec<&serde_json::Value> = all.iter().filter(|v| v["action"] == "set_cell_cap").filter(fresh).collect();
    let device_stages = all.iter().filter(|v| v["action"] == "set_device_stage").filter(fresh).count();
    let mut seen =
        CapSeen { caps: lines.len(), device_stages, n3_members: mid.0, n3_published: mid.1, ..CapSeen::default() };
    if let Some(first) = lines.first() {
        let f = &first["evidence"]["fleet"];
        seen.members =
            f["members"].as_array().into_iter().flatten().filter_map(|m| m.as_str()).map(String::from).collect();
        seen.share = f["share"].as_f64();
        seen.pps = first["detail"]["limit"]["pps"].as_f64().or_else(|| first["detail"]["pps"].as_f64());
        let start = flood_start.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        seen.cap_after_s =
            first["ts"].as_str().and_then(day_secs).map(|t| (t - start.rem_euclid(86_400.0)).rem_euclid(86_400.0));
    }
    seen
}

/// Seconds into the UTC day of an audit time stamp (`2026-12-06T07:18:59.123Z`).
fn day_secs(ts: &str) -> Option<f64> {
    let t = ts.split_once('T')?.1.strip_suffix('Z')?;
    let mut it = t.split(':');
    let (h, m, s) = (it.next()?.parse::<f64>().ok()?, it.next()?.parse::<f64>().ok()?, it.next()?.parse::<f64>().ok()?);
    Some(h * 3600.0 + m * 60.0 + s)
}

/// One phase: two hosts (with `[fleet]` named `fleet`, or without), quiet traffic, the flood;
/// what each audited.
fn phase(opts: &FleetOpts, c: &EtcdCluster, name: &str, fleet: Option<&str>) -> Result<Vec<CapSeen>> {
    let mut hosts = vec![Host::new(opts, c, 1, name, fleet)?, Host::new(opts, c, 2, name, fleet)?];
    for h in hosts.iter_mut() {
        configure(h)?;
        h.topo.write_configs(&toml::Table::new())?;
        h.topo.start_guard()?;
    }
    if fleet.is_some() {
        super::steps::wait_connected(&mut hosts, Duration::from_secs(20))?;
    }
    send(&hosts, false, QUIET_S)?;
    let flood_start = std::time::SystemTime::now();
    send(&hosts, true, FLOOD_S / 2)?;
    let mid: Vec<_> = hosts
        .iter()
        .map(|h| {
            (h.metric("overload_guard_fleet_n3_cell_members"), h.metric("overload_guard_fleet_n3_cells_published"))
        })
        .collect();
    send(&hosts, true, FLOOD_S - FLOOD_S / 2)?;
    // The last ticks.
    std::thread::sleep(Duration::from_millis(1500));
    let seen = hosts.iter().zip(mid).map(|(h, m)| caps(h, m, flood_start)).collect();
    for h in hosts.iter_mut() {
        h.topo.stop_guard();
    }
    Ok(seen)
}

/// Run both phases on one etcd cluster; the checks say what was seen.
pub fn run(opts: &FleetOpts) -> Result<N3SplitReport> {
    let t0 = std::time::Instant::now();
    let cluster = EtcdCluster::new(&opts.out.join("fleet").join("n3-etcd"))?;
    let fleet = crate::netns::unique_name("ogn3");
    let mut r = N3SplitReport { without_fleet: phase(opts, &cluster, "n3-alone", None)?, ..N3SplitReport::default() };
    r.with_fleet = phase(opts, &cluster, "n3-fleet", Some(&fleet))?;
    // Missed although each guard staged its own flooding devices.
    let none = r.without_fleet.iter().all(|s| s.caps == 0 && s.device_stages >= OFFENDERS as usize);
    r.checks.push(Check {
        name: "without fleet mode neither UPF-side guard caps the gNB (each sees half its demand)".into(),
        pass: none,
        detail: format!(
            "gNB caps set: {:?}; devices staged: {:?}",
            r.without_fleet.iter().map(|s| s.caps).collect::<Vec<_>>(),
            r.without_fleet.iter().map(|s| s.device_stages).collect::<Vec<_>>()
        ),
    });
    let others = ["amf-2", "amf-1"];
    let both = r.with_fleet.iter().zip(others).all(|(s, o)| {
        s.caps >= 1
            && s.members == [o]
            && s.share.is_some_and(|x| (0.25..1.0).contains(&x))
            && s.n3_members == Some(1.0)
            && s.n3_published == Some(1.0)
    });
    r.checks.push(Check {
        name: "with fleet mode both cap the gNB at their shares, the audit line naming the other member".into(),
        pass: both,
        detail: format!("{:?}", r.with_fleet),
    });
    r.wall_s = t0.elapsed().as_secs_f64();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_has_the_checks_and_each_guards_answer_in_both_runs() {
        let capped = |m: &str, share| CapSeen {
            caps: 1,
            members: vec![m.to_owned()],
            pps: Some(1500.0 * share),
            share: Some(share),
            device_stages: 25,
            n3_members: Some(1.0),
            n3_published: Some(1.0),
            cap_after_s: Some(1.9),
        };
        let alone = CapSeen { device_stages: 25, n3_members: None, ..CapSeen::default() };
        let r = N3SplitReport {
            without_fleet: vec![alone.clone(), alone],
            with_fleet: vec![capped("amf-2", 0.498), capped("amf-1", 0.502)],
            checks: vec![Check { name: "both cap".into(), pass: true, detail: "a|b".into() }],
            wall_s: 61.0,
        };
        assert!(r.pass());
        let md = markdown(&r);
        assert!(md.contains("| both cap | PASS | a/b |"), "{md}");
        assert!(md.contains("| without `[fleet]` | 1 | 0 | - | - | - | - | 25 | - / - |"), "{md}");
        assert!(md.contains("| with `[fleet]` | 2 | 1 | 1.9 s | 753 | 0.502 | amf-1 | 25 | 1 / 1 |"), "{md}");
        assert!(md.contains("admit 1500 G-PDUs/s together"), "{md}");
        assert!(!N3SplitReport::default().pass(), "no check: no pass");
    }
}
