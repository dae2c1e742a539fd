//! Sharing the N3 NIC with another XDP program (issue 22), by tail call through program arrays,
//! in either direction (docs/operations.md, "Sharing the NIC with an XDP UPF"):
//!
//! - **the guard first** (`[attach] next`, `guard chain set|clear`): `guard_n3` hands the packets
//!   it passes to the program in slot 0 of its own `N3_NEXT`; userspace keeps that slot pointing
//!   at whatever is pinned at the configured path ([`sync_next`], every tick);
//! - **the guard inside another root** (`[attach] into = "PATH:SLOT"`): `guard_n3` is not
//!   attached to the interface; its program sits in a slot of the operator's pinned program
//!   array ([`place_into`]), and the root program decides when it runs.
//!
//! libxdp's multi-program dispatcher is the standard answer elsewhere, but it is built from
//! freplace (`BPF_PROG_TYPE_EXT`) programs, which these kernels refuse.
//!
//! Every slot change is one `BPF_MAP_UPDATE_ELEM` / `BPF_MAP_DELETE_ELEM` on a program array:
//! the kernel swaps the program pointer with `xchg` (`fd_array_map_update_elem`,
//! kernel/bpf/arraymap.c), so a packet runs either the old or the new program, never none.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, Map, MapData, MapInfo, MapType, ProgramArray},
    programs::{ProgramFd, ProgramInfo},
};
use guard_common::abi::{self, ChainConfig, CHAIN_FLAG_NEXT, CHAIN_PATH_MAX};

use crate::bpf::{
    pins::PinDir,
    sys::{bpf, BPF_LINK_UPDATE, BPF_MAP_LOOKUP_ELEM, BPF_OBJ_GET, BPF_OBJ_PIN},
};

/// `enum bpf_prog_type` value of XDP programs (include/uapi/linux/bpf.h).
const BPF_PROG_TYPE_XDP: u32 = 6;
/// File name of the guard's own program pin, when it runs inside another root's array.
pub const PROG_PIN: &str = "n3_prog";

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{path}: no such pin (the next program must be pinned in bpffs, e.g. `bpftool prog load OBJ {path}`)")]
    NoPin { path: PathBuf },
    #[error(
        "{path} is a program of type {found} (enum bpf_prog_type), not XDP (6); only an XDP program can be \
         tail-called from guard_n3 (same type, same attach type)"
    )]
    NotXdp { path: PathBuf, found: u32 },
    #[error("{path} is not a pinned BPF program ({what}): {source}")]
    NotProgram { path: PathBuf, source: Box<aya::programs::ProgramError>, what: String },
    #[error("{path} is not a pinned program array ({what})")]
    NotProgArray { path: PathBuf, what: String },
    #[error("slot {slot} is outside the program array {path} ({max} slots)")]
    SlotRange { path: PathBuf, slot: u32, max: u32 },
    #[error(
        "slot {slot} of {path} holds program id {occupant}, which is not the guard's; the guard does not \
         replace another program (choose a free slot, or empty it first)"
    )]
    SlotTaken { path: PathBuf, slot: u32, occupant: u32 },
    #[error(
        "the kernel refused the program in {what} ({source}); the programs of one program array must \
         agree in type, attach type, JIT and XDP frags support (e.g. both `xdp`, neither `xdp.frags`)"
    )]
    Update { what: String, source: Box<aya::maps::MapError> },
    #[error("{what}: {source}")]
    Map { what: String, source: Box<aya::maps::MapError> },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the path {0:?} is longer than {CHAIN_PATH_MAX} octets")]
    PathTooLong(PathBuf),
}

impl From<ChainError> for crate::bpf::object::LoadError {
    fn from(e: ChainError) -> Self {
        crate::bpf::object::LoadError::Chain(Box::new(e))
    }
}

/// The next program, as resolved from its pin.
#[derive(Debug)]
pub struct NextProg {
    pub id: u32,
    pub name: String,
    fd: ProgramFd,
}

/// Open the XDP program pinned at `path`. `Ok(None)` when nothing is pinned there.
pub fn resolve(path: &Path) -> Result<Option<NextProg>, ChainError> {
    if !path.exists() {
        return Ok(None);
    }
    // BPF_OBJ_GET opens any pinned object and BPF_OBJ_GET_INFO_BY_FD answers for any of them
    // (a map's info read as a program's is nonsense): tell them apart by the descriptor's anon
    // inode, `bpf-prog` or `bpf-map` (kernel/bpf/syscall.c).
    let fd = obj_get(path).map_err(|e| ChainError::Io { what: format!("opening {}", path.display()), source: e })?;
    let kind = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    if kind != "anon_inode:bpf-prog" {
        return Err(ChainError::NotProgram {
            path: path.into(),
            source: Box::new(aya::programs::ProgramError::UnexpectedProgramType),
            what: kind,
        });
    }
    let info = ProgramInfo::from_pin(path).map_err(|source| ChainError::NotProgram {
        path: path.into(),
        source: Box::new(source),
        what: "its info".into(),
    })?;
    let ty = info.program_type() as u32;
    if ty != BPF_PROG_TYPE_XDP {
        return Err(ChainError::NotXdp { path: path.into(), found: ty });
    }
    let fd = info.fd().map_err(|source| ChainError::NotProgram {
        path: path.into(),
        source: Box::new(source),
        what: "by id".into(),
    })?;
    Ok(Some(NextProg { id: info.id(), name: info.name_as_str().unwrap_or("").to_owned(), fd }))
}

/// [`resolve`] for display: the program's id and name, None when nothing (usable) is pinned.
pub fn resolve_quiet(path: Option<&Path>) -> Option<(u32, String)> {
    resolve(path?).ok().flatten().map(|n| (n.id, n.name))
}

fn map_err(what: impl Into<String>) -> impl FnOnce(aya::maps::MapError) -> ChainError {
    let what = what.into();
    move |source| ChainError::Map { what, source: Box::new(source) }
}

fn open_chain(pins: &PinDir) -> Result<Array<MapData, ChainConfig>, ChainError> {
    let path = pins.map_path(abi::MAP_N3_CHAIN);
    let data = MapData::from_pin(&path).map_err(map_err(format!("opening {}", path.display())))?;
    Array::try_from(Map::Array(data)).map_err(map_err(format!("{} is not N3_CHAIN", path.display())))
}

fn open_prog_array(path: &Path) -> Result<ProgramArray<MapData>, ChainError> {
    let data =
        MapData::from_pin(path).map_err(|e| ChainError::NotProgArray { path: path.into(), what: e.to_string() })?;
    ProgramArray::try_from(Map::ProgramArray(data))
        .map_err(|e| ChainError::NotProgArray { path: path.into(), what: e.to_string() })
}

/// The chain record of these pins (all zero: no next program).
pub fn read_config(pins: &PinDir) -> Result<ChainConfig, ChainError> {
    open_chain(pins)?.get(&0, 0).map_err(map_err("reading N3_CHAIN"))
}

/// The configured next path of a record, if any.
pub fn next_path(c: &ChainConfig) -> Option<PathBuf> {
    if c.flags & CHAIN_FLAG_NEXT == 0 {
        return None;
    }
    let end = c.next_path.iter().position(|&b| b == 0).unwrap_or(CHAIN_PATH_MAX);
    use std::os::unix::ffi::OsStrExt as _;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&c.next_path[..end])))
}

fn write_config(pins: &PinDir, c: &ChainConfig) -> Result<(), ChainError> {
    open_chain(pins)?.set(0, *c, 0).map_err(map_err("writing N3_CHAIN"))
}

/// What [`set_next`] or [`sync_next`] found and did.
#[derive(Debug, PartialEq, Eq)]
pub enum NextState {
    /// No next program configured: passed packets go to the kernel stack.
    Unset,
    /// The slot runs program `id` (`name`), pinned at the configured path.
    Linked { id: u32, name: String, changed: bool },
    /// Configured, but nothing is pinned there (any more): the slot is empty, packets pass.
    Gone { cleared: bool },
}

/// Hand passed packets to the XDP program pinned at `path` (`guard chain set`, `[attach] next`):
/// slot 0 of `N3_NEXT` first, then the flag that makes `guard_n3` try it, so no packet is
/// counted as a miss while the slot is being filled. The program must exist now.
pub fn set_next(pins: &PinDir, path: &Path) -> Result<NextState, ChainError> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > CHAIN_PATH_MAX {
        return Err(ChainError::PathTooLong(path.into()));
    }
    let next = resolve(path)?.ok_or_else(|| ChainError::NoPin { path: path.into() })?;
    let mut arr = open_prog_array(&pins.map_path(abi::MAP_N3_NEXT))?;
    arr.set(0, &next.fd, 0)
        .map_err(|source| ChainError::Update { what: "N3_NEXT".into(), source: Box::new(source) })?;
    let mut c = ChainConfig { flags: CHAIN_FLAG_NEXT, next_id: next.id, ..Default::default() };
    c.next_path[..bytes.len()].copy_from_slice(bytes);
    write_config(pins, &c)?;
    Ok(NextState::Linked { id: next.id, name: next.name, changed: true })
}

/// Configure `path` as the next program without requiring it to be pinned yet (`[attach] next`
/// at start and on SIGHUP: the UPF may pin its program after the guard starts), then resolve it.
pub fn configure(pins: &PinDir, path: &Path) -> Result<NextState, ChainError> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > CHAIN_PATH_MAX {
        return Err(ChainError::PathTooLong(path.into()));
    }
    let c = read_config(pins)?;
    if next_path(&c).as_deref() != Some(path) {
        let mut n = ChainConfig { flags: CHAIN_FLAG_NEXT, ..Default::default() };
        n.next_path[..bytes.len()].copy_from_slice(bytes);
        write_config(pins, &n)?;
    }
    sync_next(pins)
}

/// Stop handing packets on (`guard chain clear`): the flag first, then the slot. Whatever the
/// next program is, it is left as it was (the guard only drops its reference).
pub fn clear_next(pins: &PinDir) -> Result<(), ChainError> {
    write_config(pins, &ChainConfig::default())?;
    clear_slot(&pins.map_path(abi::MAP_N3_NEXT), 0)
}

/// Empty slot 0 of the guard's `N3_NEXT` at `path` (detach): the guard stops holding the next
/// program alive; the configured path stays for a restart.
pub fn clear_slot_pub(path: &Path) -> Result<(), ChainError> {
    clear_slot(path, 0)
}

fn clear_slot(path: &Path, slot: u32) -> Result<(), ChainError> {
    let mut arr = open_prog_array(path)?;
    match arr.clear_index(&slot) {
        Ok(()) => Ok(()),
        // An empty slot answers ENOENT: already what we want.
        Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(source) => {
            Err(ChainError::Update { what: format!("{} slot {slot}", path.display()), source: Box::new(source) })
        }
    }
}

/// Re-resolve the configured next program (every controller tick): a program pinned at the path
/// that is not the one in the slot (the UPF reloaded it) replaces it; a path with nothing pinned
/// empties the slot (the guard must not keep a removed program alive and running).
pub fn sync_next(pins: &PinDir) -> Result<NextState, ChainError> {
    let c = read_config(pins)?;
    let Some(path) = next_path(&c) else {
        return Ok(NextState::Unset);
    };
    let slot_id = slot_prog_id(&pins.map_path(abi::MAP_N3_NEXT), 0)?;
    match resolve(&path)? {
        Some(next) if slot_id == Some(next.id) => {
            Ok(NextState::Linked { id: next.id, name: next.name, changed: false })
        }
        Some(_) => set_next(pins, &path),
        None => {
            let cleared = slot_id.is_some() || c.next_id != 0;
            if cleared {
                clear_slot(&pins.map_path(abi::MAP_N3_NEXT), 0)?;
                write_config(pins, &ChainConfig { next_id: 0, ..c })?;
            }
            Ok(NextState::Gone { cleared })
        }
    }
}

/// The ID of the program in `slot` of the program array pinned at `path`, or None when the
/// slot is empty. `BPF_MAP_LOOKUP_ELEM` on a program array from userspace returns the program's
/// ID (`prog_fd_array_sys_lookup_elem`, kernel/bpf/arraymap.c); aya has no wrapper for it.
pub fn slot_prog_id(path: &Path, slot: u32) -> Result<Option<u32>, ChainError> {
    let data =
        MapData::from_pin(path).map_err(|e| ChainError::NotProgArray { path: path.into(), what: e.to_string() })?;
    let key = slot;
    let mut value: u32 = 0;
    // `union bpf_attr` for BPF_MAP_LOOKUP_ELEM: map_fd (u32, padded to 8), key, value, flags.
    #[repr(C)]
    struct LookupAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut attr = LookupAttr {
        map_fd: data.fd().as_fd().as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &mut value as *mut u32 as u64,
        flags: 0,
    };
    // SAFETY: `attr` is BPF_MAP_LOOKUP_ELEM's bpf_attr prefix; key and value point to live u32s
    // for the duration of the call (a program array's key and value are 4 octets).
    let e = match unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
        Ok(_) => return Ok(Some(value)),
        Err(e) => e,
    };
    if e.raw_os_error() == Some(libc::ENOENT) {
        return Ok(None);
    }
    Err(ChainError::Io { what: format!("reading slot {slot} of {}", path.display()), source: e })
}

pub use crate::config::IntoSlot;

/// Whether the guard's program sits in `into`'s slot; if the slot is empty (the operator's root
/// was restarted with a fresh array), put the guard back. Never touches a slot holding another
/// program. Every controller tick. The guard's program is the one pinned as `n3_prog` (a
/// `guard upgrade` by another process replaces it there and in the slot), else `prog` (`id`),
/// the one this controller loaded.
pub fn sync_into(pins: &PinDir, into: &IntoSlot, prog: &ProgramFd, id: u32) -> Result<IntoState, ChainError> {
    if !into.array.exists() {
        return Ok(IntoState::ArrayGone);
    }
    let pinned = ProgramInfo::from_pin(pins.path().join(PROG_PIN)).ok();
    let own = pinned.as_ref().map_or(id, ProgramInfo::id);
    match slot_prog_id(&into.array, into.slot)? {
        Some(x) if x == own || x == id => Ok(IntoState::InSlot { replaced: false }),
        Some(other) => Ok(IntoState::Taken(other)),
        None => {
            match pinned.and_then(|i| i.fd().ok()) {
                Some(fd) => place_into(pins, into, &fd, own)?,
                None => place_into(pins, into, prog, id)?,
            }
            Ok(IntoState::InSlot { replaced: true })
        }
    }
}

/// What [`sync_into`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum IntoState {
    InSlot { replaced: bool },
    ArrayGone,
    Taken(u32),
}

/// The ID of the guard's own program pinned in `pins` (into mode), if any.
pub fn own_prog_id(pins: &PinDir) -> Option<u32> {
    ProgramInfo::from_pin(pins.path().join(PROG_PIN)).ok().map(|i| i.id())
}

/// Put the guard's program `prog` (id `id`) into `into`'s slot, replacing an earlier guard
/// program there (a restart or `guard upgrade`, atomically), never another one; then pin it in
/// `pins` as `n3_prog`, so detach and upgrade know which program in the slot is the guard's.
pub fn place_into(pins: &PinDir, into: &IntoSlot, prog: &ProgramFd, id: u32) -> Result<(), ChainError> {
    let info = MapInfo::from_pin(&into.array)
        .map_err(|e| ChainError::NotProgArray { path: into.array.clone(), what: e.to_string() })?;
    match info.map_type() {
        Ok(MapType::ProgramArray) => {}
        other => {
            return Err(ChainError::NotProgArray { path: into.array.clone(), what: format!("its type is {other:?}") })
        }
    }
    if into.slot >= info.max_entries() {
        return Err(ChainError::SlotRange { path: into.array.clone(), slot: into.slot, max: info.max_entries() });
    }
    if let Some(occupant) = slot_prog_id(&into.array, into.slot)? {
        if occupant != id && Some(occupant) != own_prog_id(pins) {
            return Err(ChainError::SlotTaken { path: into.array.clone(), slot: into.slot, occupant });
        }
    }
    let mut arr = open_prog_array(&into.array)?;
    arr.set(into.slot, prog, 0).map_err(|source| ChainError::Update {
        what: format!("{} slot {}", into.array.display(), into.slot),
        source: Box::new(source),
    })?;
    pin_own(pins, prog, id)
}

/// Pin the program `id` as the guard's own (`n3_prog`), replacing an earlier pin.
fn pin_own(pins: &PinDir, prog: &ProgramFd, id: u32) -> Result<(), ChainError> {
    let path = pins.path().join(PROG_PIN);
    if own_prog_id(pins) == Some(id) {
        return Ok(());
    }
    let io = |what: &str, source| ChainError::Io { what: format!("{what} {}", path.display()), source };
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("removing", e)),
        _ => {}
    }
    obj_pin(prog, &path).map_err(|e| io("pinning", e))
}

/// `BPF_OBJ_PIN` of a program descriptor (aya pins only programs it loaded itself).
fn obj_pin(fd: &ProgramFd, path: &Path) -> std::io::Result<()> {
    obj_pin_raw(fd.as_fd().as_raw_fd(), path)
}

/// Move the pin of a BPF object from `from` to `to`: pin the object again at `to`, then unpin
/// `from`: there is no moment without a pin (a crash in between leaves two pins of one link,
/// never none, which would detach it).
pub fn repin(from: &Path, to: &Path) -> Result<(), ChainError> {
    let io = |what: String| move |source| ChainError::Io { what, source };
    let fd = obj_get(from).map_err(io(format!("opening {}", from.display())))?;
    obj_pin_raw(fd.as_raw_fd(), to).map_err(io(format!("pinning {}", to.display())))?;
    std::fs::remove_file(from).map_err(io(format!("unpinning {}", from.display())))
}

fn obj_pin_raw(fd: i32, path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // `union bpf_attr` for BPF_OBJ_PIN: pathname (u64), bpf_fd (u32), file_flags (u32).
    #[repr(C)]
    struct PinAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let mut attr = PinAttr { pathname: c.as_ptr() as u64, bpf_fd: fd as u32, file_flags: 0 };
    // SAFETY: `attr` is BPF_OBJ_PIN's bpf_attr prefix; `c` outlives the call.
    unsafe { bpf(BPF_OBJ_PIN, &mut attr) }.map(drop)
}

/// `BPF_OBJ_GET`: open the object pinned at `path`.
fn obj_get(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::{fd::FromRawFd as _, unix::ffi::OsStrExt as _};
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    #[repr(C)]
    struct GetAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    let mut attr = GetAttr { pathname: c.as_ptr() as u64, bpf_fd: 0, file_flags: 0 };
    // SAFETY: `attr` is BPF_OBJ_GET's bpf_attr prefix; `c` outlives the call.
    let fd = unsafe { bpf(BPF_OBJ_GET, &mut attr) }?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Point the XDP link pinned at `link` at the program pinned at `prog` (`BPF_LINK_UPDATE`: the
/// interface runs the old program up to the update and the new one from it). aya can only
/// update a link to a program it holds as an `Xdp`, which it does not build from a pin here.
pub fn update_link_to(link: &Path, prog: &Path) -> Result<(), ChainError> {
    let io = |what: String| move |source| ChainError::Io { what, source };
    let link_fd = obj_get(link).map_err(io(format!("opening the link {}", link.display())))?;
    let prog_fd = obj_get(prog).map_err(io(format!("opening the program {}", prog.display())))?;
    #[repr(C)]
    struct UpdateAttr {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
    }
    let mut attr = UpdateAttr {
        link_fd: link_fd.as_raw_fd() as u32,
        new_prog_fd: prog_fd.as_raw_fd() as u32,
        flags: 0,
        old_prog_fd: 0,
    };
    // SAFETY: `attr` is BPF_LINK_UPDATE's bpf_attr prefix; both descriptors are open for the call.
    if let Err(e) = unsafe { bpf(BPF_LINK_UPDATE, &mut attr) } {
        return Err(io(format!("switching the link {} to {}", link.display(), prog.display()))(e));
    }
    Ok(())
}

/// Take the guard out of `into`'s slot (`guard detach`), only if the slot holds the guard's own
/// program; then remove its `n3_prog` pin. Returns whether a slot was emptied.
pub fn remove_from(pins: &PinDir, into: &IntoSlot) -> Result<bool, ChainError> {
    let own = own_prog_id(pins);
    let emptied = match (into.array.exists(), own) {
        (true, Some(own)) => match slot_prog_id(&into.array, into.slot)? {
            Some(id) if id == own => {
                clear_slot(&into.array, into.slot)?;
                true
            }
            _ => false,
        },
        _ => false,
    };
    let path = pins.path().join(PROG_PIN);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ChainError::Io { what: format!("removing {}", path.display()), source: e })
        }
        _ => Ok(emptied),
    }
}

/// Where the interface's XDP link goes when `guard detach` hands the interface over to the next
/// program: beside the interface's pin directory, outside it (a purge removes that directory).
/// No dot in the name: bpffs refuses names with one (EPERM, `bpf_lookup`, kernel/bpf/inode.c).
pub fn handover_link_path(pins: &PinDir) -> PathBuf {
    let name = pins.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    pins.path().with_file_name(format!("{name}-next-link"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_parses_path_and_slot() {
        assert_eq!(
            IntoSlot::parse("/sys/fs/bpf/upf/jmp:3"),
            Ok(IntoSlot { array: PathBuf::from("/sys/fs/bpf/upf/jmp"), slot: 3 })
        );
        assert!(IntoSlot::parse("/sys/fs/bpf/upf/jmp").is_err());
        assert!(IntoSlot::parse("/sys/fs/bpf/upf/jmp:x").is_err());
        assert!(IntoSlot::parse("upf/jmp:1").is_err());
    }

    #[test]
    fn next_path_round_trips_and_unset_is_none() {
        let mut c = ChainConfig { flags: CHAIN_FLAG_NEXT, ..Default::default() };
        c.next_path[..8].copy_from_slice(b"/a/b/cde");
        assert_eq!(next_path(&c), Some(PathBuf::from("/a/b/cde")));
        assert_eq!(next_path(&ChainConfig::default()), None);
    }
}
