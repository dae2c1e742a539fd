//! The first packet of a new device: every run a never-seen TEID, admitted and inserted.

use super::*;

/// The floors a first packet is judged against, and what each does (the table's words).
const FLOORS: [(&str, &str); 2] = [
    (
        progs::FLOOR,
        "against `xdp_floor` (the issue's floor: its lookup misses in a small map that stays in cache, and it inserts nothing)",
    ),
    (
        progs::FLOOR_NEW,
        "against `xdp_floor_new` (the least a per-device guard must do on a first packet: the lookup misses, a two-counter record is inserted into an LRU hash as large as N3_DEVICES and as full, so the insert evicts, looked up again, two atomic adds)",
    ),
];

/// Each run a different, never-seen TEID (BPF_PROG_TEST_RUN `repeat` 1 per frame), with the
/// new-device budget out of reach so every one is inserted; the references cycle over the same
/// frames, each round in a rotated order. `N3_DEVICES` and `xdp_floor_new`'s map, both of
/// `capacity` records, are filled first, so every timed insert evicts in both.
/// The table, and the medians (baseline, floor, guard, inserting floor) for the goals.
pub(super) fn new_devices(
    p: &mut Progs,
    maps: &mut N3Maps,
    within: &GuardConfig,
    rounds: usize,
    n: u32,
    capacity: u32,
) -> Result<(Table, [f64; 4])> {
    let mut cfg = *within;
    cfg.new_device = Limit::per_second(1_000_000_000_000, 1_000_000_000);
    maps.write_config(&cfg)?;
    // Twice the capacity: the LRU lists settle as they would on a host that has been full a while.
    let fill: Vec<Vec<u8>> = (0..2 * capacity).map(|i| gpdu(0x0680_0000 + i).build()).collect();
    progs::time_cycle(p.refs.prog(progs::FLOOR_NEW)?, &fill)?;
    progs::time_cycle(p.get("guard", Target::N3)?, &fill)?;
    // Columns: baseline, floor, guard, inserting floor.
    let order = [progs::BASELINE, progs::FLOOR, "guard", progs::FLOOR_NEW];
    let mut ns: [Vec<f64>; 4] = Default::default();
    let before = verdict_counts(maps)?;
    let mut last = (0, 0);
    for r in 0..rounds {
        let base = 0x0700_0000 + r as u32 * n;
        let frames: Vec<Vec<u8>> = (0..n).map(|i| gpdu(base + i).build()).collect();
        last = (base + n - 1, frames.last().map_or(0, |f| f.len() as u64));
        for k in 0..order.len() {
            let i = (r + k) % order.len();
            let prog = if order[i] == "guard" { p.get("guard", Target::N3)? } else { p.refs.prog(order[i])? };
            ns[i].push(progs::time_cycle(prog, &frames)?);
        }
    }
    // The inserting floor must have inserted and counted its last frame once (the one most
    // recently used record, not evicted), or its figure is not a first packet's.
    let rec = p.refs.floor_new_record(last.0)?;
    if rec != Some([1, last.1]) {
        bail!("xdp_floor_new did not insert and count its last frame (TEID {:#x}: {rec:?})", last.0);
    }
    let after = verdict_counts(maps)?;
    let inserted = after[Verdict::PassGpdu as usize].saturating_sub(before[Verdict::PassGpdu as usize]);
    let m = ns.each_ref().map(|v| median(v));
    let mut t = Table::new(
        "First packet of a new device (each run a different never-seen TEID, inserted)",
        &[
            "case",
            "baseline ns",
            "floor ns",
            "guard ns",
            "guard / baseline",
            "guard / floor",
            "guard − floor ns",
            "net of the baseline: (guard − baseline) / (floor − baseline)",
        ],
    );
    for (j, (_, what)) in [1, 3].into_iter().zip(FLOORS) {
        t.row(vec![
            format!("G-PDU, new TEID, admitted ({n} per round, {rounds} rounds), {what}"),
            num(m[0], 1),
            num(m[j], 1),
            num(m[2], 1),
            format!("{}x", num(ratio(m[2], m[0]), 2)),
            format!("{}x", num(ratio(m[2], m[j]), 2)),
            num(m[2] - m[j], 1),
            format!("{}x", num(ratio(m[2] - m[0], m[j] - m[0]), 2)),
        ]);
    }
    t.note(format!("`repeat` 1 per frame, so every figure includes the kernel's per-call timer overhead, which `xdp_baseline` (XDP_PASS alone) measures: it flatters each ratio (it adds the same ns to both sides), and the last column takes it out of both. Each round gives the four programs the same frames, in a rotated order. The guard inserted {inserted} devices (verdict pass_gpdu), each into N3_DEVICES ({capacity} records, filled first with {} other devices, so every insert evicts) as an all-zero record (328 bytes); `xdp_floor_new`'s map ({capacity} records of 16 bytes) was filled the same way. Check: `xdp_floor_new`'s record of the last TEID timed reads 1 packet and its frame's length.", 2 * capacity));
    Ok((t, m))
}
