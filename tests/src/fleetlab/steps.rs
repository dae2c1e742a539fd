//! The fleet lab's steps after the storm's traffic: etcd's load, a guard's death, pins and etcd
//! faults. Each step is bounded in time and recorded as a check of the [`FleetReport`].

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use guard::n3::manual::ue_device_key;
use guard::n3::maps::N3Maps;

use super::etcd::{metric_sum, EtcdCluster, MEMBERS};
use super::{FleetReport, Host, Load, LEASE_TTL_S};

/// A pin must be in force on every member within this (issue 23).
pub(super) const PIN_LIMIT: Duration = Duration::from_secs(2);

/// Wait until every guard says it hears etcd.
pub fn wait_connected(hosts: &mut [Host], limit: Duration) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if hosts.iter().all(|h| h.metric("overload_guard_fleet_connected") == Some(1.0)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the guards did not connect to etcd within {limit:?}: {}", hosts[0].topo.log_tail())
}

/// Counters summed over the running members.
#[derive(Clone, Copy, Default)]
struct Counters {
    at: Option<Instant>,
    requests: f64,
    puts: f64,
    rx: f64,
    tx: f64,
}

fn counters(c: &EtcdCluster) -> Counters {
    let mut out = Counters { at: Some(Instant::now()), ..Counters::default() };
    for k in 0..MEMBERS {
        let Some(m) = c.metrics(k) else { continue };
        out.requests += metric_sum(&m, "grpc_server_msg_received_total");
        out.puts += m
            .lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{") && l.contains("grpc_method=\"Put\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        out.rx += metric_sum(&m, "etcd_network_client_grpc_received_bytes_total");
        out.tx += metric_sum(&m, "etcd_network_client_grpc_sent_bytes_total");
    }
    out
}

fn load(a: Counters, b: Counters) -> Load {
    let w = match (a.at, b.at) {
        (Some(x), Some(y)) => y.duration_since(x).as_secs_f64().max(1e-3),
        _ => return Load::default(),
    };
    Load {
        window_s: w,
        requests_per_s: (b.requests - a.requests) / w,
        puts_per_s: (b.puts - a.puts) / w,
        received_bytes_per_s: (b.rx - a.rx) / w,
        sent_bytes_per_s: (b.tx - a.tx) / w,
    }
}

/// etcd's load over `window` while `during` runs (at the start).
pub fn measure_load(c: &EtcdCluster, window: Duration, during: impl FnOnce()) -> Load {
    let a = counters(c);
    during();
    std::thread::sleep(window);
    load(a, counters(c))
}

/// The load between two instants of the storm.
#[derive(Default)]
pub struct LoadProbe {
    a: Option<Counters>,
    b: Option<Counters>,
}

impl LoadProbe {
    pub fn at(&mut self, c: &EtcdCluster, t: f64, from: f64, to: f64) {
        if t >= from && self.a.is_none() {
            self.a = Some(counters(c));
        }
        if t >= to && self.b.is_none() {
            self.b = Some(counters(c));
        }
    }

    pub fn result(&self) -> Load {
        match (self.a, self.b) {
            (Some(a), Some(b)) => load(a, b),
            _ => Load::default(),
        }
    }
}

/// Guard 2 SIGKILLed mid-storm; when do its keys leave etcd?
pub struct GuardKill {
    cells_key: String,
    member_key: String,
    at_s: f64,
    killed: Option<Instant>,
    had_summary: bool,
    gone_after: Option<Duration>,
}

impl GuardKill {
    pub fn new(fleet: &str, member: &str, at_s: f64) -> GuardKill {
        GuardKill {
            cells_key: format!("/overload-guard/{fleet}/cells/n2/{member}"),
            member_key: format!("/overload-guard/{fleet}/members/{member}"),
            at_s,
            killed: None,
            had_summary: false,
            gone_after: None,
        }
    }

    fn gone(&self, c: &EtcdCluster) -> bool {
        matches!((c.get(&self.cells_key), c.get(&self.member_key)), (Ok(None), Ok(None)))
    }

    /// Called once per slot of the storm.
    pub fn at(&mut self, c: &EtcdCluster, t: f64, hosts: &mut [Host]) {
        match self.killed {
            None if t >= self.at_s => {
                self.had_summary = matches!(c.get(&self.cells_key), Ok(Some(_)));
                hosts[1].topo.kill_guard();
                self.killed = Some(Instant::now());
            }
            Some(k) if self.gone_after.is_none() && self.gone(c) => self.gone_after = Some(k.elapsed()),
            _ => {}
        }
    }

    /// After the traffic: wait (bounded) if the keys are still there, then record.
    pub fn finish(&mut self, c: &EtcdCluster, hosts: &mut [Host], r: &mut FleetReport) {
        if let Some(k) = self.killed {
            while self.gone_after.is_none() && k.elapsed() < Duration::from_secs(LEASE_TTL_S + 10) {
                if self.gone(c) {
                    self.gone_after = Some(k.elapsed());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        r.guard_kill_expiry_s = self.gone_after.map(|d| d.as_secs_f64());
        // The lease runs out at most `lease_ttl` after the last keep-alive (sent every third of it);
        // etcd checks for expired leases every 500 ms, and this poll is an etcdctl call.
        let limit = LEASE_TTL_S as f64 + 1.5;
        r.check(
            "a killed guard's summary was published and expires with its lease",
            self.had_summary && r.guard_kill_expiry_s.is_some_and(|s| s <= limit),
            format!(
                "summary present at the kill: {}; keys gone {:?} s after SIGKILL (lease {LEASE_TTL_S} s, limit {limit} s)",
                self.had_summary, r.guard_kill_expiry_s
            ),
        );
        let others = hosts[0].metric("overload_guard_fleet_cell_members");
        r.check(
            "the surviving guard no longer counts the dead one",
            others == Some(0.0),
            format!("overload_guard_fleet_cell_members on guard 1: {others:?}"),
        );
    }
}

/// `guard --netns <host> <args> --config <host's guard.toml>`; its stdout.
pub(super) fn guard_cli(h: &Host, args: &[&str]) -> Result<String> {
    let out = Command::new(h.topo.guard_bin_path())
        .env("GUARD_RUN_DIR", h.topo.run_dir())
        .args(["--netns", h.topo.core_ns()])
        .args(args)
        .arg("--config")
        .arg(&h.topo.files.guard_toml)
        .output()
        .context("running guard")?;
    if !out.status.success() {
        bail!("guard {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `ue` has a live stage in host `h`'s data plane.
fn staged(h: &Host, ue: &str) -> bool {
    let Ok(ip) = ue.parse::<IpAddr>() else { return false };
    let Ok(key) = ue_device_key(ip, 64) else { return false };
    let Ok(maps) = N3Maps::open_pinned(&h.topo.n3_pins()) else { return false };
    maps.stage(&key).ok().flatten().is_some_and(|e| e.expires_ns > guard::clock::monotonic_ns())
}

/// Poll until `ok`, at most `limit`; the time it took.
pub(super) fn until(limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if ok() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A pin typed on `from` (`guard device pin --fleet`): the time until it is on `to`.
fn pin_across(hosts: &[Host], from: usize, to: usize, ue: &str) -> Result<Option<Duration>> {
    let t0 = Instant::now();
    guard_cli(
        &hosts[from],
        &["device", "pin", "--fleet", "--ue", ue, "--stage", "quarantine", "--ttl", "10m", "--comment", "fleet lab"],
    )?;
    let rest = PIN_LIMIT.saturating_mul(3);
    Ok(until(rest, || staged(&hosts[to], ue)).map(|_| t0.elapsed()))
}

/// Bad summaries written straight into etcd (a broken or hostile member): every guard refuses
/// them with a log line and a metric, and runs on.
pub fn bad_summaries(c: &EtcdCluster, fleet: &str, hosts: &mut [Host], r: &mut FleetReport) -> Result<()> {
    let series = |h: &Host, reason: &str| {
        h.metric(&format!("overload_guard_fleet_values_rejected_total{{reason=\"{reason}\"}}")).unwrap_or(0.0)
    };
    let before: Vec<(f64, f64)> = hosts.iter().map(|h| (series(h, "malformed"), series(h, "oversized"))).collect();
    let prefix = format!("/overload-guard/{fleet}/cells/n2/");
    for (key, value) in
        [("evil-1", "{not json".to_owned()), ("evil-2", format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(8000)))]
    {
        let o = c.etcdctl(&["put", &format!("{prefix}{key}"), &value])?;
        if !o.status.success() {
            bail!("etcdctl put: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let seen = until(Duration::from_secs(2), || {
        hosts.iter().zip(&before).all(|(h, (m, o))| series(h, "malformed") > *m && series(h, "oversized") > *o)
    });
    let alive = hosts.iter_mut().all(|h| h.topo.guard_alive());
    let logged = hosts.iter().all(|h| {
        std::fs::read_to_string(&h.topo.files.log)
            .is_ok_and(|l| l.contains("cell summary rejected") && l.contains("evil-1"))
    });
    r.check(
        "a malformed and an oversized summary are refused with a log line and a metric",
        seen.is_some() && alive && logged,
        format!("counted on both after {seen:?}; guards running {alive}; logged {logged}"),
    );
    for key in ["evil-1", "evil-2"] {
        c.etcdctl(&["del", &format!("{prefix}{key}")])?;
    }
    Ok(())
}

/// N3 per-gNB summaries (UPFs behind the same gNBs): one written straight into etcd under a
/// made-up member is summed by both guards within 2 s and dropped with its key; a forged one (a
/// loopback gNB, another member's name) is refused with a log line and a metric. The lab's
/// guards carry no GTP-U: the cap decision itself is the engine's unit tests'
/// (`n3::engine::fleet_tests`); this checks that the etcd side reaches the N3 loop's mailbox.
pub fn n3_summaries(c: &EtcdCluster, fleet: &str, hosts: &mut [Host], r: &mut FleetReport) -> Result<()> {
    let prefix = format!("/overload-guard/{fleet}/cells/n3/");
    let members = |h: &Host| h.metric("overload_guard_fleet_n3_cell_members");
    let invalid = |h: &Host| h.metric("overload_guard_fleet_values_rejected_total{reason=\"invalid\"}").unwrap_or(0.0);
    let before: Vec<f64> = hosts.iter().map(invalid).collect();
    let ok = r#"{"v":1,"member":"upf-x","at_unix_ms":1,"cells":[["192.0.2.10",30000.0,300]]}"#;
    let forged = r#"{"v":1,"member":"upf-z","at_unix_ms":1,"cells":[["127.0.0.1",1e12,300]]}"#;
    for (key, value) in [("upf-x", ok), ("upf-z", forged)] {
        let o = c.etcdctl(&["put", &format!("{prefix}{key}"), value])?;
        if !o.status.success() {
            bail!("etcdctl put: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let summed = until(PIN_LIMIT, || hosts.iter().all(|h| members(h) == Some(1.0)));
    let refused = until(PIN_LIMIT, || hosts.iter().zip(&before).all(|(h, b)| invalid(h) > *b));
    let logged = hosts.iter().all(|h| {
        std::fs::read_to_string(&h.topo.files.log).is_ok_and(|l| {
            l.lines().any(|x| x.contains("cell summary rejected") && x.contains("upf-z") && x.contains("n3"))
        })
    });
    c.etcdctl(&["del", "--prefix", &prefix])?;
    let dropped = until(PIN_LIMIT, || hosts.iter().all(|h| members(h) == Some(0.0)));
    r.check(
        "N3 summaries: a valid one is summed by both guards, a forged one refused, both gone with their keys",
        summed.is_some() && refused.is_some() && logged && dropped.is_some(),
        format!("summed after {summed:?}; refused after {refused:?}, logged {logged}; dropped after {dropped:?}"),
    );
    Ok(())
}

/// Steps 3 and 4 (module documentation of [`super`]).
pub fn pins_and_faults(c: &mut EtcdCluster, hosts: &mut [Host], r: &mut FleetReport) -> Result<()> {
    let d = pin_across(hosts, 0, 1, "10.45.0.7")?;
    record_pin(r, "pin on host 1 (guard device pin --fleet) in force on host 2", "10.45.0.7", d);

    // Kill the leader: the worse case (a follower's loss is not even an election).
    let leader = leader(c).unwrap_or(0);
    c.kill(leader);
    let t0 = Instant::now();
    c.wait_healthy(Duration::from_secs(10))?;
    r.one_member_recovery_s = Some(t0.elapsed().as_secs_f64());
    let d = pin_across(hosts, 0, 1, "10.45.0.8")?;
    record_pin(r, "one etcd member (the leader) killed: a pin still reaches the other host", "10.45.0.8", d);
    let still =
        until(Duration::from_secs(5), || hosts.iter().all(|h| h.metric("overload_guard_fleet_connected") == Some(1.0)));
    // A member whose session went through the killed member reconnects (`retry`) and re-lists:
    // it has the pin too once it has caught up, before the next fault is made.
    let both = until(Duration::from_secs(5), || hosts.iter().all(|h| staged(h, "10.45.0.8")));
    r.check(
        "one etcd member killed: both guards connected, the pin on both",
        still.is_some() && both.is_some(),
        format!("connected after {still:?}; the pin on both after {both:?}"),
    );

    let second = (leader + 1) % MEMBERS;
    c.kill(second);
    let lost = until(Duration::from_secs(15), || {
        hosts.iter().all(|h| h.metric("overload_guard_fleet_connected") == Some(0.0))
    });
    let alive = hosts.iter_mut().all(|h| h.topo.guard_alive());
    let kept = hosts.iter().all(|h| staged(h, "10.45.0.7") && staged(h, "10.45.0.8"));
    let ready: Vec<Option<u16>> = hosts.iter().map(|h| h.topo.lab.http_get(9464, "/readyz").map(|(c, _)| c)).collect();
    r.check(
        "two etcd members killed: both guards run on locally with their pins",
        lost.is_some() && alive && kept && ready.iter().all(|c| *c == Some(200)),
        format!("connected 0 after {lost:?}; running {alive}; pins kept {kept}; /readyz {ready:?}"),
    );

    c.start(leader)?;
    c.start(second)?;
    c.wait_healthy(Duration::from_secs(30))?;
    let back = until(Duration::from_secs(20), || {
        hosts.iter().all(|h| h.metric("overload_guard_fleet_connected") == Some(1.0))
    });
    r.check("etcd restored: both guards reconnect", back.is_some(), format!("after {back:?}"));
    let d = pin_across(hosts, 1, 0, "10.45.0.9")?;
    record_pin(r, "etcd restored: a pin on host 2 reaches host 1", "10.45.0.9", d);
    let t0 = Instant::now();
    guard_cli(&hosts[0], &["fleet", "unpin", "--ue", "10.45.0.7"])?;
    let gone =
        until(PIN_LIMIT.saturating_mul(3), || hosts.iter().all(|h| !staged(h, "10.45.0.7"))).map(|_| t0.elapsed());
    r.check(
        "etcd restored: an unpin converges on both hosts within 2 s",
        gone.is_some_and(|d| d <= PIN_LIMIT),
        format!("{gone:?}"),
    );
    Ok(())
}

/// The member that leads now, by `etcdctl endpoint status` (its IS LEADER column).
fn leader(c: &EtcdCluster) -> Option<usize> {
    let o = c.etcdctl(&["endpoint", "status", "-w", "json"]).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    let ep = v.as_array()?.iter().find(|e| e["Status"]["leader"] == e["Status"]["header"]["member_id"])?;
    let url = ep["Endpoint"].as_str()?;
    (0..MEMBERS).find(|k| super::etcd::client_url(*k) == url)
}

fn record_pin(r: &mut FleetReport, name: &str, ue: &str, d: Option<Duration>) {
    if let Some(d) = d {
        r.pin_delays_s.push((ue.to_owned(), d.as_secs_f64()));
    }
    r.check(name, d.is_some_and(|d| d <= PIN_LIMIT), format!("ue {ue}: {d:?} (limit {PIN_LIMIT:?})"));
}
