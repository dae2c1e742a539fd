//! `guard status` and `guard top`: read the pinned maps of a (running or stopped) guard.

use anyhow::{Context, Result};
use clap::Args;
use guard_common::abi::{
    STAGE_FLAG_MANUAL, STAT_EVENTS_LOST, STAT_EVENTS_SENT, STAT_EVENTS_SUPPRESSED, STAT_MAP_UPDATE_FAILED, STAT_NON_IP,
    STAT_NO_CONFIG,
};

use super::{
    device::stage_json,
    tables::{expiry, modes_json, nonzero_packets, num, packets_and_bytes, print_counts, print_modes},
    Target,
};
use crate::{
    bpf::pins::PinDir,
    clock::monotonic_ns,
    n3::engine::decision::{addr_str, device_key_str},
    n3::maps::N3Maps,
};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Show the N2 guard of the interface (`guard_n2`, pins under `<pin_dir>/n2/<iface>`). Without
    /// `--iface` and `--n2`: the config's N3 interface and, when `[guard] n2_interface` is set,
    /// its N2 guard too. With `--iface` naming an interface that only runs the N2 guard, that.
    #[arg(long)]
    n2: bool,
    /// Machine-readable output (the N3 object, with the N2 one under "n2" when both are shown).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    target: Target,
    /// How many devices to show.
    #[arg(long, short = 'n', default_value_t = 20)]
    count: usize,
    /// The current rate is the packets counted over this long (two reads of the device map).
    #[arg(long, default_value = "1s")]
    interval: crate::config::Dur,
    #[arg(long)]
    json: bool,
}

fn open(target: &Target) -> Result<(crate::bpf::pins::PinDir, N3Maps)> {
    crate::bpf::object::require_root()?;
    let cfg = target.load_config()?;
    let pins = target.pins(&cfg)?;
    let maps = N3Maps::open_pinned(&pins)
        .with_context(|| format!("opening the guard's pinned maps in {}", pins.path().display()))?;
    Ok((pins, maps))
}

/// Everything `guard status` shows, as JSON (the human view prints the same data).
pub fn status_json(pins: &crate::bpf::pins::PinDir, maps: &N3Maps) -> Result<serde_json::Value> {
    let now = monotonic_ns();
    let cfg = maps.config()?;
    let stats = maps.stats()?;
    let stat = |i: u32| stats.get(i as usize).map(|c| c.packets).unwrap_or(0);
    let verdicts = packets_and_bytes(maps.verdicts()?.into_iter().map(|(v, c)| (v.name(), c)));
    let shadow = nonzero_packets(maps.shadow()?.into_iter().map(|(v, c)| (v.name(), c)));
    let malformed = nonzero_packets(maps.malformed()?.into_iter().map(|(m, c)| (m.name(), c)));
    let stages: Vec<_> = maps
        .stages()
        .into_iter()
        .map(|(k, s)| {
            let mut v = stage_json(&s, now);
            v["device"] = serde_json::json!(device_key_str(&k));
            v["mode"] = serde_json::json!(stage_mode(s.stage, &cfg));
            v
        })
        .collect();
    let mut cells: Vec<_> = maps.cells();
    cells.sort_by_key(|(_, c)| std::cmp::Reverse(c.packets));
    let cells: Vec<_> = cells
        .iter()
        .take(20)
        .map(|(k, c)| {
            serde_json::json!({
                "gnb": addr_str(k), "packets": c.packets, "gpdu": c.gpdu, "dropped": c.dropped,
                "echo_req": c.echo_req, "err_ind": c.err_ind, "end_marker": c.end_marker,
                "new_devices": c.new_devices, "new_devices_limited": c.new_devices_limited,
                "readmitted": c.readmitted,
            })
        })
        .collect();
    let unknown = maps.unknown_sources()?;
    let cell_stages: Vec<_> = maps
        .cell_stages()
        .into_iter()
        .map(|(k, s)| {
            let l = guard_common::abi::Limit { interval_ns: s.interval_ns, tau_ns: s.tau_ns };
            // The byte rate beside the packet rate (schema 8): 0 is none.
            serde_json::json!({"gnb": addr_str(&k), "cap_pps": l.rate_per_sec(),
                "cap_bits_per_sec": s.bytes.bits_per_sec(),
                // An operator's (`guard gnb pin`, fleet pins) or the engine's.
                "manual": s.flags & guard_common::abi::STAGE_FLAG_MANUAL != 0,
                "expires_in_s": s.expires_ns.saturating_sub(now) as f64 / 1e9, "expired": s.expires_ns <= now})
        })
        .collect();
    let (attached, link, hook) = attachment(pins, &pins.link_path());
    Ok(serde_json::json!({
        "pins": pins.path().display().to_string(),
        "controller": controller_json(pins),
        "attached": attached,
        "pinned_link": link,
        "xdp_hook": hook,
        // The F-TEID's local half: each listed N3 address with the index device keys carry.
        "n3_addrs": maps.local_table()?.listed().iter().map(|(i, a, f)| serde_json::json!({
            "index": i, "addr": a.to_string(), "non_ip": f & guard_common::abi::LOCAL_FLAG_NON_IP != 0,
        })).collect::<Vec<_>>(),
        "config": {
            "gtpu_port": cfg.gtpu_port, "key_mode": if cfg.key_mode == 1 { "ue_addr" } else { "teid" },
            "modes": modes_json(cfg.enabled, cfg.shadow, &crate::config::PROTECTIONS),
            // Live and judged: a cap whose protection is off is not even looked at.
            "host_cap_active": guard_common::policy::host_cap_live(&cfg, now)
                && guard_common::policy::gate(&cfg, guard_common::abi::PROT_HOST_CAP) != guard_common::policy::Gate::Off,
            // Per CPU, as the data plane applies it.
            "host_cap_bits_per_sec_per_cpu": cfg.host_cap_bytes.bits_per_sec(),
        },
        "verdicts": verdicts,
        "shadow_would_drop": shadow,
        "malformed": malformed,
        "events": {"sent": stat(STAT_EVENTS_SENT), "lost": stat(STAT_EVENTS_LOST), "suppressed": stat(STAT_EVENTS_SUPPRESSED)},
        "fail_open": {"map_update_failed": stat(STAT_MAP_UPDATE_FAILED), "no_config": stat(STAT_NO_CONFIG)},
        "non_ip_gpdu": stat(STAT_NON_IP),
        "chain_miss": stat(guard_common::abi::STAT_CHAIN_MISS),
        "staged_devices": stages,
        "cells": cells,
        "unknown_sources": {
            "what": "outer sources without a record of their own (dataplane.new_gnb): one shared budget",
            "new_devices": unknown.new_devices, "new_devices_limited": unknown.new_devices_limited,
            "echo_req": unknown.echo_req, "err_ind": unknown.err_ind,
        },
        "cell_stages": cell_stages,
    }))
}

/// The chaining state (`[attach]`, docs/operations.md "Sharing the NIC with an XDP UPF"): the
/// next program as `N3_CHAIN` names it and what its slot holds, and the slot the guard sits in.
fn chain_json(
    pins: &crate::bpf::pins::PinDir,
    cfg: &crate::config::Config,
    v: &serde_json::Value,
) -> serde_json::Value {
    use crate::n3::chain;
    let next = chain::read_config(pins).ok().and_then(|c| chain::next_path(&c));
    let slot = chain::slot_prog_id(&pins.map_path(guard_common::abi::MAP_N3_NEXT), 0).ok().flatten();
    let state = match (&next, chain::resolve_quiet(next.as_deref())) {
        (None, _) => "unset".to_owned(),
        (Some(p), None) => format!("GONE: nothing pinned at {}; passed packets go to the kernel stack", p.display()),
        (Some(_), Some((id, name))) if slot == Some(id) => format!("linked: program {name} (id {id})"),
        (Some(_), Some((id, name))) => {
            format!("pinned program {name} (id {id}) not in the slot yet (the controller links it at its next tick)")
        }
    };
    let into = cfg.attach.into.as_deref().and_then(|i| chain::IntoSlot::parse(i).ok()).map(|i| {
        let own = chain::own_prog_id(pins);
        let held = chain::slot_prog_id(&i.array, i.slot).ok().flatten();
        serde_json::json!({
            "array": i.array.display().to_string(), "slot": i.slot,
            "in_slot": own.is_some() && held == own, "slot_prog_id": held, "guard_prog_id": own,
        })
    });
    serde_json::json!({
        "next": next.map(|p| p.display().to_string()), "next_state": state, "slot_prog_id": slot,
        "miss": v["chain_miss"], "into": into,
    })
}

fn print_n3(v: &serde_json::Value) {
    let ch = &v["chain"];
    let how = match ch["into"].as_object() {
        Some(i) if ch["into"]["in_slot"] == true => {
            format!("in slot {} of {}", i["slot"], i["array"].as_str().unwrap_or(""))
        }
        Some(i) => format!("NOT in its slot {} of {}", i["slot"], i["array"].as_str().unwrap_or("")),
        None => attachment_words(v),
    };
    println!("guard_n3: {how} (pins in {})", v["pins"].as_str().unwrap_or(""));
    println!("  {}", controller_words(&v["controller"]));
    if let Some(next) = ch["next"].as_str() {
        println!(
            "  next program {next}: {}; {} passed packets missed it",
            ch["next_state"].as_str().unwrap_or(""),
            ch["miss"]
        );
    }
    let c = &v["config"];
    println!(
        "  devices keyed by {}; GTP-U port {}; host cap {}",
        if c["key_mode"] == "ue_addr" { "UE address" } else { "F-TEID" },
        c["gtpu_port"],
        if c["host_cap_active"] == true { "ACTIVE" } else { "not active" }
    );
    let addrs: Vec<String> = v["n3_addrs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} {}{}",
                a["index"],
                a["addr"].as_str().unwrap_or(""),
                if a["non_ip"] == true { " (non-IP)" } else { "" }
            )
        })
        .collect();
    println!(
        "  N3 addresses: {}",
        if addrs.is_empty() { "any (one host address)".to_owned() } else { addrs.join(", ") }
    );
    print_modes(&c["modes"]);
    print_counts("packets by verdict", &v["verdicts"], |c| c["packets"].as_u64());
    print_counts("shadow: would have dropped", &v["shadow_would_drop"], serde_json::Value::as_u64);
    print_counts("malformed", &v["malformed"], serde_json::Value::as_u64);
    let (e, f) = (&v["events"], &v["fail_open"]);
    println!(
        "events: {} sent, {} lost, {} suppressed; fail-open: {} map update failures, {} packets without config; \
         {} non-IP G-PDUs",
        e["sent"], e["lost"], e["suppressed"], f["map_update_failed"], f["no_config"], v["non_ip_gpdu"]
    );
    let staged = v["staged_devices"].as_array().map(Vec::as_slice).unwrap_or_default();
    println!(
        "staged devices: {}{}",
        staged.len(),
        if staged.len() > 20 { " (first 20; guard top for more)" } else { "" }
    );
    for s in staged.iter().take(20) {
        println!(
            "  {:<40} stage {} {} at {} pps{}{}{}{}, {}, {}",
            s["device"].as_str().unwrap_or(""),
            s["stage"],
            s["name"].as_str().unwrap_or(""),
            s["pps"],
            s["bit_rate"].as_str().map(|r| format!(" and {r}")).unwrap_or_default(),
            if s["manual"] == true { ", operator" } else { "" },
            if s["exempt"] == true { ", exempt" } else { "" },
            mode_words(s),
            s["reason"].as_str().unwrap_or(""),
            expiry(s)
        );
    }
    println!("gNBs (top 20 by packets):");
    println!(
        "  {:<40} {:>12} {:>12} {:>10} {:>8} {:>8} {:>12} {:>8}",
        "gNB", "packets", "G-PDUs", "dropped", "Echo", "ErrInd", "new devices", "limited"
    );
    for c in v["cells"].as_array().into_iter().flatten() {
        println!(
            "  {:<40} {:>12} {:>12} {:>10} {:>8} {:>8} {:>12} {:>8}",
            c["gnb"].as_str().unwrap_or(""),
            num(&c["packets"]),
            num(&c["gpdu"]),
            num(&c["dropped"]),
            num(&c["echo_req"]),
            num(&c["err_ind"]),
            num(&c["new_devices"]),
            c["new_devices_limited"]
        );
    }
    let u = &v["unknown_sources"];
    println!(
        "sources without a gNB record (one shared budget): {} new devices ({} limited), {} Echo, {} ErrInd",
        u["new_devices"], u["new_devices_limited"], u["echo_req"], u["err_ind"]
    );
    let caps = v["cell_stages"].as_array().map(Vec::as_slice).unwrap_or_default();
    println!("cell caps: {}", caps.len());
    for c in caps {
        let bytes = match c["cap_bits_per_sec"].as_u64() {
            Some(b) if b > 0 => format!(" and {}", guard_common::units::BitRate(b)),
            _ => String::new(),
        };
        // A cap in octets alone (`guard gnb pin --rate`) has no packet rate: 0 is none.
        let pps = match c["cap_pps"].as_u64() {
            Some(p) if p > 0 => format!("{p} pps"),
            _ => "no packet rate".to_owned(),
        };
        let by = if c["manual"].as_bool() == Some(true) { ", pinned" } else { "" };
        println!("  {:<40} {pps}{bytes}{by}, {}", c["gnb"].as_str().unwrap_or(""), expiry(c));
    }
}

/// Which guards `guard status` shows: the N3 one, the N2 one, or both (see [`StatusArgs`]).
fn targets(a: &StatusArgs, cfg: &crate::config::Config) -> Result<(Option<PinDir>, Option<PinDir>)> {
    let base = a.target.pin_base.clone().unwrap_or_else(|| cfg.guard.pin_dir.clone());
    if a.n2 {
        return Ok((None, Some(crate::n2::pin_dir(&base, &a.target.n2_iface(cfg)?))));
    }
    if let Some(i) = &a.target.iface {
        let (n3, n2) = (PinDir::new(&base, i), crate::n2::pin_dir(&base, i));
        return Ok(match (n3.path().exists(), n2.path().exists()) {
            (false, true) => (None, Some(n2)),
            _ => (Some(n3), None),
        });
    }
    let n2 = cfg.guard.n2_interface.as_deref().map(|i| crate::n2::pin_dir(&base, i));
    match a.target.iface(cfg) {
        Ok(i) => Ok((Some(PinDir::new(&base, &i)), n2)),
        Err(_) if n2.is_some() => Ok((None, n2)),
        Err(e) => Err(e),
    }
}

pub fn status(a: StatusArgs) -> Result<()> {
    crate::bpf::object::require_root()?;
    let cfg = a.target.load_config()?;
    let (n3, n2) = targets(&a, &cfg)?;
    let n3 = match n3 {
        Some(pins) => {
            let maps = N3Maps::open_pinned(&pins).with_context(|| {
                format!("reading the N3 guard's pins in {} (an N2 interface: --n2)", pins.path().display())
            })?;
            let mut v = status_json(&pins, &maps)?;
            v["chain"] = chain_json(&pins, &cfg, &v);
            if v["chain"]["into"]["in_slot"] == true {
                v["attached"] = serde_json::json!(true);
            }
            Some(v)
        }
        None => None,
    };
    let n2 = match n2 {
        Some(pins) => Some(super::status_n2::status_json(&pins, &super::status_n2::open(&pins)?)?),
        None => None,
    };
    if a.json {
        let v = match (n3, n2) {
            (Some(mut v3), Some(v2)) => {
                v3["n2"] = v2;
                v3
            }
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => serde_json::Value::Null,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(v) = &n3 {
        print_n3(v);
    }
    if let Some(v) = &n2 {
        if n3.is_some() {
            println!();
        }
        super::status_n2::print(v);
    }
    Ok(())
}

/// Whether the program of the link pinned at `link_path` is attached: (attached, the link is
/// pinned, what the XDP hook of `pins`' interface holds). Attached means both: a link can outlive
/// what it was attached to (a re-created VLAN or a reset VF leaves it defunct).
pub(super) fn attachment(pins: &crate::bpf::pins::PinDir, link_path: &std::path::Path) -> (bool, bool, Option<String>) {
    let link = link_path.exists();
    let Some(iface) = pins.iface() else { return (false, link, None) };
    // By the program's id: its name is not readable without CAP_SYS_ADMIN (`XdpHook`).
    let (runs, hook) = crate::bpf::link::hook_runs_link(&iface, link_path);
    (link && runs, link, hook.map(|h| h.to_string()))
}

/// Whether a controller (`guard run`) holds the pin directory's lock, and which: without one the
/// data plane runs on its own.
pub(super) fn controller_json(pins: &crate::bpf::pins::PinDir) -> serde_json::Value {
    match crate::runlock::holder(&crate::runlock::Resource::Pins(pins.path())) {
        Some((pid, since)) => serde_json::json!({"running": true, "pid": pid, "since": since}),
        None => serde_json::json!({"running": false}),
    }
}

/// [`controller_json`] in words.
pub(super) fn controller_words(c: &serde_json::Value) -> String {
    if c["running"] == true {
        format!("controller: running (pid {}, since {})", c["pid"], c["since"].as_str().unwrap_or("?"))
    } else {
        "controller: NONE running: nothing escalates or releases; stages expire on their TTLs, and protections in          enforce keep dropping until `guard detach`"
            .to_owned()
    }
}

/// [`attachment`]'s fields (`attached`, `pinned_link`, `xdp_hook`) in words.
pub(super) fn attachment_words(v: &serde_json::Value) -> String {
    match (v["attached"] == true, v["pinned_link"] == true) {
        (true, _) => "attached".to_owned(),
        (false, true) => format!(
            "NOT attached: its link is pinned, but the XDP hook holds {} (restart `guard run` to attach again)",
            v["xdp_hook"].as_str().unwrap_or("nothing")
        ),
        (false, false) => "NOT attached".to_owned(),
    }
}

/// What the data plane does with a stage, per its configuration record: "enforce", "shadow"
/// (counted, not applied), "off" (not even judged); "" for stage 0, which drops nothing.
pub(super) fn stage_mode(stage: u32, cfg: &guard_common::abi::GuardConfig) -> &'static str {
    use guard_common::abi::{PROT_QUARANTINE, PROT_SHAPE, PROT_STRICT, STAGE_QUARANTINE, STAGE_SHAPE, STAGE_STRICT};
    use guard_common::policy::{gate, Gate};
    let bit = match stage {
        STAGE_SHAPE => PROT_SHAPE,
        STAGE_STRICT => PROT_STRICT,
        STAGE_QUARANTINE => PROT_QUARANTINE,
        _ => return "",
    };
    match gate(cfg, bit) {
        Gate::Enforce => "enforce",
        Gate::Shadow => "shadow",
        Gate::Off => "off",
    }
}

/// The words a stage's mode adds to its line: nothing when it is applied.
pub(super) fn mode_words(s: &serde_json::Value) -> &'static str {
    match s["mode"].as_str() {
        Some("shadow") => " SHADOW: counted, not applied",
        Some("off") => " OFF: not applied",
        _ => "",
    }
}

/// A measured bit rate in words, three significant digits: "950bit/s", "12.3kbit/s", "1.23Mbit/s"
/// (SI prefixes, as configured rates are written).
pub fn bit_rate_words(bps: f64) -> String {
    let (v, unit) = match bps {
        b if b >= 1e9 => (b / 1e9, "Gbit/s"),
        b if b >= 1e6 => (b / 1e6, "Mbit/s"),
        b if b >= 1e3 => (b / 1e3, "kbit/s"),
        b => (b, "bit/s"),
    };
    let digits = if v >= 100.0 || unit == "bit/s" {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{unit}")
}

pub fn top(a: TopArgs) -> Result<()> {
    let (_, maps) = open(&a.target)?;
    let before: std::collections::HashMap<_, _> =
        maps.devices().into_iter().map(|(k, d)| (k, (d.packets(), d.bytes()))).collect();
    let t0 = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_nanos(a.interval.ns()));
    let mut devs = maps.devices();
    let secs = t0.elapsed().as_secs_f64().max(1e-3);
    let now = monotonic_ns();
    let cfg = maps.config()?;
    let stages: std::collections::HashMap<_, _> = maps.stages().into_iter().collect();
    let table = maps.local_table()?;
    let pps = |k: &guard_common::abi::DeviceKey, packets: u64| {
        packets.saturating_sub(before.get(k).map_or(0, |b| b.0)) as f64 / secs
    };
    // T-PDU octets per second (`DeviceState::bytes`): the unit of the byte limits and a UPF's MBR.
    let bytes_ps = |k: &guard_common::abi::DeviceKey, bytes: u64| {
        bytes.saturating_sub(before.get(k).map_or(0, |b| b.1)) as f64 / secs
    };
    // Staged devices first, then the heaviest: by evidence (packets above the profile limit),
    // then by current rate.
    let rank = |k: &guard_common::abi::DeviceKey, d: &guard_common::abi::DeviceState| {
        (stages.contains_key(k), d.over_limit, pps(k, d.packets()))
    };
    devs.sort_by(|(ka, a), (kb, b)| rank(kb, b).partial_cmp(&rank(ka, a)).unwrap_or(std::cmp::Ordering::Equal));
    let rows: Vec<_> = devs
        .iter()
        .take(a.count)
        .map(|(k, d)| {
            let stage = stages.get(k).map(|s| {
                let mut v = stage_json(s, now);
                let mode = stage_mode(s.stage, &cfg);
                v["shadow"] = serde_json::json!(mode == "shadow");
                v["mode"] = serde_json::json!(mode);
                v
            });
            serde_json::json!({
                "device": super::device::device_name(&table, k), "pps": pps(k, d.packets()), "packets": d.packets(),
                "bytes_per_s": bytes_ps(k, d.bytes()), "bytes": d.bytes(),
                "bit_rate": bit_rate_words(bytes_ps(k, d.bytes()) * 8.0),
                "over_limit": d.over_limit, "over_bytes": d.over_bytes, "dropped": d.dropped(), "spoofed": d.spoofed, "gnb": addr_str(&d.cell),
                "stage": stage,
            })
        })
        .collect();
    let manual = stages.values().filter(|s| s.flags & STAGE_FLAG_MANUAL != 0).count();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "devices": rows, "tracked": devs.len(), "staged": stages.len(), "manual": manual, "interval_s": secs,
            }))?
        );
        return Ok(());
    }
    println!(
        "{} devices tracked, {} staged ({} by operators); heaviest {}, rates over the last {:.1} s:",
        devs.len(),
        stages.len(),
        manual,
        rows.len(),
        secs
    );
    println!(
        "{:<40} {:>10} {:>12} {:>14} {:>12} {:>10} {:>16}  stage",
        "device", "pps now", "bit/s now", "packets", "over limit", "dropped", "gNB"
    );
    for r in &rows {
        let st = match &r["stage"] {
            serde_json::Value::Null => "0 observe".to_owned(),
            s => format!(
                "{} {}{} ({}, {:.0} s left)",
                s["stage"],
                s["name"].as_str().unwrap_or(""),
                mode_words(s),
                s["reason"].as_str().unwrap_or(""),
                s["expires_in_s"].as_f64().unwrap_or(0.0)
            ),
        };
        println!(
            "{:<40} {:>10.1} {:>12} {:>14} {:>12} {:>10} {:>16}  {}",
            r["device"].as_str().unwrap_or(""),
            r["pps"].as_f64().unwrap_or(0.0),
            r["bit_rate"].as_str().unwrap_or(""),
            num(&r["packets"]),
            num(&r["over_limit"]),
            num(&r["dropped"]),
            r["gnb"].as_str().unwrap_or(""),
            st
        );
    }
    Ok(())
}
