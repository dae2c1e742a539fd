//! What both programs' map handles share: the error type, opening maps from pins or from a
//! loaded object, and reading a whole hash map in batches.

use aya::{
    maps::{HashMap, Map, MapData, MapError},
    Ebpf,
};

use guard_common::abi::Counter;

use crate::bpf::{batch, pins::PinDir};

#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("pinned map {0} is missing: no guard was started on this interface with this pin directory")]
    Missing(&'static str),
    #[error("{0}")]
    LocalTable(String),
    #[error("map {name}: {source}")]
    Map { name: &'static str, source: MapError },
    #[error("map {name}: mapping it into memory: {source}")]
    Mmap { name: &'static str, source: std::io::Error },
    /// A device key no data-plane device can have (`abi::device_id::of_key`): nothing to stage.
    #[error("device {0:?} cannot be a data-plane device (its key has no 8-byte id)")]
    NoDeviceId(guard_common::abi::DeviceKey),
    /// The pins' `GUARD_META` is not this build's: another program's, schema or layout.
    #[error(transparent)]
    Pins(#[from] crate::bpf::pins::PinError),
}

pub(crate) fn err(name: &'static str) -> impl Fn(MapError) -> MapsError {
    move |source| MapsError::Map { name, source }
}

/// Something that can hand out maps by name.
pub(crate) trait MapSource {
    fn map(&mut self, name: &'static str) -> Result<Map, MapsError>;
}

/// Opens pins; [`Map::from_map_data`] picks the variant from the kernel's map type.
pub(crate) struct Pinned<'a>(pub &'a PinDir);

impl MapSource for Pinned<'_> {
    fn map(&mut self, name: &'static str) -> Result<Map, MapsError> {
        let path = self.0.map_path(name);
        if !path.exists() {
            return Err(MapsError::Missing(name));
        }
        let data = MapData::from_pin(&path).map_err(err(name))?;
        Map::from_map_data(data).map_err(err(name))
    }
}

/// Re-opens the maps of a loaded object by their pins: the `Ebpf` keeps its own handles, so the
/// program and userspace both hold the same kernel maps.
pub(crate) struct Loaded<'a>(pub &'a mut Ebpf);

impl MapSource for Loaded<'_> {
    fn map(&mut self, name: &'static str) -> Result<Map, MapsError> {
        let m = self.0.map(name).ok_or(MapsError::Missing(name))?;
        let fd = match m {
            Map::Array(d)
            | Map::HashMap(d)
            | Map::LruHashMap(d)
            | Map::PerCpuArray(d)
            | Map::RingBuf(d)
            | Map::LpmTrie(d) => {
                use std::os::fd::AsFd as _;
                d.fd().as_fd().try_clone_to_owned().map_err(|e| MapsError::Map {
                    name,
                    source: MapError::SyscallError(aya::sys::SyscallError { call: "dup", io_error: e }),
                })?
            }
            _ => return Err(MapsError::Missing(name)),
        };
        let data = MapData::from_fd(fd).map_err(err(name))?;
        Map::from_map_data(data).map_err(err(name))
    }
}

/// Takes maps out of a loaded object: the program keeps its own kernel references, the handles
/// move to userspace (the object no longer lists them).
pub(crate) struct Taken<'a>(pub &'a mut Ebpf);

impl MapSource for Taken<'_> {
    fn map(&mut self, name: &'static str) -> Result<Map, MapsError> {
        self.0.take_map(name).ok_or(MapsError::Missing(name))
    }
}

/// Counters `0..n` of a per-CPU array, each summed over the CPUs.
pub(crate) fn sum_counters(
    arr: &aya::maps::PerCpuArray<MapData, Counter>,
    name: &'static str,
    n: u32,
) -> Result<Vec<Counter>, MapsError> {
    (0..n)
        .map(|i| {
            let per_cpu = arr.get(&i, 0).map_err(err(name))?;
            Ok(per_cpu
                .iter()
                .fold(Counter::default(), |a, c| Counter { packets: a.packets + c.packets, bytes: a.bytes + c.bytes }))
        })
        .collect()
}

/// A whole hash map, read in batches (see [`crate::bpf::batch`]); if the kernel refuses batched reads,
/// one entry at a time (two syscalls per entry).
pub(crate) fn whole<K: aya::Pod, V: aya::Pod>(m: &HashMap<MapData, K, V>) -> Vec<(K, V)> {
    use aya::maps::IterableMap as _;
    let mut out = Vec::new();
    match batch::read_slice(m.map(), &mut batch::Cursor::default(), usize::MAX, DEVICE_BATCH, &mut out) {
        Ok(_) => out,
        Err(_) => m.iter().filter_map(Result::ok).collect(),
    }
}

/// Devices per batched read: 4096 × 172 B is under 1 MiB of buffer, and far more than any one
/// hash bucket holds (a batch call needs room for a whole bucket).
pub(crate) const DEVICE_BATCH: usize = 4096;

pub(crate) fn optional<T>(r: Result<T, MapError>, name: &'static str) -> Result<Option<T>, MapsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(MapsError::Map { name, source: e }),
    }
}
