//! The `guard` command line: argument definitions and dispatch. Each sub-command lives in its own
//! module; all errors reach the user with their context chain (`anyhow`).

mod chain;
mod detach;
mod device;
mod fleet;
mod gnb;
mod pin_terms;
mod rate;
mod replay;
mod run;
mod settle;
mod status;
mod status_n2;
mod tables;
mod target;
mod upgrade;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

pub(crate) use target::ifname;
pub use target::Target;

const LONG_ABOUT: &str = "\
An XDP overload guard for the N3 (GTP-U) interface of a 5G UPF or gateway host.

The data plane keeps per-device (per-TEID or per-UE-address) rate counters and applies graduated \
stages: 0 observe, 1 shape to a rate, 2 strict limit, 3 quarantine. Every stage expires, so if the \
controller dies the stages it set decay instead of sticking (the per-packet protections in enforce \
go on until `guard detach`; `guard status` says when no controller runs). The controller (`guard run`) escalates only \
as far as needed and pins measures to the offending devices, never to a whole cell unless \
device-level stages cannot hold the cell's capacity.

State (maps and the XDP link) is pinned under bpffs, one directory per interface, so a restarted \
`guard run` keeps counters, learned bindings and stages. `guard detach --purge` removes it all.

Typical use (installed from the Debian package: `systemctl enable --now overload-guard` runs
`guard run --config /etc/overload-guard/guard.toml`; docs/operations.md):
  guard config check /etc/overload-guard/guard.toml   # validate before deploying
  guard run --iface ens1f0 --config /etc/overload-guard/guard.toml
  guard status --iface ens1f0                         # verdict counters, stages, malformed
  guard top --iface ens1f0                            # the heaviest devices and why they are staged
  guard device pin --iface ens1f0 --teid 0x1f00 --stage quarantine --ttl 30m --comment 'ticket 4711'
  guard device unpin --iface ens1f0 --teid 0x1f00 --comment 'resolved'
  guard upgrade --iface ens1f0                        # after installing a new guard binary";

#[derive(Parser, Debug)]
#[command(name = "guard", version, about = "XDP overload guard for 5G N3 (GTP-U)", long_about = LONG_ABOUT)]
pub struct Cli {
    /// Log as JSON lines (for log shippers) instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Run in this network namespace (a name under /run/netns, as `ip netns` makes). Only the
    /// network namespace changes, so pins stay on the host's bpffs and survive restarts
    /// (`ip netns exec` would remount /sys and with it bpffs).
    #[arg(long, global = true)]
    pub netns: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Load and attach the guard on an interface and run the controller until stopped.
    ///
    /// Attaches native XDP, falling back to generic (SKB) mode with a log line saying which was
    /// used. Maps and the link are pinned: stopping this process leaves the data plane running
    /// with its current stages (which then expire), and the next `guard run` re-uses them. One
    /// controller per interface: a second one is refused, naming the first.
    ///
    /// Signals: SIGHUP re-reads --config (an invalid file is rejected and the running one stays;
    /// the log and the audit say what changed, and which keys only a restart applies:
    /// metrics.listen, guard.interfaces, pin_dir, audit_log, max_devices, tick, n2_interface,
    /// n2_config, attach.into, fleet, and the N2 settings file itself) and reopens the audit log
    /// (log rotation). SIGINT / SIGTERM stop the controller;
    /// the data plane stays. Under systemd (Type=notify) it sends READY=1 once attached and
    /// ticking, WATCHDOG=1 per on-time tick, RELOADING=1 / READY=1 around SIGHUP; the metrics
    /// listener also serves /healthz and /readyz.
    Run(run::RunArgs),
    /// Show what the data plane counted and which devices and cells are staged.
    Status(status::StatusArgs),
    /// Show the heaviest devices and the staged ones, with the reason they were staged.
    Top(status::TopArgs),
    /// Inspect or override one device's stage (operator pins always win and are audited).
    #[command(subcommand)]
    Device(device::DeviceCmd),
    /// Cap one gNB's G-PDUs by hand, in packets and/or bits per second (audited, wins over the
    /// controller, expires with its TTL).
    #[command(subcommand)]
    Gnb(gnb::GnbCmd),
    /// Fleet pins shared through etcd by every guard with the same `[fleet]` (docs/fleet.md).
    #[command(subcommand)]
    Fleet(fleet::FleetCmd),
    /// Replace the running XDP program with this binary's (or --object's), atomically.
    ///
    /// The new program is loaded against the same pinned maps (same schema: counters, bindings,
    /// stages and the running configuration carry over; --config only says where the pins and
    /// the audit log are) and verified first; then the pinned link is switched to it in one
    /// kernel operation (BPF_LINK_UPDATE): no attach gap, no packet unguarded. If the object is
    /// invalid, of another map schema, or refused by the verifier, nothing changes and the old
    /// program stays attached. A running `guard run` keeps running. Audited.
    Upgrade(upgrade::UpgradeArgs),
    /// Detach the guard from an interface (and with --purge, delete all its pinned state).
    ///
    /// Only what the guard added goes: with a next program (`[attach] next`), the interface is
    /// handed over to it (its link now runs that program, pinned beside the pin directory as
    /// `<iface>-next-link`; the next `guard run` takes it back); inside another root
    /// (`[attach] into`), the guard's program leaves the slot and the root goes on alone.
    Detach(detach::DetachArgs),
    /// Hand the packets the guard passes to another XDP program, or stop (audited).
    #[command(subcommand)]
    Chain(chain::ChainCmd),
    /// Configuration file tools.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// What the guard would have done on a capture: every frame through the real XDP program
    /// and controller, on the capture's clock; a report of verdicts, stage decisions, devices
    /// and gNBs affected, and a timeline (docs/replay.md).
    ///
    /// Use it before letting a new guard or a new configuration drop anything on a production
    /// host: replay last week's incident capture, read what would have been staged, tune, and
    /// replay again (--compare shows two configurations side by side).
    Replay(replay::ReplayArgs),
    /// Write the man pages (one per command) and bash, zsh and fish completions into DIR
    /// (`cargo xtask package` runs it).
    #[command(hide = true)]
    Generate {
        /// Output directory: `man/` and `completions/` are created in it.
        out: PathBuf,
    },
}

/// Man pages from the clap definitions (clap_mangen) and shell completions (clap_complete).
fn generate(out: &Path) -> Result<()> {
    use clap::CommandFactory as _;
    let man = out.join("man");
    let comp = out.join("completions");
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("writing man pages to {}", man.display()))?;
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "guard", &comp)
            .with_context(|| format!("writing {shell} completions to {}", comp.display()))?;
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Validate a configuration file and say what it does: which protections drop, which only
    /// count ("shadow"), which are off, and every exemption. Exit code 1 and a message naming
    /// the key if it is invalid.
    ///
    /// An N2 settings file (`[guard] n2_config`, `guard run --n2-config`) is recognised by its
    /// keys (`tick`, `[detect]`, `[setup]`, `[hook]`) or named with `--n2`; a guard.toml
    /// that names one checks it too.
    Check {
        file: PathBuf,
        /// Also print the effective configuration (with defaults filled in) as TOML.
        #[arg(long)]
        print: bool,
        /// The file is N2 settings, not a guard.toml.
        #[arg(long)]
        n2: bool,
    },
    /// Print a configuration to start from, every key commented. The default profile is the
    /// safe first deployment: every protection in shadow mode (counts what it would drop, drops
    /// nothing), no exemptions; switch protections to "enforce" one by one once their shadow
    /// counts are understood (docs/operations.md).
    Default {
        /// `shadow` (first deployment) or `enforce` (the enforcing defaults).
        #[arg(long, value_enum, default_value_t = Profile::Shadow)]
        profile: Profile,
        /// The N2 settings file (`[guard] n2_config`) instead of guard.toml.
        #[arg(long)]
        n2: bool,
    },
}

/// A starting configuration (`guard config default --profile`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Every protection counts "would drop" and passes.
    Shadow,
    /// The enforcing defaults (anti-spoofing stays in shadow: see the file).
    Enforce,
}

/// The example configuration under `profile`: the shadow profile turns every mode of
/// `[dataplane.modes]` into "shadow" and says so at the top.
pub fn default_config_text(profile: Profile) -> String {
    let example = include_str!("../../../config/guard.example.toml");
    if profile == Profile::Enforce {
        return example.to_owned();
    }
    let mut out = String::from(
        "# Profile \"shadow\" (guard config default): every protection counts what it would drop and\n\
         # drops nothing. Watch `guard status` (shadow would-drop) and overload_guard_shadow_would_drop_total,\n\
         # then set modes to \"enforce\" one protection at a time (docs/operations.md).\n",
    );
    let mut in_modes = false;
    for line in example.lines() {
        if line.starts_with('[') {
            in_modes = line.trim() == "[dataplane.modes]";
        }
        if in_modes && line.contains("= \"enforce\"") && !line.trim_start().starts_with('#') {
            out.push_str(&line.replace("= \"enforce\"", "= \"shadow\""));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The N2 settings to start from: in the shadow profile every N2 protection is counted, none
/// applied (the example's `enforce` list becomes the `shadow` list).
pub fn default_n2_text(profile: Profile) -> String {
    let example = include_str!("../../../config/n2.example.toml");
    if profile == Profile::Enforce {
        return example.to_owned();
    }
    let mut out = String::from(
        "# Profile \"shadow\" (guard config default --n2): every N2 protection counts what it would drop\n\
         # and drops nothing; move them from `shadow` to `enforce` one at a time (docs/operations.md).\n",
    );
    let mut enforced = None;
    for line in example.lines() {
        if let Some(list) = line.strip_prefix("enforce = ") {
            enforced = Some(list.split('#').next().unwrap_or_default().trim().to_owned());
            out.push_str("enforce = []");
        } else if let (Some(list), true) = (&enforced, line.starts_with("shadow = ")) {
            out.push_str(&format!("shadow = {list}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

pub fn init_logging(json: bool) {
    init_logging_at(json, "info");
}

/// [`init_logging`] with `default` as the level when `RUST_LOG` is unset. `guard replay` logs
/// warnings only: each decision the controller logs is in its report, and on a terminal the log
/// lines would tear its progress bar.
pub fn init_logging_at(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// Enter the network namespace `name` (the calling thread; call before starting threads).
pub fn enter_netns(name: &str) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let path = std::path::Path::new("/run/netns").join(name);
    let f = std::fs::File::open(&path)
        .with_context(|| format!("network namespace {name:?} ({}) not found; see `ip netns list`", path.display()))?;
    // SAFETY: `f` is an open namespace file; setns only changes this thread's network namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("entering network namespace {name:?}"));
    }
    Ok(())
}

pub fn dispatch(cli: Cli) -> Result<()> {
    if let Some(ns) = &cli.netns {
        enter_netns(ns)?;
    }
    match cli.cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Status(a) => status::status(a),
        Cmd::Top(a) => status::top(a),
        Cmd::Device(d) => device::run(d),
        Cmd::Gnb(g) => gnb::run(g),
        Cmd::Fleet(f) => fleet::run(f),
        Cmd::Upgrade(a) => upgrade::run(a),
        Cmd::Detach(a) => detach::detach(a),
        Cmd::Chain(c) => chain::run(c),
        Cmd::Config(ConfigCmd::Check { file, print, n2 }) => config_check(&file, print, n2),
        Cmd::Config(ConfigCmd::Default { profile, n2 }) => {
            print!("{}", if n2 { default_n2_text(profile) } else { default_config_text(profile) });
            Ok(())
        }
        Cmd::Replay(a) => replay::run(a),
        Cmd::Generate { out } => generate(&out),
    }
}

/// An error for people: what was tried, then each cause on a line of its own, each said once
/// (a source's text is often repeated inside its context's), then a hint where one is known.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (i, cause) in e.chain().enumerate() {
        // A context that already quotes its cause: keep the cause once, on its own line.
        let mut head = cause.to_string();
        for later in e.chain().skip(i + 1) {
            let later = later.to_string();
            if let Some(stripped) = head.strip_suffix(&later) {
                head = stripped.trim_end_matches([':', ' ']).to_owned();
            }
        }
        if !head.is_empty() && !lines.iter().any(|l| l == &head) {
            lines.push(head);
        }
    }
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(if i == 0 { "error: " } else { "  because: " });
        out.push_str(l);
        out.push('\n');
    }
    let all = lines.join("\n");
    let hint = if all.contains("pinned map") && all.contains("is missing") {
        Some("is `guard run` started for this interface? `--iface` names it, `--config` or `--pin-base` its pin directory")
    } else if all.contains("Operation not permitted") || all.contains("needs root") {
        Some("run it as root (or with CAP_BPF and CAP_NET_ADMIN)")
    } else {
        None
    };
    if let Some(h) = hint {
        out.push_str(&format!("  hint: {h}\n"));
    }
    out
}

/// Whether a TOML file is N2 settings: it has N2's sections and none of guard.toml's.
fn looks_like_n2(text: &str) -> bool {
    let Ok(t) = text.parse::<toml::Table>() else { return false };
    let n2 = ["tick", "tick_ms", "detect", "setup", "hook"].iter().any(|k| t.contains_key(*k));
    let n3 = ["guard", "ladder", "capacity", "metrics", "classify", "group"].iter().any(|k| t.contains_key(*k));
    n2 && !n3
}

fn config_check(file: &Path, print: bool, n2: bool) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    if n2 || looks_like_n2(&text) {
        let f = crate::config::n2::N2File::read(Some(file))?;
        if print {
            println!("{f:#?}");
        }
        println!("{}: valid N2 settings", file.display());
        for line in f.summary()?.lines() {
            println!("  {line}");
        }
        return Ok(());
    }
    let cfg = Config::load(file).with_context(|| format!("configuration {}", file.display()))?;
    if print {
        println!("{}", toml::to_string_pretty(&cfg).context("rendering the configuration")?);
    }
    println!("{}: valid", file.display());
    for line in cfg.summary().lines() {
        println!("  {line}");
    }
    if cfg.guard.interfaces.is_empty() {
        // Valid for the CLI (`--iface` names one), but the packaged unit runs `guard run
        // --config` alone: enabled as it is, it would fail and restart every 2 s.
        println!(
            "  note: no [guard] interfaces: `guard run` needs --iface; list the N3 interface before `systemctl enable --now overload-guard`"
        );
    }
    if let Some(p) = &cfg.guard.n2_config {
        let f = crate::config::n2::N2File::read(Some(p))?;
        println!("{} ([guard] n2_config): valid N2 settings", p.display());
        for line in f.summary()?.lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    #[test]
    fn the_default_profile_shadows_everything_and_exempts_nothing() {
        let cfg = Config::from_toml_str(&default_config_text(Profile::Shadow)).expect("the shadow profile validates");
        assert!(cfg.dataplane.modes.named(Mode::Enforce).is_empty(), "{}", cfg.summary());
        assert_eq!(cfg.dataplane.modes.named(Mode::Shadow).len(), 10, "{}", cfg.summary());
        assert!(cfg.groups.is_empty() && cfg.dataplane.exempt_qfi.is_empty());
        assert!(cfg.summary().contains("enforced (dropped): none"), "{}", cfg.summary());
        assert!(cfg.summary().contains("exempt from every rate stage: none"), "{}", cfg.summary());
        let enforce = Config::from_toml_str(&default_config_text(Profile::Enforce)).expect("enforce profile");
        assert_eq!(enforce, Config::default(), "the enforce profile is the defaults");
    }

    /// Each cause once, on its own line, then a hint (issue 25 item 6).
    #[test]
    fn errors_say_each_cause_once_with_a_hint() {
        let inner = crate::bpf::maps::MapsError::Missing("GUARD_META");
        let e = anyhow::Error::new(inner).context("opening the guard's pinned maps in /sys/fs/bpf/x");
        // A context that quotes its source (`{e:#}`), as a wrapped error would.
        let quoted = format!("{e:#}");
        let e = e.context(quoted).context("guard status");
        let text = error_text(&e);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "error: guard status", "{text}");
        assert_eq!(lines.iter().filter(|l| l.contains("GUARD_META is missing")).count(), 1, "{text}");
        assert!(lines.iter().any(|l| l.starts_with("  because: opening the guard's pinned maps")), "{text}");
        assert!(lines.last().is_some_and(|l| l.starts_with("  hint: is `guard run` started")), "{text}");
    }

    /// `guard config check` tells an N2 settings file from a guard.toml by its keys (issue 25
    /// item 5), and both examples shipped in the package check.
    #[test]
    fn config_check_recognises_n2_settings() {
        assert!(looks_like_n2("tick = \"500ms\"\n[dataplane]\nallow = []\n"));
        assert!(looks_like_n2("[setup]\ntrigger_windows = 2\n"));
        assert!(!looks_like_n2("[guard]\ntick = \"1s\"\n[dataplane]\n"), "a guard.toml");
        assert!(!looks_like_n2("[dataplane]\n"), "ambiguous: checked as a guard.toml");
        assert!(!looks_like_n2("not toml ["));
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for f in ["config/n2.example.toml", "config/guard.example.toml"] {
            config_check(&root.join(f), false, false).unwrap_or_else(|e| panic!("{f}: {e:#}"));
        }
    }

    /// The N2 shadow profile applies nothing and counts what the enforce profile applies.
    #[test]
    fn the_n2_shadow_profile_enforces_nothing() {
        use crate::config::n2::N2File;
        let parse = |t: &str| -> N2File { toml::from_str(t).expect("N2 profile parses") };
        let (shadow, enforce) = (parse(&default_n2_text(Profile::Shadow)), parse(&default_n2_text(Profile::Enforce)));
        assert!(shadow.dataplane.enforce.is_empty(), "{:?}", shadow.dataplane);
        assert_eq!(shadow.dataplane.shadow, enforce.dataplane.enforce);
        assert!(!enforce.dataplane.enforce.is_empty());
        assert!(shadow.summary().expect("summary").contains("enforced (may drop): none"));
    }

    /// N2 takes guard.toml's `tick = "1s"`; the older `tick_ms` still reads; both at once, or a
    /// tick under 10 ms, are refused.
    #[test]
    fn n2_tick_in_either_form_not_both() {
        use crate::config::n2::N2File;
        use std::time::Duration;
        let tmp = tempfile::Builder::new().prefix("og-n2tick-").tempdir().expect("temp dir");
        let dir = tmp.path();
        let read = |text: &str| {
            let p = dir.join("n2.toml");
            std::fs::write(&p, text).expect("write");
            N2File::read(Some(&p)).map(|f| f.tick())
        };
        assert_eq!(read("tick = \"250ms\"\n").ok(), Some(Duration::from_millis(250)));
        assert_eq!(read("tick_ms = 500\n").ok(), Some(Duration::from_millis(500)));
        assert_eq!(read("").ok(), Some(Duration::from_secs(1)));
        let both = read("tick = \"1s\"\ntick_ms = 1000\n").expect_err("both");
        assert!(format!("{both:#}").contains("tick and tick_ms both set"), "{both:#}");
        let fast = read("tick = \"5ms\"\n").expect_err("too fast");
        assert!(format!("{fast:#}").contains("at least 10ms"), "{fast:#}");
    }
}
