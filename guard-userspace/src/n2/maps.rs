//! Typed access to `guard_n2`'s maps, from a freshly loaded [`aya::Ebpf`] or from the pins of a
//! running guard (`guard status`, the lab's checks).

use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    Ebpf,
};
use guard_common::{
    abi::{self, n2::N2StageEntry as StageEntry, Counter, L3Addr, Meta},
    abi_n2::*,
    parse::n2::N2Malformed,
    policy_n2::N2Verdict,
};

use crate::bpf::{
    maps::{err, optional, sum_counters, whole, MapSource, MapsError, Pinned, Taken},
    pins::PinDir,
};

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

impl N2Maps {
    /// Open the pinned maps of a running (or stopped) N2 guard, only when their `GUARD_META` is
    /// this build's (as `N3Maps::open_pinned`).
    pub fn open_pinned(pins: &PinDir) -> Result<Self, MapsError> {
        let want = n2_meta();
        pins.check(&crate::bpf::pins::Expected {
            program: want.program,
            schema: want.schema_version,
            compatible: &[],
            layout: want.layout,
            specs: Vec::new(),
        })?;
        Self::open(&mut Pinned(pins))
    }

    /// Take the maps out of a loaded object (the program keeps its own kernel references).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self, MapsError> {
        Self::open(&mut Taken(ebpf))
    }

    fn open(src: &mut dyn MapSource) -> Result<Self, MapsError> {
        let mut get = |name| src.map(name);
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

    /// Packets and bytes per verdict, summed over CPUs.
    pub fn verdicts(&self) -> Result<Vec<(N2Verdict, Counter)>, MapsError> {
        let v = sum_counters(&self.verdicts, MAP_N2_VERDICTS, N2Verdict::COUNT)?;
        Ok(N2Verdict::ALL.iter().copied().zip(v).collect())
    }

    pub fn shadow(&self) -> Result<Vec<(N2Verdict, Counter)>, MapsError> {
        let v = sum_counters(&self.shadow, MAP_N2_SHADOW, N2Verdict::COUNT)?;
        Ok(N2Verdict::ALL.iter().copied().zip(v).collect())
    }

    pub fn malformed(&self) -> Result<Vec<(N2Malformed, Counter)>, MapsError> {
        let v = sum_counters(&self.malformed, MAP_N2_MALFORMED, N2Malformed::COUNT)?;
        Ok(N2Malformed::ALL.iter().copied().zip(v).collect())
    }

    /// The `N2_STAT_*` counters, summed over CPUs.
    pub fn stats(&self) -> Result<Vec<Counter>, MapsError> {
        sum_counters(&self.stats, MAP_N2_STATS, N2_STAT_COUNT)
    }

    pub fn peer(&self, peer: &L3Addr) -> Result<Option<N2PeerState>, MapsError> {
        optional(self.peers.get(peer, 0), MAP_N2_PEERS)
    }

    pub fn peers(&self) -> Vec<(L3Addr, N2PeerState)> {
        whole(&self.peers)
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
        whole(&self.peer_stages)
    }

    /// The allow-listed peers (`N2_ALLOW`).
    pub fn allowed(&self) -> Vec<L3Addr> {
        whole(&self.allow).into_iter().map(|(a, _)| a).collect()
    }

    pub fn allow_peer(&mut self, peer: &L3Addr) -> Result<(), MapsError> {
        self.allow.insert(peer, 1, 0).map_err(err(MAP_N2_ALLOW))
    }

    /// Make `N2_ALLOW` exactly `want`: every address of it added first (none of them is ever out
    /// of the list meanwhile), then every other removed. The map is pinned and outlives a
    /// restart, so an address taken off the configuration's list must leave the map too, or that
    /// source would still be admitted. Returns the addresses removed.
    pub fn set_allow(&mut self, want: &[L3Addr]) -> Result<Vec<L3Addr>, MapsError> {
        for peer in want {
            self.allow_peer(peer)?;
        }
        let want: std::collections::HashSet<&L3Addr> = want.iter().collect();
        let stale: Vec<L3Addr> = self.allowed().into_iter().filter(|a| !want.contains(a)).collect();
        for peer in &stale {
            self.disallow_peer(peer)?;
        }
        Ok(stale)
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
        whole(&self.assoc)
    }

    pub fn assoc_port(&self, key: &N2PortKey) -> Result<Option<N2AssocState>, MapsError> {
        optional(self.assoc.get(key, 0), MAP_N2_ASSOC)
    }

    /// Other addresses of multi-homed peers and their primary (`N2_ALIAS`).
    pub fn aliases(&self) -> Vec<(L3Addr, L3Addr)> {
        whole(&self.alias)
    }

    pub fn cookie_issued(&self, key: &N2TagKey) -> Result<Option<u64>, MapsError> {
        optional(self.cookies.get(key, 0), MAP_N2_COOKIES)
    }

    pub fn cell(&self, key: &N2CellKey) -> Result<Option<N2CellState>, MapsError> {
        optional(self.cells.get(key, 0), MAP_N2_CELLS)
    }

    pub fn cells(&self) -> Vec<(N2CellKey, N2CellState)> {
        whole(&self.cells)
    }

    pub fn device(&self, key: &N2DeviceKey) -> Result<Option<N2DeviceState>, MapsError> {
        optional(self.devices.get(key, 0), MAP_N2_DEVICES)
    }

    /// The whole device map, read in batches (see [`crate::bpf::batch`]).
    pub fn devices(&self) -> Vec<(N2DeviceKey, N2DeviceState)> {
        whole(&self.devices)
    }
}
