//! Builds the XDP object (`guard-ebpf`) and hands its path to `include_bytes!`.
//!
//! The BPF target needs `core` built from source by a compiler whose LLVM matches bpf-linker's:
//! Debian's rustc 1.96 (LLVM 22) at /usr/bin/rustc, with `RUSTC_BOOTSTRAP=1` for `-Z build-std`.
//! `cargo xtask build` installs that toolchain; this script only uses it.
//!
//! `GUARD_EBPF_OBJ=/path/to/object` skips the build and embeds a prebuilt object.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const BPF_RUSTC: &str = "/usr/bin/rustc";

fn main() {
    println!("cargo:rerun-if-env-changed=GUARD_EBPF_OBJ");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("guard-userspace sits in the workspace root").to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("guard-ebpf.o");

    if let Ok(prebuilt) = env::var("GUARD_EBPF_OBJ") {
        println!("cargo:rerun-if-changed={prebuilt}");
        std::fs::copy(&prebuilt, &dest).unwrap_or_else(|e| panic!("GUARD_EBPF_OBJ={prebuilt}: {e}"));
        return;
    }
    for dir in ["guard-ebpf/src", "guard-common/src"] {
        rerun_on_tree(&root.join(dir));
    }
    for f in ["guard-ebpf/Cargo.toml", "guard-ebpf/Cargo.lock", "guard-common/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }

    if !Path::new(BPF_RUSTC).exists() || which("bpf-linker").is_none() {
        panic!(
            "the BPF toolchain is missing ({BPF_RUSTC} from Debian's rustc-web and bpf-linker).\n\
             Run `cargo xtask build` once: it installs both, idempotently."
        );
    }
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ebpf_dir = root.join("guard-ebpf");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ebpf_dir)
        .args(["build", "--release", "--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .args(["--config", "target.bpfel-unknown-none.linker=\"bpf-linker\""])
        // Without BTF, aya cannot load the maps ("fd N is not pointing to valid bpf_map").
        .args(["--config", "target.bpfel-unknown-none.rustflags=[\"-C\",\"debuginfo=2\",\"-C\",\"link-arg=--btf\"]"])
        .env("RUSTC", BPF_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1");
    // Do not leak the host build's settings into the BPF build.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "RUSTDOCFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for guard-ebpf");
    if !status.success() {
        panic!("building guard-ebpf failed ({status}); see the output above");
    }
    let obj = ebpf_dir.join("target/bpfel-unknown-none/release/guard-ebpf");
    std::fs::copy(&obj, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", obj.display()));
}

fn rerun_on_tree(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                rerun_on_tree(&p);
            } else {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH").map(|p| env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(bin)).find(|p| p.is_file())
}
