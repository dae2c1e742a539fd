//! The BPF object both programs come from, loading errors, and the checks before loading.

use std::path::PathBuf;

use aya::{
    programs::{Program, ProgramError},
    Ebpf,
};

use crate::bpf::{maps::MapsError, pins::PinError};

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
    /// A chaining step failed (`crate::n3::chain::ChainError`, boxed: this module knows no N3).
    #[error(transparent)]
    Chain(Box<dyn std::error::Error + Send + Sync>),
    #[error(
        "the guard is not in slot {slot} of {array}: {why}; start it with `guard run` ([attach] into places it there)"
    )]
    NotInSlot { array: PathBuf, slot: u32, why: &'static str },
    /// Native XDP asked for on a device that has none (a VLAN device): why, and the way out.
    #[error("native XDP is not possible: {0}")]
    NoNativeXdp(String),
    #[error(
        "interface {iface} already runs the XDP program {occupant}; the guard does not replace another program. \
         Remove it first (`ip link set dev {iface} xdp off`, or detach it with the tool that attached it)"
    )]
    Occupied { iface: String, occupant: String },
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

/// The program `name` of a loaded object as a `T` (an XDP program, a classifier).
pub fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str, kind: &'static str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingProgram(name))?
        .try_into()
        .map_err(|source| LoadError::Program { what: kind, source })
}

/// The error of loading `name` into the kernel: the verifier's log when it refused.
pub fn load_error(name: &'static str, what: &'static str) -> impl FnOnce(ProgramError) -> LoadError {
    move |e| match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            LoadError::Verifier { prog: name, io_error, log: verifier_log.to_string() }
        }
        source => LoadError::Program { what, source },
    }
}
