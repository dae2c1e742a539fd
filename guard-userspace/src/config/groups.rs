//! `[[group]]`: device groups and their expected behaviour.

use super::*;

/// `[[group]]`: one device group and its expected behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: String,
    /// Written to stage entries and audit; unique, > 0.
    pub id: u32,
    /// TEID ranges, `"4096-8191"`, `"0x1000-0x1fff"` or one TEID.
    #[serde(default)]
    pub teids: Vec<TeidRange>,
    /// UE address prefixes (`"10.45.0.0/16"`, `"2001:db8::/48"`).
    #[serde(default)]
    pub ue_prefixes: Vec<Prefix>,
    /// Expected mean rate per member (pps; may be below 1).
    #[serde(default)]
    pub expected_pps: Option<f64>,
    /// Expected reporting period.
    #[serde(default)]
    pub expected_period: Option<Dur>,
    /// Expected packets per report.
    #[serde(default)]
    pub expected_burst: Option<u64>,
    /// Allowed inner destinations; empty = not checked.
    #[serde(default)]
    pub servers: Vec<Prefix>,
    /// Priority / emergency devices: never shaped, marked exempt in the data plane.
    #[serde(default)]
    pub exempt: bool,
}

impl GroupSection {
    /// Whether a device (its TEID and UE address) belongs to this group.
    pub fn contains(&self, teid: u32, ue: &L3Addr) -> bool {
        self.teids.iter().any(|r| r.contains(teid)) || self.ue_prefixes.iter().any(|p| p.contains(ue))
    }

    /// Whether `dst` is one of the allowed servers (always true when none are listed or unknown).
    pub fn server_allowed(&self, dst: &L3Addr) -> bool {
        self.servers.is_empty() || dst.family == 0 || self.servers.iter().any(|p| p.contains(dst))
    }
}

impl Config {
    pub(super) fn validate_groups(&self, v: &mut Validator) {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            let k = |f: &str| format!("group[{i}].{f}");
            v.check(g.id > 0, &k("id"), "must be > 0 (0 means no group)");
            v.check(ids.insert(g.id), &k("id"), &format!("{} is used by another group", g.id));
            v.check(!g.name.is_empty(), &k("name"), "must not be empty");
            v.check(names.insert(g.name.as_str()), &k("name"), &format!("`{}` is used by another group", g.name));
            v.check(
                !(g.teids.is_empty() && g.ue_prefixes.is_empty()),
                &k("teids"),
                "a group needs members: teids and/or ue_prefixes",
            );
            if let Some(p) = g.expected_pps {
                v.check(p > 0.0 && p.is_finite(), &k("expected_pps"), "must be > 0");
            }
            if let Some(p) = g.expected_period {
                v.check(p.0 > 0, &k("expected_period"), "must be > 0");
            }
            if let Some(b) = g.expected_burst {
                v.check(b > 0, &k("expected_burst"), "must be > 0");
            }
        }
    }

    /// The group a device belongs to (first match), by index into [`Config::groups`].
    pub fn group_of(&self, teid: u32, ue: &L3Addr) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(teid, ue))
    }
}
