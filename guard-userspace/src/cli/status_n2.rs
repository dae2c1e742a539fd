//! `guard status` of an N2 interface: what `guard_n2` and its egress classifier hold in their pin
//! directory (`<pin_dir>/n2/<iface>`), in words, or as JSON with `--json`.

use anyhow::{Context, Result};
use guard_common::abi_n2::{
    N2_STAT_ALIASED, N2_STAT_COOKIE_ISSUED, N2_STAT_COOKIE_UNISSUED, N2_STAT_EGRESS_ASSOC, N2_STAT_EGRESS_INIT_ACK,
    N2_STAT_EVENTS_LOST, N2_STAT_EVENTS_SENT, N2_STAT_EVENTS_SUPPRESSED, N2_STAT_FRAGMENTS, N2_STAT_INIT_REESTABLISH,
    N2_STAT_MAP_UPDATE_FAILED, N2_STAT_NGAP_UNPARSED, N2_STAT_NO_CONFIG, N2_STAT_WALK_CUT,
};
use serde_json::{json, Value};

use super::tables::{expiry, modes_json, nonzero_packets, num, packets_and_bytes, print_counts, print_modes};
use crate::{
    bpf::pins::PinDir,
    clock::monotonic_ns,
    config::n2::N2_PROTECTIONS,
    n2::{controller::setup_stage_name, engine::cell_str, N2Maps},
    n3::engine::decision::addr_str,
};

/// Open the N2 pins of an interface for reading.
pub fn open(pins: &PinDir) -> Result<N2Maps> {
    N2Maps::open_pinned(pins)
        .with_context(|| format!("opening the N2 guard's pinned maps in {}", pins.path().display()))
}

/// Everything the N2 status shows, as JSON.
pub fn status_json(pins: &PinDir, maps: &N2Maps) -> Result<Value> {
    let now = monotonic_ns();
    let cfg = maps.config()?;
    let stats = maps.stats()?;
    let stat = |i: u32| stats.get(i as usize).map(|c| c.packets).unwrap_or(0);
    let verdicts = packets_and_bytes(maps.verdicts()?.into_iter().map(|(v, c)| (v.name(), c)));
    let shadow = nonzero_packets(maps.shadow()?.into_iter().map(|(v, c)| (v.name(), c)));
    let malformed = nonzero_packets(maps.malformed()?.into_iter().map(|(m, c)| (m.name(), c)));
    let stages: Vec<_> = maps
        .peer_stages()
        .into_iter()
        .map(|(peer, s)| {
            json!({"peer": addr_str(&peer), "stage": s.stage, "name": setup_stage_name(s.stage),
                "manual": s.flags & guard_common::abi::STAGE_FLAG_MANUAL != 0,
                "expires_in_s": s.expires_ns.saturating_sub(now) as f64 / 1e9, "expired": s.expires_ns <= now})
        })
        .collect();
    let mut peers = maps.peers();
    peers.sort_by_key(|(_, p)| std::cmp::Reverse(p.packets));
    let peers: Vec<_> = peers
        .iter()
        .take(20)
        .map(|(a, p)| {
            json!({"peer": addr_str(a), "packets": p.packets, "setups": p.setups,
                "setup_over_limit": p.setup_over_limit, "setup_dropped": p.setup_dropped,
                "setup_spared": p.setup_spared, "dropped": p.dropped, "malformed": p.malformed,
                "initial_ue_messages": p.ue_walked})
        })
        .collect();
    let mut cells = maps.cells();
    cells.sort_by_key(|(_, c)| std::cmp::Reverse(c.initial_ue));
    let cells: Vec<_> = cells
        .iter()
        .take(20)
        .map(|(k, c)| {
            json!({"cell": cell_str(k), "initial_ue": c.initial_ue, "registration_requests": c.registration_requests,
                "service_requests": c.service_requests, "suci_only": c.suci_only, "last_gnb": addr_str(&c.last_peer)})
        })
        .collect();
    let mut allowed: Vec<String> = maps.allowed().iter().map(addr_str).collect();
    allowed.sort();
    let (attached, link, hook) = super::status::attachment(pins, &crate::n2::link_path(pins));
    Ok(json!({
        "interface": "n2",
        "pins": pins.path().display().to_string(),
        "controller": super::status::controller_json(pins),
        "attached": attached,
        "pinned_link": link,
        "xdp_hook": hook,
        "egress_classifier": crate::n2::egress_link_path(pins).exists(),
        "config": {
            "ngap_port": cfg.ngap_port, "s1ap_port": cfg.s1ap_port,
            "modes": modes_json(cfg.enabled, cfg.shadow, &N2_PROTECTIONS),
        },
        "verdicts": verdicts,
        "shadow_would_drop": shadow,
        "malformed": malformed,
        "events": {"sent": stat(N2_STAT_EVENTS_SENT), "lost": stat(N2_STAT_EVENTS_LOST),
            "suppressed": stat(N2_STAT_EVENTS_SUPPRESSED)},
        "fail_open": {"map_update_failed": stat(N2_STAT_MAP_UPDATE_FAILED), "no_config": stat(N2_STAT_NO_CONFIG)},
        "setup": {
            "cookies_issued_seen": stat(N2_STAT_EGRESS_INIT_ACK), "cookie_echo_issued": stat(N2_STAT_COOKIE_ISSUED),
            "cookie_echo_unissued": stat(N2_STAT_COOKIE_UNISSUED), "reestablish_inits": stat(N2_STAT_INIT_REESTABLISH),
            "associations_seen": stat(N2_STAT_EGRESS_ASSOC), "known_association_ports": maps.assoc_ports().len(),
        },
        "ngap": {"unparsed": stat(N2_STAT_NGAP_UNPARSED), "walk_cut": stat(N2_STAT_WALK_CUT)},
        "fragments": stat(N2_STAT_FRAGMENTS),
        "multihoming": {"aliased_packets": stat(N2_STAT_ALIASED), "aliases": maps.aliases().len()},
        "allowed_peers": allowed,
        "staged_peers": stages,
        "peers": peers,
        "cells": cells,
    }))
}

/// The N2 status in words.
pub fn print(v: &Value) {
    println!(
        "guard_n2: {}, egress classifier {} (pins in {})",
        super::status::attachment_words(v),
        if v["egress_classifier"] == true { "attached" } else { "NOT attached (cookie check falls back)" },
        v["pins"].as_str().unwrap_or("")
    );
    println!("  {}", super::status::controller_words(&v["controller"]));
    println!("  NGAP port {}, S1AP port {}", v["config"]["ngap_port"], v["config"]["s1ap_port"]);
    print_modes(&v["config"]["modes"]);
    print_counts("packets by verdict", &v["verdicts"], |c| c["packets"].as_u64());
    print_counts("shadow: would have dropped", &v["shadow_would_drop"], Value::as_u64);
    print_counts("malformed", &v["malformed"], Value::as_u64);
    let (e, f, s) = (&v["events"], &v["fail_open"], &v["setup"]);
    println!(
        "events: {} sent, {} lost, {} suppressed; fail-open: {} map update failures, {} packets without config",
        e["sent"], e["lost"], e["suppressed"], f["map_update_failed"], f["no_config"]
    );
    println!(
        "setup: {} INIT ACKs seen leaving, {} COOKIE ECHOs with an issued tag, {} without; {} INITs on a known \
         association's port; {} association ports known",
        s["cookies_issued_seen"],
        s["cookie_echo_issued"],
        s["cookie_echo_unissued"],
        s["reestablish_inits"],
        s["known_association_ports"]
    );
    println!(
        "NGAP: {} messages not decoded, {} chunk walks cut; {} IP fragments; {} packets on a second path of a \
         multi-homed peer ({} aliases)",
        v["ngap"]["unparsed"],
        v["ngap"]["walk_cut"],
        v["fragments"],
        v["multihoming"]["aliased_packets"],
        v["multihoming"]["aliases"]
    );
    let allowed: Vec<&str> = v["allowed_peers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    println!("allow-listed peers: {}", if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") });
    let stages = v["staged_peers"].as_array().map(Vec::as_slice).unwrap_or_default();
    println!("staged peers: {}", stages.len());
    for s in stages {
        println!(
            "  {:<40} stage {} {}{}, {}",
            s["peer"].as_str().unwrap_or(""),
            s["stage"],
            s["name"].as_str().unwrap_or(""),
            if s["manual"] == true { " (operator)" } else { "" },
            expiry(s)
        );
    }
    println!("peers (top 20 by packets):");
    println!(
        "  {:<40} {:>10} {:>8} {:>12} {:>10} {:>8} {:>10}",
        "peer", "packets", "setups", "over limit", "dropped", "spared", "InitialUE"
    );
    for p in v["peers"].as_array().into_iter().flatten() {
        println!(
            "  {:<40} {:>10} {:>8} {:>12} {:>10} {:>8} {:>10}",
            p["peer"].as_str().unwrap_or(""),
            num(&p["packets"]),
            num(&p["setups"]),
            num(&p["setup_over_limit"]),
            num(&p["dropped"]),
            num(&p["setup_spared"]),
            p["initial_ue_messages"]
        );
    }
    println!("cells (top 20 by InitialUEMessages):");
    println!(
        "  {:<32} {:>10} {:>14} {:>10} {:>10}  last gNB",
        "cell", "InitialUE", "registrations", "service", "SUCI only"
    );
    for c in v["cells"].as_array().into_iter().flatten() {
        println!(
            "  {:<32} {:>10} {:>14} {:>10} {:>10}  {}",
            c["cell"].as_str().unwrap_or(""),
            num(&c["initial_ue"]),
            num(&c["registration_requests"]),
            num(&c["service_requests"]),
            num(&c["suci_only"]),
            c["last_gnb"].as_str().unwrap_or("")
        );
    }
}
