//! Fleet mode against a real etcd (Debian's etcd-server), run inside the lab's CORE namespace on
//! its loopback addresses only, with its data in a temporary directory; the process is killed and
//! everything removed on exit, panics included (`Fixture`'s `Drop`).
//!
//! - a pin written with `guard fleet pin` is applied by a running `guard run --config` with
//!   `[fleet]` within 2 s (read back from the pinned maps), and audited with its author;
//! - an entry of a pin found overwritten (the controller's read-then-write racing the member's
//!   write) is written again within 2 s;
//! - `guard fleet unpin` removes the stage;
//! - a malformed or oversized value is logged and skipped, and the member goes on;
//! - killing etcd leaves the guard running with its pin until the pin's expiry, the metric says
//!   disconnected; while the member cannot reach etcd a pin is made; once it can, it catches up
//!   (re-list, then watch) and applies that pin.
//!
//! The fixture (etcd, the member, the operator's CLI) is `fleet_fixture/mod.rs`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guard_common::abi::{ByteLimit, STAGE_FLAG_MANUAL, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};

mod fleet_fixture;
mod syscall_filter;
use fleet_fixture::{Fixture, CLIENT_PORT, METRICS_PORT};

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_fleet_pin_is_applied_within_2s_audited_unpinned_and_bad_values_are_skipped() {
    labkit::netns::assert_root(
        "fleet_etcd::a_fleet_pin_is_applied_within_2s_audited_unpinned_and_bad_values_are_skipped",
    );
    let mut f = Fixture::new("a", "ue_addr");
    f.start_guard();

    // (a) applied within 2 s, as an operator pin (manual), and audited with its author.
    let mut latencies = Vec::new();
    for (i, ue) in ["10.45.0.7", "10.45.0.8", "10.45.0.9", "10.45.0.10", "10.45.0.11"].iter().enumerate() {
        let stage = if i % 2 == 0 { "quarantine" } else { "strict" };
        let d = f.pin_and_time(ue, stage, "10m", "ticket 4711");
        let e = f.ue_stage(ue).expect("stage");
        assert_eq!(e.stage, if i % 2 == 0 { STAGE_QUARANTINE } else { STAGE_STRICT }, "{ue}");
        assert_ne!(e.flags & STAGE_FLAG_MANUAL, 0, "a fleet pin is an operator pin: the controller keeps off it");
        assert!(d < Duration::from_secs(2), "{ue} applied after {d:?}");
        latencies.push(d);
    }
    latencies.sort();
    eprintln!(
        "fleet pin propagation (guard fleet pin start -> stage in the member's maps): min {:?}, median {:?}, max {:?} over {}",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );
    let audited = f.audit();
    let line = audited
        .iter()
        .find(|r| r["actor"] == "fleet" && r["action"] == "fleet-pin" && r["target"] == "ue 10.45.0.7")
        .unwrap_or_else(|| panic!("no audit line for the fleet pin: {audited:?}"));
    assert!(line["detail"]["author"].as_str().is_some_and(|a| a.contains("on ops-host")), "{line}");
    assert_eq!(line["detail"]["member"], "member-1");
    assert_eq!(line["evidence"]["comment"], "ticket 4711");
    assert_eq!(f.metric("overload_guard_fleet_pins_applied "), Some(5.0));
    // A gNB pin: a manual cap on the gNB's G-PDUs (the data plane's only gNB stage).
    f.fleet(&["pin", "--gnb", "192.0.2.10", "--stage", "quarantine", "--ttl", "10m", "--comment", "rogue gNB"]);
    let gnb = guard::n3::local::l3_of("192.0.2.10".parse().expect("address"));
    let capped = f.wait_for(Duration::from_secs(2), |f| {
        f.maps().cell_stage(&gnb).expect("cell stage read").is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0)
    });
    assert!(capped, "the gNB pin never reached N3_CELL_STAGES; log: {}", f.log());
    let listed = f.fleet(&["list"]);
    assert!(listed.contains("ue 10.45.0.7") && listed.contains("member-1"), "{listed}");

    // (c) A pin's entry the controller wrote over (its read-then-write raced the member's write:
    // the controller's entry, no manual flag) is written again within 2 s, though etcd's value
    // did not change, and the member says so.
    let key = guard::n3::manual::ue_device_key("10.45.0.9".parse().expect("address"), 64).expect("UE key");
    let pinned = f.ue_stage("10.45.0.9").expect("pinned");
    f.maps().set_stage(&key, &guard_common::abi::StageEntry { flags: 0, reason: 1, ..pinned }).expect("overwrite");
    assert_eq!(f.ue_stage("10.45.0.9").map(|e| e.flags & STAGE_FLAG_MANUAL), Some(0), "overwritten");
    let restored = f.wait_for(Duration::from_secs(2), |f| {
        f.ue_stage("10.45.0.9").is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0 && e.stage == STAGE_QUARANTINE)
    });
    assert!(restored, "the overwritten fleet pin was not written again; log: {}", f.log());
    assert!(f.log().contains("writing it again"), "and the member says so: {}", f.log());

    // (b) unpin removes the stage.
    f.fleet(&["unpin", "--ue", "10.45.0.8"]);
    assert!(
        f.wait_for(Duration::from_secs(2), |f| f.ue_stage("10.45.0.8").is_none()),
        "unpin did not remove the stage"
    );
    assert!(f.ue_stage("10.45.0.7").is_some(), "the other pins stay");
    assert!(f
        .audit()
        .iter()
        .any(|r| r["action"] == "fleet-unpin" && r["target"] == "ue 10.45.0.8" && r["reason"] == "deleted"));

    // (d) a malformed value and an oversized one are logged and skipped; the member goes on.
    let base = format!("/overload-guard/{}/pins/", f.fleet);
    assert!(f.etcdctl(&["put", &format!("{base}ue/10.45.0.20"), "{not json"]).status.success());
    assert!(f.etcdctl(&["put", &format!("{base}ue/10.45.0.21"), &"x".repeat(5000)]).status.success());
    assert!(f.etcdctl(&["put", &format!("{base}teid/4096"), "{}"]).status.success());
    let rejected = f.wait_for(Duration::from_secs(3), |f| {
        f.metric("overload_guard_fleet_values_rejected_total{reason=\"malformed\"}") == Some(1.0)
            && f.metric("overload_guard_fleet_values_rejected_total{reason=\"oversized\"}") == Some(1.0)
            && f.metric("overload_guard_fleet_values_rejected_total{reason=\"bad_key\"}") == Some(1.0)
    });
    assert!(rejected, "rejections not counted; log: {}", f.log());
    let log = f.log();
    assert!(log.contains("value rejected") && log.contains("10.45.0.20") && log.contains("10.45.0.21"), "{log}");
    assert!(f.ue_stage("10.45.0.20").is_none() && f.ue_stage("10.45.0.21").is_none());
    assert!(f.guard_alive(), "the member must survive bad values");
    let d = f.pin_and_time("10.45.0.30", "quarantine", "10m", "after the bad values");
    assert!(d < Duration::from_secs(2), "a good pin after bad values applied after {d:?}");

    // A pin deleted while the member is down does not outlive the restart: the restarted member
    // clears the fleet entries its previous run wrote for pins no longer in etcd.
    let mut g = f.guard.take().expect("guard runs");
    g.kill().expect("kill -9 guard");
    g.wait().expect("reap guard");
    f.fleet(&["unpin", "--ue", "10.45.0.7"]);
    assert!(f.ue_stage("10.45.0.7").is_some(), "nobody removed it yet: the member is down");
    f.start_guard();
    assert!(
        f.wait_for(Duration::from_secs(2), |f| f.ue_stage("10.45.0.7").is_none()),
        "a pin deleted while the member was down is still applied after its restart; log: {}",
        f.log()
    );
    assert!(f.ue_stage("10.45.0.9").is_some() && f.ue_stage("10.45.0.30").is_some(), "the pins still in etcd stay");
    assert!(f
        .audit()
        .iter()
        .any(|r| r["action"] == "fleet-unpin" && r["reason"].as_str().is_some_and(|w| w.contains("restarted"))));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn losing_etcd_keeps_pins_until_expiry_and_the_member_catches_up() {
    labkit::netns::assert_root("fleet_etcd::losing_etcd_keeps_pins_until_expiry_and_the_member_catches_up");
    let mut f = Fixture::new("c", "ue_addr");
    f.start_guard();
    f.pin_and_time("10.46.0.1", "quarantine", "6s", "short pin");
    let long = f.pin_and_time("10.46.0.2", "quarantine", "10m", "long pin");
    assert!(long < Duration::from_secs(2));
    f.pin_and_time("10.46.0.4", "quarantine", "10m", "a false positive, found later");

    // etcd gone: the member says so, keeps running and keeps both pins.
    let killed = Instant::now();
    f.kill_etcd();
    assert!(
        f.wait_for(Duration::from_secs(5), |f| f.metric("overload_guard_fleet_connected ") == Some(0.0)),
        "the metric never said disconnected; log: {}",
        f.log()
    );
    assert!(f.guard_alive(), "losing etcd must not stop the guard");
    assert!(f.ue_stage("10.46.0.1").is_some() && f.ue_stage("10.46.0.2").is_some(), "pins kept without etcd");
    let readyz = f.lab.http_get(METRICS_PORT, "/readyz").expect("readyz");
    assert!(readyz.1.contains("etcd unreachable"), "{readyz:?}");
    // The short pin runs out on its own time, etcd or not; the long one stays.
    assert!(
        f.wait_for(Duration::from_secs(8), |f| f.ue_stage("10.46.0.1").is_none()),
        "the short pin outlived its TTL"
    );
    assert!(killed.elapsed() >= Duration::from_secs(2), "it expired by its TTL, not at the loss");
    // A false positive found while etcd is gone (`guard fleet unpin` cannot reach it): released
    // on this host alone with --override-fleet, which the member leaves alone (an operator's
    // entry), where a plain release is refused.
    let release = |extra: &[&str]| {
        let out = f
            .guard_cmd()
            .args(["device", "release", "--iface", f.lab.core_ifname(), "--config"])
            .arg(&f.guard_config)
            .args(["--ue", "10.46.0.4", "--ttl", "1h", "--comment", "false positive, etcd down"])
            .args(extra)
            .output()
            .expect("guard device release");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = release(&[]);
    assert!(!ok && text.contains("fleet pin"), "a plain release of a fleet pin is refused: {text}");
    let (ok, text) = release(&["--override-fleet"]);
    assert!(ok && text.contains("released"), "{text}");
    std::thread::sleep(Duration::from_millis(2500));
    let e = f.ue_stage("10.46.0.4").expect("the release's entry");
    assert_eq!(
        (e.stage, e.flags & STAGE_FLAG_MANUAL != 0),
        (0, true),
        "still released: the member did not write its pin back"
    );
    assert!(f.ue_stage("10.46.0.2").is_some());
    // The long pin and the released one: the member still holds the latter (etcd has it), the
    // operator's entry overrides it on this host.
    assert!(f.wait_for(Duration::from_secs(3), |f| f.metric("overload_guard_fleet_pins_applied ") == Some(2.0)));

    // etcd back, but the member cut off (its endpoint firewalled): a pin made meanwhile waits.
    let ns = f.lab.core_ns_name().to_owned();
    let nft = |script: &str| {
        let out =
            Command::new("ip").args(["netns", "exec", &ns, "nft", "-f", "-"]).stdin(Stdio::piped()).spawn().and_then(
                |mut c| {
                    use std::io::Write as _;
                    c.stdin.take().expect("stdin").write_all(script.as_bytes())?;
                    c.wait_with_output()
                },
            );
        assert!(out.expect("nft (Debian nftables)").status.success(), "nft {script}");
    };
    nft(&format!(
        "table inet og_fleet_cut {{\n chain out {{\n  type filter hook output priority 0;\n  ip daddr 127.0.0.1 tcp dport {CLIENT_PORT} drop\n }}\n}}\n"
    ));
    f.start_etcd();
    f.fleet(&["pin", "--ue", "10.46.0.3", "--stage", "quarantine", "--ttl", "10m", "--comment", "made meanwhile"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(f.ue_stage("10.46.0.3").is_none(), "applied while the member could not reach etcd?");
    assert_eq!(f.metric("overload_guard_fleet_connected "), Some(0.0));
    // The member reaches etcd again: it re-lists and applies what it missed.
    let healed = Instant::now();
    nft("delete table inet og_fleet_cut");
    assert!(
        f.wait_for(Duration::from_secs(5), |f| f.ue_stage("10.46.0.3").is_some()),
        "the pin made meanwhile was never applied; log: {}",
        f.log()
    );
    eprintln!("caught up {:?} after the member could reach etcd again (retry_max 1s)", healed.elapsed());
    assert!(f.wait_for(Duration::from_secs(3), |f| f.metric("overload_guard_fleet_connected ") == Some(1.0)));
    assert!(f.metric("overload_guard_fleet_reconnects_total").unwrap_or(0.0) >= 1.0);
    assert!(f.ue_stage("10.46.0.2").is_some(), "the long pin is still there");
    let readyz = f.lab.http_get(METRICS_PORT, "/readyz").expect("readyz");
    assert!(readyz.1.contains("connected to etcd"), "{readyz:?}");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_device_pin_fleet_writes_the_fleet_pin_every_member_applies() {
    labkit::netns::assert_root("fleet_etcd::guard_device_pin_fleet_writes_the_fleet_pin_every_member_applies");
    let mut f = Fixture::new("d", "ue_addr");
    f.start_guard();
    let ue = "10.46.0.9";
    let t0 = Instant::now();
    // The local command, as an operator types it on the host: the fleet pin, not a local entry.
    let out = f
        .guard_cmd()
        .args(["device", "pin", "--fleet", "--ue", ue, "--stage", "strict", "--ttl", "5m", "--comment", "from a host"])
        .arg("--config")
        .arg(&f.cli_config)
        .output()
        .expect("guard device pin --fleet");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("written to etcd"), "{out:?}");
    let seen = f.wait_for(Duration::from_secs(2), |f| f.ue_stage(ue).is_some());
    assert!(seen, "the member did not apply the pin within 2 s; log: {}", f.log());
    println!("guard device pin --fleet -> stage in the member's maps: {:?}", t0.elapsed());
    let e = f.ue_stage(ue).expect("stage");
    assert_eq!((e.stage, e.flags & STAGE_FLAG_MANUAL), (STAGE_STRICT, STAGE_FLAG_MANUAL));
    // The same key and value `guard fleet pin --ue` writes.
    let key = format!("/overload-guard/{}/pins/ue/{ue}", f.fleet);
    let got = f.etcdctl(&["get", &key, "--print-value-only"]);
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).expect("a pin value");
    assert_eq!((v["stage"].as_str(), v["comment"].as_str()), (Some("strict"), Some("from a host")), "{v}");
    assert!(f.fleet(&["list"]).contains(&format!("ue {ue}")));
    // On the member, a local unpin of the fleet's pin is refused (it would stay gone here while
    // etcd shows it in force), and the stage stays.
    let out = f
        .guard_cmd()
        .args(["device", "unpin", "--ue", ue, "--comment", "local", "--iface", f.lab.core_ifname(), "--config"])
        .arg(&f.guard_config)
        .output()
        .expect("guard device unpin");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fleet pin"), "a local unpin of a fleet pin: {err}");
    // Nor may a local release or pin overwrite it.
    for args in [
        vec!["device", "release", "--ue", ue, "--ttl", "10m", "--comment", "local"],
        vec!["device", "pin", "--ue", ue, "--stage", "shape", "--ttl", "10m", "--comment", "local"],
    ] {
        let out = f
            .guard_cmd()
            .args(&args)
            .args(["--iface", f.lab.core_ifname(), "--config"])
            .arg(&f.guard_config)
            .output()
            .expect("guard device");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("fleet pin"), "{args:?} over a fleet pin: {err}");
    }
    assert_eq!(f.ue_stage(ue).map(|e| e.stage), Some(STAGE_STRICT), "the fleet pin stays as the fleet wrote it");
    // A TEID is host-local: refused before anything is written.
    let out = f
        .guard_cmd()
        .args(["device", "pin", "--fleet", "--teid", "7", "--stage", "strict", "--ttl", "5m", "--comment", "x"])
        .arg("--config")
        .arg(&f.cli_config)
        .output()
        .expect("guard device pin --fleet --teid");
    assert!(!out.status.success(), "a TEID fleet pin was accepted");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_device_pin_fleet_tmsi_writes_the_pin_guard_fleet_pin_tmsi_writes() {
    labkit::netns::assert_root("fleet_etcd::guard_device_pin_fleet_tmsi_writes_the_pin_guard_fleet_pin_tmsi_writes");
    let mut f = Fixture::new("s", "ue_addr");
    f.start_guard();
    let device = |f: &Fixture, args: &[&str]| {
        f.guard_cmd().args(["device", "pin"]).args(args).arg("--config").arg(&f.cli_config).output().expect("guard")
    };
    let id = "5g-s-tmsi:1:1:0xdeadbeef";
    let key = format!("/overload-guard/{}/pins/tmsi/{id}", f.fleet);
    let value = |f: &Fixture| -> serde_json::Value {
        let got = f.etcdctl(&["get", &key, "--print-value-only"]);
        serde_json::from_slice(&got.stdout).unwrap_or(serde_json::Value::Null)
    };
    // `guard fleet pin --tmsi` first: the value the device command must write too.
    f.fleet(&["pin", "--tmsi", id, "--ttl", "5m", "--comment", "from a host"]);
    let by_fleet = value(&f);
    assert_eq!(by_fleet["stage"], "backoff", "{by_fleet}");
    f.fleet(&["unpin", "--tmsi", id]);
    assert_eq!(value(&f), serde_json::Value::Null, "unpinned");
    // The local command, hex in capitals as an operator may copy it: the same key (the one
    // spelling) and the same value but for its times.
    let out = device(&f, &["--fleet", "--tmsi", "5G-S-TMSI:1:1:0xDEADBEEF", "--ttl", "5m", "--comment", "from a host"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("written to etcd"), "{out:?}");
    let by_device = value(&f);
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for k in ["created_unix_ms", "expires_unix_ms"] {
            v.as_object_mut().expect("an object").remove(k);
        }
        v
    };
    assert_eq!(strip(&by_device), strip(&by_fleet), "guard device pin --fleet --tmsi wrote another value");
    assert!(f.fleet(&["list"]).contains(&format!("tmsi {id}")));
    // The member read it: this one has no N2 controller, so it audits that it cannot apply it.
    let audited = f.wait_for(Duration::from_secs(2), |f| {
        f.audit().iter().any(|r| {
            r["action"] == "fleet-pin-not-applied"
                && r["target"] == format!("tmsi {id}")
                && r["detail"]["author"].as_str().is_some_and(|a| a.contains("on ops-host"))
        })
    });
    assert!(audited, "the member did not audit the pin; audit {:?}", f.audit());
    // Without --fleet: refused, saying why and what to type; nothing written.
    let other = "5g-s-tmsi:1:1:0x0badcafe";
    let out = device(&f, &["--tmsi", other, "--ttl", "5m", "--comment", "local"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--fleet --tmsi"), "{err}");
    // With a stage: refused (a 5G-S-TMSI pin is a back-off, never a drop).
    let out = device(&f, &["--fleet", "--tmsi", other, "--stage", "quarantine", "--ttl", "5m", "--comment", "x"]);
    assert!(!out.status.success(), "a staged 5G-S-TMSI pin was accepted");
    let stray = f.etcdctl(&["get", &format!("/overload-guard/{}/pins/tmsi/{other}", f.fleet)]);
    assert!(stray.stdout.is_empty(), "a refused pin reached etcd: {}", String::from_utf8_lossy(&stray.stdout));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_fleet_pin_with_a_bit_rate_reaches_the_members_byte_limits_and_audit() {
    labkit::netns::assert_root("fleet_etcd::a_fleet_pin_with_a_bit_rate_reaches_the_members_byte_limits_and_audit");
    let mut f = Fixture::new("b", "ue_addr");
    f.start_guard();
    // A UE, typed on a host as the local byte pin is, with --fleet.
    let (ue, rate) = ("10.46.1.5", ["--rate", "5Mbit/s", "--burst-bytes", "30000"]);
    let out = f
        .guard_cmd()
        .args(["device", "pin", "--fleet", "--ue", ue, "--stage", "shape", "--ttl", "5m", "--comment", "bytes"])
        .args(rate)
        .arg("--config")
        .arg(&f.cli_config)
        .output()
        .expect("guard device pin --fleet --rate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(f.wait_for(Duration::from_secs(2), |f| f.ue_stage(ue).is_some()), "not applied; log: {}", f.log());
    let e = f.ue_stage(ue).expect("stage");
    assert_eq!((e.stage, e.bytes), (STAGE_SHAPE, ByteLimit::bits_per_second(5_000_000, 30_000)), "{e:?}");
    let key = format!("/overload-guard/{}/pins/ue/{ue}", f.fleet);
    let v: serde_json::Value =
        serde_json::from_slice(&f.etcdctl(&["get", &key, "--print-value-only"]).stdout).expect("a pin value");
    assert_eq!((v["rate_bps"].as_u64(), v["burst_bytes"].as_u64()), (Some(5_000_000), Some(30_000)), "{v}");
    assert!(f.fleet(&["list"]).contains(&guard_common::units::BitRate(5_000_000).to_string()), "list shows it");
    // A gNB by its bit rate alone (no packet rate): the cap's byte limit, one second of burst.
    let g = "192.0.2.77";
    f.fleet(&["pin", "--gnb", g, "--stage", "shape", "--rate", "200Mbit/s", "--ttl", "5m", "--comment", "gNB bytes"]);
    let cap_of = |f: &Fixture, g: &str| {
        f.maps().cell_stage(&guard::n3::local::l3_of(g.parse().expect("address"))).expect("cell stage read")
    };
    let cap = |f: &Fixture| cap_of(f, g);
    assert!(f.wait_for(Duration::from_secs(2), |f| cap(f).is_some()), "no cap; log: {}", f.log());
    let c = cap(&f).expect("cap");
    assert_eq!((c.interval_ns, c.bytes), (0, ByteLimit::bits_per_second(200_000_000, 25_000_000)), "{c:?}");
    // `guard gnb pin --fleet`, typed on a host: both rates, as the local cap would have them.
    let (g2, both) = ("192.0.2.78", ["--pps", "1000", "--rate", "100Mbit/s", "--ttl", "5m", "--comment", "both"]);
    let mut cmd = f.guard_cmd();
    let out = cmd.args(["gnb", "pin", "--fleet", "--gnb", g2]).args(both).arg("--config").arg(&f.cli_config);
    let out = out.output().expect("guard gnb pin --fleet");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(f.wait_for(Duration::from_secs(2), |f| cap_of(f, g2).is_some()), "no cap; log: {}", f.log());
    let c = cap_of(&f, g2).expect("cap");
    assert_eq!((c.interval_ns, c.bytes), (1_000_000, ByteLimit::bits_per_second(100_000_000, 12_500_000)), "{c:?}");
    // Audited as the local pins are: `bit_rate` and `burst_bytes`.
    let audited = f.audit();
    for (target, bits, burst) in
        [(format!("ue {ue}"), 5_000_000, 30_000), (format!("gnb {g}"), 200_000_000, 25_000_000)]
    {
        let line = audited.iter().find(|r| r["action"] == "fleet-pin" && r["target"] == target.as_str());
        let d = &line.unwrap_or_else(|| panic!("no audit line for {target}: {audited:?}"))["detail"];
        assert_eq!(d["bit_rate"], guard_common::units::BitRate(bits).to_string(), "{d}");
        assert_eq!(d["burst_bytes"], burst, "{d}");
    }
    // An out-of-range rate written straight into etcd: refused with a log line naming it, the
    // pin the key held is removed, and the member goes on.
    let bad = v.to_string().replace(r#""rate_bps":5000000"#, r#""rate_bps":1"#);
    assert!(f.etcdctl(&["put", &key, &bad]).status.success());
    let rejected = f.wait_for(Duration::from_secs(3), |f| {
        f.metric("overload_guard_fleet_values_rejected_total{reason=\"invalid\"}").is_some_and(|n| n >= 1.0)
    });
    assert!(rejected && f.log().contains("rate_bps 1 is outside"), "not rejected; log: {}", f.log());
    assert!(f.wait_for(Duration::from_secs(2), |f| f.ue_stage(ue).is_none()), "the refused pin is still applied");
    assert!(f.guard_alive() && cap(&f).is_some(), "the member and its other pin go on");
}

/// The packaged unit's `SystemCallFilter=` holds for a fleet member too (`service.rs` traces the
/// rest): every system call `guard run` makes while it connects to etcd, watches, applies a fleet
/// pin, removes it at the unpin and stops, traced with strace, is one the unit allows. `setns` is
/// the test's `--netns`, excused.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_fleet_member_makes_only_system_calls_the_unit_allows() {
    labkit::netns::assert_root("fleet_etcd::a_fleet_member_makes_only_system_calls_the_unit_allows");
    let (allowed, filter) = syscall_filter::unit_allows();
    let mut f = Fixture::new("y", "ue_addr");
    let trace = f.dir.join("run.strace");
    f.wrapper = ["strace", "-f", "-qq", "-o"].into_iter().map(str::to_owned).collect();
    f.wrapper.push(trace.display().to_string());
    f.start_guard();
    let d = f.pin_and_time("10.45.0.7", "quarantine", "10m", "traced");
    assert!(d < Duration::from_secs(2), "{d:?}");
    f.fleet(&["unpin", "--ue", "10.45.0.7"]);
    assert!(f.wait_for(Duration::from_secs(5), |f| f.ue_stage("10.45.0.7").is_none()), "unpinned: {}", f.log());
    // strace stays the fixture's until it has exited, so a failure on the way still kills both.
    let strace = f.guard.as_mut().expect("running");
    let pid = syscall_filter::wrapped_pid(strace.id()).expect("the traced guard's pid");
    // SAFETY: kill(2) on the guard this test started (under strace).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = syscall_filter::wait_bounded(strace, Duration::from_secs(20)).expect("strace exits with the guard");
    f.guard = None;
    assert!(status.success(), "guard run under strace: {status:?}\n{}", f.log());
    let mut made = syscall_filter::traced_calls(&trace);
    assert!(made.contains("connect") && made.contains("bpf"), "the trace saw the member at work: {made:?}");
    made.remove("setns");
    let denied: Vec<&String> = made.difference(&allowed).collect();
    assert!(denied.is_empty(), "the unit's SystemCallFilter= lines ({filter}) would refuse {denied:?}");
}
