//! A preflight of free disk space, before a step that writes gigabytes of build output.
//!
//! Why: a CI run on a shared disk failed 218 s in, deep in the build, with `No space left on
//! device (os error 28)` from the linker. Checked first, the same shortage is one clear line
//! before anything is built; the figures are measured (README.md, "Two commands").

use std::{path::Path, process::Command};

use anyhow::{bail, Context, Result};

const GB: u64 = 1_000_000_000;

/// What a fresh clone's `cargo xtask test` leaves in the workspace: target/ (debug and release
/// builds, the package, the venv), guard-ebpf/target/ and the fuzz builds: 5.7 GB by `du -sh` of
/// a fresh clone after a green run (2026-12-07, with debug builds at line tables only; 15 GB
/// before), with a margin.
pub const TEST_WRITES: u64 = 7 * GB;

/// What a fresh clone's `cargo xtask lab` leaves: the release build, the eBPF objects, the lab's
/// binaries and the venv: 1.5 GB by `du -sh` after a green run (2026-12-07, 7 min 51 s), with a
/// margin.
pub const LAB_WRITES: u64 = 2 * GB;

/// What `cargo xtask bench` writes: 1.4 GB by `du -sh` of a fresh clone after a whole run
/// (2026-12-07, 11 min 40 s: the release build, the bench binary, the venv); `--ab` adds the A/B's
/// own eBPF build (~0.46 GB in target/ab/) and ~2 MB an object; with a margin.
pub const BENCH_WRITES: u64 = 5 * GB / 2;

/// Refuse to start `what` when the disk under the workspace has less free space than the part of
/// `writes` not already built there. An existing build counts as written (an incremental run
/// adds little), so a workspace built before is never refused for the space it already holds.
pub fn ensure_free(root: &Path, what: &str, writes: u64) -> Result<()> {
    let free = available(root)?;
    let built = ["target", "guard-ebpf/target", "guard-common/fuzz/target"]
        .iter()
        .map(|d| used(&root.join(d)))
        .sum::<Result<u64>>()?;
    let need = writes.saturating_sub(built);
    let gb = |b: u64| b as f64 / GB as f64;
    if free < need {
        bail!(
            "{what} writes about {:.1} GB of build output under {} ({:.1} GB of it built already) and \
             the disk has {:.1} GB free: free some space first (a full disk fails the build midway with \
             `No space left on device`)",
            gb(writes),
            root.display(),
            gb(built),
            gb(free),
        );
    }
    eprintln!("[setup] disk: {:.1} GB free, about {:.1} GB more needed: ok", gb(free), gb(need));
    Ok(())
}

/// Bytes available to this user on the filesystem holding `path` (`df`, coreutils).
fn available(path: &Path) -> Result<u64> {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(path).output().context("run df")?;
    if !out.status.success() {
        bail!("df {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).context("df printed no figure")?;
    line.trim().parse().with_context(|| format!("df's figure {line:?}"))
}

/// Bytes under `dir` (`du -sb`), 0 when it does not exist.
fn used(dir: &Path) -> Result<u64> {
    if !dir.exists() {
        return Ok(0);
    }
    let out = Command::new("du").arg("-sb").arg(dir).output().context("run du")?;
    if !out.status.success() {
        bail!("du -sb {} failed: {}", dir.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let figure = text.split_whitespace().next().context("du printed no figure")?;
    figure.parse().with_context(|| format!("du's figure {figure:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preflight reads the real disk: a need no disk has is refused with the figures, no
    /// need passes, and a build already in place counts against the need.
    #[test]
    fn the_preflight_refuses_only_what_the_disk_cannot_hold() {
        let dir = std::env::temp_dir().join(format!("xtask-disk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("target")).expect("a scratch dir");
        let cleanup = Cleanup(dir.clone());
        let err = ensure_free(&dir, "`cargo xtask test`", u64::MAX).expect_err("no disk holds u64::MAX bytes");
        let msg = err.to_string();
        assert!(msg.contains("`cargo xtask test` writes about") && msg.contains("GB free"), "{msg}");
        ensure_free(&dir, "`cargo xtask test`", 0).expect("nothing to write");
        std::fs::write(dir.join("target/built"), vec![0u8; 4096]).expect("a built file");
        assert!(used(&dir.join("target")).expect("du") >= 4096);
        assert_eq!(used(&dir.join("absent")).expect("du"), 0);
        assert!(available(&dir).expect("df") > 0);
        drop(cleanup);
        assert!(!dir.exists());
    }

    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
