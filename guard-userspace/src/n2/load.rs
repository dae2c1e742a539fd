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
    maps::{Array, HashMap, Map, MapData, MapError, MapType, PerCpuArray},
    programs::{
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use guard_common::{
    abi::{self, Counter, L3Addr, Meta, StageEntry, TatSlot},
    abi_n2::*,
    parse::n2::N2Malformed,
    policy_n2::N2Verdict,
};

use crate::{
    bpf::link::{Attachment, ModeRequest},
    bpf::maps::MapsError,
    bpf::object::{object, require_interface, LoadError},
    bpf::pins::{MapSpec, PinDir, PinError, PinState},
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

const fn size<T>() -> u32 {
    core::mem::size_of::<T>() as u32
}

/// Every pinned map `guard_n2` uses, as this build lays them out.
pub fn n2_specs(o: &LoadOpts) -> Vec<MapSpec> {
    let spec = |name, map_type, key_size, value_size, max_entries| MapSpec {
        name,
        map_type,
        key_size,
        value_size,
        max_entries,
    };
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

/// Compare what is pinned in `pins` with this build's N2 layout (as `PinDir::check` does for N3).
pub fn check(pins: &PinDir, o: &LoadOpts) -> Result<PinState, PinError> {
    let dir = pins.path().to_path_buf();
    let meta_path = pins.map_path(abi::MAP_META);
    if !meta_path.exists() {
        let any = n2_specs(o).iter().any(|s| pins.map_path(s.name).exists());
        return if any { Err(PinError::NoMeta { dir }) } else { Ok(PinState::Fresh) };
    }
    let meta = read_meta(&meta_path)?;
    let want = n2_meta();
    if meta.magic != abi::META_MAGIC {
        return Err(PinError::Foreign { path: meta_path, found: meta.magic });
    }
    if meta.program != want.program {
        return Err(PinError::Shape {
            dir,
            map: abi::MAP_META,
            what: "program",
            found: meta.program as u64,
            expected: want.program as u64,
        });
    }
    if meta.schema_version != want.schema_version {
        return Err(PinError::Schema { dir, found: meta.schema_version, expected: want.schema_version });
    }
    if meta.layout != want.layout {
        return Err(PinError::Shape {
            dir,
            map: abi::MAP_META,
            what: "layout fingerprint",
            found: meta.layout,
            expected: want.layout,
        });
    }
    crate::bpf::pins::check_shapes(pins, &n2_specs(o))?;
    Ok(PinState::Reusable)
}

fn read_meta(path: &Path) -> Result<Meta, PinError> {
    let data = MapData::from_pin(path).map_err(|source| PinError::Read { path: path.to_path_buf(), source })?;
    let arr: Array<_, Meta> =
        Array::try_from(Map::Array(data)).map_err(|source| PinError::Read { path: path.to_path_buf(), source })?;
    arr.get(&0, 0).map_err(|source| PinError::Read { path: path.to_path_buf(), source })
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
        abi::MAP_N3_CELL_STAGES,
        abi::MAP_N3_FRAGS,
        abi::MAP_N3_SEEN,
        abi::MAP_N3_LOCAL,
        abi::MAP_N3_FRAMED,
    ] {
        loader.map_max_entries(m, 1);
    }
    let mut ebpf = loader.load(object()).map_err(LoadError::Object)?;
    pins.unpin_foreign("N3_")?;
    let mut maps = N2Maps::from_ebpf(&mut ebpf)?;
    maps.meta.set(0, n2_meta(), 0).map_err(err(abi::MAP_META))?;
    maps.write_config(cfg)?;
    let mut loaded = N2Loaded { ebpf, pins: pins.clone(), state };
    loaded.program()?.load().map_err(|e| match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            LoadError::Verifier { prog: PROG_N2, io_error, log: verifier_log.to_string() }
        }
        source => LoadError::Program { what: "loading guard_n2", source },
    })?;
    Ok((loaded, maps))
}

impl N2Loaded {
    pub fn program(&mut self) -> Result<&mut Xdp, LoadError> {
        self.ebpf
            .program_mut(PROG_N2)
            .ok_or(LoadError::MissingProgram(PROG_N2))?
            .try_into()
            .map_err(|source| LoadError::Program { what: "guard_n2 is not an XDP program", source })
    }

    /// Attach to `iface` through a pinned link (re-used in place when one exists), as
    /// `load::Loaded::attach` does for N3.
    pub fn attach(&mut self, iface: &str, mode: ModeRequest) -> Result<Attachment, LoadError> {
        require_interface(iface)?;
        let lp = link_path(&self.pins);
        if lp.exists() {
            if self.reuse_link(&lp).is_ok() {
                return Ok(Attachment::ReusedLink);
            }
            let _ = std::fs::remove_file(&lp);
        }
        if let Some(occupant) = crate::bpf::link::xdp_occupant(iface) {
            return Err(LoadError::Occupied { iface: iface.to_owned(), occupant });
        }
        let prog = self.program()?;
        let attach = |prog: &mut Xdp, m| {
            prog.attach(iface, m).map_err(|source| LoadError::Program { what: "attaching guard_n2", source })
        };
        let (id, how) = match mode {
            ModeRequest::Native => (attach(prog, XdpMode::Driver)?, Attachment::Native),
            ModeRequest::Generic => (attach(prog, XdpMode::Skb)?, Attachment::Generic),
            ModeRequest::Auto => match attach(prog, XdpMode::Driver) {
                Ok(id) => (id, Attachment::Native),
                Err(_) => (attach(prog, XdpMode::Skb)?, Attachment::Generic),
            },
        };
        let link = prog.take_link(id).map_err(|source| LoadError::Program { what: "taking the XDP link", source })?;
        let fd_link: FdLink = link
            .try_into()
            .map_err(|source| LoadError::Link { what: "a netlink XDP attachment cannot be pinned", source })?;
        fd_link.pin(&lp).map_err(|source| LoadError::PinLink { path: lp.clone(), source })?;
        Ok(how)
    }

    fn reuse_link(&mut self, lp: &Path) -> Result<(), LoadError> {
        crate::bpf::link::update_pinned_link(self.program()?, lp)
    }

    /// Load `guard_n2_egress` and attach it to `iface`'s egress through a pinned TCX link
    /// (kernel ≥ 6.6), re-used in place when one exists. The classifier never drops; without it
    /// the setup lanes (issued cookies, association ports) stay empty and `guard_n2` limits setup
    /// as before, so a failure here is reported, not fatal (see `runner::prepare`).
    pub fn attach_egress(&mut self, iface: &str) -> Result<Attachment, LoadError> {
        require_interface(iface)?;
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(PROG_N2_EGRESS)
            .ok_or(LoadError::MissingProgram(PROG_N2_EGRESS))?
            .try_into()
            .map_err(|source| LoadError::Program { what: "guard_n2_egress is not a classifier", source })?;
        prog.load().map_err(|e| match e {
            ProgramError::LoadError { io_error, verifier_log } => {
                LoadError::Verifier { prog: PROG_N2_EGRESS, io_error, log: verifier_log.to_string() }
            }
            source => LoadError::Program { what: "loading guard_n2_egress", source },
        })?;
        let lp = egress_link_path(&self.pins);
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
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(PROG_N2_EGRESS)
            .ok_or(LoadError::MissingProgram(PROG_N2_EGRESS))?
            .try_into()
            .map_err(|source| LoadError::Program { what: "guard_n2_egress is not a classifier", source })?;
        if prog.fd().is_err() {
            prog.load().map_err(|e| match e {
                ProgramError::LoadError { io_error, verifier_log } => {
                    LoadError::Verifier { prog: PROG_N2_EGRESS, io_error, log: verifier_log.to_string() }
                }
                source => LoadError::Program { what: "loading guard_n2_egress", source },
            })?;
        }
        Ok(prog)
    }
}

/// Remove the pinned N2 links (XDP and the egress classifier) and, with `purge`, every pin in the
/// N2 directory.
pub fn detach(pins: &PinDir, purge: bool) -> Result<bool, LoadError> {
    let lp = link_path(pins);
    let had = lp.exists();
    if had {
        std::fs::remove_file(&lp).map_err(|source| PinError::Io { path: lp.clone(), source })?;
    }
    let ep = egress_link_path(pins);
    if ep.exists() {
        std::fs::remove_file(&ep).map_err(|source| PinError::Io { path: ep.clone(), source })?;
    }
    if purge {
        pins.purge()?;
    }
    Ok(had)
}

fn err(name: &'static str) -> impl Fn(MapError) -> MapsError {
    move |source| MapsError::Map { name, source }
}

/// Handles on the N2 maps (not the ring buffer, which a controller takes itself).
pub struct N2Maps {
    pub meta: Array<MapData, Meta>,
    pub config: Array<MapData, N2Config>,
    pub peers: HashMap<MapData, L3Addr, N2PeerState>,
    pub peer_stages: HashMap<MapData, L3Addr, StageEntry>,
    pub allow: HashMap<MapData, L3Addr, u32>,
    pub cells: HashMap<MapData, N2CellKey, N2CellState>,
    pub devices: HashMap<MapData, N2DeviceKey, N2DeviceState>,
    pub verdicts: PerCpuArray<MapData, Counter>,
    pub shadow: PerCpuArray<MapData, Counter>,
    pub malformed: PerCpuArray<MapData, Counter>,
    pub stats: PerCpuArray<MapData, Counter>,
    pub cookies: HashMap<MapData, N2TagKey, u64>,
    pub assoc: HashMap<MapData, N2PortKey, N2AssocState>,
    pub alias: HashMap<MapData, L3Addr, L3Addr>,
}

fn optional<T>(r: Result<T, MapError>, name: &'static str) -> Result<Option<T>, MapsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(MapsError::Map { name, source: e }),
    }
}

impl N2Maps {
    /// Open the pinned maps of a running (or stopped) N2 guard.
    pub fn open_pinned(pins: &PinDir) -> Result<Self, MapsError> {
        Self::open(&mut |name| {
            let path = pins.map_path(name);
            if !path.exists() {
                return Err(MapsError::Missing(name));
            }
            let data = MapData::from_pin(&path).map_err(err(name))?;
            Map::from_map_data(data).map_err(err(name))
        })
    }

    /// Take the maps out of a loaded object (the program keeps its own kernel references).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self, MapsError> {
        Self::open(&mut |name| ebpf.take_map(name).ok_or(MapsError::Missing(name)))
    }

    fn open(get: &mut dyn FnMut(&'static str) -> Result<Map, MapsError>) -> Result<Self, MapsError> {
        Ok(N2Maps {
            meta: Array::try_from(get(abi::MAP_META)?).map_err(err(abi::MAP_META))?,
            config: Array::try_from(get(MAP_N2_CONFIG)?).map_err(err(MAP_N2_CONFIG))?,
            peers: HashMap::try_from(get(MAP_N2_PEERS)?).map_err(err(MAP_N2_PEERS))?,
            peer_stages: HashMap::try_from(get(MAP_N2_PEER_STAGES)?).map_err(err(MAP_N2_PEER_STAGES))?,
            allow: HashMap::try_from(get(MAP_N2_ALLOW)?).map_err(err(MAP_N2_ALLOW))?,
            cells: HashMap::try_from(get(MAP_N2_CELLS)?).map_err(err(MAP_N2_CELLS))?,
            devices: HashMap::try_from(get(MAP_N2_DEVICES)?).map_err(err(MAP_N2_DEVICES))?,
            verdicts: PerCpuArray::try_from(get(MAP_N2_VERDICTS)?).map_err(err(MAP_N2_VERDICTS))?,
            shadow: PerCpuArray::try_from(get(MAP_N2_SHADOW)?).map_err(err(MAP_N2_SHADOW))?,
            malformed: PerCpuArray::try_from(get(MAP_N2_MALFORMED)?).map_err(err(MAP_N2_MALFORMED))?,
            stats: PerCpuArray::try_from(get(MAP_N2_STATS)?).map_err(err(MAP_N2_STATS))?,
            cookies: HashMap::try_from(get(MAP_N2_COOKIES)?).map_err(err(MAP_N2_COOKIES))?,
            assoc: HashMap::try_from(get(MAP_N2_ASSOC)?).map_err(err(MAP_N2_ASSOC))?,
            alias: HashMap::try_from(get(MAP_N2_ALIAS)?).map_err(err(MAP_N2_ALIAS))?,
        })
    }

    pub fn write_config(&mut self, cfg: &N2Config) -> Result<(), MapsError> {
        self.config.set(0, cfg, 0).map_err(err(MAP_N2_CONFIG))
    }

    pub fn config(&self) -> Result<N2Config, MapsError> {
        self.config.get(&0, 0).map_err(err(MAP_N2_CONFIG))
    }

    fn sum(arr: &PerCpuArray<MapData, Counter>, name: &'static str, n: u32) -> Result<Vec<Counter>, MapsError> {
        (0..n)
            .map(|i| {
                let per_cpu = arr.get(&i, 0).map_err(err(name))?;
                Ok(per_cpu.iter().fold(Counter::default(), |a, c| Counter {
                    packets: a.packets + c.packets,
                    bytes: a.bytes + c.bytes,
                }))
            })
            .collect()
    }

    /// Packets and bytes per verdict, summed over CPUs.
    pub fn verdicts(&self) -> Result<Vec<(N2Verdict, Counter)>, MapsError> {
        let v = Self::sum(&self.verdicts, MAP_N2_VERDICTS, N2Verdict::COUNT)?;
        Ok(N2Verdict::ALL.iter().copied().zip(v).collect())
    }

    pub fn shadow(&self) -> Result<Vec<(N2Verdict, Counter)>, MapsError> {
        let v = Self::sum(&self.shadow, MAP_N2_SHADOW, N2Verdict::COUNT)?;
        Ok(N2Verdict::ALL.iter().copied().zip(v).collect())
    }

    pub fn malformed(&self) -> Result<Vec<(N2Malformed, Counter)>, MapsError> {
        let v = Self::sum(&self.malformed, MAP_N2_MALFORMED, N2Malformed::COUNT)?;
        Ok(N2Malformed::ALL.iter().copied().zip(v).collect())
    }

    /// The `N2_STAT_*` counters, summed over CPUs.
    pub fn stats(&self) -> Result<Vec<Counter>, MapsError> {
        Self::sum(&self.stats, MAP_N2_STATS, N2_STAT_COUNT)
    }

    pub fn peer(&self, peer: &L3Addr) -> Result<Option<N2PeerState>, MapsError> {
        optional(self.peers.get(peer, 0), MAP_N2_PEERS)
    }

    pub fn peers(&self) -> Vec<(L3Addr, N2PeerState)> {
        crate::bpf::maps::whole(&self.peers)
    }

    pub fn peer_stage(&self, peer: &L3Addr) -> Result<Option<StageEntry>, MapsError> {
        optional(self.peer_stages.get(peer, 0), MAP_N2_PEER_STAGES)
    }

    pub fn set_peer_stage(&mut self, peer: &L3Addr, e: &StageEntry) -> Result<(), MapsError> {
        self.peer_stages.insert(peer, e, 0).map_err(err(MAP_N2_PEER_STAGES))
    }

    pub fn clear_peer_stage(&mut self, peer: &L3Addr) -> Result<bool, MapsError> {
        match self.peer_stages.remove(peer) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(MapsError::Map { name: MAP_N2_PEER_STAGES, source: e }),
        }
    }

    /// Every peer's setup stage (`N2_PEER_STAGES`).
    pub fn peer_stages(&self) -> Vec<(L3Addr, StageEntry)> {
        crate::bpf::maps::whole(&self.peer_stages)
    }

    /// The allow-listed peers (`N2_ALLOW`).
    pub fn allowed(&self) -> Vec<L3Addr> {
        crate::bpf::maps::whole(&self.allow).into_iter().map(|(a, _)| a).collect()
    }

    pub fn allow_peer(&mut self, peer: &L3Addr) -> Result<(), MapsError> {
        self.allow.insert(peer, 1, 0).map_err(err(MAP_N2_ALLOW))
    }

    pub fn disallow_peer(&mut self, peer: &L3Addr) -> Result<bool, MapsError> {
        match self.allow.remove(peer) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(MapsError::Map { name: MAP_N2_ALLOW, source: e }),
        }
    }

    /// Association ports the egress classifier has seen (`N2_ASSOC`).
    pub fn assoc_ports(&self) -> Vec<(N2PortKey, N2AssocState)> {
        crate::bpf::maps::whole(&self.assoc)
    }

    pub fn assoc_port(&self, key: &N2PortKey) -> Result<Option<N2AssocState>, MapsError> {
        optional(self.assoc.get(key, 0), MAP_N2_ASSOC)
    }

    /// Other addresses of multi-homed peers and their primary (`N2_ALIAS`).
    pub fn aliases(&self) -> Vec<(L3Addr, L3Addr)> {
        crate::bpf::maps::whole(&self.alias)
    }

    pub fn cookie_issued(&self, key: &N2TagKey) -> Result<Option<u64>, MapsError> {
        optional(self.cookies.get(key, 0), MAP_N2_COOKIES)
    }

    pub fn cell(&self, key: &N2CellKey) -> Result<Option<N2CellState>, MapsError> {
        optional(self.cells.get(key, 0), MAP_N2_CELLS)
    }

    pub fn cells(&self) -> Vec<(N2CellKey, N2CellState)> {
        crate::bpf::maps::whole(&self.cells)
    }

    pub fn device(&self, key: &N2DeviceKey) -> Result<Option<N2DeviceState>, MapsError> {
        optional(self.devices.get(key, 0), MAP_N2_DEVICES)
    }

    /// The whole device map, read in batches (see [`crate::bpf::batch`]).
    pub fn devices(&self) -> Vec<(N2DeviceKey, N2DeviceState)> {
        crate::bpf::maps::whole(&self.devices)
    }
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
