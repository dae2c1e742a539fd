//! The packaged unit's `SystemCallFilter=` against the system calls a traced guard made (shared
//! by `service.rs` and `fleet_etcd.rs`): the unit's lines as the installed systemd expands them,
//! and strace's record of what a process and its children called.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Every system call the unit's `SystemCallFilter=` lines allow (systemd.exec(5): allow-list lines
/// add up, `~` lines are taken out of them), and the lines themselves for messages.
pub fn unit_allows() -> (BTreeSet<String>, String) {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/overload-guard.service");
    let unit = std::fs::read_to_string(&unit_path).expect("the packaged unit");
    let lines: Vec<&str> = unit.lines().filter_map(|l| l.strip_prefix("SystemCallFilter=")).collect();
    let allow: Vec<&str> = lines.iter().filter(|l| !l.starts_with('~')).flat_map(|l| l.split_whitespace()).collect();
    let deny: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix('~')).flat_map(|l| l.split_whitespace()).collect();
    assert!(!allow.is_empty(), "the unit has no SystemCallFilter= allow-list");
    let denied = systemd_allows(&deny);
    (systemd_allows(&allow).difference(&denied).cloned().collect(), lines.join(" / "))
}

/// The pid of the program a wrapper (strace) runs: its one child.
pub fn wrapped_pid(wrapper: u32) -> Option<i32> {
    let kids = std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).ok()?;
    kids.split_whitespace().next()?.parse().ok()
}

/// Wait for `child` at most `limit`; `None` if it is still running then (the caller's fixture
/// kills it).
pub fn wait_bounded(child: &mut std::process::Child, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

/// The system calls a `strace -f -o FILE` trace shows (`PID  name(...`, resumed calls and
/// signals skipped).
pub fn traced_calls(trace: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(trace).expect("the strace output");
    text.lines()
        .filter_map(|l| {
            let call = l.split_once(char::is_whitespace)?.1.trim_start();
            let (name, _) = call.split_once('(')?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .then(|| name.to_owned())
        })
        .collect()
}

/// Every system call a `SystemCallFilter=` list names, its `@groups` expanded by the
/// installed systemd itself (`systemd-analyze syscall-filter`), so the set is the one systemd
/// would enforce, not a copy of it.
pub fn systemd_allows(items: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in items {
        if !item.starts_with('@') {
            out.insert((*item).to_owned());
            continue;
        }
        let group = *item;
        let o = Command::new("systemd-analyze")
            .args(["syscall-filter", "--no-pager", group])
            .output()
            .expect("systemd-analyze (Debian's systemd; `cargo xtask test` installs it)");
        assert!(o.status.success(), "systemd-analyze syscall-filter {group}: {}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        // The group's own name heads the listing; its members are indented, comments start with #.
        let members: Vec<&str> =
            text.lines().filter(|l| l.starts_with(' ')).map(str::trim).filter(|m| !m.starts_with('#')).collect();
        assert!(!members.is_empty(), "systemd-analyze knows no group {group}: {text}");
        out.extend(systemd_allows(&members));
    }
    out
}
