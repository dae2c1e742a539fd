//! The fleet lab's checks of N2 device back-off lists and 5G-S-TMSI pins (docs/fleet.md "Device
//! back-off lists"): a guard's listed devices held by the other within 2 s; devices the storm
//! moved from guard 1 to guard 2 listed by guard 2 as guard 1's within 2 s of their first
//! attempt there; forged and expired lists refused; a 5G-S-TMSI pin on both hooks within 2 s.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::etcd::EtcdCluster;
use super::steps::{guard_cli, until, PIN_LIMIT};
use super::{FleetReport, Host};

/// The hook payloads host `h` recorded, from line `from` on.
fn hook(h: &Host, from: usize) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&h.topo.files.hook)
        .unwrap_or_default()
        .lines()
        .skip(from)
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether response `v` lists device `id`, marked with a fleet origin of `kind`.
fn lists(v: &serde_json::Value, id: &str, kind: &str) -> bool {
    v["devices"].as_array().into_iter().flatten().any(|d| d["id"] == id && d["fleet"]["kind"] == kind)
}

/// When each guard first held the other's list, polled once per slot of the storm.
#[derive(Default)]
pub struct BackoffHeld {
    at_ns: [Option<u64>; 2],
}

impl BackoffHeld {
    pub fn at(&mut self, hosts: &[Host]) {
        for (i, h) in hosts.iter().enumerate().take(2) {
            if self.at_ns[i].is_none() && h.metric("overload_guard_fleet_backoff_listed").is_some_and(|v| v > 0.0) {
                self.at_ns[i] = Some(guard::clock::monotonic_ns());
            }
        }
    }

    /// Guard i's first own listing (its hook) to guard 1-i holding it.
    pub fn finish(&self, hosts: &[Host], start_ns: u64, r: &mut FleetReport) {
        let first_listed = |h: &Host| {
            hook(h, 0).iter().find_map(|v| {
                let own = v["devices"].as_array().into_iter().flatten().any(|d| d["fleet"].is_null());
                (v["level"].as_u64().unwrap_or(0) >= 1 && own).then(|| v["at_ns"].as_u64()).flatten()
            })
        };
        r.backoff_held_s = (0..2)
            .map(|i| {
                let listed = first_listed(&hosts[i])?.max(start_ns);
                let held = self.at_ns[1 - i]?;
                Some(held.saturating_sub(listed) as f64 / 1e9)
            })
            .collect();
        r.check(
            "each guard's back-off list is held by the other within 2 s",
            r.backoff_held_s.iter().all(|d| d.is_some_and(|d| d <= PIN_LIMIT.as_secs_f64())),
            format!(
                "guard 1 -> 2 and 2 -> 1: {:?} s (from the first hook response listing devices to \
                 overload_guard_fleet_backoff_listed > 0, polled every slot)",
                r.backoff_held_s
            ),
        );
    }
}

/// Devices moved from guard 1 to guard 2 (`after`: id and the send time of its first attempt
/// there, seconds from the storm's start): guard 2's hook lists each, marked as `from`'s.
pub fn moved_listed(h: &Host, from: &str, start_ns: u64, after: &[(String, f64)], r: &mut FleetReport) {
    let responses = hook(h, 0);
    r.moved_listed_s = after
        .iter()
        .map(|(id, first_s)| {
            let sent = start_ns + (first_s * 1e9) as u64;
            let at = responses.iter().find_map(|v| {
                let marked =
                    v["devices"].as_array().into_iter().flatten().any(|d| {
                        d["id"] == id.as_str() && d["fleet"]["kind"] == "list" && d["fleet"]["member"] == from
                    });
                marked.then(|| v["at_ns"].as_u64()).flatten()
            });
            (id.clone(), at.map(|a| a.saturating_sub(sent) as f64 / 1e9))
        })
        .collect();
    r.check(
        "devices the storm moved to guard 2 are on its hook list as guard 1's within 2 s",
        !r.moved_listed_s.is_empty()
            && r.moved_listed_s.iter().all(|(_, d)| d.is_some_and(|d| d <= PIN_LIMIT.as_secs_f64())),
        format!(
            "{:?} (s from the first attempt at guard 2 to its hook listing the device, from {from})",
            r.moved_listed_s
        ),
    );
}

/// A forged list (another member's name in it) and an expired one put straight into etcd: both
/// guards refuse them with a log line and a metric, and run on.
pub fn bad_lists(c: &EtcdCluster, fleet: &str, hosts: &mut [Host], r: &mut FleetReport) -> Result<()> {
    let series = |h: &Host, reason: &str| {
        h.metric(&format!("overload_guard_fleet_values_rejected_total{{reason=\"{reason}\"}}")).unwrap_or(0.0)
    };
    let before: Vec<(f64, f64)> = hosts.iter().map(|h| (series(h, "invalid"), series(h, "expired"))).collect();
    let prefix = format!("/overload-guard/{fleet}/backoff/n2/");
    let now = guard::fleet::unix_ms(std::time::SystemTime::now());
    let dev = r#"[["5g-s-tmsi:1:1:0xdeadbeef",600]]"#;
    for (key, value) in [
        (
            "evil-3",
            format!(
                r#"{{"v":1,"member":"amf-1","at_unix_ms":{now},"expires_unix_ms":{},"devices":{dev}}}"#,
                now + 60_000
            ),
        ),
        (
            "evil-4",
            format!(
                r#"{{"v":1,"member":"evil-4","at_unix_ms":{},"expires_unix_ms":{},"devices":{dev}}}"#,
                now - 120_000,
                now - 60_000
            ),
        ),
    ] {
        let o = c.etcdctl(&["put", &format!("{prefix}{key}"), &value])?;
        if !o.status.success() {
            bail!("etcdctl put: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let seen = until(Duration::from_secs(2), || {
        hosts.iter().zip(&before).all(|(h, (i, e))| series(h, "invalid") > *i && series(h, "expired") > *e)
    });
    let alive = hosts.iter_mut().all(|h| h.topo.guard_alive());
    let logged = hosts.iter().all(|h| {
        std::fs::read_to_string(&h.topo.files.log)
            .is_ok_and(|l| l.contains("device back-off list rejected") && l.contains("evil-3"))
    });
    let taken = hosts.iter().any(|h| {
        std::fs::read_to_string(&h.topo.files.log)
            .is_ok_and(|l| l.lines().any(|x| x.contains("list taken from another member") && x.contains("evil-")))
    });
    r.check(
        "a forged and an expired back-off list are refused with a log line and a metric",
        seen.is_some() && alive && logged && !taken,
        format!("counted on both after {seen:?}; guards running {alive}; logged {logged}; taken {taken}"),
    );
    for key in ["evil-3", "evil-4"] {
        c.etcdctl(&["del", &format!("{prefix}{key}")])?;
    }
    Ok(())
}

/// `guard fleet pin --tmsi` on host 1: on both hooks' lists within 2 s; unpinned: off both.
pub fn tmsi_pin(hosts: &mut [Host], r: &mut FleetReport) -> Result<()> {
    let id = "5g-s-tmsi:1:1:0xdeadbeef";
    let from: Vec<usize> = hosts.iter().map(|h| hook(h, 0).len()).collect();
    let t0 = Instant::now();
    guard_cli(&hosts[0], &["fleet", "pin", "--tmsi", id, "--ttl", "10m", "--comment", "fleet lab"])?;
    let mut at: Vec<Option<f64>> = vec![None; hosts.len()];
    until(PIN_LIMIT.saturating_mul(3), || {
        for (i, h) in hosts.iter().enumerate() {
            if at[i].is_none() && hook(h, from[i]).iter().any(|v| lists(v, id, "pin")) {
                at[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        at.iter().all(Option::is_some)
    });
    r.tmsi_pin_s = at;
    r.check(
        "a 5G-S-TMSI pin typed on host 1 is on both hooks' back-off lists within 2 s",
        r.tmsi_pin_s.iter().all(|d| d.is_some_and(|d| d <= PIN_LIMIT.as_secs_f64())),
        format!("{id}: {:?} s on hosts 1, 2", r.tmsi_pin_s),
    );
    let from: Vec<usize> = hosts.iter().map(|h| hook(h, 0).len()).collect();
    let t0 = Instant::now();
    guard_cli(&hosts[0], &["fleet", "unpin", "--tmsi", id])?;
    let mut gone: Vec<Option<f64>> = vec![None; hosts.len()];
    until(PIN_LIMIT.saturating_mul(3), || {
        for (i, h) in hosts.iter().enumerate() {
            let after = hook(h, from[i]);
            if gone[i].is_none() && after.last().is_some_and(|v| !lists(v, id, "pin")) {
                gone[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        gone.iter().all(Option::is_some)
    });
    r.tmsi_unpin_s = gone;
    r.check(
        "the 5G-S-TMSI unpin takes it off both hooks' lists within 2 s",
        r.tmsi_unpin_s.iter().all(|d| d.is_some_and(|d| d <= PIN_LIMIT.as_secs_f64())),
        format!("{:?} s on hosts 1, 2 (a response without it: clear)", r.tmsi_unpin_s),
    );
    Ok(())
}

/// Known gNB lists (docs/fleet.md "Known gNB addresses"): a valid list put into etcd under a
/// made-up member is taken by both guards (`overload_guard_fleet_gnbs_listed`); a forged one
/// (another member's name in it) and one naming a loopback address are refused with a log line
/// and a metric and not taken; both guards run on; the valid one's delete empties the count.
pub fn gnb_lists(c: &EtcdCluster, fleet: &str, hosts: &mut [Host], r: &mut FleetReport) -> Result<()> {
    let invalid = |h: &Host| h.metric("overload_guard_fleet_values_rejected_total{reason=\"invalid\"}").unwrap_or(0.0);
    let listed = |h: &Host| h.metric("overload_guard_fleet_gnbs_listed").unwrap_or(-1.0);
    let before: Vec<f64> = hosts.iter().map(invalid).collect();
    let prefix = format!("/overload-guard/{fleet}/gnbs/n2/");
    let now = guard::fleet::unix_ms(std::time::SystemTime::now());
    let value = |member: &str, gnbs: &str| {
        format!(r#"{{"v":1,"member":"{member}","at_unix_ms":{now},"expires_unix_ms":{},"gnbs":{gnbs}}}"#, now + 60_000)
    };
    for (key, v) in [
        ("amf-z", value("amf-z", r#"["192.0.2.77","198.51.100.7"]"#)),
        ("evil-5", value("amf-1", r#"["192.0.2.66"]"#)),
        ("evil-6", value("evil-6", r#"["127.0.0.1"]"#)),
    ] {
        let o = c.etcdctl(&["put", &format!("{prefix}{key}"), &v])?;
        if !o.status.success() {
            bail!("etcdctl put: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let seen = until(Duration::from_secs(2), || {
        hosts.iter().zip(&before).all(|(h, b)| invalid(h) >= b + 2.0 && listed(h) == 2.0)
    });
    let alive = hosts.iter_mut().all(|h| h.topo.guard_alive());
    let log = |h: &Host| std::fs::read_to_string(&h.topo.files.log).unwrap_or_default();
    let logged = hosts.iter().all(|h| {
        let l = log(h);
        l.contains("known gNB list rejected") && l.contains("evil-5") && l.contains("evil-6")
    });
    let taken_bad = hosts
        .iter()
        .any(|h| log(h).lines().any(|x| x.contains("known gNB list taken from another member") && x.contains("evil-")));
    c.etcdctl(&["del", &format!("{prefix}amf-z")])?;
    let gone = until(Duration::from_secs(2), || hosts.iter().all(|h| listed(h) == 0.0));
    r.check(
        "a known gNB list in etcd is taken by both guards, a forged and a loopback one refused",
        seen.is_some() && alive && logged && !taken_bad && gone.is_some(),
        format!(
            "taken (2 addresses) and refused on both after {seen:?}; guards running {alive}; logged {logged}; \
             bad ones taken {taken_bad}; dropped after the delete {gone:?}"
        ),
    );
    for key in ["evil-5", "evil-6"] {
        c.etcdctl(&["del", &format!("{prefix}{key}")])?;
    }
    Ok(())
}
