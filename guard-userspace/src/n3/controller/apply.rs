//! Applying the engine's decisions to the maps (operator pins always win), and the tables and
//! records the configuration fills.

use super::*;

/// Apply decisions to the maps; audit, log and count the ones that change something. A decision
/// that fails to apply is logged and not audited (it did not happen); the others still apply.
pub(super) fn apply_all(
    c: &mut Ctl,
    decisions: &[Decision],
    now: u64,
    host_cap: &mut HostCap,
    audit: &AuditLog,
    metrics: &Exported,
) {
    for d in decisions {
        match apply(c, d, now, host_cap) {
            Ok(Applied::Yes) => {}
            // An operator pin or release won: nothing changed, so nothing is audited as done.
            Ok(Applied::OperatorWins) => continue,
            Err(e) => {
                error!(
                    error = format!("{e:#}"),
                    decision = d.action(),
                    target = d.target(),
                    "applying a decision failed"
                );
                continue;
            }
        }
        if !d.is_refresh() {
            info!(action = d.action(), target = d.target(), "{}", d.summary());
            if let Err(e) = audit.record(SystemTime::now(), d) {
                warn!(error = %e, "audit write failed");
            }
            // A step-down (a stage set lower after its quiet period) and an exempt group's mark
            // are set through `SetDeviceStage` too, but raise nothing: they count as releases.
            use crate::n3::engine::decision::Reason;
            let eased = matches!(d.reason(), Reason::Quiet | Reason::ExemptGroup);
            match d {
                Decision::SetDeviceStage { .. } | Decision::SetCellCap { .. } | Decision::SetHostCap { .. }
                    if !eased =>
                {
                    metrics.n3.escalations.get_or_create(&reason_label(d)).inc();
                }
                Decision::SetDeviceStage { .. }
                | Decision::ReleaseDevice { .. }
                | Decision::ReleaseCell { .. }
                | Decision::ReleaseHost { .. } => {
                    metrics.n3.releases.get_or_create(&reason_label(d)).inc();
                }
                _ => {}
            }
        }
    }
}

pub(super) fn ue_of_key(k: &abi::DeviceKey) -> abi::L3Addr {
    match k.kind {
        abi::DEVICE_KIND_UE_V4 => abi::L3Addr { family: abi::FAMILY_IPV4, addr: k.id },
        abi::DEVICE_KIND_UE_V6 => abi::L3Addr { family: abi::FAMILY_IPV6, addr: k.id },
        _ => abi::L3Addr::NONE,
    }
}

pub(super) fn reason_label(d: &Decision) -> crate::metrics::ReasonLabel {
    crate::metrics::ReasonLabel { reason: d.reason().name().to_owned() }
}

/// Whether a decision changed the maps.
pub(super) enum Applied {
    Yes,
    /// The device carries an operator's pin or release, which always wins.
    OperatorWins,
}

/// Apply one decision to the maps. Operator pins always win.
pub(super) fn apply(c: &mut Ctl, d: &Decision, now: u64, host_cap: &mut HostCap) -> Result<Applied> {
    match d {
        Decision::SetDeviceStage { key, refresh, .. } => {
            let existing = c.maps.stage(key)?;
            if existing.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0) {
                return Ok(Applied::OperatorWins);
            }
            if let Some((k, mut entry)) = d.stage_entry(now) {
                // A refresh keeps the rate limiter's state, so re-issuing a stage does not hand
                // the device a fresh burst.
                if let (true, Some(old)) = (*refresh, existing) {
                    if old.stage == entry.stage {
                        entry.tat = old.tat;
                    }
                }
                c.maps.set_stage(&k, &entry)?;
                c.stage_entries_added += i64::from(existing.is_none());
            }
        }
        Decision::ReleaseDevice { key, .. } => {
            if c.maps.stage(key)?.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0) {
                return Ok(Applied::OperatorWins);
            }
            c.stage_entries_added -= i64::from(c.maps.clear_stage(key)?);
        }
        Decision::SetCellCap { .. } => {
            if let Some((cell, entry)) = d.cell_entry(now) {
                // An operator's gNB pin (a fleet pin, `crate::n3::manual`) wins like a device pin.
                if c.maps.cell_stage(&cell)?.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0 && e.expires_ns > now) {
                    return Ok(Applied::OperatorWins);
                }
                c.maps.set_cell_stage(&cell, &entry)?;
            }
        }
        Decision::ReleaseCell { cell, .. } => {
            if c.maps.cell_stage(cell)?.is_some_and(|e| e.flags & STAGE_FLAG_MANUAL != 0 && e.expires_ns > now) {
                return Ok(Applied::OperatorWins);
            }
            c.maps.clear_cell_stage(cell)?;
        }
        Decision::SetHostCap { limit, bytes, ttl_ns, .. } => {
            *host_cap = Some((*limit, *bytes, now.saturating_add(*ttl_ns)));
            write_dataplane(c, *host_cap)?;
        }
        Decision::ReleaseHost { .. } => {
            *host_cap = None;
            write_dataplane(c, None)?;
        }
        Decision::FlagCohort { .. } | Decision::Classified { .. } => {}
    }
    Ok(Applied::Yes)
}

/// The UE address a TEID-keyed device is bound to, for group matching (`ue_prefixes`): its IPv4
/// binding, else its IPv6 prefix (the rest zero), else none.
pub(super) fn ue_of_binding(d: &abi::DeviceState) -> abi::L3Addr {
    if d.bind_flags & abi::BIND_V4 != 0 {
        abi::L3Addr::v4(d.bound_v4.to_ne_bytes())
    } else if d.bind_flags & abi::BIND_V6 != 0 {
        abi::L3Addr::v6((u128::from(d.bound_v6) << 64).to_be_bytes())
    } else {
        abi::L3Addr::NONE
    }
}

/// The tables the configuration fills besides the config record: the host's N3 addresses
/// (`N3_LOCAL`: the F-TEID's local index) and the framed routes (`N3_FRAMED`).
pub fn sync_tables(maps: &mut N3Maps, cfg: &Config) -> Result<()> {
    maps.sync_local_addrs(&cfg.local_addrs())?;
    maps.sync_framed_routes(&cfg.framed_routes())?;
    Ok(())
}

/// An engaged host cap: host-wide packet and byte limits, and its expiry.
pub(super) type HostCap = Option<(abi::Limit, abi::ByteLimit, u64)>;

/// Write the data-plane config record, with the host cap (host-wide limits, divided per CPU:
/// each CPU runs its own GCRA states).
pub(super) fn write_dataplane(c: &mut Ctl, host_cap: HostCap) -> Result<()> {
    let mut dp: GuardConfig = c.cfg.dataplane(c.ncpus);
    if let Some((limit, bytes, expires)) = host_cap {
        let n = c.ncpus.max(1) as u64;
        dp.host_cap = abi::Limit::per_second(
            crate::config::cpu_share(limit.rate_per_sec(), c.ncpus),
            crate::config::cpu_share(limit.burst(), c.ncpus),
        );
        if !bytes.is_unlimited() {
            dp.host_cap_bytes = abi::ByteLimit::bits_per_second(
                (bytes.bits_per_sec() / n).max(8),
                crate::config::cpu_share(bytes.burst_bytes(), c.ncpus),
            );
        }
        dp.host_cap_expires_ns = expires;
    }
    c.maps.write_config(&dp)?;
    Ok(())
}

/// Remove the device stage entries that expired (the data plane already ignores them), as found
/// in `read` (N3_STAGES as the tick read it before the engine decided); the number of device
/// stage entries left.
///
/// Each expired entry of `read` is looked up again before it is removed: the tick's decisions
/// (a refresh) or an operator may have written it since, and only an entry still expired goes,
/// as when the map was read again here. The count is `read`'s, less the expired entries gone
/// now (removed here or by an operator), plus the entries this tick's decisions added, less
/// those they released (`Ctl::stage_entries_added`); an operator's other writes during the tick
/// count from the next tick's read.
pub(super) fn prune_expired(c: &mut Ctl, now: u64, read: &[(abi::DeviceKey, abi::StageEntry)]) -> usize {
    let mut left = read.len() as i64 + c.stage_entries_added;
    for (k, _) in read.iter().filter(|(_, e)| e.expires_ns <= now) {
        let gone = match c.maps.stage(k) {
            Ok(None) => true,
            Ok(Some(e)) if e.expires_ns <= now => c.maps.clear_stage(k).is_ok(),
            _ => false,
        };
        left -= i64::from(gone);
    }
    let left = usize::try_from(left).unwrap_or(0);
    for (k, e) in c.maps.cell_stages() {
        if e.expires_ns <= now {
            let _ = c.maps.clear_cell_stage(&k);
        }
    }
    left
}
