//! Fleet pins written again when their entries were lost on this host (`Applier::restore`).

use std::time::SystemTime;

use guard_common::abi::{DeviceKey, STAGE_FLAG_MANUAL};
use tracing::warn;

use super::{Applier, Written};

impl Applier {
    /// Write again the pins whose entries are no longer as this member wrote them (a fleet
    /// entry of the same `set_ns`). Nothing local removes a live fleet entry (`guard device`
    /// and `guard gnb` refuse to), but the controller reads an entry and writes its own a few
    /// microseconds later, and a pin written in between is overwritten (`cli/settle.rs` says
    /// the same of the CLI's pins). Without this the pin stayed lost on this host, since a
    /// member writes only what changed in etcd.
    pub fn restore(&mut self, now_wall: SystemTime) {
        let lost: Vec<String> =
            self.held.iter().filter(|(_, h)| !self.in_place(&h.written)).map(|(k, _)| k.clone()).collect();
        for k in lost {
            let Some(h) = self.held.remove(&k) else { continue };
            warn!(
                pin = h.target.describe(),
                author = h.value.author,
                "fleet pin's entries were overwritten here; writing it again"
            );
            self.upsert(h.target, h.value, now_wall);
        }
    }

    /// Whether every entry of `w` is still an operator's: this member's, or one an operator
    /// wrote over it on this host (`guard device release --override-fleet` while etcd could not
    /// be reached), which wins as operator entries do. Only an entry gone, or the controller's,
    /// is written again.
    fn in_place(&self, w: &Written) -> bool {
        let dev = |k: &DeviceKey| matches!(self.maps.stage(k), Ok(Some(e)) if e.flags & STAGE_FLAG_MANUAL != 0);
        match w {
            Written::Devices(d) => d.iter().all(|(k, _)| dev(k)),
            Written::Teids(d) => d.iter().all(|(k, ..)| dev(k)),
            Written::Gnb(k, _) => {
                matches!(self.maps.cell_stage(k), Ok(Some(e)) if e.flags & STAGE_FLAG_MANUAL != 0)
            }
            Written::N2Backoff(_) | Written::NotApplied(_) => true,
        }
    }
}
