//! `guard detach`: take the guard off an interface (through the chain's hand-over when a next
//! program is linked), and with `--purge` delete its pinned state.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::Target;

#[derive(Args, Debug)]
pub struct DetachArgs {
    #[command(flatten)]
    pub target: Target,
    /// Also delete every pinned map: all counters, learned bindings and stages are lost.
    #[arg(long)]
    pub purge: bool,
    /// The interface runs the N2 guard (`guard_n2` and its egress classifier, pins under
    /// `<pin_dir>/n2/<iface>`), not the N3 one.
    #[arg(long, conflicts_with = "all")]
    pub n2: bool,
    /// Every interface that has pins under the pin directory, N3 and N2, each as `--iface` would
    /// (chain hand-over, program-array slot): what removing the package runs.
    #[arg(long, conflicts_with = "iface")]
    pub all: bool,
}

/// `guard detach`: refused while a controller runs on the interface (it would go on writing
/// stages to maps that are gone, and tell the operator at exit that the data plane stays
/// attached); audited before it acts, like every operator action.
pub(super) fn detach(a: DetachArgs) -> Result<()> {
    if !a.all {
        return detach_one(&a.target, a.n2, a.purge);
    }
    let cfg = a.target.load_config()?;
    let base = a.target.pin_base.clone().unwrap_or_else(|| cfg.guard.pin_dir.clone());
    let found = pinned_interfaces(&base);
    if found.is_empty() {
        println!("no interface has pins under {}: nothing to detach", base.display());
        return Ok(());
    }
    let mut failed = Vec::new();
    for (iface, n2) in found {
        let t = Target { iface: Some(iface.clone()), ..a.target.clone() };
        if let Err(e) = detach_one(&t, n2, a.purge) {
            eprintln!("{iface}: {e:#}");
            failed.push(iface);
        }
    }
    if !failed.is_empty() {
        bail!("not detached: {} (see above)", failed.join(", "));
    }
    Ok(())
}

/// The interfaces with a pin directory under `base`: N3's `<base>/<iface>` and N2's
/// `<base>/n2/<iface>` (false, true). Files beside them (a hand-over link, `<iface>-next-link`)
/// are not interfaces.
fn pinned_interfaces(base: &Path) -> Vec<(String, bool)> {
    let dirs = |p: &Path| -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(p) else { return Vec::new() };
        let mut v: Vec<String> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::config::valid_ifname(n))
            .collect();
        v.sort();
        v
    };
    let mut out: Vec<(String, bool)> = dirs(base).into_iter().filter(|n| n != "n2").map(|n| (n, false)).collect();
    out.extend(dirs(&base.join("n2")).into_iter().map(|n| (n, true)));
    out
}

fn detach_one(target: &Target, n2: bool, purge: bool) -> Result<()> {
    let a = DetachArgs { target: target.clone(), purge, n2, all: false };
    let cfg = a.target.load_config()?;
    let iface = if a.n2 { a.target.n2_iface(&cfg)? } else { a.target.iface(&cfg)? };
    let pins = if a.n2 {
        crate::n2::pin_dir(&a.target.pin_base.clone().unwrap_or_else(|| cfg.guard.pin_dir.clone()), &iface)
    } else {
        a.target.pins(&cfg)?
    };
    let _lock = crate::runlock::acquire(&[
        crate::runlock::Resource::Interface(&iface),
        crate::runlock::Resource::Pins(pins.path()),
    ])
    .context("refusing to detach while a controller runs (stop it first: it would keep staging into removed maps)")?;
    // What can refuse the detach is checked before the audit record, which then says only what
    // is done (and a failure after it is recorded as one: `AuditLog::then`).
    let into = match cfg.attach.into.as_deref() {
        Some(i) if !a.n2 => {
            Some(crate::n3::chain::IntoSlot::parse(i).map_err(anyhow::Error::msg).context("[attach] into")?)
        }
        _ => None,
    };
    if !a.n2 && into.is_none() && pins.path().join(crate::n3::chain::PROG_PIN).exists() {
        anyhow::bail!(
            "the guard for {iface} sits in another root's program array ({} exists) but the config names none: \
             give the config with its [attach] into (--config), so only the guard's slot is emptied",
            pins.path().join(crate::n3::chain::PROG_PIN).display()
        );
    }
    let audit = crate::audit::AuditLog::open(&cfg.guard.audit_log)
        .with_context(|| format!("opening the audit log {}", cfg.guard.audit_log.display()))?;
    audit
        .write(&crate::audit::AuditRecord {
            ts: crate::audit::rfc3339(std::time::SystemTime::now()),
            actor: crate::audit::Actor::Operator,
            action: if a.purge { "detach_purge" } else { "detach" }.into(),
            target: format!("iface:{iface}"),
            reason: "operator".into(),
            evidence: serde_json::Value::Null,
            detail: serde_json::json!({
                "operator": super::device::operator(), "pins": pins.path().display().to_string(),
                "program": if a.n2 { "guard_n2" } else { "guard_n3" },
            }),
        })
        .context("writing the audit record (nothing was detached)")?;
    let action = if a.purge { "detach_purge" } else { "detach" };
    audit.then(action, &format!("iface:{iface}"), || act(&a, &iface, &pins, into.as_ref()))
}

/// The detach itself, once audited.
fn act(
    a: &DetachArgs,
    iface: &str,
    pins: &crate::bpf::pins::PinDir,
    into: Option<&crate::n3::chain::IntoSlot>,
) -> Result<()> {
    let had = if a.n2 {
        crate::n2::detach(pins, a.purge).context("detaching guard_n2")?
    } else {
        let d = crate::n3::load::detach_chained(pins, a.purge, into).context("detaching")?;
        if let (Some(i), true) = (into, d.slot) {
            println!(
                "{iface}: guard_n3 left slot {} of {}; the root program goes on without it",
                i.slot,
                i.array.display()
            );
        }
        if let Some((id, link)) = &d.handed_over {
            println!(
                "{iface}: the interface now runs the next program (id {id}) through the link pinned at {} \
                 (the next `guard run` takes it back; remove that pin to detach the next program)",
                link.display()
            );
        }
        d.link || d.slot
    };
    match (had, a.purge) {
        (true, true) => println!("detached from {iface} and purged {}", pins.path().display()),
        (true, false) => println!("detached from {iface} (pinned maps kept in {})", pins.path().display()),
        (false, true) => println!("no pinned link for {iface}; purged {}", pins.path().display()),
        (false, false) => println!("no pinned link for {iface} in {}: nothing to detach", pins.path().display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_interface_is_found_and_nothing_else() {
        let base = tempfile::tempdir().expect("temp dir");
        let b = base.path();
        for d in ["ens1f0", "ens1f1", "n2/ens2f0", "not an interface"] {
            std::fs::create_dir_all(b.join(d)).expect("dir");
        }
        // A hand-over link beside the interfaces' directories is the next program's: no interface.
        std::fs::write(b.join("ens1f0-next-link"), "").expect("file");
        assert_eq!(
            pinned_interfaces(b),
            vec![("ens1f0".to_owned(), false), ("ens1f1".to_owned(), false), ("ens2f0".to_owned(), true)]
        );
        assert!(pinned_interfaces(&b.join("missing")).is_empty());
    }
}
