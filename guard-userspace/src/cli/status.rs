//! `guard status` and `guard top`: read the pinned maps of a (running or stopped) guard.

use anyhow::{Context, Result};
use clap::Args;
use guard_common::abi::{
    STAGE_FLAG_MANUAL, STAT_EVENTS_LOST, STAT_EVENTS_SENT, STAT_EVENTS_SUPPRESSED, STAT_MAP_UPDATE_FAILED, STAT_NON_IP,
    STAT_NO_CONFIG,
};

use super::{device::stage_json, Target};
use crate::{
    clock::monotonic_ns,
    engine::decision::{addr_str, device_key_str},
    maps::N3Maps,
};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Machine-readable output.
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
    #[arg(long)]
    json: bool,
}

fn open(target: &Target) -> Result<(crate::pins::PinDir, N3Maps)> {
    crate::loader::require_root()?;
    let cfg = target.load_config()?;
    let pins = target.pins(&cfg)?;
    let maps = N3Maps::open_pinned(&pins)
        .with_context(|| format!("opening the guard's pinned maps in {}", pins.path().display()))?;
    Ok((pins, maps))
}

/// Everything `guard status` shows, as JSON (the human view prints the same data).
pub fn status_json(pins: &crate::pins::PinDir, maps: &N3Maps) -> Result<serde_json::Value> {
    let now = monotonic_ns();
    let cfg = maps.config()?;
    let stats = maps.stats()?;
    let stat = |i: u32| stats.get(i as usize).map(|c| c.packets).unwrap_or(0);
    let verdicts: serde_json::Map<_, _> = maps
        .verdicts()?
        .into_iter()
        .map(|(v, c)| (v.name().to_owned(), serde_json::json!({"packets": c.packets, "bytes": c.bytes})))
        .collect();
    let shadow: serde_json::Map<_, _> = maps
        .shadow()?
        .into_iter()
        .filter(|(_, c)| c.packets > 0)
        .map(|(v, c)| (v.name().to_owned(), serde_json::json!(c.packets)))
        .collect();
    let malformed: serde_json::Map<_, _> = maps
        .malformed()?
        .into_iter()
        .filter(|(_, c)| c.packets > 0)
        .map(|(m, c)| (m.name().to_owned(), serde_json::json!(c.packets)))
        .collect();
    let stages: Vec<_> = maps
        .stages()
        .into_iter()
        .map(|(k, s)| {
            let mut v = stage_json(&s, now);
            v["device"] = serde_json::json!(device_key_str(&k));
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
            serde_json::json!({"gnb": addr_str(&k), "cap_pps": l.rate_per_sec(),
                "expires_in_s": s.expires_ns.saturating_sub(now) as f64 / 1e9, "expired": s.expires_ns <= now})
        })
        .collect();
    Ok(serde_json::json!({
        "pins": pins.path().display().to_string(),
        "attached": pins.link_path().exists(),
        // The F-TEID's local half: each listed N3 address with the index device keys carry.
        "n3_addrs": maps.local_table()?.listed().iter().map(|(i, a, f)| serde_json::json!({
            "index": i, "addr": a.to_string(), "non_ip": f & guard_common::abi::LOCAL_FLAG_NON_IP != 0,
        })).collect::<Vec<_>>(),
        "config": {
            "gtpu_port": cfg.gtpu_port, "key_mode": if cfg.key_mode == 1 { "ue_addr" } else { "teid" },
            "enabled_mask": format!("{:#x}", cfg.enabled), "shadow_mask": format!("{:#x}", cfg.shadow),
            "host_cap_active": cfg.host_cap.interval_ns != 0 && cfg.host_cap_expires_ns > now,
        },
        "verdicts": verdicts,
        "shadow_would_drop": shadow,
        "malformed": malformed,
        "events": {"sent": stat(STAT_EVENTS_SENT), "lost": stat(STAT_EVENTS_LOST), "suppressed": stat(STAT_EVENTS_SUPPRESSED)},
        "fail_open": {"map_update_failed": stat(STAT_MAP_UPDATE_FAILED), "no_config": stat(STAT_NO_CONFIG)},
        "non_ip_gpdu": stat(STAT_NON_IP),
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

pub fn status(a: StatusArgs) -> Result<()> {
    let (pins, maps) = open(&a.target)?;
    let v = status_json(&pins, &maps)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "guard on {}: {} (pins in {})",
        pins.path().file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        if v["attached"] == true { "attached" } else { "NOT attached" },
        v["pins"].as_str().unwrap_or("")
    );
    println!("config: {}", v["config"]);
    println!("verdicts (packets):");
    if let Some(m) = v["verdicts"].as_object() {
        for (name, c) in m {
            if c["packets"].as_u64().unwrap_or(0) > 0 {
                println!("  {name:<24} {}", c["packets"]);
            }
        }
    }
    println!("shadow would-drop: {}", v["shadow_would_drop"]);
    println!("malformed: {}", v["malformed"]);
    println!("events: {}   fail-open: {}", v["events"], v["fail_open"]);
    let staged = v["staged_devices"].as_array().map(Vec::len).unwrap_or(0);
    println!("staged devices: {staged}");
    for s in v["staged_devices"].as_array().into_iter().flatten().take(20) {
        println!("  {}", s);
    }
    println!("cells (top 20 by packets):");
    for c in v["cells"].as_array().into_iter().flatten() {
        println!("  {c}");
    }
    println!("cell caps: {}", v["cell_stages"]);
    Ok(())
}

pub fn top(a: TopArgs) -> Result<()> {
    let (_, maps) = open(&a.target)?;
    let now = monotonic_ns();
    let stages: std::collections::HashMap<_, _> = maps.stages().into_iter().collect();
    let table = maps.local_table()?;
    let mut devs = maps.devices();
    // The heaviest first: by evidence (packets above the profile limit), then by volume.
    devs.sort_by_key(|(_, d)| std::cmp::Reverse((d.over_limit, d.packets)));
    let rows: Vec<_> = devs
        .iter()
        .take(a.count)
        .map(|(k, d)| {
            serde_json::json!({
                "device": super::device::device_name(&table, k), "packets": d.packets, "over_limit": d.over_limit,
                "dropped": d.dropped, "spoofed": d.spoofed, "gnb": addr_str(&d.cell),
                "stage": stages.get(k).map(|s| stage_json(s, now)),
            })
        })
        .collect();
    let manual = stages.values().filter(|s| s.flags & STAGE_FLAG_MANUAL != 0).count();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"devices": rows, "staged": stages.len(), "manual": manual})
            )?
        );
        return Ok(());
    }
    println!(
        "{} devices tracked, {} staged ({} by operators); heaviest {}:",
        devs.len(),
        stages.len(),
        manual,
        rows.len()
    );
    println!("{:<34} {:>12} {:>12} {:>10} {:>16}  stage", "device", "packets", "over-limit", "dropped", "gNB");
    for r in &rows {
        let st = match &r["stage"] {
            serde_json::Value::Null => "0 observe".to_owned(),
            s => format!(
                "{} {} ({}, {:.0}s left)",
                s["stage"],
                s["name"].as_str().unwrap_or(""),
                s["reason"].as_str().unwrap_or(""),
                s["expires_in_s"].as_f64().unwrap_or(0.0)
            ),
        };
        println!(
            "{:<34} {:>12} {:>12} {:>10} {:>16}  {}",
            r["device"].as_str().unwrap_or(""),
            r["packets"],
            r["over_limit"],
            r["dropped"],
            r["gnb"].as_str().unwrap_or(""),
            st
        );
    }
    Ok(())
}
