//! `[fleet] summary_group` against a real etcd (docs/fleet.md "Summary groups"; the fixture is
//! `fleet_fixture/mod.rs`): a member sums the cell summaries of its own group only, never another
//! group's nor the fleet-wide ones, while pins stay fleet-wide; without a group it sums the
//! fleet-wide ones exactly as before groups.

use std::time::Duration;

mod fleet_fixture;
use fleet_fixture::{config_text, with_fleet_keys, Fixture};

/// A valid N3 summary of `member` (one gNB).
fn summary(member: &str) -> String {
    format!(r#"{{"v":1,"member":"{member}","at_unix_ms":1,"cells":[["192.0.2.10",30000.0,300]]}}"#)
}

/// Restart the member with `group` as its summary group (None: no `summary_group`).
fn restart_in(f: &mut Fixture, group: Option<&str>) {
    if let Some(mut g) = f.guard.take() {
        g.kill().expect("kill guard");
        g.wait().expect("reap guard");
    }
    let text = config_text(&f.pin_base, &f.dir.join("audit.jsonl"), &f.fleet, "127.0.0.1", "member-1", "ue_addr");
    let keys = group.map_or(String::new(), |g| format!("summary_group = \"{g}\"\n"));
    std::fs::write(&f.guard_config, with_fleet_keys(&text, &keys)).expect("config");
    f.start_guard();
}

/// The other members whose N3 summaries the member sums, once it has read etcd (read again half
/// a second after it first shows any: not a count caught on its way up).
fn summed(f: &mut Fixture) -> Option<f64> {
    let metric = "overload_guard_fleet_n3_cell_members ";
    f.wait_for(Duration::from_secs(2), |f| f.metric(metric).is_some_and(|n| n > 0.0));
    std::thread::sleep(Duration::from_millis(500));
    f.metric(metric)
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn a_member_sums_its_summary_groups_cells_only_and_pins_stay_fleet_wide() {
    labkit::netns::assert_root("fleet_groups::a_member_sums_its_summary_groups_cells_only_and_pins_stay_fleet_wide");
    let mut f = Fixture::with_fleet_keys("g", "ue_addr", "summary_group = \"g1\"\n", "");
    // Summaries straight into etcd: one member in g1, three in g2, two fleet-wide (no group).
    let root = format!("/overload-guard/{}/", f.fleet);
    let mut keys = Vec::new();
    for (prefix, members) in [
        (format!("{root}groups/g1/cells/n3/"), vec!["upf-a"]),
        (format!("{root}groups/g2/cells/n3/"), vec!["upf-b", "upf-c", "upf-d"]),
        (format!("{root}cells/n3/"), vec!["upf-e", "upf-f"]),
    ] {
        for m in members {
            keys.push((format!("{prefix}{m}"), summary(m)));
        }
    }
    let put_all = |f: &Fixture| {
        for (k, v) in &keys {
            assert!(f.etcdctl(&["put", k, v]).status.success(), "put {k}");
        }
    };
    put_all(&f);
    f.start_guard();
    // In g1: g1's one member, never g2's three nor the fleet-wide two.
    assert_eq!(summed(&mut f), Some(1.0), "a member of g1 summed other groups' cells; log: {}", f.log());
    // Pins are fleet-wide: a pin made for the fleet applies on a member of a group.
    let d = f.pin_and_time("10.48.0.1", "quarantine", "10m", "fleet-wide");
    assert!(d < Duration::from_secs(2), "{d:?}");
    // The member says its group under members/ (guard fleet list's source).
    let about = f.etcdctl(&["get", &format!("{root}members/member-1"), "--print-value-only"]);
    let about: serde_json::Value = serde_json::from_slice(&about.stdout).expect("the member's value");
    assert_eq!(about["summary_group"], "g1", "{about}");
    // ... which shows it beside the member's name, and in its JSON.
    let listed = f.fleet(&["list"]);
    assert!(listed.contains("member-1 (summary group g1)"), "{listed}");
    let listed: serde_json::Value = serde_json::from_str(&f.fleet(&["list", "--json"])).expect("list --json");
    assert_eq!(listed["summary_groups"]["member-1"], "g1", "{listed}");
    // Other groups' keys are not even read: nothing refused.
    assert_eq!(f.metric("overload_guard_fleet_values_rejected_total{reason=\"bad_key\"}").unwrap_or(0.0), 0.0);

    // In g2: g2's three.
    put_all(&f);
    restart_in(&mut f, Some("g2"));
    assert_eq!(summed(&mut f), Some(3.0), "log: {}", f.log());
    assert!(f.ue_stage("10.48.0.1").is_some(), "the fleet pin applies in every group");

    // No group: the fleet-wide two, exactly as before groups; its member value has no group.
    put_all(&f);
    restart_in(&mut f, None);
    assert_eq!(summed(&mut f), Some(2.0), "log: {}", f.log());
    let about = f.etcdctl(&["get", &format!("{root}members/member-1"), "--print-value-only"]);
    let about: serde_json::Value = serde_json::from_slice(&about.stdout).expect("the member's value");
    assert!(about.get("summary_group").is_none(), "{about}");
    let listed = f.fleet(&["list"]);
    assert!(listed.contains("member-1") && !listed.contains("summary group"), "{listed}");

    // A group's summaries gone: dropped by its members only.
    put_all(&f);
    restart_in(&mut f, Some("g1"));
    assert_eq!(summed(&mut f), Some(1.0));
    assert!(f.etcdctl(&["del", "--prefix", &format!("{root}cells/")]).status.success());
    assert!(f.etcdctl(&["del", "--prefix", &format!("{root}groups/g2/")]).status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.metric("overload_guard_fleet_n3_cell_members "), Some(1.0), "other groups' deletes touch nothing");
    assert!(f.etcdctl(&["del", "--prefix", &format!("{root}groups/g1/")]).status.success());
    let dropped =
        f.wait_for(Duration::from_secs(2), |f| f.metric("overload_guard_fleet_n3_cell_members ") == Some(0.0));
    assert!(dropped, "the group's own delete was not seen");
    assert!(f.guard_alive());
}
