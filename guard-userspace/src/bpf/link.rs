//! Attaching XDP programs through pinned links: what already runs on an interface, the mode
//! asked for, and updating a pinned link in place (`BPF_LINK_UPDATE`).

use std::path::Path;

use aya::programs::{links::FdLink, links::PinnedLink, ProgramError, Xdp, XdpMode};

use tracing::{info, warn};

use crate::bpf::{
    object::{require_interface, LoadError},
    pins::PinError,
};

/// What holds an interface's XDP hook, as `ip -j -d link show` reports it (IFLA_XDP): the
/// program's id always; its name only when the caller may open programs by id, which iproute2
/// needs for it (`BPF_PROG_GET_FD_BY_ID`: CAP_SYS_ADMIN, which the packaged unit does not have).
/// So whether the hook runs the guard is judged by id ([`linked_prog_id`]), never by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpHook {
    pub id: u32,
    pub name: Option<String>,
    pub mode: &'static str,
}

impl std::fmt::Display for XdpHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (id {}, {})", self.name.as_deref().unwrap_or("a program"), self.id, self.mode)
    }
}

/// The XDP program attached to `iface` (in the calling thread's network namespace); None when
/// there is none or it cannot be told.
pub fn xdp_hook(iface: &str) -> Option<XdpHook> {
    let out = std::process::Command::new("ip").args(["-j", "-d", "link", "show", "dev", iface]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_xdp_hook(&serde_json::from_slice(&out.stdout).ok()?)
}

/// The XDP part of `ip -j -d link show dev X`'s answer (iproute2's `xdp_dump`: `xdp.mode`,
/// `xdp.prog` or, with several attached, `xdp.attached[0].prog`; `prog.name` only when readable).
fn parse_xdp_hook(v: &serde_json::Value) -> Option<XdpHook> {
    let xdp = v.get(0)?.get("xdp")?;
    let prog = xdp.get("prog").or_else(|| xdp.get("attached")?.get(0)?.get("prog"))?;
    let mode = match xdp.get("mode").and_then(serde_json::Value::as_u64) {
        Some(1) => "native",
        Some(2) => "generic",
        Some(3) => "offloaded",
        _ => "unknown mode",
    };
    Some(XdpHook {
        id: u32::try_from(prog.get("id")?.as_u64()?).ok()?,
        name: prog.get("name").and_then(serde_json::Value::as_str).map(str::to_owned),
        mode,
    })
}

/// [`xdp_hook`] in words: `name (id N, mode)`, for messages.
pub fn xdp_occupant(iface: &str) -> Option<String> {
    xdp_hook(iface).map(|h| h.to_string())
}

/// The id of the program the link pinned at `path` attaches (`BPF_OBJ_GET`, then the link's
/// info from its own descriptor: no capability beyond reading the pin); None when there is no
/// such pin or it is not a link.
pub fn linked_prog_id(path: &Path) -> Option<u32> {
    if !path.exists() {
        return None;
    }
    let link = PinnedLink::from_pin(path).ok()?;
    FdLink::from(link).info().ok().map(|i| i.program_id())
}

/// Whether `iface`'s XDP hook runs the program the link pinned at `link` attaches: (runs it,
/// what the hook holds). A pinned link can outlive what it was attached to (a re-created VLAN,
/// a reset VF): then the hook holds something else, or nothing.
pub fn hook_runs_link(iface: &str, link: &Path) -> (bool, Option<XdpHook>) {
    let hook = xdp_hook(iface);
    let ours = linked_prog_id(link);
    (matches!((&hook, ours), (Some(h), Some(id)) if h.id == id), hook)
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

    #[test]
    fn the_xdp_hook_is_told_by_id_with_or_without_the_programs_name() {
        // iproute2 6.x, `ip -j -d link show` as root (named) and under the packaged unit's
        // capabilities (no CAP_SYS_ADMIN: the id alone), both read on this kernel.
        let root = r#"[{"ifname":"n3","xdp":{"mode":1,"prog":{"id":25801,"name":"guard_n3","tag":"9ea59c1ac338ab4c"},"attached":[{"mode":1,"prog":{"id":25801,"name":"guard_n3"}}]}}]"#;
        let unit =
            r#"[{"ifname":"n3","xdp":{"mode":1,"prog":{"id":25801},"attached":[{"mode":1,"prog":{"id":25801}}]}}]"#;
        let named = parse_xdp_hook(&serde_json::from_str(root).expect("JSON")).expect("a hook");
        let bare = parse_xdp_hook(&serde_json::from_str(unit).expect("JSON")).expect("a hook");
        assert_eq!((named.id, named.name.as_deref(), named.mode), (25801, Some("guard_n3"), "native"));
        assert_eq!((bare.id, bare.name.as_deref()), (25801, None), "the id is there without the name");
        assert_eq!(bare.to_string(), "a program (id 25801, native)");
        let generic = r#"[{"ifname":"n3","xdp":{"mode":2,"attached":[{"mode":2,"prog":{"id":7}}]}}]"#;
        assert_eq!(
            parse_xdp_hook(&serde_json::from_str(generic).expect("JSON")).map(|h| (h.id, h.mode)),
            Some((7, "generic"))
        );
        let none = r#"[{"ifname":"n3"}]"#;
        assert_eq!(parse_xdp_hook(&serde_json::from_str(none).expect("JSON")), None);
    }
}
