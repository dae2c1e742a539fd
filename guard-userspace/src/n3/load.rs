//! Load the N3 XDP program with its maps pinned, attach it (native, falling back to generic), and
//! keep the attachment in a pinned link so a restart re-uses maps and link instead of resetting.

use std::path::{Path, PathBuf};

use aya::{
    programs::{links::FdLink, ProgramError, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use guard_common::abi::{self, GuardConfig, Meta, META_PROG_N3};
use tracing::{info, warn};

use crate::{
    bpf::{
        link::{attach_mode, update_pinned_link, xdp_occupant, Attachment, ModeRequest},
        object::{object, require_interface, LoadError},
        pins::{PinDir, PinError, PinState},
    },
    n3::{
        chain::{self, IntoSlot},
        maps::N3Maps,
    },
};

/// A loaded (not necessarily attached) N3 program with its maps.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub pins: PinDir,
    pub state: PinState,
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
    let state = pins.check(max_devices)?;
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
    let prog: &mut Xdp = ebpf
        .program_mut(abi::PROG_N3)
        .ok_or(LoadError::MissingProgram(abi::PROG_N3))?
        .try_into()
        .map_err(|source| LoadError::Program { what: "guard_n3 is not an XDP program", source })?;
    prog.load().map_err(|e| match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            LoadError::Verifier { prog: abi::PROG_N3, io_error, log: verifier_log.to_string() }
        }
        source => LoadError::Program { what: "loading guard_n3", source },
    })?;
    {
        let mut maps = N3Maps::from_ebpf_ref(&mut ebpf)?;
        maps.write_meta(&Meta::current(META_PROG_N3))?;
        maps.write_config(cfg)?;
    }
    Ok(Loaded { ebpf, pins: pins.clone(), state })
}

impl Loaded {
    pub fn program(&mut self) -> Result<&mut Xdp, LoadError> {
        self.ebpf
            .program_mut(abi::PROG_N3)
            .ok_or(LoadError::MissingProgram(abi::PROG_N3))?
            .try_into()
            .map_err(|source| LoadError::Program { what: "guard_n3 is not an XDP program", source })
    }

    /// Attach to `iface`. A pinned link from an earlier run is updated in place to run this
    /// program; otherwise a new link is created (native first when `mode` allows) and pinned, so
    /// the program stays attached when this process exits.
    pub fn attach(&mut self, iface: &str, mode: ModeRequest) -> Result<Attachment, LoadError> {
        require_interface(iface)?;
        let link_path = self.pins.link_path();
        // A link `guard detach` handed over to the next program (see [`detach_into`]): take it
        // back, so the guard comes first again without a moment off the interface.
        let handover = chain::handover_link_path(&self.pins);
        if !link_path.exists() && handover.exists() {
            chain::repin(&handover, &link_path)?;
            info!(link = %link_path.display(), "taking back the link handed over to the next program");
        }
        if link_path.exists() {
            match self.reuse_link(&link_path) {
                Ok(()) => return Ok(Attachment::ReusedLink),
                Err(e) => {
                    warn!(error = %e, path = %link_path.display(), "pinned XDP link is stale; replacing it");
                    let _ = std::fs::remove_file(&link_path);
                }
            }
        }
        if let Some(occupant) = xdp_occupant(iface) {
            return Err(LoadError::Occupied { iface: iface.to_owned(), occupant });
        }
        let prog = self.program()?;
        let (id, how) = match mode {
            ModeRequest::Native => (attach_mode(prog, iface, XdpMode::Driver)?, Attachment::Native),
            ModeRequest::Generic => (attach_mode(prog, iface, XdpMode::Skb)?, Attachment::Generic),
            ModeRequest::Auto => match attach_mode(prog, iface, XdpMode::Driver) {
                Ok(id) => (id, Attachment::Native),
                Err(e) => {
                    warn!(error = %e, iface, "native XDP refused; falling back to generic (SKB) mode");
                    (attach_mode(prog, iface, XdpMode::Skb)?, Attachment::Generic)
                }
            },
        };
        let link = prog.take_link(id).map_err(|source| LoadError::Program { what: "taking the XDP link", source })?;
        let fd_link: FdLink = link.try_into().map_err(|source| LoadError::Link {
            what: "the kernel gave a netlink XDP attachment, which cannot be pinned",
            source,
        })?;
        fd_link.pin(&link_path).map_err(|source| LoadError::PinLink { path: link_path.clone(), source })?;
        info!(iface, mode = ?how, link = %link_path.display(), "attached guard_n3");
        Ok(how)
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
    let link_path = pins.link_path();
    let had_link = link_path.exists();
    if had_link {
        std::fs::remove_file(&link_path).map_err(|source| PinError::Io { path: link_path.clone(), source })?;
    }
    if purge {
        pins.purge()?;
    }
    Ok(had_link)
}
