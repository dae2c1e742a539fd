//! The bpffs pin directory of one interface, and the check that pins found there are ours and in
//! the layout this binary was built for.
//!
//! aya reuses an existing pin by name without looking at it, so a binary of another schema would
//! silently misread the maps. Before loading, [`PinDir::check`] compares the `GUARD_META` record
//! and every map's type, key size, value size and capacity with what this build expects, and
//! refuses with a clear message on any difference. It never migrates silently.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::maps::{MapData, MapType};
use guard_common::abi::{self, Meta};

/// Where pins live by default. One sub-directory per interface.
pub const DEFAULT_PIN_BASE: &str = "/sys/fs/bpf/overload-guard";
/// File name of the pinned XDP link inside an interface's pin directory.
pub const LINK_PIN: &str = "n3_link";

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "pins in {dir} were written by schema version {found}, this binary uses {expected}; \
         refusing to misread them (not migrated{why}). Stop the old guard and run \
         `guard detach --iface IF --purge` to start from empty state, or run the matching binary",
        why = schema_change(*found, *expected)
    )]
    Schema { dir: PathBuf, found: u32, expected: u32 },
    #[error(
        "pinned map {map} in {dir} has {what} {found}, this binary expects {expected}; refusing to \
         misread it. Run `guard detach --iface IF --purge` to start from empty state"
    )]
    Shape { dir: PathBuf, map: &'static str, what: &'static str, found: u64, expected: u64 },
    #[error("{path} is not an overload-guard META map (magic {found:#x}); refusing to touch it")]
    Foreign { path: PathBuf, found: u64 },
    #[error("{dir} holds pinned maps but no GUARD_META; refusing to guess their layout")]
    NoMeta { dir: PathBuf },
    #[error("reading pin {path}: {source}")]
    Read { path: PathBuf, source: aya::maps::MapError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Why pins of schema `found` cannot be carried over to `expected`, for the refusal message.
fn schema_change(found: u32, expected: u32) -> &'static str {
    match (found, expected) {
        (4, 5..) => {
            ": schema 4 keyed devices by TEID alone, schema 5 by F-TEID (the TEID with the host \
             address it was allocated on, TS 29.281 §5.1); a TEID-only key does not say which \
             address its session was on, so its counters, bindings and stages cannot be re-keyed \
             without guessing. The controller rebuilds baselines and stages from traffic; re-apply \
             operator pins with `guard device pin --teid T [--local-addr A]`"
        }
        (5 | 6, 7..) => {
            ": schema 7 added byte limits (issue 27): the device records, stage entries and the \
             configuration record are longer, and a device's `bytes` counts T-PDU octets where \
             it counted frames; and it keeps a gNB's per-packet counters per CPU (N3_CELL_PCPU, \
             issue 19) instead of in the shared N3_CELL_HOT slot, whose records changed size. The \
             old records cannot be read as new ones. The controller rebuilds baselines and stages \
             from traffic; re-apply operator pins with `guard device pin`"
        }
        (7, 8..) => {
            ": schema 8 gave the per-gNB and host caps a byte rate beside the packet rate (issue \
             27): N3_CELL_STAGES entries, the configuration record and N3_PCPU_TAT are longer. \
             The old records cannot be read as new ones. The controller re-issues its caps and \
             stages; re-apply operator gNB and device pins"
        }
        (8, 9..) => {
            ": schema 9 added N3_STAGED (issue 19), the bits that let a never-seen device skip its \
             stage lookup; schema 8's stage entries have none, so a staged device the data plane \
             has not seen yet would pass its first packet unstaged. The controller re-issues its \
             stages; re-apply operator device pins"
        }
        (9, 10..) => {
            ": schema 10 keys N3_DEVICES and N3_STAGES by an 8-byte device id instead of the \
             20-byte device key (issue 19), and N3_SEEN and N3_STAGED hash the id: schema 9's \
             records cannot be found under the new keys. The controller rebuilds baselines and \
             re-issues its stages; re-apply operator device pins"
        }
        (10, 11..) => {
            ": schema 11 keeps N3_SEEN's marks of established sessions as bits instead of octets \
             (issue 19): schema 10's octets would read as other devices' marks. Established \
             sessions are marked again as they send; the controller re-issues its stages; \
             re-apply operator device pins"
        }
        _ => "",
    }
}

/// What one pinned map must look like.
#[derive(Clone, Copy, Debug)]
pub struct MapSpec {
    pub name: &'static str,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// One map of a layout (a row of `n3_specs` / `n2_specs`).
pub const fn spec(name: &'static str, map_type: MapType, key_size: u32, value_size: u32, max_entries: u32) -> MapSpec {
    MapSpec { name, map_type, key_size, value_size, max_entries }
}

/// The size of a record, as the kernel reports a map's key or value size.
pub const fn size<T>() -> u32 {
    core::mem::size_of::<T>() as u32
}

#[derive(Debug, PartialEq, Eq)]
pub enum PinState {
    /// Nothing pinned yet: a first start.
    Fresh,
    /// Pins of this schema and layout: a restart re-uses them (counters, stages, bindings).
    Reusable,
}

#[derive(Clone, Debug)]
pub struct PinDir {
    dir: PathBuf,
}

impl PinDir {
    /// The pin directory of `iface` under `base`. bpffs refuses every name with a dot (EPERM,
    /// kernel/bpf/inode.c `bpf_lookup`), and a VLAN sub-interface is named `eth0.100`; a colon
    /// can never be in an interface name (`dev_valid_name`), so `eth0.100` pins under `eth0:100`.
    pub fn new(base: &Path, iface: &str) -> Self {
        PinDir { dir: base.join(iface.replace('.', ":")) }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn map_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn link_path(&self) -> PathBuf {
        self.dir.join(LINK_PIN)
    }

    /// The interface these pins are for ([`PinDir::new`]'s name, `:` back to `.`).
    pub fn iface(&self) -> Option<String> {
        Some(self.dir.file_name()?.to_str()?.replace(':', "."))
    }

    /// Make sure bpffs is mounted and the directory exists (bpffs allows plain mkdir), readable
    /// by root only: whoever can open a pinned map can change a stage, so the pin directories
    /// (the guard's control interface) are mode 0700. The map pins inside are created 0600 by
    /// the kernel (`bpf_obj_pin`).
    pub fn create(&self) -> Result<(), PinError> {
        use std::os::unix::fs::PermissionsExt as _;
        ensure_bpffs(Path::new(BPFFS_ROOT))?;
        fs::create_dir_all(&self.dir).map_err(|source| PinError::Io { path: self.dir.clone(), source })?;
        let private = |p: &Path| {
            fs::set_permissions(p, fs::Permissions::from_mode(0o700))
                .map_err(|source| PinError::Io { path: p.to_path_buf(), source })
        };
        private(&self.dir)?;
        // The base (e.g. /sys/fs/bpf/overload-guard) too, unless it is bpffs' root itself.
        match self.dir.parent() {
            Some(base) if base != Path::new(BPFFS_ROOT) => private(base),
            _ => Ok(()),
        }
    }

    /// Remove the pins of maps named `prefix*`: the other interface's maps, which the shared
    /// object creates (tiny) but this program never uses. Each interface's directory then holds
    /// only its own maps (`N3_*` or `N2_*`, and `GUARD_META`). Removing a pin frees nothing a
    /// program uses: a map lives while a program or a descriptor holds it.
    pub fn unpin_foreign(&self, prefix: &str) -> Result<(), PinError> {
        let io = |source| PinError::Io { path: self.dir.clone(), source };
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        for e in entries {
            let e = e.map_err(io)?;
            if e.file_name().to_string_lossy().starts_with(prefix) {
                match fs::remove_file(e.path()) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        return Err(PinError::Io { path: e.path(), source: err })
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Remove every pin (maps and link) and the directory. The maps and the link are freed once no
    /// process holds them. Missing pins are not an error.
    pub fn purge(&self) -> Result<(), PinError> {
        if !self.dir.exists() {
            return Ok(());
        }
        let entries = fs::read_dir(&self.dir).map_err(|source| PinError::Io { path: self.dir.clone(), source })?;
        for e in entries.flatten() {
            let p = e.path();
            fs::remove_file(&p).map_err(|source| PinError::Io { path: p.clone(), source })?;
        }
        fs::remove_dir(&self.dir).map_err(|source| PinError::Io { path: self.dir.clone(), source })
    }
}

/// What a pin directory's `GUARD_META` and maps must say for this build to re-use them.
pub struct Expected {
    /// `Meta::program`: which program's maps these are.
    pub program: u32,
    pub schema: u32,
    /// Older schemas whose pins this build re-uses unchanged (maps only added since).
    pub compatible: &'static [u32],
    pub layout: u64,
    /// Every map, as this build lays it out.
    pub specs: Vec<MapSpec>,
}

impl PinDir {
    /// Compare what is pinned with what this build expects: fresh (nothing pinned), reusable,
    /// or an error that says what differs (a pinned map without `GUARD_META`, another program's
    /// or tool's pins, another schema, another record layout, a map of another shape).
    pub fn check(&self, want: &Expected) -> Result<PinState, PinError> {
        let meta_path = self.map_path(abi::MAP_META);
        if !meta_path.exists() {
            let any_map = want.specs.iter().any(|s| self.map_path(s.name).exists());
            return if any_map { Err(PinError::NoMeta { dir: self.dir.clone() }) } else { Ok(PinState::Fresh) };
        }
        let meta = read_meta(&meta_path)?;
        if meta.magic != abi::META_MAGIC {
            return Err(PinError::Foreign { path: meta_path, found: meta.magic });
        }
        if meta.program != want.program {
            return Err(PinError::Shape {
                dir: self.dir.clone(),
                map: abi::MAP_META,
                what: "program",
                found: meta.program as u64,
                expected: want.program as u64,
            });
        }
        // An older schema whose maps this one only added to is re-used as it is; the loader
        // rewrites META with this schema.
        if meta.schema_version != want.schema && !want.compatible.contains(&meta.schema_version) {
            return Err(PinError::Schema { dir: self.dir.clone(), found: meta.schema_version, expected: want.schema });
        }
        if meta.layout != want.layout {
            return Err(PinError::Shape {
                dir: self.dir.clone(),
                map: abi::MAP_META,
                what: "layout fingerprint",
                found: meta.layout,
                expected: want.layout,
            });
        }
        check_shapes(self, &want.specs)?;
        Ok(PinState::Reusable)
    }
}

/// Where the kernel's BPF filesystem is conventionally mounted.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mount bpffs at `root` unless it is already there. Minimal hosts and fresh VMs often boot
/// without it, and pinning (the guard's restart story) needs it.
pub fn ensure_bpffs(root: &Path) -> Result<(), PinError> {
    use std::{ffi::CString, os::unix::ffi::OsStrExt as _};
    let io = |source| PinError::Io { path: root.to_path_buf(), source };
    let c = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path")))?;
    // SAFETY: `c` is NUL-terminated, `st` is a valid out-pointer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    if st.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    tracing::info!(path = %root.display(), "bpffs is not mounted; mounting it");
    let fstype = c"bpf";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe { libc::mount(fstype.as_ptr(), c.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn read_meta(path: &Path) -> Result<Meta, PinError> {
    let data = MapData::from_pin(path).map_err(|source| PinError::Read { path: path.to_path_buf(), source })?;
    let map = aya::maps::Map::Array(data);
    let arr: aya::maps::Array<_, Meta> =
        aya::maps::Array::try_from(map).map_err(|source| PinError::Read { path: path.to_path_buf(), source })?;
    arr.get(&0, 0).map_err(|source| PinError::Read { path: path.to_path_buf(), source })
}

/// Compare each pinned map with what this build expects: type, key and value size, capacity. A
/// map that is not pinned yet is fine (a compatible build may add maps; they are created on load).
pub fn check_shapes(pins: &PinDir, specs: &[MapSpec]) -> Result<(), PinError> {
    for spec in specs {
        let path = pins.map_path(spec.name);
        if !path.exists() {
            continue;
        }
        let info =
            aya::maps::MapInfo::from_pin(&path).map_err(|source| PinError::Read { path: path.clone(), source })?;
        let ty = info.map_type().map_err(|source| PinError::Read { path: path.clone(), source })?;
        let checks: [(&'static str, u64, u64); 4] = [
            ("type", ty as u64, spec.map_type as u64),
            ("key size", info.key_size() as u64, spec.key_size as u64),
            ("value size", info.value_size() as u64, spec.value_size as u64),
            ("capacity", info.max_entries() as u64, spec.max_entries as u64),
        ];
        for (what, found, expected) in checks {
            if found != expected {
                return Err(PinError::Shape { dir: pins.path().to_path_buf(), map: spec.name, what, found, expected });
            }
        }
    }
    Ok(())
}
