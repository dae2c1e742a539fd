//! `guard run` sharing a veth with an XDP program nobody on the project wrote (issue 22):
//! `tests/peers/xdp_upf.c` (counts every packet and each G-PDU's TEID, drops UDP to 9999) and
//! `xdp_root.c` (tail-calls slot 1, then slot 2), compiled with clang and pinned with bpftool.
//! Real packets from the RAN namespace, counted by an independent sink on the core side and by
//! the UPF program's own maps. Each way:
//! - a quarantined device is dropped by the guard and never reaches the UPF program; the others
//!   reach it and its own verdict holds (UDP to 9999 is dropped by it);
//! - `guard upgrade`, a `kill -9` and a restart of the guard under a paced flood lose no benign
//!   packet, and the UPF program counts every one;
//! - restarting the UPF program (or the root) leaves the guard running and linked again; stopping
//!   and detaching the guard leaves the UPF program (or the root) running alone.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use labkit::{
    generator::{send_frames, SendOpts},
    sink::{Sink, SinkReport},
    xdpprog::{bpftool, Pinned},
};

mod process_fixture;
use process_fixture::{metric, Fixture};

const QUARANTINED: u32 = 0x100;
const OTHERS: [u32; 4] = [0x101, 0x102, 0x103, 0x104];

fn frames(f: &Fixture, udp_9999: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for (i, t) in OTHERS.iter().enumerate() {
        frames.push(f.lab.gpdu_v4(i % 2, *t).build());
        frames.push(f.lab.gpdu_v4(i % 2, QUARANTINED).build());
    }
    for _ in 0..udp_9999 {
        frames.push(f.lab.gpdu_v4(0, 0x999).udp_ports(40000, 9999).build());
    }
    frames
}

/// Send `n` frames of [`frames`] at `pps`, running `during` meanwhile; what was sent
/// and what the sink received.
fn send(
    f: &Fixture,
    n: u64,
    pps: u64,
    udp_9999: usize,
    during: impl FnOnce(),
) -> (labkit::generator::SendReport, SinkReport) {
    let frames = frames(f, udp_9999);
    let sink = Sink::start(&f.lab.core, f.lab.core_ifname()).expect("sink");
    let opts = SendOpts::new(n, Duration::from_secs(60)).pps(pps);
    let sent = std::thread::scope(|s| {
        let lab = &f.lab;
        let sender = s.spawn(|| send_frames(&lab.ran, lab.ran_ifname(), &frames, &opts));
        during();
        sender.join().expect("sender thread")
    })
    .expect("send");
    assert!(!sent.hit_deadline && sent.sent == n, "generator sent everything: {sent:?}");
    sink.wait_quiet(Duration::from_millis(300), Duration::from_secs(5));
    (sent, sink.stop().expect("sink report"))
}
fn upf_teids(u: &Pinned) -> std::collections::BTreeMap<u32, u64> {
    std::iter::once(QUARANTINED).chain(OTHERS).map(|t| (t, u.hash_u32("upf_teids", t))).collect()
}

/// Every benign packet sent arrived at the sink and (`through_upf`) was counted by the UPF
/// program; no quarantined one did either (`guarded`).
fn check_round(
    what: &str,
    sent: &labkit::generator::SendReport,
    got: &SinkReport,
    upf_before: &std::collections::BTreeMap<u32, u64>,
    u: &Pinned,
    guarded: bool,
) {
    let upf = upf_teids(u);
    for t in OTHERS {
        let s = sent.per_teid.get(&t).copied().unwrap_or(0);
        assert!(s > 0, "{what}: TEID {t:#x} was sent");
        assert_eq!(got.teid(t), s, "{what}: benign TEID {t:#x}: every packet must arrive (lost {})", s - got.teid(t));
        assert_eq!(upf[&t] - upf_before[&t], s, "{what}: the UPF program counted every benign packet of {t:#x}");
    }
    let q = sent.per_teid.get(&QUARANTINED).copied().unwrap_or(0);
    assert!(q > 0, "{what}: the quarantined device was sent");
    if guarded {
        assert_eq!(got.teid(QUARANTINED), 0, "{what}: a quarantined packet passed");
        assert_eq!(upf[&QUARANTINED], upf_before[&QUARANTINED], "{what}: the UPF program saw a quarantined packet");
    } else {
        assert_eq!(got.teid(QUARANTINED), q, "{what}: without the guard the device's packets arrive");
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// `guard detach --all --config <the fixture's>`, as the package's `prerm` runs it: every
/// interface with pins under the configured pin directory, each the way `--iface` would.
fn detach_all(f: &Fixture) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guard"))
        .env("GUARD_RUN_DIR", f.dir.join("run"))
        .args(["--netns", f.lab.core_ns_name(), "detach", "--all", "--config"])
        .arg(&f.config)
        .output()
        .expect("guard detach --all");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "guard detach --all: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn xdp_prog_name(f: &Fixture) -> String {
    let out = Command::new("ip")
        .args(["-n", f.lab.core_ns_name(), "-j", "-d", "link", "show", "dev", f.lab.core_ifname()])
        .output()
        .expect("ip link");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let xdp = &v[0]["xdp"];
    let p = if xdp["prog"].is_null() { &xdp["attached"][0]["prog"] } else { &xdp["prog"] };
    p["name"].as_str().unwrap_or("").to_owned()
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_first_then_the_upf_program_each_survives_the_other() {
    labkit::netns::assert_root("chain_process::guard_first_then_the_upf_program_each_survives_the_other");
    let u = Pinned::load("xdp_upf").unwrap_or_else(|e| panic!("loading the UPF program: {e:#}"));
    let f = Fixture::new("chain", &format!("\n[attach]\nnext = {:?}\n", u.prog().display().to_string()));
    f.start_guard("run-1.log");
    f.guard_ok(&["device", "pin", "--teid", "0x100", "--stage", "quarantine", "--ttl", "10m", "--comment", "test"]);
    assert_eq!(xdp_prog_name(&f), "guard_n3");

    // Quarantined: dropped by the guard, never seen by the UPF; benign: through both; UDP to
    // 9999: passed by the guard, dropped by the UPF.
    let before = upf_teids(&u);
    let dropped = u.counter("upf_counts", 1);
    let (sent, got) = send(&f, 1000, 2000, 2, || {});
    check_round("guard first", &sent, &got, &before, &u, true);
    // The UDP-9999 packets are G-PDUs of TEID 0x999 (the sink's `other` counts ARP and IPv6
    // neighbour discovery, which a link may send at any time).
    assert_eq!(got.teid(0x999), 0, "UDP to 9999 passed the UPF program: {got:?}");
    assert_eq!(u.counter("upf_counts", 1) - dropped, sent.non_gtp, "the UPF program's drops: every UDP 9999");
    let st = f.status();
    assert!(st["chain"]["next_state"].as_str().unwrap_or("").starts_with("linked"), "{}", st["chain"]);

    // Under a paced flood: kill -9, restart, upgrade. No benign loss, the UPF sees every one.
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 3200, 400, 0, || kill_restart_upgrade(&f));
    check_round("kill, restart and upgrade under load", &sent, &got, &before, &u, true);
    let log2 = f.log("run-2.log");
    assert!(log2.contains("re-used the pinned XDP link"), "{log2}");

    // The UPF restarts (a new program at the same pin): the guard links it at its next tick.
    u.reload("xdp_upf").expect("reloading the UPF program");
    let new_id = u.id();
    wait_for("the new UPF program linked", || f.status()["chain"]["slot_prog_id"].as_u64() == Some(u64::from(new_id)));
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 1000, 2000, 0, || {});
    check_round("after the UPF restarted", &sent, &got, &before, &u, true);

    // The UPF's pin goes: the guard empties its slot, says so (once), and goes on guarding.
    const GONE: &str = "the next program's pin is gone";
    let said = f.log("run-2.log").matches(GONE).count();
    u.unpin_prog();
    wait_for("the slot emptied", || f.status()["chain"]["slot_prog_id"].is_null());
    let st = f.status();
    assert!(st["chain"]["next_state"].as_str().unwrap_or("").starts_with("GONE"), "{}", st["chain"]);
    // The gauge is set at the end of the tick that emptied the slot: wait for that tick.
    let gone = || {
        let body = f.scrape().unwrap_or_default();
        metric(&body, "overload_guard_chain_next", "outcome=\"gone\"") == Some(1.0)
    };
    wait_for("the chain_next gauge to say gone", gone);
    let sink = Sink::start(&f.lab.core, f.lab.core_ifname()).expect("sink");
    let frames = frames(&f, 0);
    let sent =
        send_frames(&f.lab.ran, f.lab.ran_ifname(), &frames, &SendOpts::new(400, Duration::from_secs(20)).pps(2000))
            .expect("send");
    sink.wait_quiet(Duration::from_millis(300), Duration::from_secs(5));
    let got = sink.stop().expect("sink");
    assert_eq!(got.teid(QUARANTINED), 0, "still guarded without a next program");
    assert_eq!(got.teid(OTHERS[0]), sent.per_teid[&OTHERS[0]], "benign traffic passes to the stack");
    let log = f.log("run-2.log");
    assert_eq!(log.matches(GONE).count(), said + 1, "said once: {log}");
    let benign: u64 = OTHERS.iter().map(|t| sent.per_teid.get(t).copied().unwrap_or(0)).sum();
    let body = f.scrape().expect("metrics");
    let misses = metric(&body, "overload_guard_chain_miss_total", "").unwrap_or(0.0) as u64;
    assert!(misses >= benign, "every benign packet passed without a next program is a miss ({benign}): {body}");

    // Back (pinned again), then the guard stops and detaches: the interface runs the UPF alone.
    u.reload("xdp_upf").expect("reloading the UPF program");
    let new_id = u.id();
    wait_for("linked again", || f.status()["chain"]["slot_prog_id"].as_u64() == Some(u64::from(new_id)));
    f.stop_guard();
    // As the package's removal does it (`prerm`: `guard detach --all`).
    let out = detach_all(&f);
    assert!(out.contains("now runs the next program"), "{out}");
    assert_eq!(xdp_prog_name(&f), "xdp_upf", "the interface runs the UPF program after the guard's detach");
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 1000, 2000, 0, || {});
    check_round("guard detached", &sent, &got, &before, &u, false);
    assert_eq!(upf_teids(&u)[&QUARANTINED] - before[&QUARANTINED], sent.per_teid[&QUARANTINED], "the UPF alone");

    // A new `guard run` takes the link back: guarded again.
    f.start_guard("run-3.log");
    assert_eq!(xdp_prog_name(&f), "guard_n3");
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 1000, 2000, 0, || {});
    check_round("guard back first", &sent, &got, &before, &u, true);

    // `guard chain clear` / `set` at run time (audited): cleared, passed packets go to the stack
    // and the UPF program gets none; set, it gets them again.
    let out = f.guard_ok(&["chain", "clear"]);
    assert!(out.contains("kernel stack"), "{out}");
    assert!(f.status()["chain"]["next"].is_null());
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 400, 2000, 0, || {});
    assert_eq!(got.teid(OTHERS[0]), sent.per_teid[&OTHERS[0]], "cleared: benign traffic to the stack");
    assert_eq!(upf_teids(&u), before, "cleared: the UPF program got packets");
    let out = f.guard_ok(&["chain", "set", "--next", &u.prog().display().to_string()]);
    assert!(out.contains("now go on to xdp_upf"), "{out}");
    let human = f.guard_ok(&["status"]);
    assert!(human.contains("next program") && human.contains("linked: program xdp_upf"), "{human}");
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 400, 2000, 0, || {});
    check_round("chain set again", &sent, &got, &before, &u, true);
    let audit = std::fs::read_to_string(f.dir.join("audit.jsonl")).unwrap_or_default();
    assert_eq!(audit.lines().filter(|l| l.contains("\"action\":\"upgrade\"")).count(), 1, "{audit}");
    for a in ["chain_clear", "chain_set", "detach"] {
        assert!(audit.contains(&format!("\"action\":\"{a}\"")), "{a} audited: {audit}");
    }
}

/// During a paced flood: SIGKILL the controller, start it again, then `guard upgrade`.
fn kill_restart_upgrade(f: &Fixture) {
    std::thread::sleep(Duration::from_secs(1));
    f.stop_guard();
    std::thread::sleep(Duration::from_millis(500));
    f.start_guard("run-2.log");
    std::thread::sleep(Duration::from_millis(1000));
    f.guard_ok(&["upgrade"]);
}

/// Attach the root program pinned at `root` to the core interface (netlink XDP, as an operator's
/// loader would); `-force` replaces one already there (a root restart). Through nsenter: `ip -n`
/// remounts /sys for the namespace, which hides bpffs and the pin.
fn attach_root(f: &Fixture, root: &Path) {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", f.lab.core_ns_name()))
        .args(["ip", "-force", "link", "set", "dev", f.lab.core_ifname(), "xdp", "pinned"])
        .arg(root)
        .output()
        .expect("ip link set xdp");
    assert!(out.status.success(), "attaching the root: {}", String::from_utf8_lossy(&out.stderr));
}

/// The UPF program in slot 2 of the root's array, as the operator's arrangement has it.
fn upf_in_slot_2(root: &Pinned, u: &Pinned) {
    bpftool(&[
        "map",
        "update",
        "pinned",
        &root.map("root_jmp").display().to_string(),
        "key",
        "2",
        "0",
        "0",
        "0",
        "value",
        "pinned",
        &u.prog().display().to_string(),
    ])
    .expect("the UPF in slot 2");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn guard_inside_a_root_array_each_survives_the_other() {
    labkit::netns::assert_root("chain_process::guard_inside_a_root_array_each_survives_the_other");
    let u = Pinned::load("xdp_upf").unwrap_or_else(|e| panic!("loading the UPF program: {e:#}"));
    let root = Pinned::load("xdp_root").unwrap_or_else(|e| panic!("loading the root program: {e:#}"));
    upf_in_slot_2(&root, &u);
    let jmp = root.map("root_jmp").display().to_string();
    let f = Fixture::new(
        "chain",
        &format!("\n[attach]\ninto = \"{jmp}:1\"\nnext = {:?}\n", u.prog().display().to_string()),
    );
    attach_root(&f, &root.prog());
    f.start_guard("run-1.log");
    f.guard_ok(&["device", "pin", "--teid", "0x100", "--stage", "quarantine", "--ttl", "10m", "--comment", "test"]);
    assert_eq!(xdp_prog_name(&f), "xdp_root", "the guard must not attach to the interface");
    let st = f.status();
    assert_eq!(st["chain"]["into"]["in_slot"], true, "{}", st["chain"]);

    // root → guard (slot 1) → UPF (its next).
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 1000, 2000, 2, || {});
    check_round("guard inside the root", &sent, &got, &before, &u, true);
    assert_eq!(got.teid(0x999), 0, "UDP to 9999 passed the UPF program: {got:?}");
    let seen_by_root = root.counter("root_counts", 0);
    assert!(seen_by_root >= sent.sent, "the root ran first: {seen_by_root} < {}", sent.sent);

    // Under a paced flood: kill -9, restart (the slot is re-filled in place), upgrade (the slot's
    // program swapped). No benign loss; the UPF counts every one.
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 3200, 400, 0, || kill_restart_upgrade(&f));
    check_round("kill, restart and upgrade in the slot under load", &sent, &got, &before, &u, true);
    assert_eq!(xdp_prog_name(&f), "xdp_root");
    // The running controller takes the upgraded program in the slot for the guard's own.
    std::thread::sleep(Duration::from_millis(1200));
    let body = f.scrape().expect("metrics");
    assert_eq!(metric(&body, "overload_guard_chain_into", ""), Some(1.0), "{body}");
    let log2 = f.log("run-2.log");
    assert!(!log2.contains("another program took the guard's slot"), "{log2}");

    // The root restarts with a fresh array (its pins re-created): the guard puts itself back in
    // its slot at the next tick, and the root runs it.
    root.reload("xdp_root").expect("reloading the root");
    upf_in_slot_2(&root, &u);
    attach_root(&f, &root.prog());
    wait_for("the guard back in the new array", || f.status()["chain"]["into"]["in_slot"] == true);
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 1000, 2000, 0, || {});
    check_round("after the root restarted", &sent, &got, &before, &u, true);

    // The guard stops and detaches: only its slot is emptied; the root goes on to the UPF.
    f.stop_guard();
    let out = detach_all(&f);
    assert!(out.contains("left slot 1"), "{out}");
    assert_eq!(xdp_prog_name(&f), "xdp_root");
    let before = upf_teids(&u);
    let (sent, got) = send(&f, 1000, 2000, 0, || {});
    check_round("guard detached from the root", &sent, &got, &before, &u, false);
    let audit = std::fs::read_to_string(f.dir.join("audit.jsonl")).unwrap_or_default();
    assert_eq!(audit.lines().filter(|l| l.contains("\"action\":\"upgrade\"")).count(), 1, "{audit}");
}
