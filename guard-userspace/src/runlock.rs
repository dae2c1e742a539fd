//! One controller per interface and per pin directory.
//!
//! Two `guard run` on one interface would replace each other's XDP program and step on the same
//! pinned maps (stages written by one, released by the other). So `guard run` takes an exclusive
//! lock before it touches anything, and `guard detach` takes the same lock, so it is refused while
//! a controller runs instead of pulling the data plane out from under it.
//!
//! Two locks, because either resource can be shared alone: the interface (named by the network
//! namespace's inode and the ifindex: `n3` in two lab namespaces are two interfaces) and the pin
//! directory (one bpffs directory can be reached from any namespace). The locks are `flock(2)`
//! locks on files under `/run/overload-guard` (`GUARD_RUN_DIR` overrides it), so the kernel
//! drops them when the holder dies, even by SIGKILL: a crash never leaves a stale lock. The file
//! holds the holder's pid and start time, for the refusal message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where the lock files live unless `GUARD_RUN_DIR` says otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/overload-guard";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is in use by another guard (pid {pid}, since {since}); stop that one first (or `systemctl stop overload-guard`)")]
    Held { what: String, pid: String, since: String },
    #[error("cannot use the lock file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Locks held for as long as this value lives.
#[derive(Debug)]
pub struct RunLock {
    _files: Vec<File>,
}

/// What a lock protects.
#[derive(Debug, Clone)]
pub enum Resource<'a> {
    /// An interface of this thread's network namespace.
    Interface(&'a str),
    /// A pin directory on bpffs.
    Pins(&'a Path),
}

fn run_dir() -> PathBuf {
    std::env::var_os("GUARD_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR))
}

/// A file name for a path: `/sys/fs/bpf/overload-guard/n3` → `pins-sys_fs_bpf_overload-guard_n3`.
fn path_token(p: &Path) -> String {
    let s: String = p
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    // NAME_MAX is 255; keep the tail, which holds the interface.
    let s = if s.len() > 200 { s[s.len() - 200..].to_owned() } else { s };
    format!("pins-{s}")
}

/// `if-<netns inode>-<ifindex>` for an interface of the calling thread's network namespace, or
/// `if-<netns inode>-<name>` if it has no index (detach of an interface that is gone).
fn iface_token(iface: &str) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let ns = std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino()).unwrap_or(0);
    let name = std::ffi::CString::new(iface).unwrap_or_default();
    // SAFETY: a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        let safe: String = iface.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("if-{ns}-{safe}")
    } else {
        format!("if-{ns}-{idx}")
    }
}

fn describe(r: &Resource<'_>) -> String {
    match r {
        Resource::Interface(i) => format!("interface {i}"),
        Resource::Pins(p) => format!("pin directory {}", p.display()),
    }
}

/// Take every lock in `what`, or none: the first one held elsewhere is refused with its holder.
pub fn acquire(what: &[Resource<'_>]) -> Result<RunLock, LockError> {
    let dir = run_dir();
    std::fs::create_dir_all(&dir).map_err(|source| LockError::Io { path: dir.clone(), source })?;
    let mut files = Vec::with_capacity(what.len());
    for r in what {
        let token = match r {
            Resource::Interface(i) => iface_token(i),
            Resource::Pins(p) => path_token(p),
        };
        let path = dir.join(format!("{token}.lock"));
        let io = |source| LockError::Io { path: path.clone(), source };
        let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        // flock(2) directly: `File::try_lock` needs a newer rustc than the workspace's MSRV.
        // SAFETY: `f` is an open file; LOCK_NB never blocks.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(e));
            }
            {
                let mut text = String::new();
                let _ = f.read_to_string(&mut text);
                let field = |k: &str| {
                    text.split_whitespace()
                        .find_map(|w| w.strip_prefix(k).map(str::to_owned))
                        .unwrap_or_else(|| "unknown".into())
                };
                return Err(LockError::Held { what: describe(r), pid: field("pid="), since: field("since=") });
            }
        }
        let line = format!(
            "pid={} since={} {}\n",
            std::process::id(),
            crate::audit::rfc3339(SystemTime::now()),
            describe(r).replace(' ', "=")
        );
        f.set_len(0).map_err(io)?;
        f.rewind().map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)?;
        files.push(f);
    }
    Ok(RunLock { _files: files })
}

/// Who holds the lock on `r`, if anyone: (pid, since), read without touching the lock. A probe
/// with `flock` could make a controller starting at that instant fail to take it, so the lock's
/// holder is found in `/proc/locks` (an `FLOCK` on the lock file's device and inode) and named
/// from the file's own line.
pub fn holder(r: &Resource<'_>) -> Option<(u32, String)> {
    use std::os::unix::fs::MetadataExt as _;
    let token = match r {
        Resource::Interface(i) => iface_token(i),
        Resource::Pins(p) => path_token(p),
    };
    let path = run_dir().join(format!("{token}.lock"));
    let meta = std::fs::metadata(&path).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = flock_holder(&locks, meta.dev(), meta.ino())?;
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let since = text.split_whitespace().find_map(|w| w.strip_prefix("since=")).unwrap_or("unknown").to_owned();
    Some((pid, since))
}

/// The pid of the `FLOCK` in `/proc/locks` text on the file with device `dev` and inode `ino`
/// (`fs/locks.c`'s `lock_get_status`: `N: FLOCK ADVISORY WRITE pid maj:min:ino start end`; a
/// waiter's line carries `->` and is skipped).
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    // The kernel prints MAJOR and MINOR of the device in hex, as new_encode_dev splits them.
    let (major, minor) = ((dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00));
    locks.lines().filter(|l| !l.contains("->")).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (kind, pid, id) = (f.get(1)?, f.get(4)?, f.get(5)?);
        let mut parts = id.split(':');
        let (ma, mi, i) = (parts.next()?, parts.next()?, parts.next()?);
        let same = u64::from_str_radix(ma, 16).ok()? == major
            && u64::from_str_radix(mi, 16).ok()? == minor
            && i.parse::<u64>().ok()? == ino;
        (*kind == "FLOCK" && same).then(|| pid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("guard-runlock-{}", std::process::id()));
        // No other test of this binary reads GUARD_RUN_DIR.
        std::env::set_var("GUARD_RUN_DIR", &dir);
        let pins = Path::new("/sys/fs/bpf/test-runlock/n3");
        let first = acquire(&[Resource::Interface("lo"), Resource::Pins(pins)]).expect("first lock");
        // flock locks belong to the open file description: a second open in this process
        // conflicts exactly as another process would.
        let e = acquire(&[Resource::Pins(pins)]).expect_err("second holder refused");
        let msg = e.to_string();
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert!(msg.contains("pin directory /sys/fs/bpf/test-runlock/n3"), "{msg}");
        let e = acquire(&[Resource::Interface("lo")]).expect_err("the interface too");
        assert!(e.to_string().contains("interface lo"), "{e}");
        assert_eq!(holder(&Resource::Pins(pins)).map(|(pid, _)| pid), Some(std::process::id()), "the holder, read");
        drop(first);
        assert_eq!(holder(&Resource::Pins(pins)), None, "no holder once released");
        acquire(&[Resource::Interface("lo"), Resource::Pins(pins)]).expect("free again after drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lock_names_are_file_names() {
        assert_eq!(path_token(Path::new("/sys/fs/bpf/overload-guard/n3")), "pins-sys_fs_bpf_overload-guard_n3");
        let long = PathBuf::from(format!("/{}", "a/".repeat(300)));
        assert!(path_token(&long).len() <= 205);
    }
}
