//! A/B of the common paths across builds: this build's object against objects built from earlier
//! commits (`cargo xtask bench --ab REV`), side by side in one run: `guard_n3`'s known device and
//! pass-through, and `guard_n2`'s SCTP DATA with an InitialUEMessage. It answers "how much
//! did this change cost the packets every device sends", which a BENCHMARKS.md from another day
//! cannot: the machine's speed moves by more than the changes being judged (issue 16, 27: "the
//! common path grows by no more than 5%").
//!
//! Only what every version since schema 3 does the same way is measured, so no version's map
//! layout needs to be known: each object is loaded on its own pins, given this build's
//! configuration cut to the length of its own `N3_CONFIG` (or `N2_CONFIG`) record (fields have
//! only ever been appended), and made to know the device by sending its frame (its record, binding and gNB slot
//! are created as real traffic creates them). Then, in interleaved rounds (each round runs every
//! object once per case, in a rotated order, so machine noise hits all alike), BPF_PROG_TEST_RUN
//! with a large repeat gives the kernel's mean ns per run; the table gives each object's median
//! and the median of its per-round difference to this build.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd as _, AsRawFd as _};

use anyhow::{bail, Context, Result};
use aya::{maps::Map, programs::Xdp, Ebpf, EbpfLoader};
use guard_common::abi::{GuardConfig, L3Addr, Limit, MAP_N3_CONFIG, MAP_N3_DEVICES, PROG_N3};
use guard_common::abi_n2::{N2Config, MAP_N2_CONFIG, PROG_N2};

use crate::bench::progs::{self, time_run, RefProgs};
use crate::bench::{median, minimum, Table};
use crate::bpf::PinScope;
use crate::frames::GtpFrame;

/// One object under comparison.
pub struct Build {
    /// What the table calls it ("this build", a commit).
    pub label: String,
    pub object: Vec<u8>,
}

struct Loaded {
    label: String,
    ebpf: Ebpf,
    config_len: usize,
    _pins: PinScope,
}

/// What is compared: one program of the object, its configuration record and its cases.
struct Side {
    prog: &'static str,
    config_map: &'static str,
    /// This build's configuration record, as bytes (cut to each object's own length).
    config: Vec<u8>,
    cases: Vec<(&'static str, Vec<u8>)>,
    /// Addresses written into `N3_LOCAL` (a host that lists its N3 addresses), each in its home
    /// slot, with the TEID of the device the cases send to it; empty for the other sides.
    listed: Vec<(L3Addr, u32)>,
}

/// A `#[repr(C)]` record of integers without padding, as the bytes a map holds.
fn record_bytes<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: the configuration records are `#[repr(C)]`, integers only, no padding
    // (size-asserted in guard-common): every byte is initialised.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }.to_vec()
}

/// `default` with the stage-0 profile limit out of reach: a frame repeated millions of times a
/// second would otherwise take the over-limit (evidence) path, which a real device at stage 0
/// rarely does.
fn within_profile(default: &GuardConfig) -> GuardConfig {
    GuardConfig { observe: Limit::per_second(1_000_000_000_000, 1_000_000_000), ..*default }
}

fn n3_side(default: &GuardConfig) -> Side {
    let cfg = within_profile(default);
    Side { prog: PROG_N3, config_map: MAP_N3_CONFIG, config: record_bytes(&cfg), cases: cases(), listed: Vec::new() }
}

fn n2_side() -> Side {
    let cfg: N2Config = crate::bench::cost::n2_bench_config();
    Side {
        prog: PROG_N2,
        config_map: MAP_N2_CONFIG,
        config: record_bytes(&cfg),
        cases: vec![("SCTP DATA with NGAP InitialUEMessage", crate::bench::cost::n2_initial_ue_frame())],
        listed: Vec::new(),
    }
}

/// The cases: the common path (a known device at stage 0, within its profile; IPv4 and IPv6
/// outer, IPv4 behind a VLAN tag) and the pass-through of traffic that is not GTP-U.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let gpdu = |t: u32| GtpFrame::gpdu(t).inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10));
    vec![
        ("G-PDU, known device, stage 0, IPv4 outer", gpdu(0x0001_0001).build()),
        (
            "G-PDU, known device, stage 0, IPv6 outer",
            gpdu(0x0005_0005)
                .outer_v6(
                    Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0x11),
                    Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1),
                )
                .build(),
        ),
        // The IPv4 known device's frame behind one 802.1Q tag (a parent that carries N3 on VLAN
        // 310): the same device, the same path after the parse.
        ("G-PDU, known device, stage 0, IPv4 outer, 802.1Q tag", gpdu(0x0001_0001).vlan(310).build()),
        // A 5G uplink G-PDU carries a PDU Session Container with its QFI (TS 38.415 §5.5.2.2,
        // TS 29.281 §5.2.2.7): the same device, its extension header parsed.
        ("G-PDU, known device, stage 0, IPv4 outer, QFI 9", gpdu(0x0001_0001).qfi(9).build()),
        ("not GTP-U (IPv4/UDP to port 53): pass-through", gpdu(1).udp_ports(40000, 53).build()),
        ("G-PDU, quarantined device (drop)", gpdu(QUARANTINED).build()),
    ]
}

/// The quarantined device of the N3 cases: its stage entry is written into each object's
/// `N3_STAGES` before its frames make it known (the entry's layout is unchanged since schema 7).
const QUARANTINED: u32 = 0x0002_0002;

/// Quarantine [`QUARANTINED`] in `ebpf`'s `N3_STAGES`, written directly (no `N3_STAGED` bit: the
/// device's first packet passes on a build with the bits, its second, from a known device whose
/// record has cached nothing, finds the entry). The key is the map's own: the 8-byte id of schema
/// 10 on (`abi::device_id`), the 20-byte `DeviceKey` before.
fn quarantine(ebpf: &mut Ebpf) -> Result<()> {
    use aya::maps::{HashMap, MapData};
    use guard_common::abi::{device_id, DeviceKey, StageEntry, MAP_N3_STAGES, STAGE_QUARANTINE};
    let map = ebpf.map_mut(MAP_N3_STAGES).context("no N3_STAGES in the object")?;
    let key_size = match &map {
        Map::HashMap(d) => d.info().context("N3_STAGES' info")?.key_size(),
        _ => bail!("N3_STAGES is not a hash map"),
    };
    let now = guard::clock::monotonic_ns();
    let e =
        StageEntry { stage: STAGE_QUARANTINE, expires_ns: now + 3_600_000_000_000, set_ns: now, ..Default::default() };
    if key_size == 8 {
        let mut m: HashMap<&mut MapData, u64, StageEntry> = HashMap::try_from(map)?;
        m.insert(device_id::fteid(0, QUARANTINED), e, 0).context("writing N3_STAGES")?;
    } else {
        let mut m: HashMap<&mut MapData, DeviceKey, StageEntry> = HashMap::try_from(map)?;
        m.insert(DeviceKey::teid(QUARANTINED), e, 0).context("writing N3_STAGES")?;
    }
    Ok(())
}

/// `BPF_MAP_UPDATE_ELEM` of key 0 with `value` as raw bytes: the record length is the object's
/// (its `value_size`), which no Rust type of this build describes for an older object.
fn write_config_bytes(map: &Map, value: &[u8]) -> Result<()> {
    let data = match map {
        Map::Array(d) => d,
        _ => bail!("the configuration map is not an array map"),
    };
    #[repr(C)]
    struct UpdateAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    let key = 0u32;
    let attr = UpdateAttr {
        map_fd: data.fd().as_fd().as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: value.as_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for BPF_MAP_UPDATE_ELEM; key and value point to
    // live buffers of the map's key and value sizes (checked by the caller against map info).
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_MAP_UPDATE_ELEM, &attr as *const UpdateAttr, std::mem::size_of::<UpdateAttr>())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_MAP_UPDATE_ELEM on the configuration map");
    }
    Ok(())
}

fn xdp<'a>(e: &'a mut Ebpf, prog: &str) -> Result<&'a mut Xdp> {
    Ok(e.program_mut(prog).with_context(|| format!("no {prog} in the object"))?.try_into()?)
}

fn load(b: &Build, side: &Side, i: usize) -> Result<Loaded> {
    load_sized(b, side, i, None)
}

/// [`load`], with `N3_DEVICES` holding `devices` records instead of the object's default.
fn load_sized(b: &Build, side: &Side, i: usize, devices: Option<u32>) -> Result<Loaded> {
    let pins = PinScope::new(&format!("ab{i}"));
    pins.pins.create().context("pin directory")?;
    let mut loader = EbpfLoader::new();
    loader.default_map_pin_directory(pins.pins.path());
    if let Some(n) = devices {
        loader.map_max_entries(MAP_N3_DEVICES, n);
    }
    let mut ebpf = loader.load(&b.object).with_context(|| format!("loading the object of {}", b.label))?;
    xdp(&mut ebpf, side.prog)?.load().with_context(|| format!("verifying {} of {}", side.prog, b.label))?;
    let map = ebpf.map(side.config_map).with_context(|| format!("no {} in the object", side.config_map))?;
    let len = match map {
        Map::Array(d) => d.info().context("the configuration map's info")?.value_size() as usize,
        _ => bail!("{} is not an array map", side.config_map),
    };
    if len > side.config.len() {
        bail!(
            "{}'s {} record ({len} bytes) is longer than this build's: an object newer than this build",
            b.label,
            side.config_map
        );
    }
    write_config_bytes(map, &side.config[..len])?;
    Ok(Loaded { label: b.label.clone(), ebpf, config_len: len, _pins: pins })
}

/// `guard_n3`'s A/B table: `builds[0]` is the reference the differences are taken against.
pub fn ab_part(default: &GuardConfig, builds: &[Build], rounds: usize, repeat: u32) -> Result<Table> {
    ab_side(&n3_side(default), builds, rounds, repeat)
}

/// `guard_n3`'s A/B table in UE-address key mode (`key_mode = "ue_addr"`, /64 prefixes): the
/// device key is built from the inner source, an IPv4 UE's address or an IPv6 UE's prefix (the
/// compact key's other two kinds; issue 19, schema 10).
pub fn ab_ue_part(default: &GuardConfig, builds: &[Build], rounds: usize, repeat: u32) -> Result<Table> {
    use guard_common::abi::KEY_MODE_UE_ADDR;
    let cfg = GuardConfig { key_mode: KEY_MODE_UE_ADDR, antispoof_v6_prefix: 64, ..within_profile(default) };
    let dst6 = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10);
    let cases = vec![
        (
            "G-PDU, UE-address mode, known IPv4 UE",
            GtpFrame::gpdu(0x0003_0003).inner_v4(Ipv4Addr::new(10, 45, 0, 3), Ipv4Addr::new(192, 0, 2, 10)).build(),
        ),
        (
            "G-PDU, UE-address mode, known IPv6 UE (its /64)",
            GtpFrame::gpdu(0x0004_0004).inner_v6(Ipv6Addr::new(0x2001, 0xdb8, 0x45, 7, 0, 0, 0, 1), dst6).build(),
        ),
    ];
    ab_side(
        &Side { prog: PROG_N3, config_map: MAP_N3_CONFIG, config: record_bytes(&cfg), cases, listed: Vec::new() },
        builds,
        rounds,
        repeat,
    )
}

/// `guard_n3`'s A/B table on a host that lists its N3 addresses (`[n3] local_addresses`): every
/// G-PDU's F-TEID local index is looked up in `N3_LOCAL` by the outer destination (TS 29.281
/// §5.1), which a host with one address skips. Two addresses listed, the frames' own in its home
/// slot; IPv4 and IPv6 outer.
pub fn ab_local_part(default: &GuardConfig, builds: &[Build], rounds: usize, repeat: u32) -> Result<Table> {
    let cfg = GuardConfig { local_addrs: 2, ..within_profile(default) };
    let (v6_gnb, v6_upf) =
        (Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 0x11), Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1));
    let gpdu = |t: u32| GtpFrame::gpdu(t).inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10));
    let (t4, t6) = (0x0006_0006, 0x0007_0007);
    let cases = vec![
        ("G-PDU, known device, listed N3 address, IPv4 outer", gpdu(t4).build()),
        ("G-PDU, known device, listed N3 address, IPv6 outer", gpdu(t6).outer_v6(v6_gnb, v6_upf).build()),
    ];
    // The frames' destinations (the lab kit's default N3 address, and the IPv6 one), with the
    // devices sent to each.
    let listed = vec![(L3Addr::v4([10, 200, 0, 1]), t4), (L3Addr::v6(v6_upf.octets()), t6)];
    ab_side(
        &Side { prog: PROG_N3, config_map: MAP_N3_CONFIG, config: record_bytes(&cfg), cases, listed },
        builds,
        rounds,
        repeat,
    )
}

/// Write `listed` into `ebpf`'s `N3_LOCAL`, each address in its home slot (the table is empty and
/// the bench's addresses have different home slots; checked).
fn list_local(ebpf: &mut Ebpf, listed: &[(L3Addr, u32)]) -> Result<()> {
    use aya::maps::{Array, MapData};
    use guard_common::abi::{local_home_slot, LocalAddr, MAP_N3_LOCAL};
    let mut m: Array<&mut MapData, LocalAddr> =
        Array::try_from(ebpf.map_mut(MAP_N3_LOCAL).context("no N3_LOCAL in the object")?)?;
    let mut used = std::collections::HashSet::new();
    for (a, _) in listed {
        let slot = local_home_slot(a);
        if !used.insert(slot) {
            bail!("two listed addresses share home slot {slot}");
        }
        m.set(slot, LocalAddr { addr: *a, flags: 0 }, 0).context("writing N3_LOCAL")?;
    }
    Ok(())
}

/// The listed side's devices are keyed by the local index their address found (slot + 1), not
/// by index 0: the path measured is the table's hit. Only for an object whose device map is this
/// build's (8-byte ids, this build's record); an older layout is not checked.
fn listed_devices_known(ebpf: &Ebpf, listed: &[(L3Addr, u32)], label: &str) -> Result<()> {
    use aya::maps::{HashMap, MapData};
    use guard_common::abi::{device_id, local_home_slot, DeviceState};
    let map = ebpf.map(MAP_N3_DEVICES).context("no N3_DEVICES in the object")?;
    let info = match map {
        Map::LruHashMap(d) | Map::HashMap(d) => d.info().context("N3_DEVICES' info")?,
        _ => bail!("N3_DEVICES is not a hash map"),
    };
    if info.key_size() != 8 || info.value_size() as usize != core::mem::size_of::<DeviceState>() {
        return Ok(());
    }
    let m: HashMap<&MapData, u64, DeviceState> = HashMap::try_from(map)?;
    for &(a, teid) in listed {
        let key = device_id::fteid(local_home_slot(&a) + 1, teid);
        if m.get(&key, 0).is_err() {
            bail!("{label}: the device of TEID {teid:#x} is not keyed by its listed address's index: not the path measured");
        }
    }
    Ok(())
}

/// `guard_n2`'s A/B table (SCTP DATA with an NGAP InitialUEMessage, the bench's N2 case).
pub fn ab_n2_part(builds: &[Build], rounds: usize, repeat: u32) -> Result<Table> {
    ab_side(&n2_side(), builds, rounds, repeat)
}

fn ab_side(side: &Side, builds: &[Build], rounds: usize, repeat: u32) -> Result<Table> {
    let mut loaded = builds.iter().enumerate().map(|(i, b)| load(b, side, i)).collect::<Result<Vec<_>>>()?;
    let mut refs = RefProgs::load(64).context("the reference programs")?;
    let cases = &side.cases;
    for l in loaded.iter_mut() {
        if side.prog == PROG_N3 {
            quarantine(&mut l.ebpf)?;
        }
        if !side.listed.is_empty() {
            list_local(&mut l.ebpf, &side.listed)?;
        }
        for (name, f) in cases {
            let mut actions = Vec::new();
            for _ in 0..16 {
                actions.push(time_run(xdp(&mut l.ebpf, side.prog)?, f, 1)?.action);
            }
            // XDP_DROP (1) for the quarantined device from its second packet, XDP_PASS (2) else.
            let want = if name.contains("quarantined") { 1 } else { 2 };
            if actions[1..].iter().any(|a| *a != want) {
                bail!("{}: {name} gave XDP actions {actions:?}, not {want}: not the path measured", l.label);
            }
        }
        if !side.listed.is_empty() {
            listed_devices_known(&l.ebpf, &side.listed, &l.label)?;
        }
    }
    // t[case][object] per round; the last column is xdp_baseline.
    let n = loaded.len();
    let mut t = vec![vec![Vec::with_capacity(rounds); n + 1]; cases.len()];
    for r in 0..rounds {
        for (c, (_, f)) in cases.iter().enumerate() {
            for k in 0..=n {
                let o = (r + k) % (n + 1);
                let ns = if o == n {
                    time_run(refs.prog(progs::BASELINE)?, f, repeat)?.kernel_ns
                } else {
                    time_run(xdp(&mut loaded[o].ebpf, side.prog)?, f, repeat)?.kernel_ns
                };
                t[c][o].push(ns);
            }
        }
    }
    let title = format!("{} A/B across builds (kernel ns per run)", side.prog);
    let config_bytes = format!("{} bytes", side.config_map);
    let mut table = Table::new(
        &title,
        &[
            "case",
            "build",
            &config_bytes,
            "median",
            "min",
            "minus xdp_baseline",
            "the first build's growth over this one (median of per-round differences)",
        ],
    );
    for (c, (name, _)) in cases.iter().enumerate() {
        let base = &t[c][n];
        for (o, l) in loaded.iter().enumerate() {
            let v = &t[c][o];
            let net = median(&v.iter().zip(base).map(|(x, b)| x - b).collect::<Vec<_>>());
            let vs = if o == 0 {
                "reference".to_string()
            } else {
                // The first build's growth over this row's: first − this, per round.
                let g = median(&t[c][0].iter().zip(v).map(|(x, y)| x - y).collect::<Vec<_>>());
                format!("{g:+.1} ns ({:+.1}%)", 100.0 * g / median(v).max(1.0))
            };
            let min = minimum(v);
            table.row(vec![
                name.to_string(),
                l.label.clone(),
                l.config_len.to_string(),
                format!("{:.1}", median(v)),
                format!("{min:.1}"),
                format!("{net:.1}"),
                vs,
            ]);
        }
        table.row(vec![
            name.to_string(),
            "xdp_baseline".into(),
            "-".into(),
            format!("{:.1}", median(base)),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    table.note(format!(
        "`cargo xtask bench --ab REV...`: each object loaded on its own pins, given the same configuration (for guard_n3, under `cargo xtask bench`, the shipped defaults with the stage-0 profile limit out of reach; for guard_n2 the bench's: NGAP and S1AP ports, every protection but the allow-list) cut to its own record's length, its device (or peer) made known by 16 of its frames; then {rounds} rounds, each running every build and xdp_baseline once per case in a rotated order, BPF_PROG_TEST_RUN repeat {repeat} (the kernel's mean per run). The last column: how much more (+) or less (-) the first build costs than this row's, the median of the per-round differences (noise common to a round cancels), and that as a share of this row's median."
    ));
    Ok(table)
}

/// The first packet of a new device, across builds: every run a never-seen TEID (BPF_PROG_TEST_RUN
/// `repeat` 1 per frame, as the main bench's first-packet table), inserted into `N3_DEVICES`. Each
/// object's map holds `capacity` records and is filled first, so every timed insert evicts the least
/// recently used record (a host whose device map is full: the case that costs most); the new-device
/// budget is out of reach. Each round gives every object, `xdp_baseline` and `xdp_floor` the same
/// `n` fresh frames, in a rotated order.
pub fn ab_first_packet(default: &GuardConfig, builds: &[Build], rounds: usize, n: u32, capacity: u32) -> Result<Table> {
    let cfg =
        GuardConfig { new_device: Limit::per_second(1_000_000_000_000, 1_000_000_000), ..within_profile(default) };
    let side = Side {
        prog: PROG_N3,
        config_map: MAP_N3_CONFIG,
        config: record_bytes(&cfg),
        cases: Vec::new(),
        listed: Vec::new(),
    };
    let mut loaded =
        builds.iter().enumerate().map(|(i, b)| load_sized(b, &side, i, Some(capacity))).collect::<Result<Vec<_>>>()?;
    let mut refs = RefProgs::load_sized(64, capacity).context("the reference programs")?;
    let gpdu = |t: u32| GtpFrame::gpdu(t).inner_v4(Ipv4Addr::new(10, 45, 0, 2), Ipv4Addr::new(192, 0, 2, 10)).build();
    // Fill every map (twice its capacity: the LRU lists settle) with TEIDs no timed frame uses.
    let fill: Vec<Vec<u8>> = (0..2 * capacity).map(|i| gpdu(0x0100_0000 + i)).collect();
    for l in loaded.iter_mut() {
        let prog = xdp(&mut l.ebpf, PROG_N3)?;
        for f in &fill {
            let a = time_run(prog, f, 1)?.action;
            if a != 2 {
                bail!("{}: a new device's first G-PDU did not pass (XDP action {a})", l.label);
            }
        }
    }
    progs::time_cycle(refs.prog(progs::FLOOR_NEW)?, &fill)?;
    let k = loaded.len();
    // Columns: the objects, then xdp_baseline, xdp_floor and xdp_floor_new.
    let mut t = vec![Vec::with_capacity(rounds); k + 3];
    for r in 0..rounds {
        let base = 0x2000_0000 + r as u32 * n;
        let frames: Vec<Vec<u8>> = (0..n).map(|i| gpdu(base + i)).collect();
        for j in 0..k + 3 {
            let o = (r + j) % (k + 3);
            let prog = if o < k {
                xdp(&mut loaded[o].ebpf, PROG_N3)?
            } else if o == k {
                refs.prog(progs::BASELINE)?
            } else if o == k + 1 {
                refs.prog(progs::FLOOR)?
            } else {
                refs.prog(progs::FLOOR_NEW)?
            };
            t[o].push(progs::time_cycle(prog, &frames)?);
        }
    }
    let mut table = Table::new(
        "guard_n3 A/B across builds: first packet of a new device (kernel ns per run, repeat 1)",
        &[
            "build",
            "median",
            "min",
            "minus xdp_baseline",
            "/ xdp_floor",
            "/ xdp_floor_new",
            "the first build's growth over this one (median of per-round differences)",
        ],
    );
    let floor = median(&t[k + 1]);
    let floor_new = median(&t[k + 2]);
    for (o, l) in loaded.iter().enumerate() {
        let v = &t[o];
        let net = median(&v.iter().zip(&t[k]).map(|(x, b)| x - b).collect::<Vec<_>>());
        let vs = if o == 0 {
            "reference".to_string()
        } else {
            let g = median(&t[0].iter().zip(v).map(|(x, y)| x - y).collect::<Vec<_>>());
            format!("{g:+.1} ns ({:+.1}%)", 100.0 * g / median(v).max(1.0))
        };
        let min = minimum(v);
        table.row(vec![
            l.label.clone(),
            format!("{:.1}", median(v)),
            format!("{min:.1}"),
            format!("{net:.1}"),
            format!("{:.2}x", median(v) / floor.max(1.0)),
            format!("{:.2}x", median(v) / floor_new.max(1.0)),
            vs,
        ]);
    }
    for (name, o) in [
        ("xdp_baseline", k),
        ("xdp_floor (its lookup misses)", k + 1),
        ("xdp_floor_new (a miss, an insert that evicts, a second lookup, two atomic adds)", k + 2),
    ] {
        let net = median(&t[o].iter().zip(&t[k]).map(|(x, b)| x - b).collect::<Vec<_>>());
        let min = minimum(&t[o]);
        let (net, min) = if o == k { ("-".into(), "-".into()) } else { (format!("{net:.1}"), format!("{min:.1}")) };
        table.row(vec![name.into(), format!("{:.1}", median(&t[o])), min, net, "-".into(), "-".into(), "-".into()]);
    }
    table.note(format!(
        "`cargo xtask bench --ab REV...`: each object loaded on its own pins with `N3_DEVICES` of {capacity} records, filled first with {} devices, so every timed first packet evicts one (and `xdp_floor_new`'s LRU hash of as many two-counter records, filled with the same devices); this build's configuration (shipped defaults, the stage-0 profile and the new-device budget out of reach) cut to each object's record length. {rounds} rounds, each giving every build, xdp_baseline, xdp_floor and xdp_floor_new the same {n} never-seen TEIDs once each (BPF_PROG_TEST_RUN repeat 1: every figure carries the kernel's per-call timer overhead, as xdp_baseline shows), in a rotated order; the kernel's mean per run, median of rounds.",
        2 * capacity
    ));
    Ok(table)
}

/// What a compact device key would save (docs/dataplane.md, "A compact device key"): the
/// `xdp_op_*` probes' eight hash and LRU hits on a 20-byte key (`DeviceKey`) against the same on
/// a 12-byte key (`{ kind: u32, id: u64 }`) and an 8-byte one, interleaved with `xdp_baseline`
/// in rotated order, BPF_PROG_TEST_RUN `repeat`.
pub fn key_size_part(rounds: usize, repeat: u32) -> Result<Table> {
    let mut refs = RefProgs::load(64).context("the reference programs")?;
    let names =
        [progs::BASELINE, "xdp_op_hash", progs::KEY12[0], "xdp_op_hash8", "xdp_op_lru", progs::KEY12[1], "xdp_op_lru8"];
    let frame = GtpFrame::gpdu(1).build();
    let mut t: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
    for r in 0..rounds {
        for k in 0..names.len() {
            let i = (r + k) % names.len();
            t[i].push(time_run(refs.prog(names[i])?, &frame, repeat)?.kernel_ns);
        }
    }
    let per = |i: usize| median(&t[i].iter().zip(&t[0]).map(|(x, b)| (x - b) / 8.0).collect::<Vec<_>>());
    let mut table = Table::new(
        "Key size: one hash or LRU hit on a 20-, 12- and 8-byte key (ns per lookup)",
        &["lookup", "20-byte key", "12-byte key", "8-byte key", "20 − 12", "20 − 8"],
    );
    for (what, a, b, c) in [("hash hit", 1, 2, 3), ("LRU hit (sets the reference bit)", 4, 5, 6)] {
        table.row(vec![
            what.into(),
            format!("{:.2}", per(a)),
            format!("{:.2}", per(b)),
            format!("{:.2}", per(c)),
            format!("{:.2}", per(a) - per(b)),
            format!("{:.2}", per(a) - per(c)),
        ]);
    }
    table.note(format!(
        "Probes each doing the lookup 8 times (`guard-ebpf/src/baseline.rs`), {rounds} rounds in a rotated order with xdp_baseline, BPF_PROG_TEST_RUN repeat {repeat}; per lookup = the median over rounds of (probe − xdp_baseline) / 8. The key is hashed (`jhash2`: a mixing round per 12 bytes beyond the last 12) and compared (memcmp) at its length; the value is the same."
    ));
    Ok(table)
}
