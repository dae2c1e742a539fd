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
use guard_common::abi::{GuardConfig, Limit, MAP_N3_CONFIG, PROG_N3};
use guard_common::abi_n2::{N2Config, MAP_N2_CONFIG, PROG_N2};

use crate::bench::progs::{self, time_run, RefProgs};
use crate::bench::{median, Table};
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
}

/// A `#[repr(C)]` record of integers without padding, as the bytes a map holds.
fn record_bytes<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: the configuration records are `#[repr(C)]`, integers only, no padding
    // (size-asserted in guard-common): every byte is initialised.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }.to_vec()
}

fn n3_side(default: &GuardConfig) -> Side {
    // Within its profile: a frame repeated millions of times a second would otherwise take the
    // over-limit (evidence) path, which a real device at stage 0 rarely does.
    let cfg = GuardConfig { observe: Limit::per_second(1_000_000_000_000, 1_000_000_000), ..*default };
    Side { prog: PROG_N3, config_map: MAP_N3_CONFIG, config: record_bytes(&cfg), cases: cases() }
}

fn n2_side() -> Side {
    let cfg: N2Config = crate::bench::cost::n2_bench_config();
    Side {
        prog: PROG_N2,
        config_map: MAP_N2_CONFIG,
        config: record_bytes(&cfg),
        cases: vec![("SCTP DATA with NGAP InitialUEMessage", crate::bench::cost::n2_initial_ue_frame())],
    }
}

/// The cases: the common path (a known device at stage 0, within its profile; IPv4 and IPv6
/// outer) and the pass-through of traffic that is not GTP-U.
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
        ("not GTP-U (IPv4/UDP to port 53): pass-through", gpdu(1).udp_ports(40000, 53).build()),
    ]
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
    let pins = PinScope::new(&format!("ab{i}"));
    pins.pins.create().context("pin directory")?;
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pins.pins.path())
        .load(&b.object)
        .with_context(|| format!("loading the object of {}", b.label))?;
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

/// `guard_n2`'s A/B table (SCTP DATA with an NGAP InitialUEMessage, the bench's N2 case).
pub fn ab_n2_part(builds: &[Build], rounds: usize, repeat: u32) -> Result<Table> {
    ab_side(&n2_side(), builds, rounds, repeat)
}

fn ab_side(side: &Side, builds: &[Build], rounds: usize, repeat: u32) -> Result<Table> {
    let mut loaded = builds.iter().enumerate().map(|(i, b)| load(b, side, i)).collect::<Result<Vec<_>>>()?;
    let mut refs = RefProgs::load(64).context("the reference programs")?;
    let cases = &side.cases;
    for l in loaded.iter_mut() {
        for (name, f) in cases {
            let mut actions = Vec::new();
            for _ in 0..16 {
                actions.push(time_run(xdp(&mut l.ebpf, side.prog)?, f, 1)?.action);
            }
            if actions.iter().any(|a| *a != 2) {
                bail!("{}: {name} did not pass (XDP actions {actions:?}): not the common path", l.label);
            }
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
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
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
