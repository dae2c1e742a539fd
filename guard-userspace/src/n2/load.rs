//! Load, attach and read the N2/S1-MME program `guard_n2` (SCTP: NGAP / S1AP).
//!
//! Same object as N3 ([`crate::bpf::object::object`]), its own pin directory
//! (`<base>/n2/<iface>`, see [`pin_dir`]) with its own `GUARD_META` record ([`guard_common::abi_n2::n2_meta`]:
//! program [`guard_common::abi_n2::META_PROG_N2`], N2 schema and layout) and its own pinned link (`n2_link`).
//! The N3 maps of the shared object are created with capacity 1 here: `guard_n2` never uses them.
//!
//! The controller side is [`crate::n2::controller`] with [`crate::n2::engine`]: it reads `N2_PEERS` (setup evidence), `N2_CELLS` and
//! `N2_DEVICES` (access attempts per NR-CGI / 5G-S-TMSI) for T2 detection, writes
//! `N2_PEER_STAGES` (setup limit, strict limit, each with an expiry; `N2_ALLOW` comes from its
//! config), and answers per-cell / per-UE storms with NGAP OVERLOAD START/STOP and barring
//! through its hook, never with XDP drops of DATA (docs/n2.md).

use std::path::{Path, PathBuf};

use aya::{
    maps::MapType,
    programs::{
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        ProgramError, SchedClassifier, TcAttachType, Xdp,
    },
    Ebpf, EbpfLoader,
};
use guard_common::{
    abi::{self, n2::N2StageEntry as StageEntry, Counter, L3Addr, Meta, TatSlot},
    abi_n2::*,
    parse::n2::N2Malformed,
    policy_n2::N2Verdict,
};

use crate::{
    bpf::{
        link::{attach_pinned, unpin_link, Attachment, ModeRequest},
        maps::err,
        object::{load_error, object, program_mut, require_interface, LoadError},
        pins::{size, spec, Expected, MapSpec, PinDir, PinError, PinState},
    },
    n2::maps::N2Maps,
};

/// File name of the pinned N2 XDP link inside its pin directory.
pub const LINK_PIN_N2: &str = "n2_link";
/// File name of the pinned TCX egress link of `guard_n2_egress`.
pub const LINK_PIN_N2_EGRESS: &str = "n2_egress_link";

/// The N2 pin directory of an interface: `<base>/n2/<iface>` (apart from N3's `<base>/<iface>`).
pub fn pin_dir(base: &Path, iface: &str) -> PinDir {
    PinDir::new(&base.join("n2"), iface)
}

pub fn link_path(pins: &PinDir) -> PathBuf {
    pins.path().join(LINK_PIN_N2)
}

pub fn egress_link_path(pins: &PinDir) -> PathBuf {
    pins.path().join(LINK_PIN_N2_EGRESS)
}

/// Capacities chosen at load time.
#[derive(Clone, Copy, Debug)]
pub struct LoadOpts {
    pub max_devices: u32,
    pub max_cells: u32,
    pub max_peers: u32,
}

impl Default for LoadOpts {
    fn default() -> Self {
        LoadOpts { max_devices: 1 << 20, max_cells: N2_DEFAULT_MAX_CELLS, max_peers: N2_DEFAULT_MAX_PEERS }
    }
}

/// Every pinned map `guard_n2` uses, as this build lays them out.
pub fn n2_specs(o: &LoadOpts) -> Vec<MapSpec> {
    vec![
        spec(abi::MAP_META, MapType::Array, 4, size::<Meta>(), 1),
        spec(MAP_N2_CONFIG, MapType::Array, 4, size::<N2Config>(), 1),
        spec(MAP_N2_PEERS, MapType::LruHash, size::<L3Addr>(), size::<N2PeerState>(), o.max_peers),
        spec(MAP_N2_PEER_STAGES, MapType::Hash, size::<L3Addr>(), size::<StageEntry>(), N2_DEFAULT_MAX_PEER_STAGES),
        spec(MAP_N2_ALLOW, MapType::Hash, size::<L3Addr>(), 4, N2_DEFAULT_MAX_ALLOW),
        spec(MAP_N2_CELLS, MapType::LruHash, size::<N2CellKey>(), size::<N2CellState>(), o.max_cells),
        spec(MAP_N2_DEVICES, MapType::LruHash, size::<N2DeviceKey>(), size::<N2DeviceState>(), o.max_devices),
        spec(MAP_N2_VERDICTS, MapType::PerCpuArray, 4, size::<Counter>(), N2Verdict::COUNT),
        spec(MAP_N2_SHADOW, MapType::PerCpuArray, 4, size::<Counter>(), N2Verdict::COUNT),
        spec(MAP_N2_MALFORMED, MapType::PerCpuArray, 4, size::<Counter>(), N2Malformed::COUNT),
        spec(MAP_N2_STATS, MapType::PerCpuArray, 4, size::<Counter>(), N2_STAT_COUNT),
        spec(MAP_N2_PCPU_TAT, MapType::PerCpuArray, 4, size::<TatSlot>(), 1),
        spec(MAP_N2_EVENTS, MapType::RingBuf, 0, 0, N2_EVENTS_RING_BYTES),
        spec(MAP_N2_COOKIES, MapType::LruHash, size::<N2TagKey>(), 8, N2_DEFAULT_MAX_COOKIES),
        spec(MAP_N2_ASSOC, MapType::LruHash, size::<N2PortKey>(), size::<N2AssocState>(), N2_DEFAULT_MAX_ASSOC),
        spec(MAP_N2_VTAGS, MapType::LruHash, size::<N2VtagKey>(), size::<L3Addr>(), N2_DEFAULT_MAX_VTAGS),
        spec(MAP_N2_ALIAS, MapType::LruHash, size::<L3Addr>(), size::<L3Addr>(), N2_DEFAULT_MAX_ALIAS),
    ]
}

/// What this build expects of an N2 pin directory.
pub fn expected(o: &LoadOpts) -> Expected {
    let want = n2_meta();
    Expected {
        program: want.program,
        schema: want.schema_version,
        compatible: &[],
        layout: want.layout,
        specs: n2_specs(o),
    }
}

/// Compare what is pinned in `pins` with this build's N2 layout (as [`crate::n3::check`] does
/// for N3).
pub fn check(pins: &PinDir, o: &LoadOpts) -> Result<PinState, PinError> {
    pins.check(&expected(o))
}

/// A loaded (not necessarily attached) `guard_n2`.
pub struct N2Loaded {
    pub ebpf: Ebpf,
    pub pins: PinDir,
    pub state: PinState,
}

/// Load the object with every map pinned under `pins` (re-using compatible pins), write META and
/// `cfg`, and load `guard_n2` into the kernel. Returns the program and handles on its maps.
pub fn load(pins: &PinDir, o: &LoadOpts, cfg: &N2Config) -> Result<(N2Loaded, N2Maps), LoadError> {
    load_with(pins, o, cfg, false)
}

/// [`load`] for a replay (docs/replay.md): `guard_n2` reads the replay's clock
/// (`abi::GLOBAL_REPLAY_NOW`, written by the replay before each packet) because the frozen
/// `.rodata` flag `abi::GLOBAL_REPLAY_CLOCK` is set. `pins` must be a directory of the replay's
/// own, removed by the caller once loaded. The egress classifier of the same object
/// ([`N2Loaded::egress_program`]) reads the same clock.
pub fn load_replay(pins: &PinDir, o: &LoadOpts, cfg: &N2Config) -> Result<(N2Loaded, N2Maps), LoadError> {
    load_with(pins, o, cfg, true)
}

fn load_with(pins: &PinDir, o: &LoadOpts, cfg: &N2Config, replay: bool) -> Result<(N2Loaded, N2Maps), LoadError> {
    let state = check(pins, o)?;
    pins.create()?;
    // The N3 program's maps: unused by guard_n2, kept tiny and not pinned here (an earlier
    // build pinned them; they go too).
    pins.unpin_foreign("N3_")?;
    let mut loader = EbpfLoader::new();
    loader
        .default_map_pin_directory(pins.path())
        .map_max_entries(MAP_N2_DEVICES, o.max_devices)
        .map_max_entries(MAP_N2_CELLS, o.max_cells)
        .map_max_entries(MAP_N2_PEERS, o.max_peers);
    for m in [
        abi::MAP_N3_DEVICES,
        abi::MAP_N3_STAGES,
        abi::MAP_N3_CELLS,
        abi::MAP_N3_CELL_HOT,
        abi::MAP_N3_CELL_PCPU,
        abi::MAP_N3_CELL_STAGES,
        abi::MAP_N3_FRAGS,
        abi::MAP_N3_SEEN,
        abi::MAP_N3_STAGED,
        abi::MAP_N3_LOCAL,
        abi::MAP_N3_FRAMED,
    ] {
        loader.map_max_entries(m, 1);
    }
    if replay {
        loader.override_global(abi::GLOBAL_REPLAY_CLOCK, &1u8, true);
    }
    let mut ebpf = loader.load(object()).map_err(LoadError::Object)?;
    pins.unpin_foreign("N3_")?;
    if replay {
        // As for N3's replay load: no map stays pinned while the program is verified.
        pins.purge()?;
    }
    let mut maps = N2Maps::from_ebpf(&mut ebpf)?;
    maps.meta.set(0, n2_meta(), 0).map_err(err(abi::MAP_META))?;
    maps.write_config(cfg)?;
    let mut loaded = N2Loaded { ebpf, pins: pins.clone(), state };
    loaded.program()?.load().map_err(load_error(PROG_N2, "loading guard_n2"))?;
    Ok((loaded, maps))
}

impl N2Loaded {
    pub fn program(&mut self) -> Result<&mut Xdp, LoadError> {
        program_mut(&mut self.ebpf, PROG_N2, "guard_n2 is not an XDP program")
    }

    /// Attach to `iface` through a pinned link (re-used in place when one exists), as
    /// [`crate::n3::Loaded::attach`] does for N3.
    pub fn attach(&mut self, iface: &str, mode: ModeRequest) -> Result<Attachment, LoadError> {
        let lp = link_path(&self.pins);
        attach_pinned(self.program()?, PROG_N2, iface, mode, &lp)
    }

    fn egress(&mut self) -> Result<&mut SchedClassifier, LoadError> {
        program_mut(&mut self.ebpf, PROG_N2_EGRESS, "guard_n2_egress is not a classifier")
    }

    /// Load `guard_n2_egress` and attach it to `iface`'s egress through a pinned TCX link
    /// (kernel ≥ 6.6), re-used in place when one exists. The classifier never drops; without it
    /// the setup lanes (issued cookies, association ports) stay empty and `guard_n2` limits setup
    /// as before, so a failure here is reported, not fatal (see `runner::prepare`).
    pub fn attach_egress(&mut self, iface: &str) -> Result<Attachment, LoadError> {
        require_interface(iface)?;
        let lp = egress_link_path(&self.pins);
        let prog = self.egress()?;
        prog.load().map_err(load_error(PROG_N2_EGRESS, "loading guard_n2_egress"))?;
        if lp.exists() {
            let reused = PinnedLink::from_pin(&lp)
                .map_err(|source| LoadError::Link { what: "opening the pinned egress link", source })
                .and_then(|pinned| {
                    let link = SchedClassifierLink::try_from(FdLink::from(pinned))
                        .map_err(|source| LoadError::Link { what: "the pinned link is not a TC link", source })?;
                    let id = prog
                        .attach_to_link(link)
                        .map_err(|source| LoadError::Program { what: "updating the egress link", source })?;
                    prog.take_link(id).map_err(|source| LoadError::Program { what: "taking the TC link", source })
                });
            if reused.is_ok() {
                return Ok(Attachment::ReusedLink);
            }
            let _ = std::fs::remove_file(&lp);
        }
        let id = prog.attach(iface, TcAttachType::Egress).map_err(|source| match source {
            ProgramError::UnknownInterface { name } => LoadError::UnknownInterface(name),
            source => LoadError::Program { what: "attaching guard_n2_egress (TCX, kernel >= 6.6)", source },
        })?;
        let link = prog.take_link(id).map_err(|source| LoadError::Program { what: "taking the TC link", source })?;
        let fd_link: FdLink = link
            .try_into()
            .map_err(|source| LoadError::Link { what: "a netlink TC attachment cannot be pinned", source })?;
        fd_link.pin(&lp).map_err(|source| LoadError::PinLink { path: lp.clone(), source })?;
        Ok(Attachment::Native)
    }

    /// The egress classifier, loaded (for BPF_PROG_TEST_RUN in tests) but not attached.
    pub fn egress_program(&mut self) -> Result<&mut SchedClassifier, LoadError> {
        let prog = self.egress()?;
        if prog.fd().is_err() {
            prog.load().map_err(load_error(PROG_N2_EGRESS, "loading guard_n2_egress"))?;
        }
        Ok(prog)
    }
}

/// Remove the pinned N2 links (XDP and the egress classifier) and, with `purge`, every pin in the
/// N2 directory.
pub fn detach(pins: &PinDir, purge: bool) -> Result<bool, LoadError> {
    let had = unpin_link(&link_path(pins))?;
    unpin_link(&egress_link_path(pins))?;
    if purge {
        pins.purge()?;
    }
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n2_pins_live_apart_from_n3() {
        let p = pin_dir(Path::new("/sys/fs/bpf/og"), "eth1");
        assert_eq!(p.path(), Path::new("/sys/fs/bpf/og/n2/eth1"));
        assert_eq!(link_path(&p), Path::new("/sys/fs/bpf/og/n2/eth1/n2_link"));
        let names: Vec<_> = n2_specs(&LoadOpts::default()).iter().map(|s| s.name).collect();
        assert!(names.iter().all(|n| n.len() <= 15), "BPF object names are at most 15 bytes: {names:?}");
    }
}
