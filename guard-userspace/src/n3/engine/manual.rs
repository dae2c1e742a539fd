//! Operator pins in the engine: stages found in the maps at start, and manual entries the engine
//! keeps off (they always win, `STAGE_FLAG_MANUAL`).

use super::*;

impl Engine {
    /// Take over the stages found in the maps after a restart. Expired entries are ignored.
    /// Restored engine stages need a full quiet period before they are released.
    pub fn restore(&mut self, stages: &[CurrentStage], now_ns: u64) {
        for s in stages.iter().filter(|s| s.expires_ns > now_ns) {
            let (at, t) = self.tracks.get_or_insert_with(s.key, Track::default);
            let stage = s.stage.min(STAGE_MAX);
            t.stage = StageState {
                stage,
                manual: s.flags & STAGE_FLAG_MANUAL != 0,
                exempt: s.flags & STAGE_FLAG_EXEMPT != 0,
                reason: Reason::from_code(s.reason).unwrap_or(Reason::Restored),
                limit: s.limit,
                // As the map holds it: a restored volume-flood stage has no learned byte profile
                // to re-derive its rate from until the device is warm again (`ladder::stage_bytes`).
                bytes: s.bytes,
                // A chatty or cohort stage restored with a byte rate was set for its volume too
                // (`ladder::set`): keep deriving it, or a refresh would lift the volume cut.
                volume: match Reason::from_code(s.reason) {
                    Some(Reason::VolumeFlood) => true,
                    Some(Reason::Chatty | Reason::CohortDeviation) => !s.bytes.is_unlimited(),
                    _ => false,
                },
                allowance_pps: allowance(stage, &s.limit),
                since_ns: now_ns,
                expires_ns: s.expires_ns,
                uncontained: 0,
                last_noisy_ns: now_ns,
            }
            .into();
            t.notable = true;
            self.notable.insert(s.key, at);
        }
    }

    /// An operator pinned `key` (the controller has written the entry with
    /// [`STAGE_FLAG_MANUAL`]). The engine leaves it alone until `expires_ns` or an unpin.
    pub fn pin_manual(&mut self, key: DeviceKey, stage: u32, limit: Limit, expires_ns: u64, now_ns: u64) {
        let (at, t) = self.tracks.get_or_insert_with(key, Track::default);
        let stage = stage.min(STAGE_MAX);
        t.stage = StageState {
            stage,
            manual: true,
            reason: Reason::Operator,
            limit,
            allowance_pps: allowance(stage, &limit),
            since_ns: now_ns,
            expires_ns,
            last_noisy_ns: now_ns,
            ..StageState::default()
        }
        .into();
        t.notable = true;
        self.notable.insert(key, at);
    }

    /// An operator removed a pin (the controller has deleted the entry): the device is back at
    /// observe under engine management, with a fresh over-profile count.
    pub fn unpin_manual(&mut self, key: &DeviceKey) {
        if let Some(t) = self.tracks.get_mut(key) {
            t.stage = Stage::default();
            t.reset_flood();
            if !notable(t, &self.cfg) {
                t.notable = false;
                self.notable.remove(key);
            }
        }
    }

    /// Follow the operator's pins and releases as the stage map shows them (`guard device
    /// pin|release|unpin` write the map directly, whether or not a controller runs): a manual
    /// entry the engine does not know, or knows with another stage or expiry, is taken over
    /// ([`Engine::pin_manual`]); a device the engine holds as manual whose entry is gone (unpinned,
    /// or expired and pruned) goes back to engine management ([`Engine::unpin_manual`]). Without
    /// this the engine would re-issue a released device's stage at its next refresh.
    pub fn sync_manual(&mut self, manual: &[CurrentStage], now_ns: u64) {
        let mut seen: HashSet<DeviceKey, Hasher> = HashSet::default();
        for m in manual.iter().filter(|m| m.flags & STAGE_FLAG_MANUAL != 0 && m.expires_ns > now_ns) {
            seen.insert(m.key);
            let known = self.tracks.get(&m.key).is_some_and(|t| {
                t.stage.manual && t.stage.stage == m.stage.min(STAGE_MAX) && t.stage.expires_ns == m.expires_ns
            });
            if !known {
                self.pin_manual(m.key, m.stage, m.limit, m.expires_ns, now_ns);
            }
        }
        let gone: Vec<DeviceKey> = self
            .notable
            .iter()
            .filter(|(k, &at)| !seen.contains(*k) && self.tracks.get_at(k, at).is_some_and(|(_, t)| t.stage.manual))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.unpin_manual(&k);
        }
    }
}
