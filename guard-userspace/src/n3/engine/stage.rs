//! The stage the engine believes the map holds for a device, and the slot a track keeps it in:
//! boxed, and only while the device has one.

use guard_common::abi::{ByteLimit, Limit, STAGE_OBSERVE};

use super::decision::Reason;

/// The device's stage as the engine believes the map holds it.
#[derive(Clone, Copy, Debug)]
pub(super) struct StageState {
    pub stage: u32,
    /// Set by an operator: the engine never changes it.
    pub manual: bool,
    /// Marked exempt in the map.
    pub exempt: bool,
    pub reason: Reason,
    pub limit: Limit,
    /// The stage's byte rate beside `limit` (unlimited: packets only).
    pub bytes: ByteLimit,
    /// Staged for a volume flood ([`Reason::VolumeFlood`]): kept through the escalations (whose
    /// reason is `NotContained`), so strict holds the device to a fraction of its byte profile.
    pub volume: bool,
    /// Packets per second the stage lets through (for aggregate demand).
    pub allowance_pps: f64,
    pub since_ns: u64,
    pub expires_ns: u64,
    /// Active windows in a row in which the stage did not contain the device.
    pub uncontained: u32,
    /// Last window that was not quiet.
    pub last_noisy_ns: u64,
}

impl Default for StageState {
    fn default() -> Self {
        StageState::OBSERVE
    }
}

/// The stage of a device that has none: what an empty [`Stage`] reads as.
static OBSERVE: StageState = StageState::OBSERVE;

/// A device's [`StageState`], held apart (boxed) only while it differs from observe: most devices
/// are never staged, and inline the stage was 80 of the record's bytes at every one of them (at
/// 1M devices, 76 MiB). An empty slot reads as [`StageState::OBSERVE`]; writing through it
/// (`t.stage.x = ...`, only ever done when staging) gives the device its own; assigning
/// `Stage::default()` (a release) frees it. A box rather than a side table keyed by the record's
/// position: positions move on every removal (`tracks.rs`), a box moves with its record.
#[derive(Clone, Default)]
pub(super) struct Stage(Option<Box<StageState>>);

/// As the stage it reads as (what the track printed before the slot).
impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::ops::Deref for Stage {
    type Target = StageState;
    fn deref(&self) -> &StageState {
        self.0.as_deref().unwrap_or(&OBSERVE)
    }
}

impl std::ops::DerefMut for Stage {
    fn deref_mut(&mut self) -> &mut StageState {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<StageState> for Stage {
    fn from(s: StageState) -> Self {
        Stage(Some(Box::new(s)))
    }
}

impl StageState {
    /// A device the engine holds at observe (no stage, no mark).
    pub const OBSERVE: StageState = StageState {
        stage: STAGE_OBSERVE,
        manual: false,
        exempt: false,
        reason: Reason::Flood,
        limit: Limit::UNLIMITED,
        bytes: ByteLimit::UNLIMITED,
        volume: false,
        allowance_pps: f64::INFINITY,
        since_ns: 0,
        expires_ns: 0,
        uncontained: 0,
        last_noisy_ns: 0,
    };

    /// Under a stage the engine manages (not manual, not merely exempt).
    pub fn engine_staged(&self) -> bool {
        !self.manual && self.stage > STAGE_OBSERVE
    }
}

#[cfg(test)]
mod tests {
    use guard_common::abi::STAGE_SHAPE;

    use super::*;

    /// An empty slot reads as observe and holds no allocation; writing through it gives the
    /// device its own stage; a release (`Stage::default()`) frees it.
    #[test]
    fn the_slot_is_empty_until_written_and_reads_as_observe() {
        let mut s = Stage::default();
        assert!(s.0.is_none());
        assert_eq!((s.stage, s.manual, s.exempt, s.allowance_pps), (STAGE_OBSERVE, false, false, f64::INFINITY));
        assert_eq!(format!("{s:?}"), format!("{:?}", StageState::default()));
        s.stage = STAGE_SHAPE;
        assert!(s.0.is_some());
        assert_eq!(s.stage, STAGE_SHAPE);
        s = Stage::default();
        assert!(s.0.is_none());
    }
}
