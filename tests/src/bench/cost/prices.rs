//! The price of one operation (a clock read, a lookup, an atomic add), each measured by its own
//! program, and the guard's measured cost explained as the operations its path performs.

use super::*;

/// Prices of single operations, from the `xdp_op_*` probes (ns per operation).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct OpPrices {
    ktime: f64,
    coarse: f64,
    jiffies: f64,
    hash: f64,
    miss: f64,
    pub(super) lru: f64,
    /// An LRU hit on an 8-byte key: the device map's (schema 10).
    pub(super) lru8: f64,
    percpu: f64,
    atomic: f64,
    /// A BPF-to-BPF call and its return.
    call: f64,
}

pub(super) fn op_prices(p: &mut Progs, frame: &[u8], rounds: usize, repeat: u32) -> Result<(OpPrices, Table)> {
    let names: Vec<&str> = std::iter::once(progs::BASELINE).chain(progs::OPS).collect();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for r in 0..rounds {
        for k in 0..names.len() {
            let i = (r + k) % names.len();
            ns[i].push(time_run(p.refs.prog(names[i])?, frame, repeat)?.kernel_ns);
        }
    }
    let m: Vec<f64> = ns.iter().map(|v| median(v)).collect();
    let adds = p.refs.op_counter()?;
    // Below the kernel's 1 ns resolution a difference can come out slightly negative: that is 0.
    let per = |i: usize| ((m[i] - m[0]) / 8.0).max(0.0);
    let prices = OpPrices {
        ktime: per(1),
        coarse: per(8),
        jiffies: per(9),
        hash: per(2),
        miss: per(3),
        lru: per(4),
        lru8: per(11),
        percpu: per(5),
        atomic: ((m[7] - m[6]) / 8.0).max(0.0),
        call: per(12),
    };
    let mut t = Table::new(
        "Price of one operation (probe programs, each doing it 8 times)",
        &["operation", "probe", "probe ns", "ns per operation"],
    );
    let rows = [
        ("clock read (bpf_ktime_get_ns)", 1, prices.ktime),
        ("coarse clock read (bpf_ktime_get_coarse_ns)", 8, prices.coarse),
        ("jiffies read (bpf_jiffies64, inlined by the verifier)", 9, prices.jiffies),
        ("hash lookup, hit (BPF_MAP_TYPE_HASH)", 2, prices.hash),
        ("hash lookup, miss", 3, prices.miss),
        ("LRU hash lookup, hit (sets the reference bit)", 4, prices.lru),
        ("per-CPU array slot: lookup + 2 plain adds", 5, prices.percpu),
        ("atomic add on a shared map value (lock add)", 7, prices.atomic),
        ("hash lookup, hit, 8-byte key (the device key)", 10, per(10)),
        ("LRU hash lookup, hit, 8-byte key (the device map)", 11, prices.lru8),
        ("BPF-to-BPF call and its return (a subprogram)", 12, prices.call),
        ("bpf_loop iteration (its callback; the helper's call spread over 8)", 13, per(13)),
    ];
    for (what, i, price) in rows {
        t.row(vec![what.into(), names[i].into(), num(m[i], 1), num(price, 2)]);
    }
    t.note(format!(
        "Probe ns − `xdp_baseline` ({} ns), divided by 8. Hash and LRU probes use 20-byte keys, as the guard's gNB keys (and its device keys before schema 10), but for the two 8-byte-key rows (the device maps' keys since schema 10: docs/dataplane.md, \"A compact device key\"). The atomic probe does one hash lookup and 8 atomic adds on one value, so its price is (probe − `xdp_op_hash1` ({} ns)) / 8: adds to one cache line this CPU owns, the uncontended case (CPUs adding to one value pay a cache-line transfer each: why the gNB's counters are per CPU, and a device's packets should land on one CPU; see the multi-core table). Kernel ns are integers per run: prices below ~0.5 ns are at the resolution limit.",
        num(m[0], 1),
        num(m[6], 1)
    ));
    t.note(format!("Check: the atomic probe's counter reads {adds} = {} runs × 8 adds.", adds / 8));
    Ok((prices, t))
}

/// The operations on one path of `guard_n3`, counted from `guard-ebpf/src/n3/`.
pub(super) struct PathOps {
    name: &'static str,
    /// Clock reads: `bpf_jiffies64` (inlined) keying the per-CPU coarse-clock cache (in the packet
    /// scratch `N3_PKT`; the helper call happens once per tick, not per packet).
    jiffies: f64,
    /// LRU hits: on the device map, priced at an 8-byte key's hit; with `wide_keys`, at a 20-byte
    /// key's (`guard_n2`'s peer, cell and device keys are 20, 16 and 24 octets).
    pub(super) lru: f64,
    wide_keys: bool,
    hash: f64,
    miss: f64,
    percpu: f64,
    atomic: f64,
    /// BPF-to-BPF calls (subprograms).
    calls: f64,
}

pub(super) const PATH_STAGE0: PathOps = PathOps {
    name: "known device, stage 0",
    jiffies: 1.0,
    // N3_DEVICES (an 8-byte key). The gNB is not looked up: the device caches its slot in
    // N3_CELL_HOT.
    lru: 1.0,
    wide_keys: false,
    hash: 0.0,
    // None: "no stage" and "no cell cap" are cached in the device's record and in this CPU's
    // counts of the gNB's slot (the N3_STAGES / N3_CELL_STAGES misses of the first packet after
    // a stage write are not counted).
    miss: 0.0,
    // N3_CONFIG, N3_PKT (the packet and the clock cache), N3_HINTS, N3_CELL_HOT (the slot's
    // owner), N3_CELL_PCPU (this CPU's gNB counters: packets, bytes, G-PDUs, plain adds),
    // N3_VERDICTS, N3_CHAIN (passed packets); N3_PCPU_TAT only under a host cap.
    percpu: 7.0,
    // None: the device's packets and bytes are plain adds by the CPU that inserted its record
    // (`DeviceState::owner`, schema 12; part 1 runs pinned to one CPU, which inserted it), and
    // the gNB's counters are per CPU.
    atomic: 0.0,
    // `policy`: `guard_n3` calls it as a BPF subprogram (its own stack frame, for the verifier's
    // budget: ARCHITECTURE.md), and everything on this path is inlined into it.
    calls: 1.0,
};

pub(super) const PATH_QUARANTINE: PathOps = PathOps {
    name: "quarantined device",
    jiffies: 1.0,
    lru: 1.0,
    wide_keys: false,
    // None: the quarantine (its expiry) is cached in the device's record.
    hash: 0.0,
    miss: 0.0,
    // N3_CONFIG, N3_PKT, N3_HINTS, N3_CELL_HOT, N3_CELL_PCPU (with the gNB's drop count),
    // N3_VERDICTS.
    percpu: 6.0,
    // None: as stage 0, the device's drop counter too.
    atomic: 0.0,
    calls: 1.0,
};

pub(super) const PATH_FLOOR: PathOps = PathOps {
    name: "floor program",
    jiffies: 0.0,
    lru: 0.0,
    wide_keys: false,
    hash: 1.0,
    miss: 0.0,
    percpu: 0.0,
    atomic: 2.0,
    calls: 0.0,
};

/// `guard_n2` on the bench's frame (`n2_initial_ue_frame`: one DATA chunk, an InitialUEMessage of
/// five IEs with a SUCI, from a known peer that is not staged; every protection but the
/// allow-list on), counted from `guard-ebpf/src/n2/`.
pub(super) const PATH_N2: PathOps = PathOps {
    name: "guard_n2: SCTP DATA with an InitialUEMessage",
    // The policy's clock and the UE accounting's (the per-CPU cache `N2_CLOCK`).
    jiffies: 2.0,
    // N2_PEERS (20-octet key), N2_CELLS (16), N2_DEVICES (24; the peer + RAN-UE-NGAP-ID, no
    // 5G-S-TMSI in a SUCI registration).
    lru: 3.0,
    wide_keys: true,
    hash: 0.0,
    // N2_ALIAS (is the source another path of a multi-homed peer?) and N2_PEER_STAGES (is the peer
    // staged?), both absent for this peer.
    miss: 2.0,
    // N2_CONFIG, N2_PKT (the parse, then the UE walk and its callback: 3), N2_CLOCK (2), N2_UE,
    // N2_VERDICTS.
    percpu: 8.0,
    // The peer's packets, bytes, DATA chunks, InitialUEMessages and messages walked; the cell's
    // attempts, registrations, SUCI-only attempts and their cause; the device's attempts and
    // registrations (N2 counters are shared atomics: a peer's packets reach any CPU).
    atomic: 11.0,
    // parse_frame, chunk_step (one chunk), policy (the UE walk inline in it), and for the one
    // message the bpf_loop callback ue_loop_step, parse_ue (its IEs inline) and account_ue.
    calls: 6.0,
};

pub(super) fn explain(p: &OpPrices, path: &PathOps, measured: f64, parse: f64) -> Vec<String> {
    let cost = |n: f64, price: f64| {
        if n > 0.0 {
            format!("{n:.0} × {} = {}", num(price, 1), num(n * price, 1))
        } else {
            "-".into()
        }
    };
    let lru = if path.wide_keys { p.lru } else { p.lru8 };
    let ops = path.jiffies * p.jiffies
        + path.lru * lru
        + path.hash * p.hash
        + path.miss * p.miss
        + path.percpu * p.percpu
        + path.atomic * p.atomic
        + path.calls * p.call;
    vec![
        path.name.into(),
        num(measured, 1),
        num(parse, 1),
        cost(path.jiffies, p.jiffies),
        cost(path.lru, lru),
        cost(path.hash, p.hash),
        cost(path.miss, p.miss),
        cost(path.percpu, p.percpu),
        cost(path.atomic, p.atomic),
        cost(path.calls, p.call),
        num(measured - parse - ops, 1),
    ]
}
