//! The namespace fixtures clean up after themselves: after a Lab is dropped (normally or while
//! unwinding from a panic) no namespace or link it made is left, and concurrent Labs do not
//! collide.

use std::panic::{catch_unwind, AssertUnwindSafe};

use labkit::netns::{list_netns, live_namespaces, run_cmd, udp_reachable, Netns, VethEnd, VethPair};
use labkit::{assert_root, Lab};

fn root_links() -> String {
    String::from_utf8_lossy(&run_cmd("ip", &["-o", "link", "show"]).expect("ip link").stdout).into_owned()
}

fn assert_gone(names: &[String]) {
    let listed = list_netns().expect("ip netns list");
    for n in names {
        assert!(!listed.contains(n), "namespace {n} left behind: {listed:?}");
        assert!(!std::path::Path::new("/run/netns").join(n).exists(), "/run/netns/{n} left behind");
        assert!(!live_namespaces().contains(n), "{n} still registered");
    }
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn lab_is_removed_on_drop() {
    assert_root("netns_fixture::lab_is_removed_on_drop");
    let lab = Lab::builder().gnbs(3).build().expect("lab");
    let names = vec![lab.ran_ns_name().to_owned(), lab.core_ns_name().to_owned()];
    let listed = list_netns().expect("ip netns list");
    for n in &names {
        assert!(listed.contains(n), "{n} missing from {listed:?}");
    }
    // The topology is what it claims: core interface up with its address, gNB addresses on the
    // RAN side, static neighbours, and the two sides reach each other.
    assert!(lab.core_ifindex().expect("core ifindex") > 0);
    let core_addrs = lab.core.ip(&["-o", "addr", "show", "dev", lab.core_ifname()]).expect("core addrs");
    assert!(core_addrs.contains("10.200.0.1/24") && core_addrs.contains("fd00:200::1/64"), "{core_addrs}");
    let ran_addrs = lab.ran.ip(&["-o", "addr", "show", "dev", lab.ran_ifname()]).expect("ran addrs");
    for a in &lab.gnb_v4 {
        assert!(ran_addrs.contains(&format!("{a}/24")), "gNB {a} missing: {ran_addrs}");
    }
    let neigh = lab.ran.ip(&["neigh", "show", "dev", lab.ran_ifname()]).expect("neigh");
    assert!(neigh.contains("10.200.0.1") && neigh.contains("PERMANENT"), "{neigh}");
    udp_reachable(&lab.ran, lab.gnb_v4[2].into(), &lab.core, lab.core_v4().into()).expect("gNB 3 -> core over IPv4");
    udp_reachable(&lab.ran, lab.gnb_v6().into(), &lab.core, lab.core_v6().into()).expect("gNB -> core over IPv6");
    udp_reachable(&lab.core, lab.core_v4().into(), &lab.ran, lab.gnb_v4[0].into()).expect("core -> gNB 1");
    // Code run through the helper really is inside the namespace.
    let seen =
        lab.core.run(|| std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev")).expect("run in core");
    assert!(seen.contains(&format!("{}:", lab.core_ifname())), "{seen}");
    assert!(!root_links().contains(&format!(" {}:", lab.core_ifname())), "veth must not live in the root netns");

    drop(lab);
    assert_gone(&names);
    // The veth lived only inside the namespaces, so the root namespace never saw it.
    assert!(!root_links().contains(&format!(" {}:", labkit::lab::RAN_IFNAME)));
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn lab_is_removed_after_a_panic() {
    assert_root("netns_fixture::lab_is_removed_after_a_panic");
    let mut names = Vec::new();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new().expect("lab");
        names.push(lab.ran_ns_name().to_owned());
        names.push(lab.core_ns_name().to_owned());
        let _ran = Netns::new("xtra").expect("extra netns");
        names.push(_ran.name().to_owned());
        panic!("deliberate panic inside the lab scope");
    }));
    assert!(r.is_err(), "the closure panicked");
    assert_eq!(names.len(), 3);
    assert_gone(&names);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn panic_inside_a_netns_thread_propagates_and_cleans_up() {
    assert_root("netns_fixture::panic_inside_a_netns_thread_propagates_and_cleans_up");
    let ns = Netns::new("pth").expect("netns");
    let name = ns.name().to_owned();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ = ns.run(|| panic!("inside the namespace thread"));
    }));
    assert!(r.is_err(), "the panic reached the caller");
    drop(ns);
    assert_gone(&[name]);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn two_labs_at_once_are_distinct() {
    assert_root("netns_fixture::two_labs_at_once_are_distinct");
    let (a, b) = std::thread::scope(|s| {
        let ha = s.spawn(|| Lab::new().expect("lab a"));
        let hb = s.spawn(|| Lab::new().expect("lab b"));
        (ha.join().expect("lab a thread"), hb.join().expect("lab b thread"))
    });
    let names = [a.ran_ns_name(), a.core_ns_name(), b.ran_ns_name(), b.core_ns_name()];
    for (i, x) in names.iter().enumerate() {
        assert!(x.len() <= 15, "{x} longer than IFNAMSIZ-1");
        for y in &names[i + 1..] {
            assert_ne!(x, y, "namespace names collide");
        }
    }
    // Both work independently with the same addresses.
    for lab in [&a, &b] {
        udp_reachable(&lab.ran, lab.gnb_v4[0].into(), &lab.core, lab.core_v4().into()).expect("RAN -> core");
    }
    let owned: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    drop(a);
    drop(b);
    assert_gone(&owned);
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn veth_pair_is_removed_on_drop() {
    assert_root("netns_fixture::veth_pair_is_removed_on_drop");
    let x = Netns::new("vx").expect("netns x");
    let y = Netns::new("vy").expect("netns y");
    let veth = VethPair::new(
        VethEnd::new(&x, "vx0").addr("192.168.77.1/30"),
        VethEnd::new(&y, "vy0").addr("192.168.77.2/30"),
        9000,
    )
    .expect("veth");
    let shown = y.ip(&["-o", "link", "show", "dev", "vy0"]).expect("link in y");
    assert!(shown.contains("mtu 9000") && shown.contains("UP"), "{shown}");
    udp_reachable(&x, [192, 168, 77, 1].into(), &y, [192, 168, 77, 2].into()).expect("x -> y over the veth");
    drop(veth);
    assert!(x.ip(&["link", "show", "dev", "vx0"]).is_err(), "vx0 left behind");
    assert!(y.ip(&["link", "show", "dev", "vy0"]).is_err(), "vy0 left behind");
}

const SIGINT_CHILD_ENV: &str = "LABKIT_SIGINT_CHILD";
/// Where the child's `on_interrupt` cleanup leaves its mark.
const SIGINT_MARK_ENV: &str = "LABKIT_SIGINT_MARK";

/// The child process of `ctrl_c_removes_the_lab` (that test re-run with [`SIGINT_CHILD_ENV`]
/// set; not a test of its own, which `--include-ignored` would run without a parent): installs
/// the SIGINT cleanup, builds a Lab, prints its namespaces and waits to be interrupted.
fn sigint_child() -> ! {
    // What a lab's guard cleanup hangs on the same handler (`scenario::install_signal_cleanup`).
    fn mark() {
        if let Some(p) = std::env::var_os(SIGINT_MARK_ENV) {
            let _ = std::fs::write(p, "cleanup ran");
        }
    }
    labkit::netns::on_interrupt(mark);
    labkit::netns::install_sigint_cleanup().expect("install handler");
    let lab = Lab::new().expect("lab");
    println!("LAB {} {}", lab.ran_ns_name(), lab.core_ns_name());
    std::thread::sleep(std::time::Duration::from_secs(30));
    panic!("was not interrupted");
}

#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn ctrl_c_removes_the_lab() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    assert_root("netns_fixture::ctrl_c_removes_the_lab");
    if std::env::var_os(SIGINT_CHILD_ENV).is_some() {
        sigint_child();
    }
    let exe = std::env::current_exe().expect("test binary");
    let mark = std::env::temp_dir().join(format!("labkit-sigint-mark-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    // Killed and reaped on drop: an assertion failing before the child exits must not leave it
    // (and its lab) behind.
    let mut child = labkit::netns::Reaped(
        Command::new(exe)
            .args(["--exact", "ctrl_c_removes_the_lab", "--ignored", "--nocapture", "--test-threads", "1"])
            .env(SIGINT_CHILD_ENV, "1")
            .env(SIGINT_MARK_ENV, &mark)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child"),
    );
    let stdout = child.0.stdout.take().expect("child stdout");
    let mut names = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        // libtest prints "test ctrl_c_removes_the_lab ... " on the same line.
        if let Some(rest) = line.split_once("LAB ").map(|(_, r)| r) {
            names = rest.split_whitespace().map(str::to_owned).collect();
            break;
        }
    }
    assert_eq!(names.len(), 2, "child did not report its lab");
    let listed = list_netns().expect("ip netns list");
    assert!(names.iter().all(|n| listed.contains(n)), "child's lab exists before Ctrl-C");
    let pid = i32::try_from(child.0.id()).expect("pid");
    // SAFETY: signalling the child we spawned and have not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = child.0.wait().expect("wait child");
    assert_eq!(status.code(), Some(130), "child exits 130 after cleanup");
    let marked = std::fs::read_to_string(&mark).unwrap_or_default();
    let _ = std::fs::remove_file(&mark);
    assert_eq!(marked, "cleanup ran", "the on_interrupt cleanup did not run");
    let listed = list_netns().expect("ip netns list");
    for n in &names {
        assert!(!listed.contains(n), "namespace {n} left behind after Ctrl-C: {listed:?}");
    }
}
