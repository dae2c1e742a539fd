//! Tables and phrases `guard status` prints for both interfaces: counters as JSON maps and
//! aligned rows, protections by mode, stage expiries.

use guard_common::abi::Counter;

/// `{name: {packets, bytes}}` of every counter.
pub fn packets_and_bytes(
    rows: impl Iterator<Item = (&'static str, Counter)>,
) -> serde_json::Map<String, serde_json::Value> {
    rows.map(|(n, c)| (n.to_owned(), serde_json::json!({"packets": c.packets, "bytes": c.bytes}))).collect()
}

/// `{name: packets}` of the counters that counted something.
pub fn nonzero_packets(
    rows: impl Iterator<Item = (&'static str, Counter)>,
) -> serde_json::Map<String, serde_json::Value> {
    rows.filter(|(_, c)| c.packets > 0).map(|(n, c)| (n.to_owned(), serde_json::json!(c.packets))).collect()
}

/// The protections by mode, from the data plane's `(enabled, shadow)` masks.
pub fn modes_json(enabled: u32, shadow: u32, names: &[(u32, &str)]) -> serde_json::Value {
    let [enforce, shadow, off] = crate::config::protections_by_mode(enabled, shadow, names);
    serde_json::json!({"enforce": enforce, "shadow": shadow, "off": off})
}

pub fn print_modes(m: &serde_json::Value) {
    for (mode, what) in [("enforce", "enforced"), ("shadow", "shadow (counted, not applied)"), ("off", "off")] {
        let names: Vec<&str> = m[mode].as_array().into_iter().flatten().filter_map(|n| n.as_str()).collect();
        println!("  {what:<30} {}", if names.is_empty() { "none".to_owned() } else { names.join(", ") });
    }
}

/// A count for a padded table column (`Value`'s Display ignores widths).
pub fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// A `name: count` table of the non-zero counts, or "none".
pub fn print_counts(title: &str, m: &serde_json::Value, count: impl Fn(&serde_json::Value) -> Option<u64>) {
    let rows: Vec<(&String, u64)> =
        m.as_object().into_iter().flatten().filter_map(|(n, c)| count(c).filter(|c| *c > 0).map(|c| (n, c))).collect();
    if rows.is_empty() {
        println!("{title}: none");
        return;
    }
    println!("{title}:");
    for (n, c) in rows {
        println!("  {n:<28} {c:>14}");
    }
}

/// "expires in 12 s" / "expired" (a stage past its expiry no longer applies).
pub fn expiry(s: &serde_json::Value) -> String {
    if s["expired"] == true {
        "expired".to_owned()
    } else {
        format!("expires in {:.0} s", s["expires_in_s"].as_f64().unwrap_or(0.0))
    }
}
