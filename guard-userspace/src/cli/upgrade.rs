//! `guard upgrade`: swap the XDP program behind the pinned link for a new one, atomically, against
//! the same pinned maps. See `load::Loaded::upgrade`.

use std::{path::PathBuf, time::SystemTime};

use anyhow::{Context, Result};
use clap::Args;

use super::Target;
use crate::{
    audit::AuditLog,
    bpf::object::{self, LoadError},
    n3::load,
};

#[derive(Args, Debug)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub target: Target,
    /// The BPF object to run instead of the one built into this binary: an object built from
    /// guard-ebpf, which a source build leaves at `guard-ebpf/target/bpfel-unknown-none/release/guard-ebpf`.
    #[arg(long)]
    pub object: Option<PathBuf>,
}

pub fn run(a: UpgradeArgs) -> Result<()> {
    object::require_root()?;
    let cfg = a.target.load_config()?;
    let pins = a.target.pins(&cfg)?;
    let iface = a.target.iface(&cfg)?;
    let bytes;
    let (obj, source): (&[u8], String) = match &a.object {
        Some(p) => {
            bytes = std::fs::read(p).with_context(|| format!("reading the BPF object {}", p.display()))?;
            (&bytes, p.display().to_string())
        }
        None => (object::object(), "built into this guard binary".to_owned()),
    };
    let into = match cfg.attach.into.as_deref() {
        Some(i) => Some(crate::n3::chain::IntoSlot::parse(i).map_err(anyhow::Error::msg).context("[attach] into")?),
        None => None,
    };
    // Refuse before loading anything when the guard is not attached: an upgrade never attaches.
    if into.is_none() && !pins.link_path().exists() {
        return Err(LoadError::NotAttached(pins.link_path()).into());
    }
    // The running guard's configuration record stays as it is (`load::load_upgrade`): this file
    // only says where the pins, the audit log and the interface are.
    let mut loaded = load::load_upgrade(&pins, cfg.guard.max_devices, obj)
        .with_context(|| format!("loading the new program for {iface} (nothing changed; the old one stays)"))?;
    // Audit before the switch, as for operator pins: no untracked change.
    let audit = AuditLog::open(&cfg.guard.audit_log)
        .with_context(|| format!("opening the audit log {}", cfg.guard.audit_log.display()))?;
    audit
        .write(&crate::audit::AuditRecord {
            ts: crate::audit::rfc3339(SystemTime::now()),
            actor: crate::audit::Actor::Operator,
            action: "upgrade".into(),
            target: iface.clone(),
            reason: "operator".into(),
            evidence: serde_json::json!({ "object": source, "object_bytes": obj.len() }),
            detail: serde_json::json!({ "operator": super::device::operator() }),
        })
        .context("writing the audit record")?;
    audit.then("upgrade", &iface, || match &into {
        Some(i) => {
            loaded
                .upgrade_into(i)
                .with_context(|| format!("swapping the guard in slot {} of {}", i.slot, i.array.display()))?;
            println!(
                "upgraded the guard on {iface}: slot {} of {} now holds the program {source}",
                i.slot,
                i.array.display()
            );
            Ok(())
        }
        None => {
            loaded.upgrade().with_context(|| format!("switching the pinned link of {iface}"))?;
            println!("upgraded the guard on {iface}: the pinned link now runs the program {source}");
            Ok(())
        }
    })
}
