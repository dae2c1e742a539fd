//! Tests of the configuration: parsing, defaults, the example file, every validation rule.

use super::*;

const EXAMPLE: &str = include_str!("../../../config/guard.example.toml");

fn problems(text: &str) -> String {
    match Config::from_toml_str(text) {
        Ok(_) => panic!("config unexpectedly valid:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn load_names_a_missing_file_and_reads_a_real_one() {
    let missing = std::env::temp_dir().join("guard-config-does-not-exist.toml");
    let e = Config::load(&missing).expect_err("missing file");
    assert!(e.to_string().contains("guard-config-does-not-exist.toml"), "{e}");
    let path = std::env::temp_dir().join(format!("guard-config-{}.toml", std::process::id()));
    std::fs::write(&path, EXAMPLE).expect("write temp config");
    let cfg = Config::load(&path);
    let _ = std::fs::remove_file(&path);
    assert!(cfg.expect("example loads").guard.interfaces.is_empty(), "the example names no interface of its own");
}

#[test]
fn default_config_validates() {
    Config::default().validate().expect("the default configuration must validate");
}

#[test]
fn example_file_parses_validates_and_matches_defaults_where_documented() {
    let cfg = Config::from_toml_str(EXAMPLE).expect("example file must validate");
    assert_eq!(cfg.guard.gtpu_port, 2152);
    assert!(cfg.groups.is_empty(), "the example's groups are examples: commented out, no exemption by default");
    assert!(cfg.guard.interfaces.is_empty());
    // The commented examples stay valid: uncommented, they validate and mean what they say.
    let uncommented: String = EXAMPLE
        .lines()
        .map(|l| l.strip_prefix("#> ").or(l.strip_prefix("#>")).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let ex = Config::from_toml_str(&uncommented).expect("the uncommented examples validate");
    assert_eq!(ex.groups.len(), 2);
    assert!(ex.groups.iter().any(|g| g.exempt));
    assert_eq!(ex.guard.interfaces, vec!["ens1f0".to_owned()]);
    assert!(ex.summary().contains("group \"emergency-responders\" (UEs 10.46.0.0/24)"), "{}", ex.summary());
    // Every section other than the example's own choices is the default.
    assert_eq!(cfg.ladder, Config::default().ladder);
    assert_eq!(cfg.capacity, Config::default().capacity);
    assert_eq!(cfg.classify, Config::default().classify);
}

#[test]
fn a_reload_names_what_changed_and_keeps_what_needs_a_restart() {
    let old = Config::default();
    let new = Config::from_toml_str(
        "[metrics]\nlisten = \"0.0.0.0:9999\"\n[guard]\ntick = \"2s\"\n[dataplane.modes]\nshape = \"shadow\"\n[ladder.shape]\nrate_pps = 70\n",
    )
    .expect("valid");
    let (run, r) = old.reload_from(new);
    assert_eq!(r.applied, vec!["dataplane.modes.shape".to_owned(), "ladder.shape.rate_pps".to_owned()]);
    assert_eq!(r.needs_restart, vec!["guard.tick".to_owned(), "metrics.listen".to_owned()]);
    assert_eq!(run.metrics.listen, old.metrics.listen, "the running listener is what the config reports");
    assert_eq!(run.guard.tick, old.guard.tick);
    assert_eq!(run.dataplane.modes.shape, Mode::Shadow, "live keys take effect");
    assert_eq!(run.ladder.shape.rate_pps, 70);
    let (_, none) = old.reload_from(Config::default());
    assert_eq!(none, Reload::default(), "an unchanged file changes nothing");
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(Config::from_toml_str("").expect("empty is valid"), Config::default());
}

#[test]
fn unknown_key_is_rejected_with_its_name() {
    let e = problems("[ladder.shape]\nrate_ppss = 5\n");
    assert!(e.contains("rate_ppss"), "{e}");
    let e = problems("[guardd]\n");
    assert!(e.contains("guardd"), "{e}");
}

#[test]
fn type_errors_name_key_and_line() {
    let e = problems("[guard]\ngtpu_port = \"x\"\n");
    assert!(e.contains("gtpu_port") && e.contains("line 2"), "{e}");
    let e = problems("[guard]\ntick = \"5 parsecs\"\n");
    assert!(e.contains("tick") && e.contains("invalid duration"), "{e}");
    let e = problems("[[group]]\nname = \"a\"\nid = 1\nue_prefixes = [\"10.0.0.0/33\"]\n");
    assert!(e.contains("ue_prefixes") && e.contains("prefix length"), "{e}");
    let e = problems("[[group]]\nname = \"a\"\nid = 1\nteids = [\"9-3\"]\n");
    assert!(e.contains("teids") && e.contains("empty"), "{e}");
}

#[test]
fn zero_rates_and_times_name_their_keys() {
    let e = problems("[ladder.shape]\nrate_pps = 0\n");
    assert!(e.contains("ladder.shape.rate_pps: must be > 0"), "{e}");
    let e = problems("[ladder.quarantine]\nquiet = \"0s\"\n");
    assert!(e.contains("ladder.quarantine.quiet: must be > 0"), "{e}");
    let e = problems("[ladder.strict]\nttl = \"0s\"\n");
    assert!(e.contains("ladder.strict.ttl: must be > 0"), "{e}");
    let e = problems("[dataplane]\nexempt_qfi = [64]\n");
    assert!(e.contains("dataplane.exempt_qfi[0]"), "{e}");
}

#[test]
fn cross_field_rules_name_their_keys() {
    let e = problems("[ladder.strict]\nrate_pps = 500\n");
    assert!(e.contains("ladder.strict.rate_pps: must be < ladder.shape.rate_pps"), "{e}");
    let e = problems("[capacity.cell]\ncapacity_pps = 5000000\ncap_pps = 5000000\nburst = 1\nmin_offenders = 200\nttl = \"30s\"\nquiet = \"1m\"\n");
    assert!(e.contains("capacity.cell.capacity_pps: must be <= capacity.host.capacity_pps"), "{e}");
    let e = problems("[capacity.host]\ncapacity_pps = 5000000\n");
    assert!(e.contains("missing field") && e.contains("capacity.host"), "partial cap tables are refused: {e}");
    let cell = "[capacity.cell]\ncapacity_pps = 1000\ncap_pps = 1000\nburst = 10\nttl = \"30s\"\nquiet = \"1m\"\n";
    let e = problems(&format!("{cell}min_offenders = 10\n"));
    assert!(e.contains("capacity.cell.min_offenders: must be >= 20"), "{e}");
    // The caps' byte form: optional keys in a given table, a cap_rate needs a capacity_rate at
    // least as high, and a cell cannot be dimensioned above its host in octets either.
    let full = "capacity_pps = 1000\ncap_pps = 1000\nburst = 10\nmin_offenders = 200\nttl = \"30s\"\nquiet = \"1m\"\n";
    let old = Config::from_toml_str(&format!("[capacity.cell]\n{full}")).expect("a table from before byte limits");
    assert!(old.capacity.cell.capacity_rate.is_none() && old.capacity.cell.cap_bytes().is_unlimited());
    let e = problems(&format!("[capacity.cell]\n{full}cap_rate = \"10Mbit/s\"\n"));
    assert!(e.contains("capacity.cell.cap_rate: must be <= capacity_rate"), "{e}");
    let e = problems(&format!("[capacity.cell]\n{full}capacity_rate = \"1Gbit/s\"\ncap_rate = \"2Gbit/s\"\n"));
    assert!(e.contains("capacity.cell.cap_rate: must be <= capacity_rate"), "{e}");
    let e = problems(&format!("[capacity.cell]\n{full}capacity_rate = \"4bit/s\"\n"));
    assert!(e.contains("capacity.cell.capacity_rate: must be \"0\""), "{e}");
    let host = "[capacity.host]\ncapacity_pps = 2000000\ncap_pps = 2000000\nburst = 1\nmin_offenders = 2000\nttl = \"30s\"\nquiet = \"1m\"\ncapacity_rate = \"1Gbit/s\"\n";
    let e = problems(&format!("[capacity.cell]\n{full}capacity_rate = \"10Gbit/s\"\n{host}"));
    assert!(e.contains("capacity.cell.capacity_rate: must be <= capacity.host.capacity_rate"), "{e}");
    let ok = Config::from_toml_str(&format!("[capacity.cell]\n{full}capacity_rate = \"800Mbit/s\"\n")).expect("valid");
    assert_eq!(ok.capacity.cell.cap_bytes().bits_per_sec(), 800_000_000, "cap_rate defaults to capacity_rate");
    let e = problems("[ladder]\nrelease_ratio = 9.0\n");
    assert!(e.contains("ladder.release_ratio"), "{e}");
    let two = "[[group]]\nname = \"a\"\nid = 3\nteids = [\"1\"]\n[[group]]\nname = \"b\"\nid = 3\nteids = [\"2\"]\n";
    let e = problems(two);
    assert!(e.contains("group[1].id: 3 is used by another group"), "{e}");
    let e = problems("[[group]]\nname = \"a\"\nid = 0\nteids = [\"1\"]\n");
    assert!(e.contains("group[0].id: must be > 0"), "{e}");
}

#[test]
fn several_problems_are_reported_together() {
    let e = problems("[ladder.shape]\nrate_pps = 0\n[capacity]\nsustain_windows = 0\n");
    assert!(e.contains("ladder.shape.rate_pps") && e.contains("capacity.sustain_windows"), "{e}");
}

#[test]
fn durations_parse_and_print() {
    assert_eq!("500ms".parse::<Dur>(), Ok(Dur::millis(500)));
    assert_eq!("2m".parse::<Dur>(), Ok(Dur::secs(120)));
    assert_eq!(Dur::secs(120).to_string(), "2m");
    assert_eq!(Dur::millis(1500).to_string(), "1500ms");
    assert!("5".parse::<Dur>().is_err());
    assert!("-5s".parse::<Dur>().is_err());
    assert!("99999999999999h".parse::<Dur>().is_err());
}

#[test]
fn prefixes_and_teid_ranges_match() {
    let p: Prefix = "10.45.0.0/16".parse().expect("valid");
    assert!(p.contains(&L3Addr::v4([10, 45, 3, 4])));
    assert!(!p.contains(&L3Addr::v4([10, 46, 0, 1])));
    let p: Prefix = "2001:db8::/33".parse().expect("valid");
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    assert!(p.contains(&L3Addr::v6(a)));
    a[4] = 0x80;
    assert!(!p.contains(&L3Addr::v6(a)));
    assert!(!p.contains(&L3Addr::v4([32, 1, 13, 184])), "families never match across");
    let r: TeidRange = "0x10-0x1f".parse().expect("valid");
    assert!(r.contains(16) && r.contains(31) && !r.contains(32));
}

#[test]
fn dataplane_record_reflects_modes_and_divides_host_cap() {
    let mut cfg = Config::default();
    cfg.dataplane.modes.cell_cap = Mode::Off;
    cfg.dataplane.modes.strict = Mode::Shadow;
    cfg.dataplane.exempt_qfi = vec![1, 63];
    let gc = cfg.dataplane(4);
    assert_eq!(gc.enabled & PROT_CELL_CAP, 0);
    assert_ne!(gc.enabled & PROT_STRICT, 0);
    assert_ne!(gc.shadow & PROT_STRICT, 0);
    assert_eq!(gc.shadow & PROT_SHAPE, 0);
    assert_eq!(gc.exempt_qfi, (1 << 1) | (1 << 63));
    assert_eq!(gc.host_cap.rate_per_sec(), cfg.capacity.host.cap_pps / 4);
    assert_eq!(gc.host_cap_expires_ns, 0, "host cap inactive until the engine engages it");
    assert_eq!(gc.gtpu_port, 2152);
    assert_eq!(gc.echo.interval_ns, 60_000_000_000, "one echo per 60 s per path");
    assert_eq!(gc.observe.rate_per_sec(), 200);
    // A floor, not a share: one path's Echo Requests all arrive on one CPU.
    assert_eq!(gc.echo_host.rate_per_sec(), cfg.dataplane.echo_host.pps, "echo_host is not divided by the CPUs");
    // Budgets for unknown sources are ceilings: each CPU gets its share.
    assert_eq!(gc.new_gnb.rate_per_sec(), cfg.dataplane.new_gnb.pps / 4);
}

fn group(name: &str, id: u32) -> GroupSection {
    GroupSection {
        name: name.to_owned(),
        id,
        teids: vec![TeidRange { first: id, last: id }],
        ue_prefixes: vec![],
        expected_pps: None,
        expected_period: None,
        expected_burst: None,
        servers: vec![],
        exempt: false,
    }
}

type Edit = fn(&mut Config);

fn set_all_ttls(c: &mut Config, ttl: Dur) {
    c.ladder.shape.ttl = ttl;
    c.ladder.strict.ttl = ttl;
    c.ladder.quarantine.ttl = ttl;
    c.capacity.cell.ttl = ttl;
    c.capacity.host.ttl = ttl;
}

/// Every validation rule, each broken alone on a valid configuration: the problems reported
/// are exactly the rule's key and reason (a rule that is removed, or that fires for another
/// field, fails here). `RULES` below lists them in the validator's order.
#[rustfmt::skip] // one rule per line, as a table
const RULES: &[(&str, Edit, &[&str])] = &[
    // [guard]
    ("empty interface name", |c| c.guard.interfaces = vec![String::new()], &["guard.interfaces[0]: `` is not a valid interface name"]),
    ("interface name too long", |c| c.guard.interfaces = vec!["a234567890123456".into()], &["guard.interfaces[0]: `a234567890123456` is not a valid interface name"]),
    ("interface name with a slash", |c| c.guard.interfaces = vec!["a/b".into()], &["guard.interfaces[0]: `a/b` is not a valid interface name"]),
    ("interface listed twice", |c| c.guard.interfaces = vec!["eth0".into(), "eth0".into()], &["guard.interfaces[1]: `eth0` is listed twice"]),
    ("gtpu_port 0", |c| c.guard.gtpu_port = 0, &["guard.gtpu_port: must be > 0"]),
    ("max_devices 0", |c| c.guard.max_devices = 0, &["guard.max_devices: must be > 0"]),
    ("relative pin_dir", |c| c.guard.pin_dir = "pins".into(), &["guard.pin_dir: must be an absolute path"]),
    ("empty audit_log", |c| c.guard.audit_log = PathBuf::new(), &["guard.audit_log: must not be empty"]),
    ("tick below 100ms", |c| c.guard.tick = Dur::millis(99), &["guard.tick: must be between 100ms and 60s"]),
    ("empty n2_interface", |c| c.guard.n2_interface = Some(String::new()), &["guard.n2_interface: `` is not a valid interface name"]),
    ("n2_interface too long", |c| c.guard.n2_interface = Some("a234567890123456".into()), &["guard.n2_interface: `a234567890123456` is not a valid interface name"]),
    ("n2_interface with a space", |c| c.guard.n2_interface = Some("a b".into()), &["guard.n2_interface: `a b` is not a valid interface name"]),
    ("n2_interface also an N3 interface", |c| { c.guard.interfaces = vec!["eth0".into()]; c.guard.n2_interface = Some("eth0".into()) }, &["guard.n2_interface: `eth0` is also an N3 interface: one XDP program per interface"]),
    ("non-IP local address not an N3 address", |c| c.dataplane.non_ip_local_addrs = vec!["192.0.2.9".parse().expect("addr")], &["dataplane.non_ip_local_addrs[0]: `192.0.2.9` is not one of guard.n3_addrs: list it there too"]),
    // [dataplane]
    ("observe.pps 0", |c| c.dataplane.observe.pps = 0, &["dataplane.observe.pps: must be > 0", "classify.min_profile_pps: must be <= dataplane.observe.pps (the profile ceiling)"]),
    ("observe.burst 0", |c| c.dataplane.observe.burst = 0, &["dataplane.observe.burst: must be > 0"]),
    ("observe.rate 7 bit/s", |c| c.dataplane.observe.rate = Rate(BitRate(7)), &["dataplane.observe.rate: must be \"0\" (no byte limit) or at least 8bit/s", "classify.min_profile_rate: must be <= dataplane.observe.rate (the byte profile ceiling)"]),
    ("observe.rate below the byte profile floor", |c| c.dataplane.observe.rate = Rate(BitRate(4_000)), &["classify.min_profile_rate: must be <= dataplane.observe.rate (the byte profile ceiling)"]),
    ("new_device.pps 0", |c| c.dataplane.new_device.pps = 0, &["dataplane.new_device.pps: must be > 0"]),
    ("new_device.burst 0", |c| c.dataplane.new_device.burst = 0, &["dataplane.new_device.burst: must be > 0"]),
    ("event_rate.pps 0", |c| c.dataplane.event_rate.pps = 0, &["dataplane.event_rate.pps: must be > 0"]),
    ("event_rate.burst 0", |c| c.dataplane.event_rate.burst = 0, &["dataplane.event_rate.burst: must be > 0"]),
    ("echo.count 0", |c| c.dataplane.echo.count = 0, &["dataplane.echo.count: must be > 0"]),
    ("echo.per 0", |c| c.dataplane.echo.per = Dur(0), &["dataplane.echo.per: must be > 0"]),
    ("echo.burst 0", |c| c.dataplane.echo.burst = 0, &["dataplane.echo.burst: must be > 0"]),
    ("err_ind.count 0", |c| c.dataplane.err_ind.count = 0, &["dataplane.err_ind.count: must be > 0"]),
    ("err_ind.per 0", |c| c.dataplane.err_ind.per = Dur(0), &["dataplane.err_ind.per: must be > 0"]),
    ("err_ind.burst 0", |c| c.dataplane.err_ind.burst = 0, &["dataplane.err_ind.burst: must be > 0"]),
    ("QFI 64", |c| c.dataplane.exempt_qfi = vec![5, 64], &["dataplane.exempt_qfi[1]: QFI must be 0..=63 (TS 23.501 §5.7.1)"]),
    ("event_gap 0", |c| c.dataplane.event_gap = Dur(0), &["dataplane.event_gap: must be > 0"]),
    ("fragment_window 0", |c| c.dataplane.fragment_window = Dur(0), &["dataplane.fragment_window: must be > 0 and at most 1s (an IP Identification is reused within seconds on a busy path)"]),
    ("fragment_window over 1s", |c| c.dataplane.fragment_window = Dur::millis(1001), &["dataplane.fragment_window: must be > 0 and at most 1s (an IP Identification is reused within seconds on a busy path)"]),
    // [classify]
    ("min_profile_rate 0", |c| c.classify.min_profile_rate = Rate::NONE, &["classify.min_profile_rate: must be > 0"]),
    ("baseline_horizon below a tick", |c| c.classify.baseline_horizon = Dur::millis(999), &["classify.baseline_horizon: must be at least one tick"]),
    ("min_profile_pps 0", |c| c.classify.min_profile_pps = 0.0, &["classify.min_profile_pps: must be > 0"]),
    ("min_profile_pps above observe", |c| c.classify.min_profile_pps = c.dataplane.observe.pps as f64 + 1.0, &["classify.min_profile_pps: must be <= dataplane.observe.pps (the profile ceiling)"]),
    ("stale_after below a tick", |c| c.classify.stale_after = Dur::millis(999), &["classify.stale_after: must be at least one tick"]),
    ("flash.min_fraction 0", |c| c.classify.flash.min_fraction = 0.0, &["classify.flash.min_fraction: must be in (0, 1]"]),
    ("flash.min_fraction above 1", |c| c.classify.flash.min_fraction = 1.01, &["classify.flash.min_fraction: must be in (0, 1]"]),
    ("flash.moderate_ratio 1", |c| c.classify.flash.moderate_ratio = 1.0, &["classify.flash.moderate_ratio: must be > 1"]),
    ("flash.moderate_ratio at the shape trigger", |c| c.classify.flash.moderate_ratio = c.ladder.shape.trigger_ratio, &["classify.flash.moderate_ratio: must be < ladder.shape.trigger_ratio (a crowd is moderate, a flood is not)"]),
    ("chatty.min_bursts 1", |c| { c.classify.chatty.min_bursts = 1; c.classify.chatty.min_bursts_synced = 2; }, &["classify.chatty.min_bursts: must be >= 2 (a period needs two bursts)", "classify.chatty.min_bursts_synced: must be >= 2 and <= classify.chatty.min_bursts"]),
    ("chatty.min_bursts_synced 1", |c| c.classify.chatty.min_bursts_synced = 1, &["classify.chatty.min_bursts_synced: must be >= 2 and <= classify.chatty.min_bursts"]),
    ("chatty.min_bursts_synced above min_bursts", |c| c.classify.chatty.min_bursts_synced = c.classify.chatty.min_bursts + 1, &["classify.chatty.min_bursts_synced: must be >= 2 and <= classify.chatty.min_bursts"]),
    ("chatty.max_period_cv 0", |c| c.classify.chatty.max_period_cv = 0.0, &["classify.chatty.max_period_cv: must be > 0"]),
    ("chatty.min_peak_ratio 1", |c| c.classify.chatty.min_peak_ratio = 1.0, &["classify.chatty.min_peak_ratio: must be > 1"]),
    ("chatty.burst_ratio 1", |c| c.classify.chatty.burst_ratio = 1.0, &["classify.chatty.burst_ratio: must be > 1"]),
    ("chatty.min_burst_packets 0", |c| c.classify.chatty.min_burst_packets = 0, &["classify.chatty.min_burst_packets: must be > 0"]),
    ("chatty.min_burst_bytes 0", |c| c.classify.chatty.min_burst_bytes = 0, &["classify.chatty.min_burst_bytes: must be > 0"]),
    ("chatty.sync_min_devices 0", |c| c.classify.chatty.sync_min_devices = 0, &["classify.chatty.sync_min_devices: must be > 0"]),
    ("chatty.sync_factor below 1", |c| c.classify.chatty.sync_factor = 0.99, &["classify.chatty.sync_factor: must be >= 1"]),
    ("cohort.min_members 0", |c| c.classify.cohort.min_members = 0, &["classify.cohort.min_members: must be > 0"]),
    ("cohort.min_fraction 0", |c| c.classify.cohort.min_fraction = 0.0, &["classify.cohort.min_fraction: must be in (0, 1]"]),
    ("cohort.period_factor 1", |c| c.classify.cohort.period_factor = 1.0, &["classify.cohort.period_factor: must be > 1"]),
    ("cohort.window below a tick", |c| c.classify.cohort.window = Dur::millis(999), &["classify.cohort.window: must be at least one tick"]),
    ("cohort.volume_factor 1", |c| c.classify.cohort.volume_factor = 1.0, &["classify.cohort.volume_factor: must be > 1"]),
    ("cohort.volume_factor infinite", |c| c.classify.cohort.volume_factor = f64::INFINITY, &["classify.cohort.volume_factor: must be > 1"]),
    // [ladder]
    ("release_ratio 0", |c| c.ladder.release_ratio = 0.0, &["ladder.release_ratio: must be > 0"]),
    ("release_ratio at the shape trigger", |c| c.ladder.release_ratio = c.ladder.shape.trigger_ratio, &["ladder.release_ratio: must be < ladder.shape.trigger_ratio (hysteresis)"]),
    ("shape.trigger_ratio 1", |c| { c.ladder.shape.trigger_ratio = 1.0; c.ladder.release_ratio = 0.5; c.classify.flash.moderate_ratio = 0.9; }, &["classify.flash.moderate_ratio: must be > 1", "ladder.shape.trigger_ratio: must be > 1"]),
    ("shape.trigger_windows 0", |c| c.ladder.shape.trigger_windows = 0, &["ladder.shape.trigger_windows: must be > 0"]),
    ("shape.trigger_windows 65536", |c| c.ladder.shape.trigger_windows = 65_536, &["ladder.shape.trigger_windows: must be <= 65535"]),
    ("shape.volume_bursts 0.5", |c| c.ladder.shape.volume_bursts = 0.5, &["ladder.shape.volume_bursts: must be 0 (off) or at least 1 (less than one burst allowance is no evidence)"]),
    ("shape.volume_bursts infinite", |c| c.ladder.shape.volume_bursts = f64::INFINITY, &["ladder.shape.volume_bursts: must be 0 (off) or at least 1 (less than one burst allowance is no evidence)"]),
    ("shape.rate_pps 0", |c| c.ladder.shape.rate_pps = 0, &["ladder.shape.rate_pps: must be > 0", "ladder.strict.rate_pps: must be < ladder.shape.rate_pps"]),
    ("shape.burst 0", |c| c.ladder.shape.burst = 0, &["ladder.shape.burst: must be > 0", "ladder.strict.burst: must be <= ladder.shape.burst"]),
    ("shape.ttl 0", |c| c.ladder.shape.ttl = Dur(0), &["ladder.shape.ttl: must be > 0", "ladder.shape.ttl: must be at least two ticks (refresh margin)"]),
    ("shape.ttl under two ticks", |c| c.ladder.shape.ttl = Dur::millis(1999), &["ladder.shape.ttl: must be at least two ticks (refresh margin)"]),
    ("shape.quiet 0", |c| c.ladder.shape.quiet = Dur(0), &["ladder.shape.quiet: must be > 0"]),
    ("strict.escalate_windows 0", |c| c.ladder.strict.escalate_windows = 0, &["ladder.strict.escalate_windows: must be > 0"]),
    ("strict.escalate_drop_ratio 0", |c| c.ladder.strict.escalate_drop_ratio = 0.0, &["ladder.strict.escalate_drop_ratio: must be in (0, 1]"]),
    ("strict.rate_pps 0", |c| c.ladder.strict.rate_pps = 0, &["ladder.strict.rate_pps: must be > 0"]),
    ("strict.rate_pps at the shape rate", |c| c.ladder.strict.rate_pps = c.ladder.shape.rate_pps, &["ladder.strict.rate_pps: must be < ladder.shape.rate_pps"]),
    ("strict.burst 0", |c| c.ladder.strict.burst = 0, &["ladder.strict.burst: must be > 0"]),
    ("strict.burst above the shape burst", |c| c.ladder.strict.burst = c.ladder.shape.burst + 1, &["ladder.strict.burst: must be <= ladder.shape.burst"]),
    ("shape.rate 1 bit/s", |c| c.ladder.shape.rate = Rate(BitRate(1)), &["ladder.shape.rate: must be \"0\" (no byte limit) or at least 8bit/s"]),
    ("strict.rate 1 bit/s", |c| c.ladder.strict.rate = Rate(BitRate(1)), &["ladder.strict.rate: must be \"0\" (no byte limit) or at least 8bit/s"]),
    ("strict.rate not below the shape rate", |c| { c.ladder.shape.rate = Rate(BitRate(2_000_000)); c.ladder.strict.rate = Rate(BitRate(2_000_000)); }, &["ladder.strict.rate: must be < ladder.shape.rate"]),
    ("strict.rate without a shape rate", |c| c.ladder.strict.rate = Rate(BitRate(2_000_000)), &[]),
    ("strict.ttl 0", |c| c.ladder.strict.ttl = Dur(0), &["ladder.strict.ttl: must be > 0", "ladder.strict.ttl: must be at least two ticks (refresh margin)"]),
    ("strict.ttl under two ticks", |c| c.ladder.strict.ttl = Dur::millis(1999), &["ladder.strict.ttl: must be at least two ticks (refresh margin)"]),
    ("strict.quiet 0", |c| c.ladder.strict.quiet = Dur(0), &["ladder.strict.quiet: must be > 0"]),
    ("quarantine.escalate_windows 0", |c| c.ladder.quarantine.escalate_windows = 0, &["ladder.quarantine.escalate_windows: must be > 0"]),
    ("quarantine.escalate_drop_ratio above 1", |c| c.ladder.quarantine.escalate_drop_ratio = 1.5, &["ladder.quarantine.escalate_drop_ratio: must be in (0, 1]"]),
    ("quarantine.ttl 0", |c| c.ladder.quarantine.ttl = Dur(0), &["ladder.quarantine.ttl: must be > 0", "ladder.quarantine.ttl: must be at least two ticks (refresh margin)"]),
    ("quarantine.ttl under two ticks", |c| c.ladder.quarantine.ttl = Dur::millis(1999), &["ladder.quarantine.ttl: must be at least two ticks (refresh margin)"]),
    ("quarantine.quiet 0", |c| c.ladder.quarantine.quiet = Dur(0), &["ladder.quarantine.quiet: must be > 0"]),
    // [capacity]
    ("sustain_windows 0", |c| c.capacity.sustain_windows = 0, &["capacity.sustain_windows: must be > 0"]),
    ("cell.capacity_pps 0", |c| c.capacity.cell.capacity_pps = 0, &["capacity.cell.capacity_pps: must be > 0", "capacity.cell.cap_pps: must be <= capacity_pps"]),
    ("cell.cap_pps 0", |c| c.capacity.cell.cap_pps = 0, &["capacity.cell.cap_pps: must be > 0"]),
    ("cell.cap_pps above capacity", |c| c.capacity.cell.cap_pps = c.capacity.cell.capacity_pps + 1, &["capacity.cell.cap_pps: must be <= capacity_pps"]),
    ("cell.burst 0", |c| c.capacity.cell.burst = 0, &["capacity.cell.burst: must be > 0"]),
    ("cell.min_offenders below the floor", |c| c.capacity.cell.min_offenders = MIN_OFFENDERS_FLOOR - 1, &["capacity.cell.min_offenders: must be >= 20 (a handful of devices must never raise a cell or host stage)"]),
    ("cell.ttl 0", |c| c.capacity.cell.ttl = Dur(0), &["capacity.cell.ttl: must be > 0", "capacity.cell.ttl: must be at least two ticks (refresh margin)"]),
    ("cell.ttl under two ticks", |c| c.capacity.cell.ttl = Dur::millis(1999), &["capacity.cell.ttl: must be at least two ticks (refresh margin)"]),
    ("cell.quiet 0", |c| c.capacity.cell.quiet = Dur(0), &["capacity.cell.quiet: must be > 0"]),
    ("cell.capacity_rate 4 bit/s", |c| c.capacity.cell.capacity_rate = Rate(BitRate(4)), &["capacity.cell.capacity_rate: must be \"0\" (no byte limit) or at least 8bit/s"]),
    ("cell.cap_rate without a capacity_rate", |c| c.capacity.cell.cap_rate = Rate(BitRate(10_000_000)), &["capacity.cell.cap_rate: must be <= capacity_rate (and needs one: the cap's byte rate engages for an overload in octets)"]),
    ("cell.cap_rate above capacity_rate", |c| { c.capacity.cell.capacity_rate = Rate(BitRate(10_000_000)); c.capacity.cell.cap_rate = Rate(BitRate(10_000_001)); }, &["capacity.cell.cap_rate: must be <= capacity_rate (and needs one: the cap's byte rate engages for an overload in octets)"]),
    ("cell.cap_rate at capacity_rate", |c| { c.capacity.cell.capacity_rate = Rate(BitRate(10_000_000)); c.capacity.cell.cap_rate = Rate(BitRate(10_000_000)); }, &[]),
    ("cell.capacity_rate above the host's", |c| { c.capacity.cell.capacity_rate = Rate(BitRate(10_000_001)); c.capacity.host.capacity_rate = Rate(BitRate(10_000_000)); }, &["capacity.cell.capacity_rate: must be <= capacity.host.capacity_rate"]),
    ("cell.capacity_rate without a host one", |c| c.capacity.cell.capacity_rate = Rate(BitRate(10_000_000)), &[]),
    ("host.capacity_pps below the cell's", |c| { c.capacity.host.capacity_pps = c.capacity.cell.capacity_pps - 1; c.capacity.host.cap_pps = c.capacity.host.capacity_pps; }, &["capacity.cell.capacity_pps: must be <= capacity.host.capacity_pps"]),
    ("host.cap_pps 0", |c| c.capacity.host.cap_pps = 0, &["capacity.host.cap_pps: must be > 0"]),
    ("host.cap_pps above capacity", |c| c.capacity.host.cap_pps = c.capacity.host.capacity_pps + 1, &["capacity.host.cap_pps: must be <= capacity_pps"]),
    ("host.burst 0", |c| c.capacity.host.burst = 0, &["capacity.host.burst: must be > 0"]),
    ("host.min_offenders below the cell's", |c| c.capacity.host.min_offenders = c.capacity.cell.min_offenders - 1, &["capacity.host.min_offenders: must be >= capacity.cell.min_offenders"]),
    ("host.min_offenders below the floor", |c| { c.capacity.host.min_offenders = MIN_OFFENDERS_FLOOR - 1; c.capacity.cell.min_offenders = MIN_OFFENDERS_FLOOR - 1; }, &["capacity.cell.min_offenders: must be >= 20 (a handful of devices must never raise a cell or host stage)", "capacity.host.min_offenders: must be >= 20 (a handful of devices must never raise a cell or host stage)"]),
    ("host.ttl 0", |c| c.capacity.host.ttl = Dur(0), &["capacity.host.ttl: must be > 0", "capacity.host.ttl: must be at least two ticks (refresh margin)"]),
    ("host.ttl under two ticks", |c| c.capacity.host.ttl = Dur::millis(1999), &["capacity.host.ttl: must be at least two ticks (refresh margin)"]),
    ("host.quiet 0", |c| c.capacity.host.quiet = Dur(0), &["capacity.host.quiet: must be > 0"]),
    // [[group]]
    ("group id 0", |c| c.groups = vec![group("a", 0)], &["group[0].id: must be > 0 (0 means no group)"]),
    ("group id used twice", |c| c.groups = vec![group("a", 3), group("b", 3)], &["group[1].id: 3 is used by another group"]),
    ("group name empty", |c| c.groups = vec![group("", 1)], &["group[0].name: must not be empty"]),
    ("group name used twice", |c| c.groups = vec![group("a", 1), group("a", 2)], &["group[1].name: `a` is used by another group"]),
    ("group without members", |c| { let mut g = group("a", 1); g.teids.clear(); c.groups = vec![g]; }, &["group[0].teids: a group needs members: teids and/or ue_prefixes"]),
    ("group expected_pps 0", |c| { let mut g = group("a", 1); g.expected_pps = Some(0.0); c.groups = vec![g]; }, &["group[0].expected_pps: must be > 0"]),
    ("group expected_pps NaN", |c| { let mut g = group("a", 1); g.expected_pps = Some(f64::NAN); c.groups = vec![g]; }, &["group[0].expected_pps: must be > 0"]),
    ("group expected_period 0", |c| { let mut g = group("a", 1); g.expected_period = Some(Dur(0)); c.groups = vec![g]; }, &["group[0].expected_period: must be > 0"]),
    ("group expected_burst 0", |c| { let mut g = group("a", 1); g.expected_burst = Some(0); c.groups = vec![g]; }, &["group[0].expected_burst: must be > 0"]),
    // The boundaries of the refresh-margin rule: exactly two ticks is enough, at any tick.
    ("tick above 60s", |c| {
        c.guard.tick = Dur::secs(61);
        c.classify.stale_after = Dur::secs(61);
        c.classify.baseline_horizon = c.classify.baseline_horizon.max(Dur::secs(61));
        c.classify.cohort.window = c.classify.cohort.window.max(Dur::secs(61));
        set_all_ttls(c, Dur::secs(122));
    }, &["guard.tick: must be between 100ms and 60s"]),
    // The safety rule's boundary: a stage's TTL of exactly two ticks keeps a live controller's
    // refresh ahead of the expiry, one nanosecond less does not, at any tick.
    ("every TTL exactly two 5 s ticks", |c| { c.guard.tick = Dur::secs(5); set_all_ttls(c, Dur::secs(10)); }, &[]),
    ("shape.ttl 1 ns under two 5 s ticks", |c| {
        c.guard.tick = Dur::secs(5);
        set_all_ttls(c, Dur::secs(10));
        c.ladder.shape.ttl = Dur(10_000_000_000 - 1);
    }, &["ladder.shape.ttl: must be at least two ticks (refresh margin)"]),
    ("host.ttl 1 ns under two 5 s ticks", |c| {
        c.guard.tick = Dur::secs(5);
        set_all_ttls(c, Dur::secs(10));
        c.capacity.host.ttl = Dur(10_000_000_000 - 1);
    }, &["capacity.host.ttl: must be at least two ticks (refresh margin)"]),
];

#[test]
fn every_validation_rule_reports_exactly_its_key() {
    Config::default().validate().expect("the base of every case is valid");
    let mut failures = Vec::new();
    for (name, edit, want) in RULES {
        let mut c = Config::default();
        edit(&mut c);
        let got: Vec<String> = match c.validate() {
            Ok(()) => vec![],
            Err(ConfigError::Invalid(v)) => v.iter().map(|p| format!("{}: {}", p.key, p.reason)).collect(),
            Err(e) => vec![e.to_string()],
        };
        if got != *want {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), RULES.len(), failures.join("\n"));
}

/// `[attach]` (issue 22): absolute bpffs paths, `into` as PATH:SLOT on one interface, not the
/// same pin as `next`; each problem names its key.
#[test]
fn attach_section_is_validated_naming_the_key() {
    let ok = Config::from_toml_str(
        "[guard]\ninterfaces = [\"ens1f0\"]\n[attach]\nnext = \"/sys/fs/bpf/upf/main\"\ninto = \"/sys/fs/bpf/upf/jmp:1\"\n",
    )
    .expect("valid [attach]");
    assert_eq!(ok.attach.next.as_deref(), Some(std::path::Path::new("/sys/fs/bpf/upf/main")));
    let p = problems("[attach]\nnext = \"upf/main\"\n");
    assert!(p.contains("attach.next") && p.contains("absolute"), "{p}");
    for bad in ["/sys/fs/bpf/jmp", "/sys/fs/bpf/jmp:one", "jmp:1"] {
        let p = problems(&format!("[attach]\ninto = \"{bad}\"\n"));
        assert!(p.contains("attach.into"), "{bad}: {p}");
    }
    let p = problems("[guard]\ninterfaces = [\"a\", \"b\"]\n[attach]\ninto = \"/sys/fs/bpf/jmp:1\"\n");
    assert!(p.contains("attach.into") && p.contains("one interface"), "{p}");
    let p = problems("[attach]\nnext = \"/sys/fs/bpf/jmp\"\ninto = \"/sys/fs/bpf/jmp:1\"\n");
    assert!(p.contains("same pin"), "{p}");
    let p = problems("[attach]\nnexxt = \"/x\"\n");
    assert!(p.contains("nexxt"), "{p}");
}

/// A SIGHUP applies a changed `next`, and keeps `into` (the guard's slot is chosen at start).
#[test]
fn reload_applies_next_and_keeps_into() {
    let old = Config::from_toml_str("[attach]\ninto = \"/sys/fs/bpf/jmp:1\"\n").expect("old");
    let new =
        Config::from_toml_str("[attach]\ninto = \"/sys/fs/bpf/jmp:2\"\nnext = \"/sys/fs/bpf/upf\"\n").expect("new");
    let (run, r) = old.reload_from(new);
    assert_eq!(run.attach.into.as_deref(), Some("/sys/fs/bpf/jmp:1"));
    assert_eq!(run.attach.next.as_deref(), Some(std::path::Path::new("/sys/fs/bpf/upf")));
    assert!(r.needs_restart.contains(&"attach.into".to_owned()), "{r:?}");
    assert!(r.applied.contains(&"attach.next".to_owned()), "{r:?}");
}

#[test]
fn fleet_is_absent_by_default_and_validated_when_present() {
    assert!(Config::default().fleet.is_none());
    assert!(Config::from_toml_str(EXAMPLE).unwrap().fleet.is_none(), "the example's [fleet] is commented out");

    let lab = "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\ninsecure = true\n";
    let f = Config::from_toml_str(lab).expect("an explicit insecure lab fleet validates").fleet.unwrap();
    assert_eq!(f.lease_ttl, Dur::secs(10));
    assert_eq!(f.sync, FleetSync::default());
    assert!(!f.tls());
    assert!(!f.member_name().is_empty(), "the member defaults to the host name");

    // No TLS material and no `insecure = true`: refused, saying how to get either.
    let p = problems("[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\n");
    assert!(p.contains("fleet.ca: required for TLS") && p.contains("insecure = true"), "{p}");
    assert!(p.contains("fleet.endpoints[0]"), "plain http without insecure: {p}");
    // Both at once: refused.
    let p = problems(
        "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\ninsecure = true\nca = \"/etc/ca.pem\"\n",
    );
    assert!(p.contains("fleet.ca: is set but insecure = true"), "{p}");
    let p = problems(
        "[fleet]\nendpoints = [\"https://etcd:2379\"]\nname = \"a/b\"\nca = \"/ca.pem\"\ncert = \"/c.pem\"\nlease_ttl = \"1500ms\"\n[fleet.sync]\nmax_keys = 0\nmax_value_bytes = 10\n",
    );
    for k in ["fleet.name", "fleet.cert", "fleet.lease_ttl", "fleet.sync.max_keys", "fleet.sync.max_value_bytes"] {
        assert!(p.contains(k), "{k} in {p}");
    }
    let p = problems("[fleet]\nendpoints = []\nname = \"x\"\ninsecure = true\n");
    assert!(p.contains("fleet.endpoints: must list"), "{p}");
    let tls = "[fleet]\nendpoints = [\"https://etcd1:2379\"]\nname = \"n\"\nca = \"/ca.pem\"\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n";
    assert!(Config::from_toml_str(tls).unwrap().fleet.unwrap().tls());
}

#[test]
fn fleet_cell_summaries_have_defaults_and_bounds() {
    let lab = "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\ninsecure = true\n";
    let f = Config::from_toml_str(lab).expect("valid").fleet.unwrap();
    assert_eq!(f.cells, crate::config::FleetCells::default());
    assert!(f.cells.enabled && f.cells.publish_fraction == 0.25 && f.cells.max_cells == 32);
    let p = problems(&format!(
        "{lab}[fleet.cells]\npublish_fraction = 0.01\nmax_cells = 0\nmax_rate = 0.5\nmax_members = 0\ninterval = \"10s\"\n"
    ));
    for k in [
        "fleet.cells.publish_fraction",
        "fleet.cells.max_cells",
        "fleet.cells.max_rate",
        "fleet.cells.max_members",
        "fleet.cells.interval: must be shorter than lease_ttl",
    ] {
        assert!(p.contains(k), "{k} in {p}");
    }
    let p = problems(&format!("{lab}[fleet.cells]\nsurprise = 1\n"));
    assert!(p.contains("surprise"), "unknown keys are refused: {p}");
}

#[test]
fn fleet_backoff_lists_have_defaults_and_bounds() {
    let lab = "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\ninsecure = true\n";
    let f = Config::from_toml_str(lab).expect("valid").fleet.unwrap();
    assert_eq!(f.backoff, crate::config::FleetBackoff::default());
    assert!(f.backoff.enabled && f.backoff.max_devices == 256);
    let p = problems(&format!("{lab}[fleet.backoff]\nmax_devices = 0\nttl = \"1s\"\nmax_members = 0\n"));
    for k in ["fleet.backoff.max_devices", "fleet.backoff.ttl", "fleet.backoff.max_members"] {
        assert!(p.contains(k), "{k} in {p}");
    }
    let p = problems(&format!("{lab}[fleet.backoff]\nsurprise = 1\n"));
    assert!(p.contains("surprise"), "unknown keys are refused: {p}");
}

/// `[fleet] summary_group`: optional (absent, the keys are the fleet's own, as before groups),
/// a key segment when set (the fleet name's alphabet and length), reported by `guard config check`.
#[test]
fn a_summary_group_is_optional_and_validated_as_a_key_segment() {
    let lab = "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\ninsecure = true\n";
    let c = Config::from_toml_str(lab).expect("valid");
    assert_eq!(c.fleet.as_ref().unwrap().summary_group, None);
    assert!(!c.summary().contains("summary group"), "{}", c.summary());
    let c = Config::from_toml_str(&format!("{lab}summary_group = \"amf-set-1\"\n")).expect("valid");
    assert_eq!(c.fleet.as_ref().unwrap().summary_group.as_deref(), Some("amf-set-1"));
    assert!(c.summary().contains("within summary group amf-set-1"), "{}", c.summary());
    for bad in ["", "a/b", "set 1", &"x".repeat(65)] {
        let p = problems(&format!("{lab}summary_group = {bad:?}\n"));
        assert!(p.contains("fleet.summary_group: 1..=64 letters"), "{bad:?}: {p}");
    }
}

#[test]
fn a_reload_keeps_the_running_fleet() {
    let old = Config::default();
    let new =
        Config::from_toml_str("[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\nname = \"lab\"\ninsecure = true\n")
            .unwrap();
    let (run, r) = old.reload_from(new);
    assert!(run.fleet.is_none(), "the fleet link starts with the process");
    assert!(r.needs_restart.iter().any(|k| k.starts_with("fleet")), "{r:?}");
}

/// Byte rates in the units operators write (issue 27): `rate = "20Mbit/s"` beside the packet keys,
/// which keep working alone; the data-plane record and the ladder carry them as byte limits
/// (T-PDU octets); a malformed rate is refused naming its key and what to write.
#[test]
fn byte_rates_parse_in_operators_units_and_old_keys_keep_working() {
    let old = Config::from_toml_str("[dataplane.observe]\npps = 300\nburst = 600\n").expect("old keys");
    let rec = old.dataplane(1);
    assert_eq!((rec.observe.rate_per_sec(), rec.observe_bytes), (300, guard_common::abi::ByteLimit::UNLIMITED));
    let new = Config::from_toml_str(
        "[dataplane.observe]\npps = 300\nburst = 600\nrate = \"20Mbit/s\"\nburst_bytes = 250000\n\
         [ladder.shape]\nrate = \"2 Mbps\"\n[ladder.strict]\nrate = \"500kbit/s\"\nburst_bytes = 9000\n",
    )
    .expect("byte rates");
    let rec = new.dataplane(4);
    assert_eq!((rec.observe_bytes.bits_per_sec(), rec.observe_bytes.burst_bytes()), (20_000_000, 250_000));
    assert_eq!(new.ladder.shape.rate, Rate(BitRate(2_000_000)));
    let strict = new.ladder.strict.rate.byte_limit(new.ladder.strict.burst_bytes);
    assert_eq!((strict.bits_per_sec(), strict.burst_bytes()), (500_000, 9_000));
    // No burst: one second of the rate.
    assert_eq!(new.ladder.shape.rate.byte_limit(0).burst_bytes(), 250_000);
    let e = problems("[ladder.shape]\nrate = \"2Mbits\"\n");
    assert!(e.contains("rate") && e.contains("invalid rate `2Mbits`") && e.contains("\"20Mbit/s\""), "{e}");
    let e = problems("[dataplane.observe]\npps = 300\nburst = 600\nrate = 20000000\n");
    assert!(e.contains("rate"), "{e}");
    // Printed back as written (the SIGHUP diff and `guard config check` show it).
    assert_eq!(new.ladder.strict.rate.to_string(), "500kbit/s");
}

#[test]
fn the_summary_counts_the_profiled_groups_apart_from_the_exempt_ones() {
    let cfg = Config::from_toml_str(
        "[[group]]\nname = \"meters\"\nid = 1\nteids = [\"0x100-0x1ff\"]\nexpected_pps = 0.1\n\
         [[group]]\nname = \"trackers\"\nid = 2\nteids = [\"0x200-0x2ff\"]\nexpected_pps = 1.0\n\
         [[group]]\nname = \"responders\"\nid = 3\nue_prefixes = [\"10.46.0.0/24\"]\nexempt = true\n",
    )
    .expect("valid");
    let s = cfg.summary();
    assert!(s.contains("device groups with an expected profile: 2"), "{s}");
    assert!(s.contains("group \"responders\" (UEs 10.46.0.0/24)"), "{s}");
    assert!(!s.contains("group \"meters\" ("), "a profiled group is not listed as exempt: {s}");
}

/// The edges the rules allow, accepted: a 15-octet interface name (IFNAMSIZ less the NUL) on both
/// sides, a non-IP local address that is an N3 address, a fragment window of exactly 1 s.
#[test]
fn the_edges_the_rules_allow_validate() {
    let mut c = Config::default();
    c.guard.interfaces = vec!["a23456789012345".into()];
    c.guard.n2_interface = Some("b23456789012345".into());
    c.guard.n3_addrs = vec!["192.0.2.9".parse().expect("addr")];
    c.dataplane.non_ip_local_addrs = vec!["192.0.2.9".parse().expect("addr")];
    c.dataplane.fragment_window = Dur::secs(1);
    c.validate().expect("the edges are valid");
}

/// `[fleet]`'s bounds one at a time, on a valid lab section: each refusal names its key and reason
/// (the endpoints' form, the lease TTL's range and whole seconds, the sync timeouts and retries, the
/// summaries' interval).
#[test]
fn fleet_bounds_are_each_checked() {
    let lab = |endpoint: &str, extra: &str| {
        format!("[fleet]\nendpoints = [\"{endpoint}\"]\nname = \"lab\"\ninsecure = true\n{extra}")
    };
    let ok = "http://127.0.0.1:2379";
    let cases = [
        (lab("http://", ""), "fleet.endpoints[0]"),
        (lab("http://etcd", ""), "fleet.endpoints[0]"),
        (lab("http://etcd/x:2379", ""), "fleet.endpoints[0]"),
        (lab(ok, "lease_ttl = \"1s\"\n"), "fleet.lease_ttl: whole seconds"),
        (lab(ok, "lease_ttl = \"3601s\"\n"), "fleet.lease_ttl: whole seconds"),
        (lab(ok, "lease_ttl = \"2500ms\"\n"), "fleet.lease_ttl: whole seconds"),
        (lab(ok, "[fleet.sync]\ntimeout = \"50ms\"\n"), "fleet.sync.timeout: 100ms..=60s"),
        (lab(ok, "lease_ttl = \"120s\"\n[fleet.sync]\ntimeout = \"61s\"\n"), "fleet.sync.timeout: 100ms..=60s"),
        (
            lab(ok, "lease_ttl = \"5s\"\n[fleet.sync]\ntimeout = \"5s\"\n"),
            "fleet.sync.timeout: must be shorter than lease_ttl",
        ),
        (lab(ok, "[fleet.sync]\nretry = \"10ms\"\n"), "fleet.sync.retry: 50ms..=retry_max"),
        (lab(ok, "[fleet.cells]\ninterval = \"100ms\"\n"), "fleet.cells.interval: 200ms..=60s"),
        (lab(ok, "[fleet.sync]\nretry_max = \"301s\"\n"), "fleet.sync.retry_max: at most 5m"),
        (lab(ok, "[fleet.sync]\nresync = \"4s\"\n"), "fleet.sync.resync: at least 5s"),
        (lab(ok, "[fleet.sync]\nmax_keys = 0\n"), "fleet.sync.max_keys: 1..="),
        (lab(ok, "[fleet.sync]\nmax_value_bytes = 255\n"), "fleet.sync.max_value_bytes: 256..="),
        (lab(ok, "[fleet.cells]\npublish_fraction = 0.04\n"), "fleet.cells.publish_fraction: 0.05..=1.0"),
        (lab(ok, "[fleet.cells]\nmax_cells = 1025\n"), "fleet.cells.max_cells: 1..=1024"),
        (lab(ok, "[fleet.cells]\nmax_rate = 0.5\n"), "fleet.cells.max_rate: 1..=1000000"),
        (lab(ok, "[fleet.cells]\nmax_pps = 0.5\n"), "fleet.cells.max_pps: 1..=1000000000"),
        (lab(ok, "[fleet.cells]\nmax_pps = 2e9\n"), "fleet.cells.max_pps: 1..=1000000000"),
        (lab(ok, "[fleet.cells]\nmax_members = 0\n"), "fleet.cells.max_members: 1..=4096"),
        (lab(ok, "[fleet.backoff]\nmax_devices = 4097\n"), "fleet.backoff.max_devices: 1..=4096"),
        (lab(ok, "[fleet.backoff]\nmax_members = 0\n"), "fleet.backoff.max_members: 1..=4096"),
    ];
    for (text, want) in cases {
        let p = problems(&text);
        assert!(p.contains(want), "{want} in {p}\nfor:\n{text}");
    }
    // The edges: a TTL of 2 s and of 1 h, a sync timeout just under the TTL.
    for extra in ["lease_ttl = \"2s\"\n[fleet.sync]\ntimeout = \"1s\"\n", "lease_ttl = \"3600s\"\n"] {
        Config::from_toml_str(&lab(ok, extra)).unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
}

/// The largest fleet values a member writes or accepts, with the defaults: the sizes docs/fleet.md
/// ("Keys, sizes and load") gives operators for sizing etcd (a bound grown by mistake would pass
/// every codec test: they only check that the longest value fits under it).
#[test]
fn fleet_value_bounds_are_the_documented_sizes() {
    let cells = fleet::FleetCells::default();
    assert_eq!(cells.max_cells, 32);
    assert_eq!(cells.max_value_bytes(), 2208, "N2 cell summary: 160 + 64 × 32");
    assert_eq!(cells.max_n3_value_bytes(), 2464, "N3 gNB summary: 160 + 72 × 32");
    let backoff = fleet::FleetBackoff::default();
    assert_eq!(backoff.max_devices, 256);
    assert_eq!(backoff.max_value_bytes(), 12_488, "back-off list: 200 + 48 × 256");
}

/// A cap's byte rate without a configured burst has one second of the rate as its burst; with one,
/// that burst (`burst_bytes`).
#[test]
fn a_caps_byte_burst_defaults_to_one_second_of_its_rate() {
    let mut c = Config::default();
    let lvl = &mut c.capacity.cell;
    lvl.capacity_rate = Rate(BitRate(80_000_000));
    assert_eq!(lvl.burst_bytes, 0);
    let b = lvl.cap_bytes();
    assert_eq!((b.bits_per_sec(), b.burst_bytes()), (80_000_000, 10_000_000));
    lvl.burst_bytes = 500_000;
    assert_eq!(lvl.cap_bytes().burst_bytes(), 500_000);
}

/// Every rule runs even when an earlier one failed, so a tick past what two ticks can hold is
/// reported as out of range, never an overflow in the refresh-margin rule.
#[test]
fn the_largest_tick_is_reported_not_an_overflow() {
    let e = problems("[guard]\ntick = \"18446744073709551615ns\"\n");
    assert!(e.contains("guard.tick: must be between 100ms and 60s"), "{e}");
}
