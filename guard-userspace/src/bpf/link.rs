//! Attaching XDP programs through pinned links: what already runs on an interface, the mode
//! asked for, and updating a pinned link in place (`BPF_LINK_UPDATE`).

use std::path::Path;

use aya::programs::{links::FdLink, links::PinnedLink, ProgramError, Xdp, XdpMode};

use tracing::{info, warn};

use crate::bpf::{
    object::{require_interface, LoadError},
    pins::PinError,
};

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

/// An IEEE 802.1Q (or 802.1ad) VLAN device, as `ip -j -d link show` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanDevice {
    /// The VLAN id (802.1Q §9.6: the TCI's low 12 bits).
    pub id: u16,
    /// `802.1Q` or `802.1ad`.
    pub protocol: String,
    /// The device it is stacked on, when that is in the same namespace.
    pub parent: Option<String>,
}

impl VlanDevice {
    /// Why a VLAN device gets generic XDP and what to do for native: said once, at attach.
    pub fn generic_only(&self, iface: &str) -> String {
        let parent = self.parent.as_deref().unwrap_or("its parent");
        format!(
            "{iface} is an {} VLAN device (id {} on {parent}): the kernel's VLAN driver has no native XDP, so the \
             guard runs in generic (SKB) mode there, on frames the kernel has already untagged; for native XDP \
             attach the guard to {parent}, where it reads the tag itself (docs/dataplane.md, \"VLAN interfaces\")",
            self.protocol, self.id
        )
    }
}

/// `iface` as a VLAN device (in the calling thread's network namespace), or None when it is not
/// one or `ip` cannot tell.
pub fn vlan_of(iface: &str) -> Option<VlanDevice> {
    let out = std::process::Command::new("ip").args(["-j", "-d", "link", "show", "dev", iface]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_vlan(&serde_json::from_slice(&out.stdout).ok()?)
}

/// The VLAN part of `ip -j -d link show dev X`'s answer (iproute2's `vlan_print_opt`:
/// `linkinfo.info_kind = "vlan"`, `info_data.protocol`, `info_data.id`; the parent in `link`).
fn parse_vlan(v: &serde_json::Value) -> Option<VlanDevice> {
    let dev = v.get(0)?;
    let info = dev.get("linkinfo")?;
    if info.get("info_kind")?.as_str()? != "vlan" {
        return None;
    }
    let data = info.get("info_data")?;
    Some(VlanDevice {
        id: u16::try_from(data.get("id")?.as_u64()?).ok()?,
        protocol: data.get("protocol").and_then(serde_json::Value::as_str).unwrap_or("802.1Q").to_owned(),
        parent: dev.get("link").and_then(serde_json::Value::as_str).map(str::to_owned),
    })
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

/// Attach `prog` (named `name` in logs) to `iface` through the link pinned at `link_path`:
/// - a link pinned by an earlier run is updated in place to run `prog` (no moment without a
///   guard); a stale one (its interface gone, another program type) is replaced, with a warning;
/// - otherwise a program another tool attached is refused ([`LoadError::Occupied`]): the guard
///   never replaces someone else's program;
/// - otherwise a new link is created (native first when `mode` allows, generic when the driver
///   refuses, with a warning) and pinned, so the program stays attached when the process exits.
pub fn attach_pinned(
    prog: &mut Xdp,
    name: &str,
    iface: &str,
    mode: ModeRequest,
    link_path: &Path,
) -> Result<Attachment, LoadError> {
    require_interface(iface)?;
    if link_path.exists() {
        match update_pinned_link(prog, link_path) {
            Ok(()) => {
                info!(program = name, link = %link_path.display(), "re-used the pinned XDP link: the new program replaced the old one in place");
                return Ok(Attachment::ReusedLink);
            }
            Err(e) => {
                warn!(program = name, error = %e, path = %link_path.display(), "pinned XDP link is stale; replacing it");
                let _ = std::fs::remove_file(link_path);
            }
        }
    }
    if let Some(occupant) = xdp_occupant(iface) {
        return Err(LoadError::Occupied { iface: iface.to_owned(), occupant });
    }
    // A VLAN device has no `ndo_bpf` (net/8021q/vlan_dev.c), so native XDP is refused there
    // (EOPNOTSUPP) whatever the NIC below it supports: say why, instead of the kernel's error.
    let vlan = vlan_of(iface);
    let (id, how) = match (mode, &vlan) {
        (ModeRequest::Native, Some(v)) => return Err(LoadError::NoNativeXdp(v.generic_only(iface))),
        (ModeRequest::Auto, Some(v)) => {
            warn!(program = name, iface, "{}", v.generic_only(iface));
            (attach_mode(prog, iface, XdpMode::Skb)?, Attachment::Generic)
        }
        (ModeRequest::Native, None) => (attach_mode(prog, iface, XdpMode::Driver)?, Attachment::Native),
        (ModeRequest::Generic, _) => (attach_mode(prog, iface, XdpMode::Skb)?, Attachment::Generic),
        (ModeRequest::Auto, None) => match attach_mode(prog, iface, XdpMode::Driver) {
            Ok(id) => (id, Attachment::Native),
            Err(e) => {
                warn!(program = name, error = %e, iface, "native XDP refused; falling back to generic (SKB) mode");
                (attach_mode(prog, iface, XdpMode::Skb)?, Attachment::Generic)
            }
        },
    };
    let link = prog.take_link(id).map_err(|source| LoadError::Program { what: "taking the XDP link", source })?;
    let fd_link: FdLink = link.try_into().map_err(|source| LoadError::Link {
        what: "the kernel gave a netlink XDP attachment, which cannot be pinned",
        source,
    })?;
    fd_link.pin(link_path).map_err(|source| LoadError::PinLink { path: link_path.to_path_buf(), source })?;
    info!(program = name, iface, mode = ?how, link = %link_path.display(), "attached");
    Ok(how)
}

/// Remove the link pinned at `path` (the program leaves the interface once no one holds it).
/// Whether there was one.
pub fn unpin_link(path: &Path) -> Result<bool, PinError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(PinError::Io { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vlan_device_is_told_from_ip_link_json() {
        // iproute2 6.x, `ip -j -d link show dev ens1f0.310` (trimmed).
        let vlan = r#"[{"ifindex":7,"link":"ens1f0","ifname":"ens1f0.310","mtu":1500,"linkinfo":{"info_kind":"vlan","info_data":{"protocol":"802.1Q","id":310,"flags":["REORDER_HDR"]}}}]"#;
        let v = parse_vlan(&serde_json::from_str(vlan).expect("JSON")).expect("a VLAN device");
        assert_eq!(v, VlanDevice { id: 310, protocol: "802.1Q".into(), parent: Some("ens1f0".into()) });
        let msg = v.generic_only("ens1f0.310");
        assert!(msg.contains("generic (SKB) mode") && msg.contains("attach the guard to ens1f0"), "{msg}");
        let veth = r#"[{"ifindex":5,"ifname":"n3.310","linkinfo":{"info_kind":"veth"}}]"#;
        assert_eq!(parse_vlan(&serde_json::from_str(veth).expect("JSON")), None, "a veth named like a VLAN");
        // A VXLAN's VNI is also `info_data.id` (iproute2's `vxlan_print_opt`): not a VLAN.
        let vxlan =
            r#"[{"ifindex":6,"ifname":"vx310","linkinfo":{"info_kind":"vxlan","info_data":{"id":310,"port":4789}}}]"#;
        assert_eq!(parse_vlan(&serde_json::from_str(vxlan).expect("JSON")), None, "a VXLAN");
        let plain = r#"[{"ifindex":2,"ifname":"eth0"}]"#;
        assert_eq!(parse_vlan(&serde_json::from_str(plain).expect("JSON")), None);
    }
}
