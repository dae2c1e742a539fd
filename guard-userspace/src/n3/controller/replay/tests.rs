//! The controller's pruning of expired stage entries on the real maps (`guard_n3_replay` loaded,
//! not attached; root).

use super::*;
use guard_common::abi::{DeviceKey, StageEntry, STAGE_SHAPE};

const SEC: u64 = 1_000_000_000;

/// The tick reads N3_STAGES once, before the engine decides, and prunes from that read
/// (`apply::prune_expired`): an entry expired in the read goes only if it is still expired when
/// pruned; one the tick refreshed in between stays, and so do live ones. The count it returns is
/// what the map holds after, the tick's own additions (`Ctl::stage_entries_added`) included.
#[test]
#[ignore = "needs root: cargo xtask test runs it"]
fn pruning_removes_only_what_is_still_expired_and_counts_what_is_left() {
    labkit::netns::assert_root(
        "n3::controller::replay::tests::pruning_removes_only_what_is_still_expired_and_counts_what_is_left",
    );
    let scope = labkit::bpf::PinScope::new("prune");
    let pins = crate::bpf::pins::PinDir::new(scope.base(), "t");
    let cfg = Config::default();
    let mut loaded = load::load_replay(&pins, 1024, &cfg.dataplane(1)).expect("loading guard_n3_replay");
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut rc = ReplayController::new(&mut loaded, cfg, &dir.path().join("audit.jsonl"), 1).expect("the controller");
    let c = &mut rc.c;
    let now = 1_000 * SEC;
    let entry = |expires_ns| StageEntry { stage: STAGE_SHAPE, expires_ns, ..StageEntry::default() };
    let [expired, refreshed, live, gone, added] = [1u32, 2, 3, 4, 5].map(DeviceKey::teid);
    for (k, exp) in [(expired, now - SEC), (refreshed, now - 1), (live, now + 60 * SEC), (gone, now)] {
        c.maps.set_stage(&k, &entry(exp)).expect("writing a stage");
    }
    let read = c.maps.stages();
    assert_eq!(read.len(), 4);
    // Between the read and the pruning: the tick refreshes one expired entry and adds one; an
    // operator removes another.
    c.maps.set_stage(&refreshed, &entry(now + 60 * SEC)).expect("refreshing");
    c.maps.set_stage(&added, &entry(now + 60 * SEC)).expect("adding");
    c.stage_entries_added = 1;
    assert!(c.maps.clear_stage(&gone).expect("removing"));
    let left = super::super::apply::prune_expired(c, now, &read);
    let mut after: Vec<u32> =
        c.maps.stages().iter().map(|(k, _)| u32::from_be_bytes([k.id[0], k.id[1], k.id[2], k.id[3]])).collect();
    after.sort_unstable();
    assert_eq!(after, vec![2, 3, 5], "the refreshed, live and added entries stay; the expired one goes");
    assert_eq!(left, after.len(), "the count is what the map holds");
}
