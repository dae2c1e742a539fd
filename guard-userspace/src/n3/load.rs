//! Load the N3 XDP program with its maps pinned, attach it (native, falling back to generic), and
//! keep the attachment in a pinned link so a restart re-uses maps and link instead of resetting.

use std::path::{Path, PathBuf};

use aya::{maps::MapType, programs::Xdp, Ebpf, EbpfLoader};
use guard_common::{
    abi::{self, GuardConfig, Meta, META_PROG_N3},
    parse::Malformed,
    policy::Verdict,
};
use tracing::info;

use crate::{
    bpf::{
        link::{attach_pinned, unpin_link, update_pinned_link, Attachment, ModeRequest},
        object::{load_error, object, program_mut, require_interface, LoadError},
        pins::{size, spec, Expected, MapSpec, PinDir, PinError, PinState},
    },
    n3::{
        chain::{self, IntoSlot},
        maps::N3Maps,
    },
};

/// Every pinned map of the N3 program, as this build lays them out.
pub fn n3_specs(max_devices: u32) -> Vec<MapSpec> {
    use abi::*;
    vec![
        spec(MAP_META, MapType::Array, 4, size::<Meta>(), 1),
        spec(MAP_N3_CONFIG, MapType::Array, 4, size::<GuardConfig>(), 1),
        spec(MAP_N3_DEVICES, MapType::LruHash, size::<DeviceId>(), size::<DeviceState>(), max_devices),
        spec(MAP_N3_STAGES, MapType::Hash, size::<DeviceId>(), size::<StageEntry>(), DEFAULT_MAX_STAGED),
        spec(MAP_N3_CELLS, MapType::LruHash, size::<CellKey>(), size::<CellRecord>(), DEFAULT_MAX_CELLS),
        spec(MAP_N3_CELL_HOT, MapType::Array, 4, size::<CellHot>(), CELL_SLOTS),
        spec(MAP_N3_CELL_PCPU, MapType::PerCpuArray, 4, size::<CellCounts>(), CELL_SLOTS),
        spec(MAP_N3_CELL_STAGES, MapType::Hash, size::<CellKey>(), size::<CellStageEntry>(), DEFAULT_MAX_CELL_STAGES),
        spec(MAP_N3_VERDICTS, MapType::PerCpuArray, 4, size::<Counter>(), Verdict::COUNT),
        spec(MAP_N3_SHADOW, MapType::PerCpuArray, 4, size::<Counter>(), Verdict::COUNT),
        spec(MAP_N3_MALFORMED, MapType::PerCpuArray, 4, size::<Counter>(), Malformed::COUNT),
        spec(MAP_N3_STATS, MapType::PerCpuArray, 4, size::<Counter>(), STAT_COUNT),
        spec(MAP_N3_PERCPU_TAT, MapType::PerCpuArray, 4, size::<abi::N3TatSlot>(), 1),
        spec(MAP_N3_EVENTS, MapType::RingBuf, 0, 0, EVENTS_RING_BYTES),
        spec(MAP_N3_HINTS, MapType::Array, 4, size::<u64>(), HINT_COUNT),
        spec(MAP_N3_FRAGS, MapType::LruHash, size::<FragKey>(), size::<FragEntry>(), DEFAULT_MAX_FRAGS),
        spec(MAP_N3_SEEN, MapType::Array, 4, size::<[u64; SEEN_ENTRY_WORDS]>(), SEEN_ENTRIES),
        spec(MAP_N3_STAGED, MapType::Array, 4, size::<u64>(), STAGED_WORDS),
        spec(MAP_N3_UNKNOWN_GNB, MapType::PerCpuArray, 4, size::<CellRecord>(), 1),
        spec(MAP_N3_UNKNOWN_HOT, MapType::PerCpuArray, 4, size::<CellCounts>(), 1),
        spec(MAP_N3_LOCAL, MapType::Array, 4, size::<LocalAddr>(), LOCAL_SLOTS),
        spec(MAP_N3_FRAMED, MapType::LpmTrie, 4 + 16, 4, DEFAULT_MAX_FRAMED),
        spec(MAP_N3_NEXT, MapType::ProgramArray, 4, 4, 1),
        spec(MAP_N3_CHAIN, MapType::Array, 4, size::<ChainConfig>(), 1),
    ]
}

/// The state of an interface's pin directory.
/// What this build expects of an N3 pin directory; `max_devices` is the capacity the operator
/// asked for.
pub fn expected(max_devices: u32) -> Expected {
    Expected {
        program: META_PROG_N3,
        schema: abi::SCHEMA_VERSION,
        compatible: abi::COMPATIBLE_SCHEMAS,
        layout: abi::layout_fingerprint(),
        specs: n3_specs(max_devices),
    }
}

/// Compare what is pinned in `pins` with this build's N3 layout.
pub fn check(pins: &PinDir, max_devices: u32) -> Result<PinState, PinError> {
    pins.check(&expected(max_devices))
}

/// A loaded (not necessarily attached) N3 program with its maps.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub pins: PinDir,
    pub state: PinState,
    /// `guard_n3`, or `guard_n3_replay` in a replay's load.
    prog: &'static str,
}

/// The N2 maps with a capacity of their own (the ring buffer's is a page multiple, kept).
const N2_MAPS_UNUSED_BY_N3: [&str; 9] = {
    use guard_common::abi_n2::*;
    [
        MAP_N2_PEERS,
        MAP_N2_PEER_STAGES,
        MAP_N2_ALLOW,
        MAP_N2_CELLS,
        MAP_N2_DEVICES,
        MAP_N2_COOKIES,
        MAP_N2_ASSOC,
        MAP_N2_VTAGS,
        MAP_N2_ALIAS,
    ]
};

/// Load the object with every map pinned under `pins` (re-using compatible pins), load `guard_n3`
/// into the kernel, then write META and the data-plane config.
pub fn load(pins: &PinDir, max_devices: u32, cfg: &GuardConfig) -> Result<Loaded, LoadError> {
    load_object(pins, max_devices, cfg, object())
}

/// [`load`] with another object file (e.g. a newer build, `guard upgrade --object`). The program is
/// verified before anything is written: a program the kernel refuses leaves META, the config and
/// whatever is attached exactly as they were.
pub fn load_object(pins: &PinDir, max_devices: u32, cfg: &GuardConfig, obj: &[u8]) -> Result<Loaded, LoadError> {
    load_with(pins, max_devices, Some(cfg), obj, abi::PROG_N3)
}

/// [`load_object`] for `guard upgrade`: against the pinned maps of a running guard, whose
/// configuration record is left as it is. It is the running controller's (its reloads, the host
/// cap it sets, the N3 address count): a program swap is no configuration change, and a CLI
/// without the running file (or with an edited one) must not switch a shadow host to enforce.
/// Refused without pinned maps (there is no configuration to keep).
pub fn load_upgrade(pins: &PinDir, max_devices: u32, obj: &[u8]) -> Result<Loaded, LoadError> {
    if check(pins, max_devices)? == PinState::Fresh {
        return Err(LoadError::NotAttached(pins.path().to_path_buf()));
    }
    load_with(pins, max_devices, None, obj, abi::PROG_N3)
}

/// [`load`] for `guard replay` (docs/replay.md): `guard_n3_replay`, `guard_n3` on the clock the
/// replay writes (`abi::GLOBAL_REPLAY_NOW`). `pins` must be a directory of the replay's own,
/// which the caller removes once loaded (aya pins the maps the object declares pinned; the
/// replay keeps them only through its descriptors). [`Loaded::program`] is the replay program.
pub fn load_replay(pins: &PinDir, max_devices: u32, cfg: &GuardConfig) -> Result<Loaded, LoadError> {
    load_with(pins, max_devices, Some(cfg), object(), abi::PROG_N3_REPLAY)
}

/// `cfg`: the configuration record to write, or `None` to keep the pinned one ([`load_upgrade`]).
fn load_with(
    pins: &PinDir,
    max_devices: u32,
    cfg: Option<&GuardConfig>,
    obj: &[u8],
    prog_name: &'static str,
) -> Result<Loaded, LoadError> {
    let state = check(pins, max_devices)?;
    pins.create()?;
    // N2's maps of the shared object: unused by guard_n3, kept tiny and not pinned here (an
    // earlier build pinned them; they go too).
    pins.unpin_foreign("N2_")?;
    let mut loader = EbpfLoader::new();
    loader.default_map_pin_directory(pins.path()).map_max_entries(abi::MAP_N3_DEVICES, max_devices);
    for m in N2_MAPS_UNUSED_BY_N3 {
        loader.map_max_entries(m, 1);
    }
    let mut ebpf = loader.load(obj).map_err(LoadError::Object)?;
    pins.unpin_foreign("N2_")?;
    if prog_name == abi::PROG_N3_REPLAY {
        // A replay keeps its maps through their descriptors only: unpinned before the program's
        // verification (seconds), so a replay killed meanwhile leaves no maps in bpffs.
        pins.purge()?;
    }
    let prog: &mut Xdp = program_mut(&mut ebpf, prog_name, "guard_n3 is not an XDP program")?;
    prog.load().map_err(load_error(prog_name, "loading guard_n3"))?;
    {
        let mut maps = N3Maps::from_ebpf_ref(&mut ebpf)?;
        maps.write_meta(&Meta::current(META_PROG_N3))?;
        if let Some(cfg) = cfg {
            maps.write_config(cfg)?;
        }
    }
    Ok(Loaded { ebpf, pins: pins.clone(), state, prog: prog_name })
}

impl Loaded {
    /// The loaded program: `guard_n3` (`guard_n3_replay` in a replay's load).
    pub fn program(&mut self) -> Result<&mut Xdp, LoadError> {
        program_mut(&mut self.ebpf, self.prog, "guard_n3 is not an XDP program")
    }

    /// Attach to `iface`. A pinned link from an earlier run is updated in place to run this
    /// program; otherwise a new link is created (native first when `mode` allows) and pinned, so
    /// the program stays attached when this process exits.
    pub fn attach(&mut self, iface: &str, mode: ModeRequest) -> Result<Attachment, LoadError> {
        require_interface(iface)?;
        let link_path = self.pins.link_path();
        // A link `guard detach` handed over to the next program (see [`detach_chained`]): take it
        // back, so the guard comes first again without a moment off the interface.
        let handover = chain::handover_link_path(&self.pins);
        if !link_path.exists() && handover.exists() {
            chain::repin(&handover, &link_path)?;
            info!(link = %link_path.display(), "taking back the link handed over to the next program");
        }
        attach_pinned(self.program()?, abi::PROG_N3, iface, mode, &link_path)
    }

    /// Replace the program behind the pinned link with this one, atomically (`BPF_LINK_UPDATE`):
    /// the interface runs the old program up to the update and this one from it, with no
    /// moment in between without a guard. Fails, changing nothing, when no link is pinned.
    pub fn upgrade(&mut self) -> Result<(), LoadError> {
        let link_path = self.pins.link_path();
        if !link_path.exists() {
            return Err(LoadError::NotAttached(link_path));
        }
        self.reuse_link(&link_path)
    }

    /// `[attach] into`: put this program in the operator's array slot instead of attaching to
    /// the interface. An earlier guard program there (a restart) is replaced atomically; any
    /// other program is left alone and refused.
    pub fn place_into(&mut self, into: &IntoSlot) -> Result<Attachment, LoadError> {
        let pins = self.pins.clone();
        let prog = self.program()?;
        let id = prog.info().map_err(|source| LoadError::Program { what: "reading guard_n3's id", source })?.id();
        let fd = prog.fd().map_err(|source| LoadError::Program { what: "guard_n3's descriptor", source })?;
        chain::place_into(&pins, into, fd, id)?;
        info!(array = %into.array.display(), slot = into.slot, id, "guard_n3 placed in the program array slot");
        Ok(Attachment::IntoSlot)
    }

    /// [`Loaded::upgrade`] for a guard inside another root: swap the program in the slot, which
    /// must hold the guard's (one map update: packets run the old or the new program).
    pub fn upgrade_into(&mut self, into: &IntoSlot) -> Result<(), LoadError> {
        let own = chain::own_prog_id(&self.pins).ok_or(LoadError::NotInSlot {
            array: into.array.clone(),
            slot: into.slot,
            why: "no n3_prog pin",
        })?;
        if chain::slot_prog_id(&into.array, into.slot)? != Some(own) {
            return Err(LoadError::NotInSlot {
                array: into.array.clone(),
                slot: into.slot,
                why: "the slot does not hold the guard's program",
            });
        }
        self.place_into(into).map(|_| ())
    }

    fn reuse_link(&mut self, link_path: &Path) -> Result<(), LoadError> {
        update_pinned_link(self.program()?, link_path)?;
        info!(link = %link_path.display(), "re-used the pinned XDP link: the new program replaced the old one in place");
        Ok(())
    }
}

/// What [`detach_chained`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Detached {
    /// The guard's link was removed from the interface.
    pub link: bool,
    /// The interface now runs the next program (id) through the link pinned at this path.
    pub handed_over: Option<(u32, PathBuf)>,
    /// The guard's program was taken out of the operator's array slot.
    pub slot: bool,
}

/// `guard detach` with chaining: remove only what the guard added, and leave the other program
/// running.
/// - Guard first, with a next program in `N3_NEXT`: the interface's link is switched to run the
///   next program (`BPF_LINK_UPDATE`, no gap) and moved out of the pin directory
///   ([`chain::handover_link_path`]; a later `guard run` takes it back); the slot is emptied, the
///   configured path kept (unless `purge`).
/// - Guard inside a root (`into`): the slot is emptied if it holds the guard's program; the root
///   goes on alone.
pub fn detach_chained(pins: &PinDir, purge: bool, into: Option<&IntoSlot>) -> Result<Detached, LoadError> {
    let mut out = Detached::default();
    if let Some(into) = into {
        out.slot = chain::remove_from(pins, into)?;
    }
    let link_path = pins.link_path();
    let next_map = pins.map_path(abi::MAP_N3_NEXT);
    if link_path.exists() && next_map.exists() {
        if let Some(next_id) = chain::slot_prog_id(&next_map, 0)? {
            let path = chain::next_path(&chain::read_config(pins)?);
            if let Some(path) = path.filter(|p| chain::resolve(p).ok().flatten().is_some_and(|n| n.id == next_id)) {
                chain::update_link_to(&link_path, &path)?;
                let to = chain::handover_link_path(pins);
                chain::repin(&link_path, &to)?;
                info!(link = %to.display(), next = %path.display(), "the interface now runs the next program");
                out.handed_over = Some((next_id, to));
            }
        }
    }
    if next_map.exists() {
        chain::clear_slot_pub(&next_map)?;
    }
    out.link = detach(pins, purge)? || out.handed_over.is_some();
    Ok(out)
}

/// Detach: remove the pinned link (the program leaves the interface once no one holds it) and,
/// with `purge`, every pinned map (all counters, bindings and stages are lost).
pub fn detach(pins: &PinDir, purge: bool) -> Result<bool, LoadError> {
    let had_link = unpin_link(&pins.link_path())?;
    if purge {
        pins.purge()?;
    }
    Ok(had_link)
}
