//! Where the labs and their short tests find the `guard` binary they run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

/// The workspace root (the parent of this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// For the lab binaries: `explicit` (`--guard-bin`) if given, else the release build, else the
/// debug build; an error naming the path if there is none.
pub fn built(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let bin = explicit.unwrap_or_else(|| {
        let rel = workspace().join("target/release/guard");
        if rel.exists() {
            rel
        } else {
            workspace().join("target/debug/guard")
        }
    });
    if !bin.exists() {
        bail!("no guard binary at {} (cargo build --release -p guard-userspace, or --guard-bin)", bin.display());
    }
    Ok(bin)
}

/// For the integration tests: `GUARD_BIN` if set, else built with cargo (a no-op when it is
/// current) in the calling test's own profile directory. Panics (fails the test) if that fails.
pub fn for_test() -> PathBuf {
    if let Some(p) = std::env::var_os("GUARD_BIN") {
        return PathBuf::from(p);
    }
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace()).args(["build", "-p", "guard-userspace", "--bin", "guard"]);
    if !cfg!(debug_assertions) {
        c.arg("--release");
    }
    let st = c.status().expect("running cargo build for the guard binary");
    assert!(st.success(), "cargo build -p guard-userspace --bin guard failed");
    // target/<profile>/deps/<test>-* → target/<profile>/guard
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").join("guard");
    assert!(bin.exists(), "no guard binary at {}", bin.display());
    bin
}

/// Where a guard the lab runs against `pin_base` keeps its lock files (`GUARD_RUN_DIR`): a
/// directory of its own, named after its (unique) pin base, which its owner removes; not the
/// host's `/run/overload-guard`, where every run would leave its files.
pub fn run_dir_for(pin_base: &Path) -> PathBuf {
    let name = pin_base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::env::temp_dir().join(format!("{name}-run"))
}
