//! The first packet of a new device: every run a never-seen TEID, admitted and inserted.

use super::*;

/// Each run a different, never-seen TEID (BPF_PROG_TEST_RUN `repeat` 1 per frame), with the
/// new-device budget out of reach so every one is inserted; the references cycle over the same
/// frames (the floor's lookups miss).
/// The table, and the medians (baseline, floor, guard) for the goals.
pub(super) fn new_devices(
    p: &mut Progs,
    maps: &mut N3Maps,
    within: &GuardConfig,
    rounds: usize,
    n: u32,
) -> Result<(Table, [f64; 3])> {
    let mut cfg = *within;
    cfg.new_device = Limit::per_second(1_000_000_000_000, 1_000_000_000);
    maps.write_config(&cfg)?;
    let mut ns: [Vec<f64>; 3] = Default::default();
    let before = verdict_counts(maps)?;
    for r in 0..rounds {
        let base = 0x0700_0000 + r as u32 * n;
        let frames: Vec<Vec<u8>> = (0..n).map(|i| gpdu(base + i).build()).collect();
        ns[0].push(progs::time_cycle(p.refs.prog(progs::BASELINE)?, &frames)?);
        ns[1].push(progs::time_cycle(p.refs.prog(progs::FLOOR)?, &frames)?);
        ns[2].push(progs::time_cycle(p.get("guard", Target::N3)?, &frames)?);
    }
    let after = verdict_counts(maps)?;
    let inserted = after[Verdict::PassGpdu as usize].saturating_sub(before[Verdict::PassGpdu as usize]);
    let m = ns.each_ref().map(|v| median(v));
    let mut t = Table::new(
        "First packet of a new device (each run a different never-seen TEID, inserted)",
        &["case", "baseline ns", "floor ns", "guard ns", "guard / baseline", "guard / floor", "guard − floor ns"],
    );
    t.row(vec![
        format!("G-PDU, new TEID, admitted ({} per round, {rounds} rounds)", n),
        num(m[0], 1),
        num(m[1], 1),
        num(m[2], 1),
        format!("{}x", num(ratio(m[2], m[0]), 2)),
        format!("{}x", num(ratio(m[2], m[1]), 2)),
        num(m[2] - m[1], 1),
    ]);
    t.note(format!("`repeat` 1 per frame, so every figure includes the kernel's per-call timer overhead (the baseline carries it too). The floor's lookup misses and it inserts nothing; the guard inserted {inserted} devices (verdict pass_gpdu), each into N3_DEVICES (4096 records: full after its first 4096 inserts, so nearly every insert evicts) as an all-zero record."));
    Ok((t, m))
}
