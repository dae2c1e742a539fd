//! Deterministic tests of the N2 storm controller on synthetic counter series (one tick per
//! second), and of the response hook.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use guard_common::abi::L3Addr;
use guard_common::abi_n2::{N2CellKey, N2DeviceKey, CELL_KIND_NR};

use super::*;
use crate::n2::hook::{Hook, HookError, HookSpec};
use crate::n2::{audit, metrics};

const SEC: u64 = 1_000_000_000;

fn gnb(n: u8) -> L3Addr {
    L3Addr::v4([10, 100, 0, n])
}

fn cell(n: u64) -> N2CellKey {
    N2CellKey { kind: CELL_KIND_NR, plmn: [0x00, 0xf1, 0x10, 0], cell_id: 0x1000 + n }
}

/// Cells 0-2 are served by gNB 1, cells 3-5 by gNB 2.
fn gnb_of(c: u64) -> L3Addr {
    gnb(if c < 3 { 1 } else { 2 })
}

fn dev(n: u32) -> N2DeviceKey {
    N2DeviceKey::five_g_s_tmsi((n >> 16) as u16 & 0x3ff, (n >> 26) as u8 & 0x3f, n)
}

/// The data plane's maps, as cumulative counters.
#[derive(Default)]
struct World {
    now: u64,
    cells: BTreeMap<N2CellKey, CellSample>,
    devices: HashMap<N2DeviceKey, DeviceSample>,
    /// Background devices: a large pool used round-robin, so each attempts about once an hour.
    next_bg: u32,
}

impl World {
    fn attempt(&mut self, d: N2DeviceKey, c: u64) {
        let k = cell(c);
        let cs = self.cells.entry(k).or_insert(CellSample { key: k, peer: gnb_of(c), tac: 1, ..Default::default() });
        cs.initial_ue += 1;
        cs.registration_requests += 1;
        let ds = self.devices.entry(d).or_insert(DeviceSample { key: d, ..Default::default() });
        ds.attempts += 1;
        ds.registration_requests += 1;
        ds.cell = k;
        ds.peer = gnb_of(c);
    }

    /// A SUCI-only registration in cell `c` with RRC cause `cause`: the data plane counts it on the
    /// cell and keys its device by (gNB, RAN-UE-NGAP-ID), a one-shot identity.
    fn suci_attempt(&mut self, c: u64, cause: u32, ran_ue: u32) {
        let k = cell(c);
        let cs = self.cells.entry(k).or_insert(CellSample { key: k, peer: gnb_of(c), tac: 1, ..Default::default() });
        cs.initial_ue += 1;
        cs.registration_requests += 1;
        cs.suci_only += 1;
        cs.suci_causes[cause as usize] += 1;
        let d = N2DeviceKey::ran_ue(&gnb_of(c), ran_ue).expect("v4");
        let ds = self.devices.entry(d).or_insert(DeviceSample { key: d, ..Default::default() });
        ds.attempts += 1;
        ds.registration_requests += 1;
        ds.cell = k;
        ds.peer = gnb_of(c);
    }

    /// One attempt per cell per second from the background population (baseline 1/s).
    fn background(&mut self) {
        for c in 0..6 {
            let d = dev(1_000_000 + self.next_bg % 20_000);
            self.next_bg += 1;
            self.attempt(d, c);
        }
    }

    fn tick(&mut self, e: &mut N2Engine) -> TickOutput {
        self.now += SEC;
        let cells: Vec<CellSample> = self.cells.values().copied().collect();
        let devices: Vec<DeviceSample> = self.devices.values().copied().collect();
        e.tick(self.now, &cells, &devices)
    }
}

/// `secs` seconds of background only.
fn quiet(w: &mut World, e: &mut N2Engine, secs: u64) -> Vec<Response> {
    let mut r = Vec::new();
    for _ in 0..secs {
        w.background();
        r.extend(w.tick(e).responses);
    }
    r
}

/// A storm: `n` infected devices in cells 0 and 1 (gNB 1), each registering every `period` s.
fn storm(w: &mut World, e: &mut N2Engine, n: u32, period: u64, secs: u64, obey: bool) -> Vec<Response> {
    let mut r = Vec::new();
    let mut backed_off = false;
    for s in 0..secs {
        w.background();
        if !backed_off {
            for i in 0..n {
                if (u64::from(i) + s) % period == 0 {
                    w.attempt(dev(i), u64::from(i % 2));
                }
            }
        }
        let out = w.tick(e);
        if obey && out.responses.iter().any(|x| x.level >= LEVEL_DEVICES) {
            // The AMF rejected them with T3346: they stay silent.
            backed_off = true;
        }
        r.extend(out.responses);
    }
    r
}

fn engine() -> N2Engine {
    let s = N2Settings::default();
    s.validate().expect("defaults are valid");
    N2Engine::new(&s)
}

fn actions(r: &[Response]) -> Vec<(ResponseAction, u8)> {
    r.iter().filter(|x| x.reason != "refresh").map(|x| (x.action, x.level)).collect()
}

#[test]
fn quiet_background_never_responds() {
    let (mut w, mut e) = (World::default(), engine());
    let r = quiet(&mut w, &mut e, 600);
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(e.class(), StormClass::None);
    assert_eq!(e.level(), LEVEL_NONE);
}

#[test]
fn a_persistent_registration_storm_escalates_gradually_and_stops() {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    let r = storm(&mut w, &mut e, 400, 5, 240, false);
    assert_eq!(e.class(), StormClass::RegistrationStorm);
    assert_eq!(
        actions(&r),
        vec![
            (ResponseAction::Advise, LEVEL_DEVICES),
            (ResponseAction::Advise, LEVEL_BARRING),
            (ResponseAction::OverloadStart, LEVEL_OVERLOAD)
        ],
        "one level at a time"
    );
    // Level 1 needed a full device window of the same repeaters plus `persist_windows`.
    let first = &r[0];
    assert!(first.at_ns >= (120 + 60) * SEC, "too early: {}", first.at_ns / SEC);
    assert_eq!(first.reason, "storm");
    assert_eq!(first.devices.len(), 400, "every infected device, and only them");
    let ids: std::collections::HashSet<String> = (0..400).map(|i| n2_device_str(&dev(i))).collect();
    assert!(first.devices.iter().all(|d| ids.contains(&d.id)));
    assert!(first.devices.iter().all(|d| d.t3346_s == 600 && d.gnb == "10.100.0.1"));
    assert!(first.access_barring.is_empty() && first.overload.is_none());
    // Level 2 only after `escalate_windows` at level 1 without containment.
    let second = &r[1];
    assert_eq!((second.reason, second.previous_level), ("escalate_not_contained", LEVEL_DEVICES));
    assert!(second.at_ns - first.at_ns >= 5 * SEC);
    assert_eq!(second.access_barring.len(), 2, "the two storm cells only: {:?}", second.access_barring);
    for b in &second.access_barring {
        assert_eq!(b.gnb, "10.100.0.1");
        assert!(b.barring_factor >= 0.05 && b.barring_factor < 0.5, "{b:?}");
        assert_eq!(b.access_categories, vec![1, 3]);
    }
    assert!(second.devices.iter().all(|d| d.t3346_s == 1200), "back-off doubles per level");
    // Level 3: NGAP OVERLOAD START to gNB 1 only.
    let third = &r[2];
    let o = third.overload.as_ref().expect("overload request");
    assert_eq!(o.gnbs, vec!["10.100.0.1".to_owned()], "gNB 2 is not in the storm");
    assert_eq!(o.traffic_load_reduction_pct, 80, "capped at reduction_max_pct");
    assert_eq!(o.overload_action, "reject-rrc-cr-signalling");
    assert_eq!(third.evidence.repeaters, 400);
    assert!(third.evidence.attempts_per_device > 5.0 && third.evidence.repeater_share > 0.8);
    // Refreshes while in force, with the same content.
    let refreshes: Vec<&Response> = r.iter().filter(|x| x.reason == "refresh").collect();
    assert!(!refreshes.is_empty());
    assert!(refreshes.iter().all(|x| x.level >= LEVEL_DEVICES));

    // The storm ends: one level down per `quiet_windows`, OVERLOAD STOP on leaving level 3, then
    // clear. No flapping in between.
    let r = quiet(&mut w, &mut e, 120);
    assert_eq!(
        actions(&r),
        vec![
            (ResponseAction::OverloadStop, LEVEL_BARRING),
            (ResponseAction::Advise, LEVEL_DEVICES),
            (ResponseAction::Clear, LEVEL_NONE)
        ]
    );
    let stop = &r[0];
    assert_eq!(stop.overload.as_ref().map(|o| o.gnbs.clone()), Some(vec!["10.100.0.1".to_owned()]));
    assert!(stop.at_ns >= w.now - 120 * SEC + 10 * SEC, "hysteresis: not on the first quiet window");
    assert_eq!(e.level(), LEVEL_NONE);
    let r = quiet(&mut w, &mut e, 60);
    assert!(r.is_empty(), "{r:?}");
    // The sequence numbers only go up.
    assert!(stop.seq > third.seq);
}

#[test]
fn a_natural_flash_crowd_is_reported_not_answered() {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    // A stadium: 60 new devices a second in cells 0 and 1 for 3 minutes, each registering once;
    // one in ten retries once 20 s later (a failed first attempt).
    let mut transitions = Vec::new();
    let mut responses = Vec::new();
    for s in 0..180u32 {
        w.background();
        for i in 0..60 {
            let d = 5_000_000 + s * 60 + i;
            w.attempt(dev(d), u64::from(i % 2));
            if s >= 20 && i % 10 == 0 {
                w.attempt(dev(d - 20 * 60), u64::from(i % 2));
            }
        }
        let out = w.tick(&mut e);
        transitions.extend(out.transitions);
        responses.extend(out.responses);
    }
    assert!(responses.is_empty(), "{responses:?}");
    assert_eq!(e.class(), StormClass::FlashCrowd);
    assert_eq!(transitions.first().map(|t| t.to), Some(StormClass::FlashCrowd));
    let st = e.status();
    assert_eq!((st.level, st.repeaters), (LEVEL_NONE, 0));
    assert!(st.hot_cells >= 2);
}

/// A storm in cells 0 and 1 (gNB 1) while a natural flash crowd fills cell 4 (gNB 2): the
/// responses bar the storm's cells and ask gNB 1 to reduce load, and never name cell 4, gNB 2 or
/// a crowd device. (Found by the real-n2 lab: every hot cell used to be barred.)
#[test]
fn a_flash_crowd_beside_a_storm_is_never_barred_nor_overloaded() {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    let mut responses = Vec::new();
    for s in 0..240u32 {
        w.background();
        for i in 0..300u32 {
            if (u64::from(i) + u64::from(s)) % 4 == 0 {
                w.attempt(dev(i), u64::from(i % 2));
            }
        }
        for i in 0..40 {
            w.attempt(dev(7_000_000 + s * 40 + i), 4);
        }
        responses.extend(w.tick(&mut e).responses);
    }
    assert!(
        responses.iter().any(|r| r.action == ResponseAction::OverloadStart),
        "the storm is answered: {:?}",
        actions(&responses)
    );
    let crowd_cell = super::cell_str(&cell(4));
    for r in &responses {
        assert!(
            r.access_barring.iter().all(|b| b.cell != crowd_cell),
            "the crowd's cell is never barred: {:?}",
            r.access_barring
        );
        let gnbs = r.overload.as_ref().map(|o| o.gnbs.clone()).unwrap_or_default();
        assert!(!gnbs.contains(&super::addr_str(&gnb(2))), "the crowd's gNB gets no overload: {gnbs:?}");
        assert!(r.devices.iter().all(|d| !d.cell.ends_with(&crowd_cell)), "no crowd device is named");
    }
    let barred: BTreeSet<String> =
        responses.iter().flat_map(|r| r.access_barring.iter().map(|b| b.cell.clone())).collect();
    assert_eq!(
        barred,
        [super::cell_str(&cell(0)), super::cell_str(&cell(1))].into_iter().collect(),
        "only the storm's cells"
    );
}

#[test]
fn a_handful_of_cheap_devices_never_reach_barring_or_overload() {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    // 5 devices in cell 0, each registering every second, for 10 minutes.
    let mut r = Vec::new();
    for _ in 0..600 {
        w.background();
        for i in 0..5 {
            w.attempt(dev(i), 0);
        }
        r.extend(w.tick(&mut e).responses);
    }
    assert!(r.iter().all(|x| x.level <= LEVEL_DEVICES), "{:?}", actions(&r));
    let first = r.first().expect("the devices themselves are answered");
    let mut got: Vec<String> = first.devices.iter().map(|d| d.id.clone()).collect();
    got.sort();
    let mut want: Vec<String> = (0..5).map(|i| n2_device_str(&dev(i))).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(first.access_barring.is_empty() && first.overload.is_none());
}

#[test]
fn a_storm_contained_by_back_off_does_not_escalate() {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    let r = storm(&mut w, &mut e, 400, 5, 300, true);
    assert_eq!(actions(&r), vec![(ResponseAction::Advise, LEVEL_DEVICES), (ResponseAction::Clear, LEVEL_NONE)]);
}

#[test]
fn a_storm_that_pauses_briefly_keeps_its_level() {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    let r1 = storm(&mut w, &mut e, 400, 5, 200, false);
    let level = e.level();
    assert!(level >= LEVEL_BARRING, "{:?}", actions(&r1));
    // 5 quiet seconds (fewer than quiet_windows), then the storm again.
    let r2 = quiet(&mut w, &mut e, 5);
    assert!(actions(&r2).is_empty(), "{:?}", actions(&r2));
    let r3 = storm(&mut w, &mut e, 400, 5, 30, false);
    assert!(e.level() >= level);
    assert!(actions(&r3).iter().all(|(a, _)| *a != ResponseAction::Clear && *a != ResponseAction::OverloadStop));
}

#[test]
fn response_json_is_versioned_and_stable() {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    let r = storm(&mut w, &mut e, 400, 5, 240, false);
    let start = r.iter().find(|x| x.action == ResponseAction::OverloadStart).expect("overload start");
    let v = serde_json::to_value(start).expect("json");
    assert_eq!(v["schema"], "overload-guard/n2-response");
    assert_eq!(v["version"], 1);
    assert_eq!(v["action"], "overload_start");
    assert_eq!(v["class"], "registration_storm");
    assert_eq!(v["overload"]["traffic_load_reduction_pct"], 80);
    assert!(v["devices"][0]["id"].as_str().is_some_and(|s| s.starts_with("5g-s-tmsi:")));
    assert!(v["access_barring"][0]["cell"].as_str().is_some_and(|s| s.starts_with("nr:00f110:")));
}

#[test]
fn identities_print_as_documented() {
    assert_eq!(n2_device_str(&N2DeviceKey::five_g_s_tmsi(0x155, 0x2a, 0xdead_beef)), "5g-s-tmsi:341:42:0xdeadbeef");
    assert_eq!(n2_device_str(&N2DeviceKey::s_tmsi(0x11, 0xcafe_f00d)), "s-tmsi:0x11:0xcafef00d");
    let k = N2DeviceKey::ran_ue(&gnb(7), 99).expect("v4");
    assert_eq!(n2_device_str(&k), "ran-ue:10.100.0.7:99");
    assert_eq!(cell_str(&cell(1)), "nr:00f110:0x000001001");
}

fn sample_response() -> Response {
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    storm(&mut w, &mut e, 400, 5, 200, false).into_iter().next().expect("a response")
}

#[test]
fn exec_hook_gets_the_json_on_stdin() {
    let tmp = tempfile::Builder::new().prefix("og-n2hook-").tempdir().expect("tmp");
    let dir = tmp.path();
    let out = dir.join("payload.json");
    let script = format!(
        "cat > {} && echo \"$OVERLOAD_GUARD_ACTION $OVERLOAD_GUARD_LEVEL\" >> {}",
        out.display(),
        out.display()
    );
    let hook = Hook::new(HookSpec::Exec { command: vec!["/bin/sh".into(), "-c".into(), script], timeout_ms: 5000 })
        .expect("hook");
    let r = sample_response();
    hook.send(&r).expect("exec");
    let text = std::fs::read_to_string(&out).expect("payload written");
    let mut lines = text.lines();
    let v: serde_json::Value = serde_json::from_str(lines.next().expect("json line")).expect("json");
    assert_eq!(v["seq"], r.seq);
    assert_eq!(lines.next(), Some("advise 1"));
    // A failing and a hanging hook are errors, not hangs.
    let fail = Hook::new(HookSpec::Exec { command: vec!["/bin/false".into()], timeout_ms: 5000 }).expect("hook");
    assert!(matches!(fail.send(&r), Err(HookError::Exit { .. })));
    let slow =
        Hook::new(HookSpec::Exec { command: vec!["/bin/sleep".into(), "5".into()], timeout_ms: 100 }).expect("hook");
    assert!(matches!(slow.send(&r), Err(HookError::Timeout { .. })));
    assert!(matches!(
        Hook::new(HookSpec::Exec { command: vec![], timeout_ms: 1 }),
        Err(HookError::Spec(crate::n2::hook::HookSpecError::EmptyCommand))
    ));
}

/// A one-request HTTP server answering `status`; returns (request head, body).
fn one_request(status: &'static str) -> (String, std::thread::JoinHandle<(String, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/n2/hook", l.local_addr().expect("addr"));
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("read");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("body");
        let mut s = s;
        s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).expect("answer");
        (head, String::from_utf8(body).expect("utf8"))
    });
    (url, h)
}

#[test]
fn webhook_posts_the_json() {
    let r = sample_response();
    let (url, h) = one_request("204 No Content");
    Hook::new(HookSpec::Webhook { url, timeout_ms: 5000 }).expect("hook").send(&r).expect("post");
    let (head, body) = h.join().expect("server");
    assert!(head.starts_with("POST /n2/hook HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Content-Type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!((v["version"].as_u64(), v["level"].as_u64()), (Some(1), Some(1)));
    let (url, h) = one_request("500 Internal Server Error");
    let e = Hook::new(HookSpec::Webhook { url, timeout_ms: 5000 }).expect("hook").send(&r);
    assert!(matches!(e, Err(HookError::Status { .. })), "{e:?}");
    let _ = h.join();
    for bad in ["https://x/y", "http:///x", "ftp://a"] {
        assert!(Hook::new(HookSpec::Webhook { url: bad.into(), timeout_ms: 1 }).is_err(), "{bad}");
    }
    let spec: HookSpec = toml::from_str("kind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n").expect("toml");
    assert_eq!(spec, HookSpec::Webhook { url: "http://127.0.0.1:9/x".into(), timeout_ms: 5000 });
}

#[test]
fn responses_are_audited_and_counted() {
    use crate::audit::{read_audit, AuditLog};
    let tmp = tempfile::Builder::new().prefix("og-n2audit-").tempdir().expect("tmp");
    let dir = tmp.path();
    let log = AuditLog::open(&dir.join("audit.jsonl")).expect("audit");
    let mut registry = prometheus_client::registry::Registry::with_prefix("overload_guard");
    let m = metrics::N2Metrics::register(&mut registry);
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    let wall = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for _ in 0..240 {
        w.background();
        for i in 0..400u32 {
            if (u64::from(i) + w.now / SEC) % 5 == 0 {
                w.attempt(dev(i), u64::from(i % 2));
            }
        }
        let out = w.tick(&mut e);
        for t in &out.transitions {
            audit::audit_transition(&log, wall, t).expect("audit");
        }
        for r in &out.responses {
            audit::audit_response(&log, wall, r).expect("audit");
            // No hook configured: decided and counted, no hook call counted as failed.
            m.response(r, None);
        }
        m.update(&e.status());
    }
    let recs = read_audit(log.path()).expect("read");
    let acts: Vec<&str> = recs.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(acts.first(), Some(&"n2_classified"));
    assert!(acts.contains(&"n2_advise") && acts.contains(&"n2_overload_start"), "{acts:?}");
    let start = recs.iter().find(|r| r["action"] == "n2_overload_start").expect("start");
    assert_eq!(start["target"], "gnb:10.100.0.1");
    assert_eq!(start["evidence"]["repeaters"], 400);
    assert_eq!(start["detail"]["overload"]["traffic_load_reduction_pct"], 80);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains("overload_guard_n2_level 3"), "{text}");
    assert!(text.contains("overload_guard_n2_storm_class{reason=\"registration_storm\"} 1"), "{text}");
    assert!(text.contains("overload_guard_n2_responses_total{reason=\"overload_start\"} 1"), "{text}");
    assert!(!text.contains("overload_guard_n2_hook_calls_total{"), "no hook, no hook calls: {text}");
}

/// `secs` seconds of SUCI-only registrations, `per_s` per second in each of `cells` (cause
/// mo-Signalling, 3), beside the background; every attempt a new RAN-UE-NGAP-ID.
fn suci_storm(w: &mut World, e: &mut N2Engine, cells: &[u64], per_s: u32, secs: u64) -> Vec<Response> {
    let mut r = Vec::new();
    let mut id = 0u32;
    for _ in 0..secs {
        w.background();
        for &c in cells {
            for _ in 0..per_s {
                id += 1;
                w.suci_attempt(c, 3, id);
            }
        }
        r.extend(w.tick(e).responses);
    }
    r
}

#[test]
fn a_suci_only_storm_is_attributed_to_its_cells_by_pattern() {
    let (mut w, mut e) = (World::default(), engine());
    assert!(quiet(&mut w, &mut e, 120).is_empty());
    // Cells 0 (gNB 1) and 4 (gNB 2): 10 SUCI-only registrations a second each, no device twice.
    let r = suci_storm(&mut w, &mut e, &[0, 4], 10, 200);
    let first = r.first().expect("the storm is answered");
    assert_eq!(
        (first.level, first.attribution, first.class),
        (1, Attribution::CellPattern, StormClass::RegistrationStorm)
    );
    assert!(first.devices.is_empty(), "one-shot identities are never listed: {:?}", first.devices);
    let named: Vec<&str> = first.pattern.iter().map(|p| p.cell.as_str()).collect();
    assert_eq!(named, [cell_str(&cell(0)), cell_str(&cell(4))]);
    for p in &first.pattern {
        assert_eq!((p.identity, p.rrc_cause, p.rrc_cause_name), ("suci_only", Some(3), Some("mo-Signalling")));
        assert!(p.suci_share > 0.75 && p.rrc_cause_share == 1.0, "{p:?}");
    }
    // Not contained (the senders ignore the back-off): barring, then overload, of those cells and
    // gNBs alone, one level at a time.
    let levels: Vec<u8> = actions(&r).iter().map(|a| a.1).collect();
    assert_eq!(levels, [1, 2, 3], "{:?}", actions(&r));
    for x in &r {
        let barred: Vec<&str> = x.access_barring.iter().map(|b| b.cell.as_str()).collect();
        assert!(barred.iter().all(|c| *c == cell_str(&cell(0)) || *c == cell_str(&cell(4))), "{barred:?}");
        assert_eq!(x.attribution, Attribution::CellPattern);
    }
    let ov = r.iter().find_map(|x| x.overload.as_ref()).expect("OVERLOAD START");
    assert_eq!(ov.gnbs, ["10.100.0.1", "10.100.0.2"]);
    // Over: back down to clear.
    let r = quiet(&mut w, &mut e, 60);
    assert_eq!(r.last().map(|x| x.action), Some(ResponseAction::Clear));
}

#[test]
fn a_crowd_of_half_new_devices_is_no_pattern_storm() {
    // A crowd: half registered phones (5G-S-TMSI), half new devices (SUCI), each once.
    let (mut w, mut e) = (World::default(), engine());
    quiet(&mut w, &mut e, 120);
    let mut id = 0u32;
    let mut classes = Vec::new();
    for _ in 0..60 {
        w.background();
        for i in 0..10 {
            id += 1;
            if i % 2 == 0 {
                w.suci_attempt(0, 3, id);
            } else {
                w.attempt(dev(2_000_000 + id), 0);
            }
        }
        let out = w.tick(&mut e);
        assert!(out.responses.is_empty(), "{:?}", out.responses);
        classes.extend(out.transitions.iter().map(|t| t.to));
    }
    assert_eq!(classes.first(), Some(&StormClass::FlashCrowd));
    assert!(!classes.contains(&StormClass::RegistrationStorm));
}

#[test]
fn a_cell_of_new_devices_is_judged_against_its_own_suci_share() {
    // Cell 2 normally serves mostly new devices (a factory provisioning line: 40 % SUCI); a hot
    // spell at 80 % SUCI is 2× its normal share, below suci_share_ratio (3): not a pattern.
    let (mut w, mut e) = (World::default(), engine());
    let mut id = 0u32;
    for s in 0..120u32 {
        w.background();
        if s % 5 < 2 {
            id += 1;
            w.suci_attempt(2, 3, id);
        } else {
            w.attempt(dev(3_000_000 + s), 2);
        }
        assert!(w.tick(&mut e).responses.is_empty());
    }
    for _ in 0..60 {
        w.background();
        for i in 0..10 {
            id += 1;
            if i < 8 {
                w.suci_attempt(2, 3, id);
            } else {
                w.attempt(dev(4_000_000 + id), 2);
            }
        }
        let out = w.tick(&mut e);
        assert!(out.responses.is_empty(), "{:?}", out.responses);
    }
    assert!(e.last_evidence.pattern_cells == 0 && e.last_evidence.hot_cells > 0, "{:?}", e.last_evidence);
}
