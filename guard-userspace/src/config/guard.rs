//! `[guard]` (interfaces, pins, tick, audit), `[attach]` (sharing the NIC) and `[metrics]`.

use super::*;

/// `[attach]`: sharing the N3 NIC with another XDP program (docs/operations.md, "Sharing the NIC
/// with an XDP UPF"). Both unset: the guard attaches to the interface alone, as before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachSection {
    /// The guard first: the bpffs path of a pinned XDP program that gets every packet the guard
    /// passes (by tail call; its verdict stands). Dropped packets never reach it. Re-resolved
    /// every tick: a program re-pinned there replaces the old one, a removed pin passes packets
    /// to the stack (counted, logged, `guard status`). A SIGHUP applies a change.
    pub next: Option<PathBuf>,
    /// The guard inside another root: `"<bpffs path of a pinned program array>:<slot>"`. The guard
    /// does not attach to the interface; it puts its program in that slot of the operator's
    /// array, and the operator's root program tail-calls it. Only a restart applies a change.
    pub into: Option<String>,
}

/// `[guard]`: where and how the guard attaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSection {
    /// N3 (RAN-facing GTP-U) interfaces to attach to. May be empty here when given on the command
    /// line; `guard run` refuses to start with none.
    pub interfaces: Vec<String>,
    /// What "a device" is: `"teid"` (one PDU session) or `"ue_addr"` (the inner UE address).
    pub key_mode: KeyMode,
    /// The host's own N3 (GTP-U) addresses, at most 16. A TEID is unique only with the address it
    /// was allocated on (the F-TEID, TS 29.281 §5.1, TS 29.244 §8.2.3): on a host with several N3
    /// addresses or UPF instances, list them all, so that two sessions with one TEID on two
    /// addresses are two devices. Empty (one N3 address): every session is keyed by its TEID.
    /// An address keeps its index once listed, even when removed (docs/dataplane.md).
    pub n3_addrs: Vec<IpAddr>,
    /// UDP destination port of GTP-U (TS 29.281 §4.4.2).
    pub gtpu_port: u16,
    /// bpffs directory for pinned maps and links.
    pub pin_dir: PathBuf,
    /// Capacity of the per-device map, and the most devices the engine tracks.
    pub max_devices: u32,
    /// JSON-lines audit trail of every decision.
    pub audit_log: PathBuf,
    /// Controller tick: one measurement window. Triggers below count windows of this length.
    pub tick: Dur,
    /// N2/S1-MME interface (SCTP: NGAP, S1AP) to guard beside N3 (docs/n2.md); `--n2-iface`
    /// overrides it.
    pub n2_interface: Option<String>,
    /// The N2 settings file (TOML, docs/n2.md §6); `--n2-config` overrides it. Defaults without.
    pub n2_config: Option<PathBuf>,
}

impl Default for GuardSection {
    fn default() -> Self {
        GuardSection {
            interfaces: Vec::new(),
            key_mode: KeyMode::Teid,
            n3_addrs: Vec::new(),
            gtpu_port: 2152,
            pin_dir: PathBuf::from("/sys/fs/bpf/overload-guard"),
            max_devices: guard_common::abi::DEFAULT_MAX_DEVICES,
            audit_log: PathBuf::from("/var/log/overload-guard/audit.jsonl"),
            tick: Dur::secs(1),
            n2_interface: None,
            n2_config: None,
        }
    }
}

/// How devices are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    Teid,
    UeAddr,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { listen: SocketAddr::from(([127, 0, 0, 1], 9464)) }
    }
}

/// Whether `name` can be a Linux network interface's name, as the kernel's `dev_valid_name`
/// (net/core/dev.c) decides: not empty, shorter than IFNAMSIZ (16 with the NUL), not `.` or `..`,
/// no `/`, `:` or whitespace. Pin directories are named after it, so a name that is a path (`/`,
/// `..`) must never reach them: `guard detach --purge` removes what is in that directory.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

impl Config {
    pub(super) fn validate_guard(&self, v: &mut Validator) {
        let g = &self.guard;
        let mut seen = HashSet::new();
        for (i, name) in g.interfaces.iter().enumerate() {
            if !valid_ifname(name) {
                v.bad(format!("guard.interfaces[{i}]"), format!("`{name}` is not a valid interface name"));
            }
            if !seen.insert(name) {
                v.bad(format!("guard.interfaces[{i}]"), format!("`{name}` is listed twice"));
            }
        }
        if let Some(n2) = &g.n2_interface {
            if !valid_ifname(n2) {
                v.bad("guard.n2_interface".into(), format!("`{n2}` is not a valid interface name"));
            }
            if g.interfaces.contains(n2) {
                v.bad(
                    "guard.n2_interface".into(),
                    format!("`{n2}` is also an N3 interface: one XDP program per interface"),
                );
            }
        }
        if let Some(p) = &g.n2_config {
            match crate::config::n2::N2File::read(Some(p)) {
                Ok(_) => {}
                Err(e) => v.bad("guard.n2_config".into(), format!("{e:#}")),
            }
            if g.n2_interface.is_none() {
                v.check(false, "guard.n2_config", "is set but guard.n2_interface is not");
            }
        }
        v.check(g.n3_addrs.len() <= 16, "guard.n3_addrs", "at most 16 addresses");
        let mut seen_addr = HashSet::new();
        for (i, a) in g.n3_addrs.iter().enumerate() {
            if !seen_addr.insert(a) {
                v.bad(format!("guard.n3_addrs[{i}]"), format!("`{a}` is listed twice"));
            }
        }
        for (i, a) in self.dataplane.non_ip_local_addrs.iter().enumerate() {
            if !g.n3_addrs.contains(a) {
                v.bad(
                    format!("dataplane.non_ip_local_addrs[{i}]"),
                    format!("`{a}` is not one of guard.n3_addrs: list it there too"),
                );
            }
        }
        v.check(g.gtpu_port != 0, "guard.gtpu_port", "must be > 0");
        v.check(g.max_devices > 0, "guard.max_devices", "must be > 0");
        v.check(g.pin_dir.is_absolute(), "guard.pin_dir", "must be an absolute path");
        v.check(!g.audit_log.as_os_str().is_empty(), "guard.audit_log", "must not be empty");
        v.check(g.tick >= Dur::millis(100) && g.tick <= Dur::secs(60), "guard.tick", "must be between 100ms and 60s");
        self.validate_attach(v);
    }

    pub(super) fn validate_attach(&self, v: &mut Validator) {
        let a = &self.attach;
        if let Some(p) = &a.next {
            v.check(p.is_absolute(), "attach.next", "must be an absolute bpffs path (e.g. /sys/fs/bpf/upf/xdp_main)");
            v.check(
                p.as_os_str().len() <= guard_common::abi::CHAIN_PATH_MAX,
                "attach.next",
                "is longer than 248 octets",
            );
        }
        if let Some(i) = &a.into {
            match IntoSlot::parse(i) {
                Ok(into) => {
                    if a.next.as_deref() == Some(into.array.as_path()) {
                        v.bad("attach.into".into(), "names the same pin as attach.next".into());
                    }
                }
                Err(e) => v.bad("attach.into".into(), format!("`{i}`: {e}")),
            }
            // One slot holds one program: a second interface's guard would take it over.
            v.check(
                self.guard.interfaces.len() <= 1,
                "attach.into",
                "places one guard program in one slot: list at most one interface in guard.interfaces",
            );
        }
    }
}

/// `[attach] into`: a pinned program array and a slot in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntoSlot {
    pub array: PathBuf,
    pub slot: u32,
}

impl IntoSlot {
    /// `"<bpffs path>:<slot>"` (split at the last colon).
    pub fn parse(s: &str) -> Result<IntoSlot, String> {
        let (path, slot) = s.rsplit_once(':').ok_or("expected \"<bpffs path of a pinned program array>:<slot>\"")?;
        let slot: u32 = slot.parse().map_err(|_| format!("slot `{slot}` is not a number"))?;
        let array = PathBuf::from(path);
        if !array.is_absolute() {
            return Err(format!("`{path}` is not an absolute path"));
        }
        Ok(IntoSlot { array, slot })
    }
}
