//! Keeping `N3_STAGED` about as full as the stages are (docs/dataplane.md, "A new device's first
//! packet"): every stage write sets a bit, removals do not clear it, so the controller rebuilds
//! the marks (`N3Maps::rebuild_staged`) once stale bits outnumber live entries. Without it, over a
//! long life of devices staged and released, the marks would fill up and every never-seen
//! device's first packet would pay the `N3_STAGES` lookup again.

use super::*;

/// The least time between two rebuilds: each walks `N3_STAGES` twice.
const REBUILD_GAP_NS: u64 = 60_000_000_000;
/// Stale bits tolerated before a rebuild, beyond one per live entry (~0.4% of the 262,144 bits).
const STALE_SLACK: u32 = 1024;

/// Whether the marks are due a rebuild: more than twice as many bits set as live stage entries,
/// plus a slack, and the last rebuild (`last_ns`, 0 = none) at least a minute ago.
pub(super) fn rebuild_due(bits: u32, live_entries: usize, now: u64, last_ns: u64) -> bool {
    let live = u32::try_from(live_entries).unwrap_or(u32::MAX);
    bits > live.saturating_mul(2).saturating_add(STALE_SLACK)
        && (last_ns == 0 || now.saturating_sub(last_ns) >= REBUILD_GAP_NS)
}

/// At the end of a tick: rebuild the marks if due (`live_entries`: the stage entries the tick
/// left).
pub(super) fn maybe_rebuild(c: &mut Ctl, live_entries: usize, now: u64) {
    let bits = c.maps.staged.count();
    if !rebuild_due(bits, live_entries, now, c.marks_rebuilt_ns) {
        return;
    }
    c.marks_rebuilt_ns = now;
    let r = c.maps.rebuild_staged();
    info!(
        bits_before = r.bits_before,
        cleared = r.cleared,
        bits_after = r.bits_after,
        stages = live_entries,
        "rebuilt the marks of possibly staged devices (N3_STAGED)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_is_due_once_stale_bits_outnumber_live_entries_and_not_more_than_once_a_minute() {
        let min = REBUILD_GAP_NS;
        assert!(!rebuild_due(0, 0, 5 * min, 0), "empty marks");
        assert!(!rebuild_due(2 * 1000 + STALE_SLACK, 1000, 5 * min, 0), "at the bound");
        assert!(rebuild_due(2 * 1000 + STALE_SLACK + 1, 1000, 5 * min, 0), "past it, never rebuilt");
        assert!(rebuild_due(STALE_SLACK + 1, 0, 5 * min, 0), "every stage released");
        assert!(!rebuild_due(50_000, 10, 5 * min, 5 * min - 1), "a rebuild a moment ago");
        assert!(rebuild_due(50_000, 10, 6 * min, 5 * min), "a minute later");
        assert!(!rebuild_due(50_000, 30_000, 6 * min, 0), "bits within twice the live entries");
    }
}
