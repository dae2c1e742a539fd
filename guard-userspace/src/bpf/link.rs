//! Attaching XDP programs through pinned links: what already runs on an interface, the mode
//! asked for, and updating a pinned link in place (`BPF_LINK_UPDATE`).

use std::path::Path;

use aya::programs::{links::FdLink, links::PinnedLink, ProgramError, Xdp, XdpMode};

use crate::bpf::object::LoadError;

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

pub fn attach_mode(prog: &mut Xdp, iface: &str, mode: XdpMode) -> Result<aya::programs::xdp::XdpLinkId, LoadError> {
    prog.attach(iface, mode).map_err(|source| match source {
        ProgramError::UnknownInterface { name } => LoadError::UnknownInterface(name),
        source => LoadError::Program { what: "attaching XDP", source },
    })
}
