//! `guard device show|pin|release|unpin`: one device's state, and operator overrides. Operates on
//! the pinned maps directly, so it works whether or not the controller runs. Pins and releases
//! carry `STAGE_FLAG_MANUAL`, which the controller never changes (it takes them over at its next
//! tick, `Engine::sync_manual`); every one is audited. A command that would not do what it says
//! refuses with the reason: a device named in a form the data plane does not key by, an unpin of
//! a stage the engine set.

use std::{net::IpAddr, time::SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use guard_common::abi::{
    ByteLimit, DeviceKey, Limit, StageEntry, KEY_MODE_TEID, KEY_MODE_UE_ADDR, LOCAL_INDEX_NONE, STAGE_FLAG_MANUAL,
    STAGE_OBSERVE, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT,
};
use guard_common::abi_n2::N2DeviceKey;
use guard_common::units::BitRate;

use super::{
    pin_terms::{PinTerms, StageArg},
    Target,
};
use crate::{
    audit::AuditLog,
    clock::monotonic_ns,
    config::Dur,
    n3::audit::{N3Audit as _, OperatorAction},
    n3::engine::decision::{addr_str, device_key_str},
    n3::local::LocalTable,
    n3::maps::N3Maps,
};

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Show a device's counters, learned binding and stage.
    Show {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        device: DeviceSel,
        #[arg(long)]
        json: bool,
    },
    /// Set a device's stage by hand, with a time to live. Wins over the controller.
    Pin(PinArgs),
    /// Declare a device "not an offender" for a while: it is held at stage 0 (observe) and the
    /// controller will not stage it until the TTL expires. Use it to release a false positive;
    /// the cell and host caps (last resorts) still apply. Audited.
    Release(ReleaseArgs),
    /// Remove an operator pin or release (the controller decides again from then on). A stage the
    /// controller set is not a pin: use `guard device release` to overrule it.
    Unpin {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        device: DeviceSel,
        /// Why (kept in the audit log).
        #[arg(long)]
        comment: String,
    },
}

/// Which device: by F-TEID (default key mode: the TEID, and the host address it was allocated on
/// where the host has several) or by UE address (`key_mode = "ue_addr"`).
#[derive(Args, Debug, Clone)]
pub struct DeviceSel {
    /// TEID, decimal or 0x-hex (TS 29.281 §5.1: the uplink TEID the UPF allocated).
    #[arg(long, value_parser = parse_teid, required_unless_present_any = ["ue", "tmsi"], conflicts_with_all = ["ue", "tmsi"])]
    pub teid: Option<u32>,
    /// The host's N3 address the TEID was allocated on (the F-TEID's address, TS 29.244 §8.2.3).
    /// Optional where the guard lists at most one N3 address (`guard.n3_addrs`).
    #[arg(long, requires = "teid")]
    pub local_addr: Option<IpAddr>,
    /// Inner UE address (IPv4 or IPv6).
    #[arg(long, conflicts_with = "tmsi")]
    pub ue: Option<IpAddr>,
    /// An N2 device by its 5G-S-TMSI (`5g-s-tmsi:<AMF set>:<AMF pointer>:0x<5G-TMSI>`, or
    /// `s-tmsi:0x<MMEC>:0x<M-TMSI>`): with `pin --fleet` only, as `guard fleet pin --tmsi`.
    #[arg(long, value_parser = super::fleet::parse_tmsi)]
    pub tmsi: Option<N2DeviceKey>,
}

impl DeviceSel {
    /// The key, with the F-TEID's local index from `table` (the data plane's own); an IPv6 UE
    /// is keyed by its prefix of `v6_len` bits, as the data plane keys it (`policy::ue_key_of`).
    pub fn key(&self, table: &LocalTable, v6_len: u32) -> Result<DeviceKey> {
        match (self.teid, self.ue) {
            (Some(t), None) => Ok(DeviceKey::fteid(local_index(table, self.local_addr)?, t)),
            // The same key the fleet's UE pins are written with (`crate::n3::manual`).
            (None, Some(ip)) if self.tmsi.is_none() => crate::n3::manual::ue_device_key(ip, v6_len)
                .map_err(|e| anyhow::anyhow!("{e}: name the session with --teid")),
            (None, None) if self.tmsi.is_some() => bail!("{TMSI_LOCAL}"),
            _ => bail!("give exactly one of --teid or --ue"),
        }
    }
}

/// Why `--tmsi` is refused on the host's own maps. A 5G-S-TMSI (TS 23.003 §2.10) names a device
/// only inside NGAP on N2, where the guard never drops a device: its DATA chunks cannot be dropped
/// mid-association (RFC 9260 retransmits them and head-of-line blocks the stream), so an N2
/// device's only enforcement is the back-off list the N2 controller's hook sends its AMF
/// (5GMM cause #22, T3346). That list lives in the running controller, not in a pinned map this
/// command could write; the one way an operator reaches it is a fleet pin (a fleet of one host
/// works: `[fleet]` with this host as its only member).
const TMSI_LOCAL: &str = "a 5G-S-TMSI names an N2 device, which the guard never drops (N2 DATA is never dropped \
     mid-association); its only measure is the AMF hook's back-off list, held by the running N2 controller, not \
     in a map this command writes. Pin it on the fleet: guard device pin --fleet --tmsi ... (or guard fleet pin \
     --tmsi), which every AMF-side member, this one included, applies within 2 s";

/// The F-TEID's local index for `--local-addr` (or its absence).
fn local_index(table: &LocalTable, addr: Option<IpAddr>) -> Result<u32> {
    let listed = table.listed();
    let names = || listed.iter().map(|(_, a, _)| a.to_string()).collect::<Vec<_>>().join(", ");
    match (addr, listed.as_slice()) {
        (Some(a), _) => table.index_of(a).with_context(|| {
            format!("{a} is not one of this guard's N3 addresses ({}): list it in guard.n3_addrs", names())
        }),
        (None, []) => Ok(LOCAL_INDEX_NONE),
        (None, [(i, _, _)]) => Ok(*i),
        (None, _) => bail!(
            "this guard has several N3 addresses ({}): a TEID names a session only with its address \
             (TS 29.281 §5.1). Say which with --local-addr",
            names()
        ),
    }
}

/// A device's anti-spoofing bindings, per family (docs/dataplane.md, "Anti-spoofing").
fn bound_json(d: &guard_common::abi::DeviceState, v6_len: u32) -> serde_json::Value {
    use guard_common::abi::{BIND_FTEID, BIND_V4, BIND_V6};
    let b = d.bind_flags;
    serde_json::json!({
        "ipv4": (b & BIND_V4 != 0).then(|| std::net::Ipv4Addr::from(d.bound_v4.to_ne_bytes()).to_string()),
        "ipv6_prefix": (b & BIND_V6 != 0).then(|| format!("{}/{}", std::net::Ipv6Addr::from(u128::from(d.bound_v6) << 64), if v6_len == 0 { 64 } else { v6_len })),
        "fteid": (b & BIND_FTEID != 0).then(|| format!("{:#010x}@local{}", d.bound_fteid as u32, d.bound_fteid >> 32)),
        "rebinds": d.rebinds,
    })
}

/// How a device is printed for operators: its F-TEID with the address (`crate::n3::local`), or its
/// UE address.
pub fn device_name(table: &LocalTable, key: &DeviceKey) -> String {
    match key.as_fteid() {
        Some((local, teid)) => table.fteid_str(local, teid),
        None => device_key_str(key),
    }
}

pub fn parse_teid(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse::<u32>(),
    };
    r.map_err(|e| format!("{s:?} is not a TEID (a 32-bit number, decimal or 0x-hex): {e}"))
}

#[derive(Args, Debug)]
pub struct PinArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    device: DeviceSel,
    #[command(flatten)]
    terms: PinTerms,
    /// Pin the UE on every guard of the fleet instead (`[fleet]` of --config): writes the same
    /// fleet pin as `guard fleet pin --ue` (or `--tmsi`: an N2 device on every AMF-side member's
    /// back-off list), which every member, this one included, applies within 2 s. Only --ue or
    /// --tmsi: a TEID is host-local (TS 29.281 §5.1), never a fleet pin. --rate/--burst-bytes
    /// go into the fleet pin: every member applies the byte rate as this command would locally.
    #[arg(long, conflicts_with = "teid")]
    fleet: bool,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    device: DeviceSel,
    /// How long the release holds, e.g. 30m, 24h. Like every stage, it expires.
    #[arg(long)]
    ttl: Dur,
    /// Why (kept in the audit log), e.g. a ticket number.
    #[arg(long)]
    comment: String,
    /// Release a device this host holds under a fleet pin, on this host alone: for a false
    /// positive while etcd cannot be reached (else `guard fleet unpin`, which every member
    /// applies). The member keeps off an operator's entry; the fleet pin stays in etcd.
    #[arg(long)]
    override_fleet: bool,
}

pub fn run(cmd: DeviceCmd) -> Result<()> {
    // A fleet pin goes to etcd only: no pinned map is touched here, so no root is needed.
    let cmd = match cmd {
        DeviceCmd::Pin(a) if a.fleet => return pin_fleet(a),
        other => other,
    };
    let sel = match &cmd {
        DeviceCmd::Show { device, .. } | DeviceCmd::Unpin { device, .. } => device,
        DeviceCmd::Pin(a) => &a.device,
        DeviceCmd::Release(a) => &a.device,
    };
    // Refused before root and the maps are needed: nothing on this host could hold it.
    if sel.tmsi.is_some() {
        bail!("{TMSI_LOCAL}");
    }
    crate::bpf::object::require_root()?;
    match cmd {
        DeviceCmd::Show { target, device, json } => show(&target, &device, json),
        DeviceCmd::Pin(a) => pin(a),
        DeviceCmd::Release(a) => release(a),
        DeviceCmd::Unpin { target, device, comment } => unpin(&target, &device, &comment),
    }
}

/// `guard device pin --fleet`: the fleet pin `guard fleet pin --ue|--tmsi` writes, through its
/// code (`cli::fleet::write_pin`, which also refuses a stage on a 5G-S-TMSI pin).
fn pin_fleet(a: PinArgs) -> Result<()> {
    let target = match (a.device.ue, a.device.tmsi) {
        (Some(ue), None) => crate::fleet::PinTarget::Ue(ue),
        (None, Some(k)) => crate::fleet::PinTarget::Tmsi(k),
        _ => bail!(
            "--fleet pins a UE by its address (--ue) or an N2 device by its 5G-S-TMSI (--tmsi): a TEID names a \
             session only on the host that allocated it"
        ),
    };
    let req = super::fleet::PinRequest { target, terms: a.terms };
    super::fleet::write_pin_from_host(&a.target, &req)
}

/// The device key for `sel`, refused when the running data plane keys devices the other way: a
/// pin by UE address on a guard keyed by TEID (or the reverse) would match nothing and drop
/// nothing while saying "pinned".
fn key_for_dataplane(maps: &N3Maps, sel: &DeviceSel) -> Result<DeviceKey> {
    let dp = maps.config().context("reading the data plane's configuration")?;
    let key = sel.key(&maps.local_table()?, dp.antispoof_v6_prefix)?;
    let mode = dp.key_mode;
    match (mode, sel.teid.is_some()) {
        (KEY_MODE_TEID, false) => bail!(
            "this guard keys devices by TEID (key_mode = \"teid\"): a device named by UE address would match \
             nothing. Name it with --teid (`guard top` lists TEIDs)"
        ),
        (KEY_MODE_UE_ADDR, true) => bail!(
            "this guard keys devices by UE address (key_mode = \"ue_addr\"): a device named by TEID would match \
             nothing. Name it with --ue (`guard top` lists UE addresses)"
        ),
        _ => Ok(key),
    }
}

fn open(target: &Target) -> Result<(crate::config::Config, N3Maps)> {
    let cfg = target.load_config()?;
    let pins = target.pins(&cfg)?;
    let maps = N3Maps::open_pinned(&pins)
        .with_context(|| format!("opening the guard's pinned maps in {}", pins.path().display()))?;
    Ok((cfg, maps))
}

fn show(target: &Target, sel: &DeviceSel, json: bool) -> Result<()> {
    let (_, maps) = open(target)?;
    let table = maps.local_table()?;
    let cfg = maps.config()?;
    let v6_len = cfg.antispoof_v6_prefix;
    let key = sel.key(&table, v6_len)?;
    let dev = maps.device(&key)?;
    let now = monotonic_ns();
    // The stage as the data plane applies it: its mode (shadow: counted only; off: not judged).
    let stage = maps.stage(&key)?.map(|s| {
        let mut v = stage_json(&s, now);
        v["mode"] = serde_json::json!(super::status::stage_mode(s.stage, &cfg));
        v
    });
    if json {
        let v = serde_json::json!({
            "device": device_name(&maps.local_table()?, &key),
            "state": dev.map(|d| serde_json::json!({
                "packets": d.packets(), "bytes": d.bytes(), "over_limit": d.over_limit, "over_bytes": d.over_bytes,
                "dropped": d.dropped(),
                "spoofed": d.spoofed, "non_ip": d.non_ip, "teid": d.teid, "gnb": addr_str(&d.cell), "bound": bound_json(&d, v6_len),
                "qfi": d.qfi, "last_seen_s_ago": now.saturating_sub(d.last_seen_ns) as f64 / 1e9,
            })),
            "stage": stage,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("device {}", device_name(&maps.local_table()?, &key));
    match dev {
        Some(d) => {
            println!(
                "  packets {}  bytes {} (T-PDU octets)  over-limit {} (by bytes {})  dropped {}  spoofed {}  non-IP {}",
                d.packets(),
                d.bytes(),
                d.over_limit,
                d.over_bytes,
                d.dropped(),
                d.spoofed,
                d.non_ip
            );
            let b = bound_json(&d, v6_len);
            let bound: Vec<String> = [("IPv4", "ipv4"), ("IPv6", "ipv6_prefix"), ("F-TEID", "fteid")]
                .iter()
                .filter_map(|(what, k)| b[*k].as_str().map(|a| format!("{what} {a}")))
                .collect();
            println!(
                "  teid {:#x}  gNB {}  qfi {}  bound to {} ({} rebinds)",
                d.teid,
                addr_str(&d.cell),
                d.qfi,
                if bound.is_empty() { "nothing yet".to_owned() } else { bound.join(", ") },
                b["rebinds"]
            );
            println!("  last seen {:.1} s ago", now.saturating_sub(d.last_seen_ns) as f64 / 1e9);
        }
        None => println!("  not in the device map (never seen, or evicted as least recently seen)"),
    }
    match stage {
        Some(s) => println!("  stage: {}{}", stage_words(&s), super::status::mode_words(&s)),
        None => println!("  stage: 0 observe"),
    }
    Ok(())
}

/// A stage in words: "3 quarantine, by an operator, expires in 590 s" (the JSON has the same).
fn stage_words(v: &serde_json::Value) -> String {
    let mut out = format!("{} {}", v["stage"], v["name"].as_str().unwrap_or(""));
    if v["name"] == "shape" || v["name"] == "strict" {
        out.push_str(&format!(" at {} pps (burst {})", v["pps"], v["burst"]));
        if let Some(r) = v["bit_rate"].as_str() {
            out.push_str(&format!(" and {r} (burst {} octets)", v["burst_bytes"]));
        }
    }
    if v["exempt"] == true {
        out.push_str(", exempt");
    }
    out.push_str(if v["manual"] == true { ", by an operator" } else { ", by the controller" });
    if let Some(r) = v["reason"].as_str().filter(|r| *r != "operator") {
        out.push_str(&format!(" ({r})"));
    }
    if v["expired"] == true {
        out.push_str(", expired");
    } else {
        out.push_str(&format!(", expires in {:.0} s", v["expires_in_s"].as_f64().unwrap_or(0.0)));
    }
    out
}

pub use crate::n3::engine::decision::stage_name;

pub fn stage_json(s: &StageEntry, now: u64) -> serde_json::Value {
    let l = Limit { interval_ns: s.interval_ns, tau_ns: s.tau_ns };
    serde_json::json!({
        "stage": s.stage,
        "name": stage_name(s.stage),
        "manual": s.flags & STAGE_FLAG_MANUAL != 0,
        "exempt": s.flags & guard_common::abi::STAGE_FLAG_EXEMPT != 0,
        "pps": l.rate_per_sec(),
        "burst": l.burst(),
        // The byte rate beside the packet rate (T-PDU octets), when the stage has one.
        "bit_rate": (!s.bytes.is_unlimited()).then(|| BitRate(s.bytes.bits_per_sec()).to_string()),
        "bits_per_sec": s.bytes.bits_per_sec(),
        "burst_bytes": s.bytes.burst_bytes(),
        "expires_in_s": s.expires_ns.saturating_sub(now) as f64 / 1e9,
        "expired": s.expires_ns <= now,
        "reason": if crate::n3::manual::is_fleet_entry(s) {
            "fleet"
        } else {
            crate::n3::engine::decision::Reason::from_code(s.reason).map(|r| r.name()).unwrap_or("operator")
        },
    })
}

fn pin(a: PinArgs) -> Result<()> {
    let (cfg, mut maps) = open(&a.target)?;
    let key = key_for_dataplane(&maps, &a.device)?;
    if a.terms.ttl.0 == 0 {
        bail!("--ttl must be > 0: every stage expires");
    }
    let Some(stage_arg) = a.terms.stage else { bail!("--stage is required") };
    // (stage, its packet rate and burst as written, byte limit)
    let (stage, rate, bytes) = match stage_arg {
        StageArg::Quarantine => {
            if a.terms.bytes.given() {
                bail!("--rate and --burst-bytes are for shape and strict: a quarantine has no rate");
            }
            (STAGE_QUARANTINE, None, ByteLimit::UNLIMITED)
        }
        StageArg::Shape => {
            let d = &cfg.ladder.shape;
            let bytes = a.terms.bytes.limit(d.rate, d.burst_bytes)?;
            (STAGE_SHAPE, Some((a.terms.pps.unwrap_or(d.rate_pps), a.terms.burst.unwrap_or(d.burst))), bytes)
        }
        StageArg::Strict => {
            let d = &cfg.ladder.strict;
            let bytes = a.terms.bytes.limit(d.rate, d.burst_bytes)?;
            (STAGE_STRICT, Some((a.terms.pps.unwrap_or(d.rate_pps), a.terms.burst.unwrap_or(d.burst))), bytes)
        }
    };
    let limit = rate.map_or(Limit::UNLIMITED, |(pps, burst)| Limit::per_second(pps, burst));
    if stage != STAGE_QUARANTINE && limit.is_unlimited() && bytes.is_unlimited() {
        bail!("--pps must be > 0 for shape and strict (or give a byte rate with --rate and --pps 0)");
    }
    let now = monotonic_ns();
    refuse_fleet_entry(&maps, &key, now, "pin")?;
    let entry = StageEntry { bytes, ..manual_entry(stage, limit, now, a.terms.ttl.0) };
    // Audit first: if the audit trail cannot be written, the override does not happen.
    let action = OperatorAction::Pin { key, stage, ttl_ns: a.terms.ttl.0, limit, bytes };
    let again = audited(&cfg, &action, &a.terms.comment, || write_settled(&mut maps, &key, &entry))?;
    let packets = match rate {
        Some((0, _)) | None => String::new(),
        Some((pps, burst)) => format!(", {pps} pps burst {burst}"),
    };
    println!(
        "pinned {} at stage {} ({}{packets}{}) for {}{}{}",
        device_name(&maps.local_table()?, &key),
        stage,
        stage_name(stage),
        if bytes.is_unlimited() { String::new() } else { format!(", {}", BitRate(bytes.bits_per_sec())) },
        a.terms.ttl,
        mode_note(&maps, stage)?,
        super::settle::rewritten_note(again)
    );
    Ok(())
}

/// What the running data plane does with a device at `stage`, when it is not "drop what the
/// stage says": its protection in shadow (counted, passed) or off (not judged), per the
/// configuration record the running guard wrote; and a quarantine's exempt QFIs, which pass.
fn mode_note(maps: &N3Maps, stage: u32) -> Result<String> {
    let cfg = maps.config()?;
    let name = stage_name(stage);
    let mut note = match super::status::stage_mode(stage, &cfg) {
        "shadow" => format!(
            "\nSHADOW: the running guard has {name} in shadow ([dataplane.modes]): it counts this device's would-be drops and passes them"
        ),
        "off" => format!("\nOFF: the running guard has {name} off ([dataplane.modes]): it does not apply this stage"),
        _ => String::new(),
    };
    if stage == STAGE_QUARANTINE && cfg.exempt_qfi != 0 {
        let qfis: Vec<String> = (0..64).filter(|q| cfg.exempt_qfi & (1u64 << q) != 0).map(|q| q.to_string()).collect();
        note.push_str(&format!("\nexempt QFIs still pass: {} ([dataplane] exempt_qfi)", qfis.join(", ")));
    }
    Ok(note)
}

/// A fleet pin is the fleet's (etcd): overwritten here alone it would be gone on this host while
/// etcd shows it in force (the member re-applies a pin only when its value changes).
fn refuse_fleet_entry(maps: &N3Maps, key: &DeviceKey, now: u64, what: &str) -> Result<()> {
    match maps.stage(key)? {
        Some(e) if e.expires_ns > now && crate::n3::manual::is_fleet_entry(&e) => bail!(
            "{} holds a fleet pin (stage {} {}): a local {what} would be undone nowhere else and lost here; \
             change it with `guard fleet pin`/`guard fleet unpin`, which every member applies",
            device_name(&maps.local_table()?, key),
            e.stage,
            stage_name(e.stage)
        ),
        _ => Ok(()),
    }
}

/// Write an operator's device entry and keep it written against the controller's read-then-write
/// (`settle`): any operator's entry counts as staying (a later pin of another operator wins).
/// Returns how many times it was written again.
fn write_settled(maps: &mut N3Maps, key: &DeviceKey, entry: &StageEntry) -> Result<u32> {
    maps.set_stage(key, entry)?;
    let maps = std::cell::RefCell::new(maps);
    super::settle::settle(
        || Ok(maps.borrow().stage(key)?),
        |e| e.flags & STAGE_FLAG_MANUAL != 0,
        || Ok(maps.borrow_mut().set_stage(key, entry)?),
    )
}

/// An operator's entry (pin or release): `STAGE_FLAG_MANUAL`, which the controller never changes.
/// The fleet's pins are written through the same function.
fn manual_entry(stage: u32, limit: Limit, now: u64, ttl_ns: u64) -> StageEntry {
    crate::n3::manual::manual_entry(stage, limit, now, ttl_ns)
}

fn release(a: ReleaseArgs) -> Result<()> {
    let (cfg, mut maps) = open(&a.target)?;
    let key = key_for_dataplane(&maps, &a.device)?;
    if a.ttl.0 == 0 {
        bail!("--ttl must be > 0: a release expires like every stage");
    }
    let now = monotonic_ns();
    // Stage 0 with the manual flag: the data plane observes (never drops by device stage), the
    // controller leaves it alone until it expires.
    let entry = manual_entry(STAGE_OBSERVE, Limit::UNLIMITED, now, a.ttl.0);
    if !a.override_fleet {
        refuse_fleet_entry(&maps, &key, now, "release")?;
    }
    let before = maps.stage(&key)?;
    let action = OperatorAction::Release { key, ttl_ns: a.ttl.0, override_fleet: a.override_fleet };
    let again = audited(&cfg, &action, &a.comment, || write_settled(&mut maps, &key, &entry))?;
    let was = match before {
        Some(s) if s.expires_ns > now => format!("was at stage {} ({})", s.stage, stage_name(s.stage)),
        _ => "was not staged".to_owned(),
    };
    println!(
        "released {} for {} ({was}): held at stage 0 (observe), the controller will not stage it until then; cell and host caps still apply{}",
        device_name(&maps.local_table()?, &key),
        a.ttl,
        super::settle::rewritten_note(again)
    );
    Ok(())
}

fn unpin(target: &Target, sel: &DeviceSel, comment: &str) -> Result<()> {
    let (cfg, mut maps) = open(target)?;
    let key = key_for_dataplane(&maps, sel)?;
    let now = monotonic_ns();
    let Some(entry) = maps.stage(&key)?.filter(|e| e.expires_ns > now) else {
        println!("{} has no pin and no stage: nothing to unpin", device_name(&maps.local_table()?, &key));
        return Ok(());
    };
    if entry.flags & STAGE_FLAG_MANUAL == 0 {
        let reason =
            crate::n3::engine::decision::Reason::from_code(entry.reason).map(|r| r.name()).unwrap_or("unknown");
        bail!(
            "{} is at stage {} ({}) set by the controller (reason: {reason}), not by an operator: unpin removes \
             operator pins only, and the controller would stage it again. To overrule it: guard device release \
             --teid|--ue ... --ttl 1h --comment '...'",
            device_name(&maps.local_table()?, &key),
            entry.stage,
            stage_name(entry.stage)
        );
    }
    refuse_fleet_entry(&maps, &key, now, "unpin")?;
    audited(&cfg, &OperatorAction::Unpin { key }, comment, || Ok(maps.clear_stage(&key)?))?;
    println!(
        "unpinned {} (was stage {} {}); the controller decides from its next tick",
        device_name(&maps.local_table()?, &key),
        entry.stage,
        stage_name(entry.stage)
    );
    Ok(())
}

/// Audit an operator's `action` (before it acts: if the trail cannot be written, nothing is done),
/// then do `act`; a failure of `act` is audited too (`AuditLog::then`). `guard device` and
/// `guard gnb` both act through it.
pub(super) fn audited<T>(
    cfg: &crate::config::Config,
    action: &OperatorAction,
    comment: &str,
    act: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let audit = AuditLog::open(&cfg.guard.audit_log)
        .with_context(|| format!("opening the audit log {}", cfg.guard.audit_log.display()))?;
    audit
        .record_operator(SystemTime::now(), &operator(), action, comment)
        .context("writing the audit record (nothing was changed)")?;
    let (name, target) = action.name_target();
    audit.then(name, &target, act)
}

/// Who is acting, for the audit trail: the real and effective uid, the account name, and the
/// account that invoked sudo, if any (`SUDO_USER`/`SUDO_UID` are set by sudo, not by the user).
pub(super) fn operator() -> String {
    // SAFETY: getuid/geteuid have no preconditions.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "?".into());
    match (std::env::var("SUDO_USER"), std::env::var("SUDO_UID")) {
        (Ok(su), Ok(suid)) => format!("{su} (uid {suid}) via sudo as uid {uid} euid {euid}"),
        _ => format!("{user} (uid {uid} euid {euid})"),
    }
}
