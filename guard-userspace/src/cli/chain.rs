//! `guard chain set|clear`: hand the packets the guard passes to another XDP program (the guard
//! first, docs/operations.md "Sharing the NIC with an XDP UPF"), or stop. Audited before it acts,
//! like every operator action; works with or without a running controller (the choice lives in
//! the pinned `N3_CHAIN`, which the controller re-resolves every tick).

use std::{path::PathBuf, time::SystemTime};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::Target;
use crate::{audit::AuditLog, n3::chain};

#[derive(Subcommand, Debug)]
pub enum ChainCmd {
    /// Hand every packet the guard passes to the XDP program pinned at --next (its verdict
    /// stands; dropped packets never reach it). Atomic: one program-array update while traffic
    /// flows. Kept across restarts; a `[attach] next` in the config file wins at the next start.
    Set(ChainSetArgs),
    /// Stop handing packets on: they pass to the kernel stack again. The next program itself is
    /// left as it is.
    Clear(ChainClearArgs),
}

#[derive(Args, Debug)]
pub struct ChainSetArgs {
    #[command(flatten)]
    pub target: Target,
    /// The bpffs path of the pinned XDP program (e.g. `bpftool prog load upf.o /sys/fs/bpf/upf_main`).
    #[arg(long)]
    pub next: PathBuf,
}

#[derive(Args, Debug)]
pub struct ChainClearArgs {
    #[command(flatten)]
    pub target: Target,
}

pub fn run(c: ChainCmd) -> Result<()> {
    crate::bpf::object::require_root()?;
    let (target, next) = match &c {
        ChainCmd::Set(a) => (&a.target, Some(a.next.clone())),
        ChainCmd::Clear(a) => (&a.target, None),
    };
    let cfg = target.load_config()?;
    let pins = target.pins(&cfg)?;
    let iface = target.iface(&cfg)?;
    if !pins.map_path(guard_common::abi::MAP_N3_CHAIN).exists() {
        anyhow::bail!(
            "no N3_CHAIN pin in {}: the guard for {iface} has not run with this version; start it with `guard run`",
            pins.path().display()
        );
    }
    // Check the program before auditing, so a typo is an error, not an audit record.
    let resolved = match &next {
        Some(p) => Some(
            chain::resolve(p)?
                .ok_or_else(|| chain::ChainError::NoPin { path: p.clone() })
                .with_context(|| format!("guard chain set --next {}", p.display()))?,
        ),
        None => None,
    };
    let audit = AuditLog::open(&cfg.guard.audit_log)
        .with_context(|| format!("opening the audit log {}", cfg.guard.audit_log.display()))?;
    audit
        .write(&crate::audit::AuditRecord {
            ts: crate::audit::rfc3339(SystemTime::now()),
            actor: crate::audit::Actor::Operator,
            action: if next.is_some() { "chain_set" } else { "chain_clear" }.into(),
            target: format!("iface:{iface}"),
            reason: "operator".into(),
            evidence: serde_json::Value::Null,
            detail: serde_json::json!({
                "operator": super::device::operator(),
                "next": next.as_ref().map(|p| p.display().to_string()),
                "next_prog_id": resolved.as_ref().map(|n| n.id),
                "next_prog_name": resolved.as_ref().map(|n| n.name.clone()),
            }),
        })
        .context("writing the audit record (nothing was changed)")?;
    let action = if next.is_some() { "chain_set" } else { "chain_clear" };
    audit.then(action, &format!("iface:{iface}"), || set_or_clear(&pins, &iface, next.as_deref()))
}

fn set_or_clear(pins: &crate::bpf::pins::PinDir, iface: &str, next: Option<&std::path::Path>) -> Result<()> {
    match next {
        Some(p) => {
            let st = chain::set_next(pins, p).with_context(|| format!("linking {} after the guard", p.display()))?;
            if let chain::NextState::Linked { id, name, .. } = st {
                println!("{iface}: packets the guard passes now go on to {name} (id {id}, pinned at {})", p.display());
            }
        }
        None => {
            chain::clear_next(pins).context("clearing the next program")?;
            println!("{iface}: packets the guard passes go to the kernel stack (no next program)");
        }
    }
    Ok(())
}
