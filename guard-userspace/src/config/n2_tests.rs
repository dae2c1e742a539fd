//! Tests of the N2 settings file (`config/n2.rs`): every `[detect]` rule with its edges, the
//! `N2_CONFIG` record, the file's own checks (tick, hook) and its summary. Most were written for
//! mutants `cargo xtask mutants --scope config` showed surviving (issue 24); the settings table and
//! the example file's test moved here from the N2 engine's tests, beside the code they judge.

use guard_common::abi_n2::{N2_PROT_ALLOWLIST, N2_PROT_MALFORMED, N2_PROT_QUARANTINE, N2_SETUP_COOKIE_REQUIRED};

use super::n2::{
    parse_url, CookieCheck, HookSpec, HookSpecError, N2Dataplane, N2File, N2Settings, SettingsError, SetupSettings,
};

type Edit = fn(&mut N2Settings);

/// Each `[detect]` rule, broken one way at a time, names its field; the defaults are valid.
#[rustfmt::skip] // one case per line, as a table
const BROKEN: &[(&str, Edit, &str)] = &[
    ("cell_ratio 1", |s| s.cell_ratio = 1.0, "cell_ratio"),
    ("cell_ratio infinite", |s| s.cell_ratio = f64::INFINITY, "cell_ratio"),
    ("cell_ratio NaN", |s| s.cell_ratio = f64::NAN, "cell_ratio"),
    ("cell_min_rate 0", |s| s.cell_min_rate = 0.0, "cell_min_rate"),
    ("cell_prior_rate 0", |s| s.cell_prior_rate = 0.0, "cell_min_rate"),
    ("rate_smoothing_s 0", |s| s.rate_smoothing_s = 0.0, "cell_min_rate"),
    ("device_window_s 0", |s| s.device_window_s = 0.0, "device_repeat"),
    ("device_repeat 1", |s| s.device_repeat = 1, "device_repeat"),
    ("offender_share above 1", |s| s.offender_share = 1.5, "offender_share"),
    ("consistency below 0", |s| s.consistency = -0.1, "offender_share"),
    ("contain_fraction 0", |s| s.contain_fraction = 0.0, "contain_fraction"),
    ("contain_fraction 1", |s| s.contain_fraction = 1.0, "contain_fraction"),
    ("barring needs fewer offenders than the first level", |s| s.min_offenders = 60, "min_offenders_overload"),
    ("overload needs fewer offenders than barring", |s| s.min_offenders_overload = 49, "min_offenders_overload"),
    ("reduction_min_pct 0", |s| s.reduction_min_pct = 0, "reduction_max_pct"),
    ("reduction_max_pct 100", |s| s.reduction_max_pct = 100, "reduction_max_pct"),
    ("reduction_min_pct above max", |s| { s.reduction_min_pct = 50; s.reduction_max_pct = 40 }, "reduction_max_pct"),
    ("barring_time_s 3", |s| s.barring_time_s = 3, "barring_time_s"),
    ("barring_time_s 513", |s| s.barring_time_s = 513, "barring_time_s"),
    ("access category 0", |s| s.barring_categories = vec![0], "barring_categories"),
    ("access category 2 (emergency)", |s| s.barring_categories = vec![2], "barring_categories"),
    ("access category 64", |s| s.barring_categories = vec![64], "barring_categories"),
    ("persist_windows 0", |s| s.persist_windows = 0, "persist_windows"),
    ("escalate_windows 0", |s| s.escalate_windows = 0, "persist_windows"),
    ("quiet_windows 0", |s| s.quiet_windows = 0, "persist_windows"),
    ("suci_share 0", |s| s.suci_share = 0.0, "suci_share"),
    ("suci_share above 1", |s| s.suci_share = 1.5, "suci_share"),
    ("suci_share_ratio 1", |s| s.suci_share_ratio = 1.0, "suci_share"),
    ("headroom below 1", |s| s.headroom = 0.5, "headroom"),
    ("headroom NaN", |s| s.headroom = f64::NAN, "headroom"),
    ("baseline_half_life_s 0", |s| s.baseline_half_life_s = 0.0, "headroom"),
    ("repeat_ratio below 1", |s| s.repeat_ratio = 0.5, "repeat_ratio"),
    ("repeat_ratio NaN", |s| s.repeat_ratio = f64::NAN, "repeat_ratio"),
    ("refresh_s negative", |s| s.refresh_s = -1.0, "refresh_s"),
    ("refresh_s infinite", |s| s.refresh_s = f64::INFINITY, "refresh_s"),
    ("t3346_base_s 0", |s| s.t3346_base_s = 0, "t3346_max_s"),
    ("t3346_max_s below the base", |s| s.t3346_max_s = 599, "t3346_max_s"),
    ("max_devices 0", |s| s.max_devices = 0, "max_devices"),
    ("max_cells 0", |s| s.max_cells = 0, "max_devices"),
];

/// The edges the rules allow.
#[rustfmt::skip]
const EDGES: &[(&str, Edit)] = &[
    ("cell_ratio just above 1", |s| s.cell_ratio = 1.001),
    ("device_repeat 2", |s| s.device_repeat = 2),
    ("shares 0 and 1", |s| { s.offender_share = 0.0; s.consistency = 1.0 }),
    ("contain_fraction near both ends", |s| s.contain_fraction = 0.999),
    ("equal offender counts on every level", |s| { s.min_offenders = 50; s.min_offenders_barring = 50; s.min_offenders_overload = 50 }),
    ("reductions of 99% and min = max", |s| { s.reduction_min_pct = 99; s.reduction_max_pct = 99 }),
    ("barring times 4 and 512", |s| s.barring_time_s = 4),
    ("barring time 512", |s| s.barring_time_s = 512),
    ("access categories 1, 3 and 63", |s| s.barring_categories = vec![1, 3, 63]),
    ("suci_share 1", |s| s.suci_share = 1.0),
    ("headroom 1", |s| s.headroom = 1.0),
    ("repeat_ratio 1", |s| s.repeat_ratio = 1.0),
    ("refresh_s 0 (only on change)", |s| s.refresh_s = 0.0),
    ("t3346 base = max", |s| s.t3346_max_s = 600),
];

type SetupEdit = fn(&mut SetupSettings);

/// Each `[setup]` rule, broken one way at a time, names its field; the edges are allowed.
#[rustfmt::skip]
const SETUP_BROKEN: &[(&str, SetupEdit, &str)] = &[
    ("limit_pps 0 (would read as unlimited)", |s| s.limit_pps = 0, "setup.limit_pps"),
    ("limit_burst 0", |s| s.limit_burst = 0, "setup.limit_pps"),
    ("strict_pps 0", |s| s.strict_pps = 0, "setup.strict_pps"),
    ("strict_burst 0", |s| s.strict_burst = 0, "setup.strict_pps"),
    ("stage 2 looser than stage 1 (rate)", |s| s.strict_pps = 6, "setup.strict_pps"),
    ("stage 2 looser than stage 1 (burst)", |s| s.strict_burst = 11, "setup.strict_pps"),
    ("trigger_windows 0", |s| s.trigger_windows = 0, "setup.trigger_windows"),
    ("escalate_windows 0", |s| s.escalate_windows = 0, "setup.trigger_windows"),
    ("quarantine_windows 0", |s| s.quarantine_windows = 0, "setup.trigger_windows"),
    ("quiet_windows 0", |s| s.quiet_windows = 0, "setup.trigger_windows"),
    ("ttl_s 2", |s| s.ttl_s = 2, "setup.ttl_s"),
];

#[rustfmt::skip]
const SETUP_EDGES: &[(&str, SetupEdit)] = &[
    ("stage 2 = stage 1", |s| { s.strict_pps = 5; s.strict_burst = 10 }),
    ("one window each", |s| { s.trigger_windows = 1; s.escalate_windows = 1; s.quarantine_windows = 1; s.quiet_windows = 1 }),
    ("ttl_s 3", |s| s.ttl_s = 3),
];

/// A rule broken one way: its name, the edit, the field the refusal must name.
type Broken<T> = (&'static str, fn(&mut T), &'static str);
/// An edge a rule allows: its name and the edit.
type Allowed<T> = (&'static str, fn(&mut T));

/// Each rule of a settings table broken alone must be refused naming its field, each edge
/// allowed: the failures, one line each.
fn judge_rules<T: Default>(
    broken: &[Broken<T>],
    edges: &[Allowed<T>],
    validate: fn(&T) -> Result<(), SettingsError>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, edit, field) in broken {
        let mut s = T::default();
        edit(&mut s);
        match validate(&s) {
            Err(SettingsError::Invalid(f, _)) if f == *field => {}
            other => failures.push(format!("{name}: got {other:?}, want n2.{field}")),
        }
    }
    for (name, edit) in edges {
        let mut s = T::default();
        edit(&mut s);
        if let Err(e) = validate(&s) {
            failures.push(format!("{name}: refused ({e})"));
        }
    }
    failures
}

#[test]
fn every_setup_rule_names_its_field_and_its_edges_are_allowed() {
    assert_eq!(SetupSettings::default().validate(), Ok(()));
    let failures = judge_rules(SETUP_BROKEN, SETUP_EDGES, SetupSettings::validate);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And the file refuses a broken table with its section named.
    let e = read("[setup]\nlimit_pps = 0\n").expect_err("limit_pps = 0");
    assert!(format!("{e:#}").contains("[setup]") && format!("{e:#}").contains("limit_pps"), "{e:#}");
}

/// A hook whose every call would time out at once, and an allow-list larger than `N2_ALLOW`, are
/// refused when the file is read.
#[test]
fn a_zero_hook_timeout_and_an_oversized_allow_list_are_refused() {
    let e =
        read("[hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/n2\"\ntimeout_ms = 0\n").expect_err("timeout 0");
    assert!(format!("{e:#}").contains("timeout_ms"), "{e:#}");
    let n = guard_common::abi_n2::N2_DEFAULT_MAX_ALLOW as usize + 1;
    let list: Vec<String> = (0..n).map(|i| format!("\"10.{}.{}.{}\"", i >> 16, (i >> 8) & 0xff, i & 0xff)).collect();
    let e = read(&format!("[dataplane]\nallow = [{}]\n", list.join(", "))).expect_err("too many");
    assert!(format!("{e:#}").contains("N2_ALLOW holds"), "{e:#}");
}

#[test]
fn every_detect_rule_names_its_field_and_its_edges_are_allowed() {
    assert_eq!(N2Settings::default().validate(), Ok(()));
    let failures = judge_rules(BROKEN, EDGES, N2Settings::validate);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let t: N2Settings = toml::from_str("cell_ratio = 6.0\nbarring_categories = [1]\n").expect("toml");
    assert_eq!((t.cell_ratio, t.barring_categories.clone(), t.quiet_windows), (6.0, vec![1], 10));
    assert!(toml::from_str::<N2Settings>("no_such_knob = 1").is_err());
}

/// A protection in `shadow` is enabled too, also when it is listed under `enforce` as well; the
/// cookie lane follows `cookie_check`.
#[test]
fn the_n2_record_carries_the_modes_and_the_cookie_check() {
    let d = N2Dataplane {
        enforce: vec!["malformed".into(), "quarantine".into()],
        shadow: vec!["quarantine".into(), "allowlist".into()],
        cookie_life_s: 7,
        cookie_check: CookieCheck::Prefer,
        ..N2Dataplane::default()
    };
    let c = d.config().expect("valid");
    assert_eq!(c.enabled, N2_PROT_MALFORMED | N2_PROT_QUARANTINE | N2_PROT_ALLOWLIST);
    assert_eq!(c.shadow, N2_PROT_QUARANTINE | N2_PROT_ALLOWLIST);
    assert_eq!((c.cookie_life_ns, c.setup_flags), (7_000_000_000, 0));
    let off = N2Dataplane { cookie_check: CookieCheck::Off, ..d.clone() }.config().expect("valid");
    assert_eq!((off.cookie_life_ns, off.setup_flags), (0, 0));
    let req = N2Dataplane { cookie_check: CookieCheck::Require, ..d }.config().expect("valid");
    assert_eq!((req.cookie_life_ns, req.setup_flags), (7_000_000_000, N2_SETUP_COOKIE_REQUIRED));
}

/// An N2 settings file in a temporary path, read.
fn read(text: &str) -> anyhow::Result<N2File> {
    let path = std::env::temp_dir().join(format!("og-n2-cfg-{}-{}.toml", std::process::id(), text.len()));
    std::fs::write(&path, text).expect("write a temporary settings file");
    let f = N2File::read(Some(&path));
    let _ = std::fs::remove_file(&path);
    f
}

#[test]
fn the_tick_is_at_least_10ms() {
    assert_eq!(read("tick = \"10ms\"\n").expect("10ms").tick(), std::time::Duration::from_millis(10));
    let e = read("tick = \"9ms\"\n").expect_err("9ms");
    assert!(format!("{e:#}").contains("at least 10ms"), "{e:#}");
    assert_eq!(read("tick_ms = 250\n").expect("tick_ms").tick(), std::time::Duration::from_millis(250));
}

#[test]
fn the_summary_says_ports_tick_and_hook() {
    let f = read("tick = \"500ms\"\n[dataplane]\nngap_port = 38413\n[hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9000/n2\"\n")
        .expect("valid");
    let s = f.summary().expect("summary");
    assert!(s.contains("N2 settings: tick 500ms, NGAP port 38413, S1AP port 36412"), "{s}");
    let hook = f.hook.as_ref().expect("a hook");
    assert_eq!(hook.describe(), "POST to http://127.0.0.1:9000/n2 (timeout 5000 ms)", "the default timeout is 5 s");
    let exec = HookSpec::Exec { command: vec!["/bin/sh".into(), "-c".into(), "true".into()], timeout_ms: 200 };
    assert_eq!(exec.describe(), "run \"/bin/sh -c true\" (timeout 200 ms)");
}

#[test]
fn webhook_urls_are_http_host_port_path() {
    let ok = |u: &str| parse_url(u).unwrap_or_else(|e| panic!("{u}: {e}"));
    assert_eq!(ok("http://127.0.0.1:9000/n2"), ("127.0.0.1:9000".into(), "/n2".into()));
    assert_eq!(ok("http://amf-hook.example"), ("amf-hook.example:80".into(), "/".into()));
    for bad in ["https://h/x", "http://", "http:///x", "http://user@h/x", "http://h/a b", "http://h/a\r\nX: y"] {
        assert!(matches!(parse_url(bad), Err(HookSpecError::Url(_))), "{bad} accepted");
    }
}

/// An exec hook must name an executable file: not a file without execute permission, not a
/// directory (whose x bits mean search), found by path or on PATH.
#[test]
fn an_exec_hook_must_be_an_executable_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let exec = |p: &str| HookSpec::Exec { command: vec![p.to_owned()], timeout_ms: 100 }.check();
    assert!(exec("/bin/sh").is_ok());
    assert!(exec("sh").is_ok(), "found on PATH");
    let plain = std::env::temp_dir().join(format!("og-n2-noexec-{}", std::process::id()));
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let not_exec = exec(plain.to_str().expect("utf-8"));
    let _ = std::fs::remove_file(&plain);
    assert!(matches!(not_exec, Err(HookSpecError::NotExecutable(_))), "{not_exec:?}");
    let dir = std::env::temp_dir();
    assert!(matches!(exec(dir.to_str().expect("utf-8")), Err(HookSpecError::NotExecutable(_))), "a directory");
    assert!(matches!(HookSpec::Exec { command: vec![], timeout_ms: 100 }.check(), Err(HookSpecError::EmptyCommand)));
}

#[test]
fn the_example_n2_config_parses_and_validates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/n2.example.toml");
    let f = super::n2::N2File::read(Some(&path)).expect("config/n2.example.toml");
    assert_eq!(f.detect, N2Settings::default(), "the example spells out the defaults");
    assert_eq!(f.setup, super::n2::SetupSettings::default());
    assert_eq!(f.dataplane, super::n2::N2Dataplane::default());
    assert!(f.hook.is_none(), "the example's hook is commented out: its command does not exist here");
    // A hook whose command does not exist is refused when the file is read (issue 25 item 5).
    let text = std::fs::read_to_string(&path).expect("example")
        + "\n[hook]\nkind = \"exec\"\ncommand = [\"/nonexistent/amf-hook\"]\n";
    let tmp = tempfile::Builder::new().prefix("og-n2-badhook-").tempdir().expect("tmp");
    let bad_hook = tmp.path().join("n2.toml");
    std::fs::write(&bad_hook, text).expect("write");
    let err = super::n2::N2File::read(Some(&bad_hook)).expect_err("a missing hook command is refused");
    assert!(format!("{err:#}").contains("not an executable file"), "{err:#}");
    let cfg = f.dataplane.config().expect("N2_CONFIG");
    assert_eq!((cfg.ngap_port, cfg.s1ap_port, cfg.shadow), (38412, 36412, 0));
    assert!(super::n2::N2File::read(None).expect("defaults").hook.is_none());
    let bad = super::n2::N2Dataplane { enforce: vec!["everything".into()], ..super::n2::N2Dataplane::default() };
    assert!(bad.config().is_err());
}
