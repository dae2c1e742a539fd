//! Load the N3 XDP program with its maps pinned, attach it (native, falling back to generic), and
//! keep the attachment in a pinned link so a restart re-uses maps and link instead of resetting.

use std::path::{Path, PathBuf};

use aya::{
    programs::{links::FdLink, links::PinnedLink, ProgramError, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use guard_common::abi::{self, GuardConfig, Meta, META_PROG_N3};
use tracing::{info, warn};

use crate::{
    n3::chain::{self, ChainError, IntoSlot},
    n3::maps::{MapsError, N3Maps},
    pins::{PinDir, PinError, PinState},
};

/// The XDP object, built by `build.rs` (see it for the toolchain). 8-byte aligned for the ELF
/// parser.
static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/guard-ebpf.o")));

#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

pub fn object() -> &'static [u8] {
    &OBJECT.0
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the guard needs root (CAP_BPF and CAP_NET_ADMIN) to load XDP programs; run it as root")]
    NotRoot,
    #[error("interface {0:?} does not exist (see `ip link`); in a namespace, run the guard inside it")]
    UnknownInterface(String),
    #[error("no pinned XDP link at {0}: the guard is not attached there; start it with `guard run`")]
    NotAttached(PathBuf),
    #[error(transparent)]
    Pins(#[from] PinError),
    #[error("loading the BPF object failed: {0}")]
    Object(#[source] aya::EbpfError),
    #[error("the program {0} is missing from the BPF object (a build problem)")]
    MissingProgram(&'static str),
    #[error("the kernel verifier rejected {prog}: {io_error}\n--- verifier log ---\n{log}")]
    Verifier { prog: &'static str, io_error: std::io::Error, log: String },
    #[error("{what}: {source}")]
    Program { what: &'static str, source: ProgramError },
    #[error("{what}: {source}")]
    Link { what: &'static str, source: aya::programs::links::LinkError },
    #[error("pinning the XDP link at {path}: {source}")]
    PinLink { path: PathBuf, source: aya::pin::PinError },
    #[error(transparent)]
    Maps(#[from] MapsError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(
        "the guard is not in slot {slot} of {array}: {why}; start it with `guard run` ([attach] into places it there)"
    )]
    NotInSlot { array: PathBuf, slot: u32, why: &'static str },
    #[error(
        "interface {iface} already runs the XDP program {occupant}; the guard does not replace another program. \
         Remove it first (`ip link set dev {iface} xdp off`, or detach it with the tool that attached it)"
    )]
    Occupied { iface: String, occupant: String },
}

/// The XDP program already attached to `iface` (in the calling thread's network namespace), as
/// `name (id N, mode)`, read with `ip -j -d link show`; None when there is none or it cannot be
/// told. A pinned link of our own is re-used before this is asked.
pub fn xdp_occupant(iface: &str) -> Option<String> {
    let out = std::process::Command::new("ip").args(["-j", "-d", "link", "show", "dev", iface]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let xdp = v.get(0)?.get("xdp")?;
    let prog = xdp.get("prog").or_else(|| xdp.get("attached")?.get(0)?.get("prog"))?;
    let mode = match xdp.get("mode").and_then(serde_json::Value::as_u64) {
        Some(1) => "native",
        Some(2) => "generic",
        Some(3) => "offloaded",
        _ => "unknown mode",
    };
    Some(format!(
        "{} (id {}, {mode})",
        prog.get("name").and_then(serde_json::Value::as_str).unwrap_or("unnamed"),
        prog.get("id").and_then(serde_json::Value::as_u64).unwrap_or(0)
    ))
}

/// How the program got attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// An existing pinned link now runs the new program (restart without a gap).
    ReusedLink,
    Native,
    /// Native XDP was refused by the driver; generic (SKB) XDP is slower but equivalent.
    Generic,
    /// Not attached to the interface: placed in a slot of another root's program array
    /// (`[attach] into`).
    IntoSlot,
}

/// Which XDP mode to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModeRequest {
    /// Native, falling back to generic.
    #[default]
    Auto,
    Native,
    Generic,
}

pub fn require_root() -> Result<(), LoadError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LoadError::NotRoot);
    }
    Ok(())
}

pub fn require_interface(iface: &str) -> Result<u32, LoadError> {
    let c = std::ffi::CString::new(iface).map_err(|_| LoadError::UnknownInterface(iface.into()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(LoadError::UnknownInterface(iface.into()));
    }
    Ok(idx)
}

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

/// Point the XDP link pinned at `link_path` at `prog` (`BPF_LINK_UPDATE`: atomic, no attach gap).
/// The link stays pinned; our handle to it is dropped without detaching.
pub fn update_pinned_link(prog: &mut Xdp, link_path: &Path) -> Result<(), LoadError> {
    let pinned = PinnedLink::from_pin(link_path)
        .map_err(|source| LoadError::Link { what: "opening the pinned link", source })?;
    let fd_link: FdLink = pinned.into();
    let xdp_link = aya::programs::xdp::XdpLink::try_from(fd_link)
        .map_err(|source| LoadError::Link { what: "the pinned link is not an XDP link", source })?;
    let id = prog
        .attach_to_link(xdp_link)
        .map_err(|source| LoadError::Program { what: "updating the pinned link", source })?;
    let link = prog.take_link(id).map_err(|source| LoadError::Program { what: "taking the XDP link", source })?;
    drop(link);
    Ok(())
}

fn attach_mode(prog: &mut Xdp, iface: &str, mode: XdpMode) -> Result<aya::programs::xdp::XdpLinkId, LoadError> {
    prog.attach(iface, mode).map_err(|source| match source {
        ProgramError::UnknownInterface { name } => LoadError::UnknownInterface(name),
        source => LoadError::Program { what: "attaching XDP", source },
    })
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
