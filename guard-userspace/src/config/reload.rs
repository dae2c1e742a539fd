//! What a SIGHUP reload changes: the keys in force at once and the ones only a restart applies.

use super::Config;

/// What a reload changes: keys that take effect at once, and keys that only a restart applies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Dotted keys whose new value is in force after the reload.
    pub applied: Vec<String>,
    /// Dotted keys whose new value waits for a restart; the running value is kept.
    pub needs_restart: Vec<String>,
}

/// Keys read once at start: the listener, the pin and audit locations, the interfaces, the map
/// size and the tick timer.
const RESTART_KEYS: &[&str] = &[
    "metrics.listen",
    "guard.interfaces",
    "guard.pin_dir",
    "guard.audit_log",
    "guard.max_devices",
    "guard.tick",
    "guard.n2_interface",
    "guard.n2_config",
    "attach.into",
    "fleet",
];

impl Config {
    /// Compare the running configuration with a reloaded one, and return the configuration to
    /// run: `new` with the running values of the keys that need a restart, so what the process
    /// reports (`guard status`, logs) is what it does.
    pub fn reload_from(&self, mut new: Config) -> (Config, Reload) {
        let mut changed = Vec::new();
        if let (Ok(a), Ok(b)) = (toml::Value::try_from(self), toml::Value::try_from(&new)) {
            diff_keys("", &a, &b, &mut changed);
        }
        let mut r = Reload::default();
        for k in changed {
            if RESTART_KEYS.iter().any(|rk| k == *rk || k.starts_with(&format!("{rk}."))) {
                r.needs_restart.push(k);
            } else {
                r.applied.push(k);
            }
        }
        new.metrics.listen = self.metrics.listen;
        new.guard.interfaces = self.guard.interfaces.clone();
        new.guard.pin_dir = self.guard.pin_dir.clone();
        new.guard.audit_log = self.guard.audit_log.clone();
        new.guard.max_devices = self.guard.max_devices;
        new.guard.tick = self.guard.tick;
        new.guard.n2_interface = self.guard.n2_interface.clone();
        new.guard.n2_config = self.guard.n2_config.clone();
        new.attach.into = self.attach.into.clone();
        // The fleet client starts once, with the process.
        new.fleet = self.fleet.clone();
        (new, r)
    }
}

/// Dotted paths of the leaves that differ between `a` and `b` (arrays compare whole).
fn diff_keys(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(ta), toml::Value::Table(tb)) => {
            let keys: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match (ta.get(k), tb.get(k)) {
                    (Some(x), Some(y)) => diff_keys(&path, x, y, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}
