//! SIGHUP: reload the configuration file; an invalid one is refused and audited, the running
//! one stays.

use super::*;

pub(super) fn reload(
    c: &mut Ctl,
    engine: &mut Engine,
    audit: &AuditLog,
    m: &Exported,
    host_cap: super::apply::HostCap,
) {
    // Log rotation (logrotate moves the file, then sends SIGHUP): reopen the audit trail first,
    // so the reload's own record lands in the new file. The N2 controller's log follows at its
    // next line.
    crate::audit::request_reopen();
    match audit.reopen_if_requested() {
        Ok(true) => info!(path = %audit.path().display(), "SIGHUP: audit log reopened"),
        Ok(false) => {}
        Err(e) => error!(error = %e, "SIGHUP: reopening the audit log failed; still writing to the file open before"),
    }
    let Some(path) = c.config_path.clone() else {
        warn!("SIGHUP: no --config file to reload; nothing changed");
        return;
    };
    match Config::load(&path) {
        Ok(new) => {
            let (new, changes) = c.cfg.reload_from(new);
            let old = std::mem::replace(&mut c.cfg, new);
            let listed = sync_tables(&mut c.maps, &c.cfg);
            if let Err(e) = listed.and_then(|()| write_dataplane(c, host_cap)) {
                error!(
                    error = format!("{e:#}"),
                    "SIGHUP: writing the new data-plane config failed; keeping the old one"
                );
                c.cfg = old;
                // The tables too: `sync_tables` may have written part of the new file's before
                // it failed.
                if let Err(e) = sync_tables(&mut c.maps, &c.cfg) {
                    error!(
                        error = format!("{e:#}"),
                        "SIGHUP: restoring the N3 address and framed-route tables failed: they may hold part of the new file's"
                    );
                }
                let _ = write_dataplane(c, host_cap);
                let detail = serde_json::json!({ "outcome": "failed", "error": format!("{e:#}") });
                reloaded(m, audit, &path, "failed", config_file_evidence(&path), detail);
                return;
            }
            let maps = &c.maps;
            let key_mode_ue = c.cfg.guard.key_mode == crate::config::KeyMode::UeAddr;
            engine.reconfigure(&c.cfg, |f| read_devices(maps, key_mode_ue, f));
            // What the file changed that did not take: listed apart in the log and the audit,
            // so that "changed" holds only what is in force.
            let mut failed = Vec::new();
            let mut changes = changes;
            if let Some(chain) = c.chain.as_mut().filter(|_| old.attach.next != c.cfg.attach.next) {
                let r = match &c.cfg.attach.next {
                    Some(p) => crate::n3::chain::configure(&chain.pins, p).map(|_| ()),
                    None => crate::n3::chain::clear_next(&chain.pins),
                };
                match r {
                    Ok(()) => info!(next = ?c.cfg.attach.next, "SIGHUP: next program changed"),
                    Err(e) => {
                        error!(error = %e, "SIGHUP: changing the next program failed");
                        changes.applied.retain(|k| k != "attach.next");
                        failed.push("attach.next".to_owned());
                    }
                }
                chain.next = None;
            }
            if let Some(what) = n2_settings_changed(c.n2_settings.as_ref()) {
                changes.needs_restart.push(what);
            }
            let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
            info!(
                path = %path.display(),
                "SIGHUP: configuration reloaded; changed: {}",
                list(&changes.applied)
            );
            if !changes.needs_restart.is_empty() {
                warn!(
                    "SIGHUP: {} changed in the file but only a restart applies it; the running value stays",
                    list(&changes.needs_restart)
                );
            }
            if !failed.is_empty() {
                error!(
                    "SIGHUP: {} changed in the file but could not be applied; the running value stays",
                    list(&failed)
                );
            }
            let result = if failed.is_empty() { "ok" } else { "partial" };
            let detail = serde_json::json!({
                "outcome": result, "changed": changes.applied, "needs_restart": changes.needs_restart,
                "failed": failed,
            });
            reloaded(m, audit, &path, result, config_file_evidence(&path), detail);
        }
        Err(e) => {
            error!(path = %path.display(), error = %e, "SIGHUP: the new configuration is invalid; the running configuration stays");
            let mut ev = config_file_evidence(&path);
            ev["error"] = serde_json::Value::String(e.to_string());
            reloaded(m, audit, &path, "rejected", ev, serde_json::json!({"outcome": "rejected"}));
        }
    }
}

/// A reload's end, whatever it was: its count in `config_reloads_total{outcome}` and its audit
/// record (`config_reload`, the file as its target).
fn reloaded(
    m: &Exported,
    audit: &AuditLog,
    path: &std::path::Path,
    outcome: &str,
    evidence: serde_json::Value,
    detail: serde_json::Value,
) {
    m.core.config_reloads.get_or_create(&crate::metrics::OutcomeLabel { outcome: outcome.to_owned() }).inc();
    let _ = audit.write(&crate::audit::AuditRecord {
        ts: crate::audit::rfc3339(SystemTime::now()),
        actor: crate::audit::Actor::Operator,
        action: "config_reload".into(),
        target: path.display().to_string(),
        reason: "sighup".into(),
        evidence,
        detail,
    });
}

/// The N2 thread reads its settings file once, at the start: if the file now says something
/// else (or no longer parses), what to report under "needs a restart". `running`: the file (None:
/// built-in defaults) and the settings in force.
fn n2_settings_changed(running: Option<&(Option<PathBuf>, crate::config::n2::N2File)>) -> Option<String> {
    let (path, now) = running?;
    let name = path.as_ref().map_or("the built-in defaults".to_owned(), |p| p.display().to_string());
    match crate::config::n2::N2File::read(path.as_deref()) {
        Ok(f) if f == *now => None,
        Ok(_) => Some(format!("the N2 settings ({name})")),
        Err(e) => {
            warn!(error = format!("{e:#}"), "SIGHUP: the N2 settings file is invalid; the running N2 settings stay");
            Some(format!("the N2 settings ({name}: invalid, {e:#})"))
        }
    }
}

/// Who changed the configuration, as far as the file tells: a signal does not say who sent it,
/// so the audit keeps the file's owner, mode, size and modification time.
pub(super) fn config_file_evidence(path: &std::path::Path) -> serde_json::Value {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(m) => serde_json::json!({
            "file_uid": m.uid(),
            "file_gid": m.gid(),
            "file_mode": format!("{:o}", m.mode() & 0o7777),
            "file_size": m.size(),
            "file_mtime": crate::audit::rfc3339(m.modified().unwrap_or(SystemTime::UNIX_EPOCH)),
        }),
        Err(e) => serde_json::json!({ "file_error": e.to_string() }),
    }
}

/// Every device of the map with the UE address and inner destination it holds, for
/// [`Engine::reconfigure`] (the engine keeps neither for every device), read in batches as a
/// walk does. A failed read is logged; the devices not read keep the membership their TEID gives
/// until their next reading.
fn read_devices(maps: &N3Maps, key_mode_ue: bool, f: &mut dyn FnMut(&abi::DeviceKey, &abi::L3Addr, &abi::L3Addr)) {
    let read = maps.for_each_device(WALK_STEP, |key, d| {
        let ue = if key_mode_ue { ue_of_key(key) } else { ue_of_binding(d) };
        f(key, &ue, &d.inner_dst);
    });
    if let Err(e) = read {
        warn!(error = %e, "SIGHUP: reading the device map for group membership failed");
    }
}
