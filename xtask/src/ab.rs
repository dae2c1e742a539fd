//! `cargo xtask bench --ab REV`: the XDP object of an earlier commit, for the bench's A/B of
//! `guard_n3`'s common path (tests/src/bench/ab.rs).
//!
//! The commit is checked out in a temporary worktree (removed afterwards, also on failure) and
//! only its `guard-ebpf` is built, the way guard-userspace/build.rs builds this one; the object is
//! kept in target/ab/<commit>.o, so a second run reuses it.

use std::{path::PathBuf, process::Command};

use anyhow::{bail, Context, Result};

use crate::run::root;

/// Removes the worktree when dropped.
struct Worktree(PathBuf);

impl Drop for Worktree {
    fn drop(&mut self) {
        let _ = Command::new("git").current_dir(root()).args(["worktree", "remove", "--force"]).arg(&self.0).status();
    }
}

fn git(args: &[&str]) -> Result<String> {
    let out = Command::new("git").current_dir(root()).args(args).output().context("running git")?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The object of `rev` (any commit name git resolves), built if not built yet.
pub fn object_of(rev: &str) -> Result<PathBuf> {
    let sha = git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .with_context(|| format!("{rev:?} is not a commit of this repository"))?;
    let dir = root().join("target/ab");
    let obj = dir.join(format!("{}.o", &sha[..12]));
    if obj.exists() {
        eprintln!("[xtask] A/B: the object of {rev} ({}) is already built: {}", &sha[..12], obj.display());
        return Ok(obj);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let src = dir.join(format!("src-{}-{}", &sha[..12], std::process::id()));
    git(&["worktree", "add", "--detach", &src.to_string_lossy(), &sha])?;
    let _wt = Worktree(src.clone());
    let target = dir.join("ebpf-target");
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(src.join("guard-ebpf"))
        .args(["build", "--release", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .args(["--config", "target.bpfel-unknown-none.linker=\"bpf-linker\""])
        .args(["--config", "target.bpfel-unknown-none.rustflags=[\"-C\",\"debuginfo=2\",\"-C\",\"link-arg=--btf\"]"])
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &target);
    for var in
        ["RUSTC_WORKSPACE_WRAPPER", "RUSTC_WRAPPER", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"]
    {
        c.env_remove(var);
    }
    eprintln!("[xtask] A/B: building guard-ebpf of {rev} ({})", &sha[..12]);
    let status = c.status().context("running cargo for the old guard-ebpf")?;
    if !status.success() {
        bail!("building guard-ebpf of {rev} failed ({status})");
    }
    let built = target.join("bpfel-unknown-none/release/guard-ebpf");
    std::fs::copy(&built, &obj).with_context(|| format!("copying {} to {}", built.display(), obj.display()))?;
    Ok(obj)
}

/// The bench's arguments with every `--ab REV` turned into `--ab REV=OBJECT` (a value that is
/// already `LABEL=PATH` is passed as it is).
pub fn resolve(args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        out.push(a.clone());
        if a == "--ab" {
            let v = it.next().context("--ab needs a commit (or LABEL=OBJECT)")?;
            if v.contains('=') {
                out.push(v.clone());
            } else {
                let subject = git(&["log", "-1", "--format=%h %ad", "--date=format:%Y-%m-%d %H:%M", v])?;
                out.push(format!("{v} ({subject})={}", object_of(v)?.display()));
            }
        }
    }
    Ok(out)
}
